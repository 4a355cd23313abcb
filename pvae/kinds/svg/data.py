"""The svg kind's dataset: every glyph of ``GLYPH_CHARS`` in a set of fonts, as a 64 x 64 raster
and a sequence of drawing commands, split by font (fonts of the test split are never trained on).

A datapoint is one float32 row ``(D + T * 7,)``: the glyph's D = 64 * 64 pixels, then its T =
``max_commands`` + 1 command rows (``pvae.distributions.svg``: relative arguments standardised per
argument by the train split's mean and std, padding after the first EOS). ``split_glyph`` takes a
row apart; ``SVGData.commands_of`` gives absolute commands back.
"""

from __future__ import annotations

import hashlib
import json
import os
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from pvae.contracts import Option
from pvae.data.fonts import GLYPH_CHARS, font_files, has_glyphs, has_real_digits, matplotlib_font_files
from pvae.data.npz import NpzFile, cache_dir, save_npz
from pvae.data.splits import ImageSplit, NamedSplits, split_seeded
from pvae.distributions.svg import ARGS, EOS, ROW, USES
from pvae.errors import DataError
from pvae.kinds.svg.outlines import rasterise, read_font, to_absolute, to_relative, to_rows

IMAGE_SIZE = 64
MAX_COMMANDS = Option(
    "max_commands", 50, "svg glyphs: drop glyphs of more commands", "data", int, low=1, scope="data", metavar="N"
)


def split_glyph(x: torch.Tensor, pixels: int = IMAGE_SIZE * IMAGE_SIZE) -> tuple[torch.Tensor, torch.Tensor]:
    """Rows ``(..., D + T * 7)`` -> the images ``(..., D)`` and the command rows ``(..., T, 7)``."""
    return x[..., :pixels], x[..., pixels:].unflatten(-1, (-1, ROW))


@dataclass
class FontGlyphs:
    """The glyphs read from some fonts: ``rows[i]`` (absolute commands, no EOS) draws
    ``GLYPH_CHARS[classes[i]]`` in ``files[fonts[i]]``, filled as ``pixels[i]`` ``(64, 64)``."""

    rows: list[np.ndarray]
    classes: np.ndarray
    fonts: np.ndarray
    files: list[Path]
    pixels: np.ndarray


def default_fonts() -> list[Path]:
    """matplotlib's bundled fonts that have real digits and all 62 characters."""
    return [f for f in matplotlib_font_files() if has_real_digits(f) and has_glyphs(f, GLYPH_CHARS)]


CACHE_VERSION = 1  # part of the cache key: bump when reading or the normal form changes
CACHE_KEYS = ("rows", "offsets", "classes", "fonts", "pixels", "unreadable", "empty")


def _cache_path(files: list[Path]) -> Path:
    stamps = [(str(f.resolve()), f.stat().st_size, f.stat().st_mtime_ns) for f in files]
    key = json.dumps([CACHE_VERSION, IMAGE_SIZE, stamps])
    return cache_dir() / f"svg-{hashlib.sha1(key.encode()).hexdigest()}.npz"


def _parse(files: list[Path], name: str) -> dict[str, np.ndarray]:
    """Every glyph outline of ``GLYPH_CHARS`` in ``files`` (with a progress bar), as the cache's
    arrays: the absolute rows of all glyphs concatenated (float32) and cut by ``offsets``, each
    glyph's class, font (an index into ``files``) and pixels (bits), the unreadable files' indices
    and the count of glyphs without an outline."""
    rows, lengths, classes, fonts, pixels, unreadable, empty = [], [], [], [], [], [], 0
    for index, file in enumerate(tqdm(files, desc=f"reading {name}", unit="font", disable=None, leave=False)):
        try:
            outlines = read_font(file, GLYPH_CHARS)
        except DataError:
            if len(files) == 1:
                raise
            unreadable.append(index)
            continue
        for char, contours in outlines.items():
            commands = to_rows(contours).astype(np.float32)
            if not len(commands):
                empty += 1
                continue
            rows.append(commands)
            lengths.append(len(commands))
            classes.append(GLYPH_CHARS.index(char))
            fonts.append(index)
            pixels.append(np.packbits(rasterise(commands, IMAGE_SIZE).astype(bool)))
    return {
        "rows": np.concatenate(rows) if rows else np.zeros((0, ROW), np.float32),
        "offsets": np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64),
        "classes": np.array(classes, dtype=np.int64),
        "fonts": np.array(fonts, dtype=np.int64),
        "pixels": np.stack(pixels) if pixels else np.zeros((0, IMAGE_SIZE * IMAGE_SIZE // 8), np.uint8),
        "unreadable": np.array(unreadable, dtype=np.int64),
        "empty": np.array(empty, dtype=np.int64),
    }


def _load_cache(path: Path, count: int) -> dict[str, np.ndarray] | None:
    """The cache's arrays, or None when it is damaged or does not fit ``count`` files (rebuilt then);
    read through ``NpzFile``, which checks every member's size before reading it."""
    try:
        with NpzFile(path) as archive:
            arrays = {key: archive.array(key) for key in CACHE_KEYS}
    except DataError:
        return None
    rows, offsets, n = arrays["rows"], arrays["offsets"], len(arrays["classes"])
    fine = (
        rows.ndim == 2
        and rows.shape[1] == ROW
        and np.isfinite(rows).all()
        and offsets.ndim == 1
        and len(offsets) == n + 1
        and offsets[0] == 0
        and offsets[-1] == len(rows)
        and not np.any(np.diff(offsets) < 1)
        and arrays["fonts"].shape == (n,)
        and arrays["pixels"].shape == (n, IMAGE_SIZE * IMAGE_SIZE // 8)
        and np.all((arrays["classes"] >= 0) & (arrays["classes"] < len(GLYPH_CHARS)))
        and np.all((arrays["fonts"] >= 0) & (arrays["fonts"] < count))
        and np.all((arrays["unreadable"] >= 0) & (arrays["unreadable"] < count))
    )
    return arrays if fine else None


def read_glyphs(files: list[Path], max_commands: int, name: str) -> FontGlyphs:
    """Every glyph of ``GLYPH_CHARS`` in ``files`` with at most ``max_commands`` commands, parsed once
    and then read from a pickle-free cache (``cache_dir()``, keyed by the files' paths, sizes and
    times); fonts that cannot be read, glyphs without an outline and longer glyphs are left out with
    one warning that counts them; nothing left raises ``DataError``."""
    cache = _cache_path(files)
    arrays = _load_cache(cache, len(files)) if cache.is_file() else None
    if arrays is None:
        arrays = _parse(files, name)
        try:
            save_npz(cache, arrays)
        except OSError as e:
            warnings.warn(f"{cache}: cannot write the glyph cache ({e.strerror})", stacklevel=2)
    offsets = arrays["offsets"]
    lengths = np.diff(offsets)
    keep = lengths <= max_commands
    used = sorted(set(arrays["fonts"][keep].tolist()))
    renumber = {old: new for new, old in enumerate(used)}
    rows = [arrays["rows"][a:b].astype(np.float64) for a, b, k in zip(offsets[:-1], offsets[1:], keep) if k]
    pixels = np.unpackbits(arrays["pixels"][keep], axis=1)[:, : IMAGE_SIZE * IMAGE_SIZE].astype(np.float32)
    unreadable, empty, long = arrays["unreadable"], int(arrays["empty"]), int((~keep).sum())
    reasons = [
        f"{n} {why}"
        for n, why in ((long, f"glyphs of more than {max_commands} commands"), (empty, "glyphs without an outline"))
        if n
    ]
    if len(unreadable):
        reasons.append(f"{len(unreadable)} unreadable fonts (e.g. {files[int(unreadable[0])].name})")
    if not rows:
        raise DataError(
            f"{name}: no glyph outline to read in {len(files)} font file(s)"
            + (f": {'; '.join(reasons)}" if reasons else "")
        )
    if reasons:
        warnings.warn(f"{name}: left out {', '.join(reasons)}", stacklevel=2)
    fonts = np.array([renumber[f] for f in arrays["fonts"][keep].tolist()], dtype=np.int64)
    return FontGlyphs(rows, arrays["classes"][keep], fonts, [files[i] for i in used], pixels)


@dataclass
class SVGData(NamedSplits):
    """Glyphs of several fonts split by font: ``splits[s]`` holds the rows (``split_glyph``) and the
    character classes, ``fonts[s]`` each glyph's font (an index into ``files``); ``mean`` and ``std``
    ``(6,)`` standardise the relative arguments (from the train split, or a run's saved ones)."""

    name: str
    splits: dict[str, ImageSplit]
    fonts: dict[str, np.ndarray]
    files: list[Path]
    max_commands: int
    mean: np.ndarray
    std: np.ndarray
    kind = "svg"

    @property
    def steps(self) -> int:
        """T, the command rows of a datapoint (``max_commands`` + 1 for the EOS)."""
        return self.max_commands + 1

    def commands_of(self, commands: torch.Tensor | np.ndarray) -> np.ndarray:
        """Standardised relative command rows ``(T, 7)`` -> absolute rows up to the EOS ``(n, 7)``."""
        return to_absolute(unstandardise(np.asarray(commands, dtype=np.float64), self.mean, self.std))


def standardise(rows: np.ndarray, mean: np.ndarray, std: np.ndarray) -> np.ndarray:
    """Relative rows ``(..., 7)`` with each used argument as (a - mean_j) / std_j; unused ones stay 0."""
    uses = np.array(USES)[rows[..., 0].round().astype(int).clip(0, 3)]
    out = rows.copy()
    out[..., 1:] = np.where(uses, (rows[..., 1:] - mean) / std, 0.0)
    return out


def unstandardise(rows: np.ndarray, mean: np.ndarray, std: np.ndarray) -> np.ndarray:
    """The inverse of ``standardise``."""
    uses = np.array(USES)[rows[..., 0].round().astype(int).clip(0, 3)]
    out = rows.copy()
    out[..., 1:] = np.where(uses, rows[..., 1:] * std + mean, 0.0)
    return out


def argument_moments(rows: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """The mean and std ``(6,)`` of each relative argument over the commands that use it."""
    stacked = np.concatenate(rows)
    uses = np.array(USES)[stacked[:, 0].round().astype(int)]
    mean, std = np.zeros(ARGS), np.ones(ARGS)
    for j in range(ARGS):
        values = stacked[uses[:, j], 1 + j]
        if len(values):
            mean[j], std[j] = values.mean(), max(float(values.std()), 1e-3)
    return mean, std


def glyph_row(commands: np.ndarray, pixels: np.ndarray, steps: int, mean: np.ndarray, std: np.ndarray) -> np.ndarray:
    """One datapoint from a glyph's pixels ``(D,)`` and absolute command rows ``(n, 7)``, n < ``steps``:
    the pixels, then the standardised relative commands padded with EOS rows of zeros to ``steps``."""
    padded = np.zeros((steps, ROW))
    padded[: len(commands)] = standardise(to_relative(commands), mean, std)
    padded[len(commands) :, 0] = EOS
    return np.concatenate([pixels, padded.ravel()]).astype(np.float32)


def load_svg(path: str | os.PathLike | None, max_commands: int, saved: dict | None = None, seed: int = 0) -> SVGData:
    """The glyphs of a font file or folder (default: matplotlib's fonts, ``default_fonts``), split
    90/10 by font as the paper (fonts, seeded: train, valid and test fonts), standardised by the
    train split's moments or a run's ``saved`` ones (``config["data"]``)."""
    name = "svg" if path is None else f"svg:{path}"
    files = default_fonts() if path is None else font_files(path)
    glyphs = read_glyphs(files, max_commands, name)
    parts = split_seeded(glyphs.files, seed)
    by_font = {split: np.isin(glyphs.fonts, index) for split, index in parts.items()}
    if saved and "mean" in saved:
        mean, std = np.array(saved["mean"]), np.array(saved["std"])
    else:
        train = [r for r, keep in zip(glyphs.rows, by_font["train"]) if keep]
        mean, std = argument_moments([to_relative(r) for r in train])
    splits, fonts = {}, {}
    for split, mask in by_font.items():
        index = np.flatnonzero(mask)
        if not len(index):
            continue
        rows = np.stack([glyph_row(glyphs.rows[i], glyphs.pixels[i], max_commands + 1, mean, std) for i in index])
        splits[split] = ImageSplit(torch.from_numpy(rows), torch.from_numpy(glyphs.classes[index]))
        fonts[split] = glyphs.fonts[index]
    return SVGData(name, splits, fonts, glyphs.files, max_commands, mean, std)
