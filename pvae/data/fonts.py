"""Glyph outlines from TrueType/OpenType fonts, flattened to polygons, and glyph sketches.

Fonts give each glyph as closed contours of straight lines and Bezier curves. We flatten each
curve into a polyline whose distance from the curve is at most ``tolerance`` (in glyph units, where
the font size is 1), so the same outlines serve the raster digits and the stroke data: a glyph
sketch draws each closed contour as one pen-down stroke, scaled so the glyph's longer side is 255
units (per-glyph normalisation) and simplified by Ramer-Douglas-Peucker, in stroke-3.
"""

from __future__ import annotations

import math
import os
import warnings
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np

from pvae.data.strokes import lines_to_stroke3, rdp
from pvae.errors import DataError

DIGIT_NAMES = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")
GLYPH_CHARS = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"  # class i draws GLYPH_CHARS[i]
FONT_SUFFIXES = (".ttf", ".otf")


def matplotlib_font_files() -> list[Path]:
    """The TrueType files that matplotlib ships (sorted, so dataset seeds mean the same fonts)."""
    import matplotlib

    folder = Path(matplotlib.get_data_path()) / "fonts" / "ttf"
    return sorted(folder.glob("*.ttf"))


def font_files(path: str | os.PathLike) -> list[Path]:
    """``[path]`` for a font file, or the ``.ttf``/``.otf`` files under a folder (recursively,
    sorted); a missing path or a folder without fonts raises ``DataError``."""
    path = Path(path).expanduser()
    if path.is_dir():
        files = sorted(p for p in path.rglob("*") if p.suffix.lower() in FONT_SUFFIXES and p.is_file())
        if not files:
            raise DataError(f"{path}: no .ttf or .otf font in this folder")
        return files
    if not path.is_file():
        raise DataError(f"{path}: no such font file or folder")
    return [path]


def open_font(font_file: str | os.PathLike):
    """matplotlib's FreeType face (``FT2Font``) of a font file; anything else raises ``DataError``."""
    from matplotlib.ft2font import FT2Font

    path = Path(font_file)
    if not path.is_file():
        raise DataError(f"{path}: no such font file")
    try:
        return FT2Font(str(path))
    except (RuntimeError, OSError, ValueError):
        raise DataError(f"{path}: not a TrueType/OpenType font") from None


def has_real_digits(font_file: str | os.PathLike) -> bool:
    """True when the font maps '0'-'9' to ten distinct glyphs that are named as digits.

    Symbol fonts (cmex10, cmsy10) map the digit code points to other symbols, and fallback fonts
    (LastResort) map every code point to one placeholder; glyph names tell both apart from real
    digits ('zero', 'zerooldstyle', 'uni0030').
    """
    font = open_font(font_file)
    cmap = font.get_charmap()
    glyphs = [cmap.get(ord(str(d))) for d in range(10)]
    if any(g is None or g == 0 for g in glyphs) or len(set(glyphs)) != 10:
        return False
    for digit, glyph in enumerate(glyphs):
        name = font.get_glyph_name(glyph).lower()
        if not (name.startswith(DIGIT_NAMES[digit]) or name == f"uni{0x30 + digit:04x}"):
            return False
    return True


def missing_glyphs(font_file: str | os.PathLike, chars: str = GLYPH_CHARS) -> str:
    """The characters of ``chars`` without a glyph of their own: unmapped, mapped to .notdef, or
    sharing a glyph with another of ``chars`` (a fallback font's placeholder)."""
    cmap = open_font(font_file).get_charmap()
    glyphs = [cmap.get(ord(c)) or 0 for c in chars]
    return "".join(c for c, g in zip(chars, glyphs) if not g or glyphs.count(g) > 1)


def has_glyphs(font_file: str | os.PathLike, chars: str) -> bool:
    """True when every character of ``chars`` maps to a glyph of its own (not .notdef)."""
    return not missing_glyphs(font_file, chars)


def _bezier_steps(control: np.ndarray, tolerance: float) -> int:
    """Segments needed so a uniform polyline stays within ``tolerance`` of a Bezier curve.

    A uniform polyline with n segments deviates from a curve B(t) by at most
    max|B''| / (8 n^2); for degree d, |B''| <= d (d - 1) max_i |P_i - 2 P_{i+1} + P_{i+2}|.
    """
    degree = len(control) - 1
    if degree < 2:
        return 1
    second = control[:-2] - 2 * control[1:-1] + control[2:]
    bound = degree * (degree - 1) * float(np.max(np.linalg.norm(second, axis=1)))
    return max(1, math.ceil(math.sqrt(bound / (8 * tolerance))))


def glyph_contours(font_file: str | os.PathLike, char: str, tolerance: float = 0.002) -> list[np.ndarray]:
    """Closed contours of one glyph as float arrays ``(n_i, 2)`` in glyph units (font size 1).

    The y axis points up, as in the font. Each contour's last point equals its first.
    Returns an empty list for a glyph with no outline (a space, or a missing glyph).
    """
    return [c.copy() for c in _glyph_contours(str(font_file), char, tolerance)]


@lru_cache(maxsize=4096)
def _glyph_contours(font_file: str, char: str, tolerance: float) -> tuple[np.ndarray, ...]:
    from matplotlib.font_manager import FontProperties
    from matplotlib.path import Path as MplPath
    from matplotlib.textpath import text_to_path

    try:
        vertices, codes = text_to_path.get_text_path(FontProperties(fname=font_file), char)
    except RuntimeError as e:  # FreeType's errors on a corrupt glyph
        raise DataError(f"{font_file}: cannot read the glyph of {char!r} ({e})") from None
    if not len(vertices):  # no outline (matplotlib's TextPath fails on these)
        return ()
    path = MplPath(np.asarray(vertices) * (1 / text_to_path.FONT_SCALE), codes)  # as TextPath(size=1) scales
    contours: list[np.ndarray] = []
    points: list[np.ndarray] = []
    for segment, code in path.iter_bezier():
        control = np.asarray(segment.control_points, dtype=np.float64)
        if code == MplPath.MOVETO:
            if len(points) > 1:
                contours.append(_close(np.concatenate(points)))
            points = [control[:1]]
            continue
        steps = _bezier_steps(control, tolerance)
        t = np.linspace(0.0, 1.0, steps + 1)[1:]
        points.append(segment(t))
    if len(points) > 1:
        contours.append(_close(np.concatenate(points)))
    return tuple(contours)


def _close(points: np.ndarray) -> np.ndarray:
    if not np.allclose(points[0], points[-1]):
        points = np.concatenate([points, points[:1]])
    return points


def glyph_polylines(
    font_file: str | os.PathLike, char: str, size: float = 255.0, epsilon: float = 2.0
) -> list[np.ndarray]:
    """A glyph's outline contours as polylines in image coordinates (y down), scaled so the
    longer side of the glyph is ``size`` and simplified by Ramer-Douglas-Peucker (``epsilon``).

    Each closed contour becomes one pen-down polyline, the way a person would trace the outline.
    """
    contours = glyph_contours(font_file, char)
    if not contours:
        return []
    points = np.concatenate(contours)
    low, high = points.min(0), points.max(0)
    factor = size / float(np.max(high - low))
    lines = []
    for contour in contours:
        xy = (contour - low) * factor
        xy[:, 1] = size * (high[1] - low[1]) / np.max(high - low) - xy[:, 1]  # flip: y grows downwards
        lines.append(rdp(xy, epsilon))
    return lines


def glyph_sketch(font_file: str | os.PathLike, char: str) -> np.ndarray:
    """One glyph as a stroke-3 sketch ``(n, 3)`` in whole units (longer side 255), one pen-down
    stroke per contour; ``(0, 3)`` for a glyph without an outline."""
    lines = glyph_polylines(font_file, char)
    return np.round(lines_to_stroke3(lines)) if lines else np.zeros((0, 3))


def font_sketches(font_file: str | os.PathLike, chars: str = GLYPH_CHARS) -> list[np.ndarray]:
    """The stroke-3 sketches of ``chars`` in one font, in order (62 for ``GLYPH_CHARS``); a file
    that is not a font, or a font without some of ``chars``, raises ``DataError``."""
    missing = missing_glyphs(font_file, chars)
    if missing:
        raise DataError(f"{font_file}: no glyph for {_listing(missing)}")
    return [glyph_sketch(font_file, c) for c in chars]


def _listing(chars: str, most: int = 10) -> str:
    shown = ", ".join(repr(c) for c in chars[:most])
    return shown + (f" and {len(chars) - most} more" if len(chars) > most else "")


@dataclass
class GlyphSet:
    """Glyph sketches of several fonts: ``sketches[i]`` (stroke-3, whole units) draws the character
    ``GLYPH_CHARS[classes[i]]`` of the font ``files[fonts[i]]``."""

    sketches: list[np.ndarray]
    classes: np.ndarray  # (N,) int64: the character class, an index into GLYPH_CHARS
    fonts: np.ndarray  # (N,) int64: the font id, an index into files
    files: list[Path]


def usable_fonts(path: str | os.PathLike) -> list[Path]:
    """The fonts of a font file or folder that have all of ``GLYPH_CHARS``.

    Fonts without some of the characters, and in a folder files that are not fonts, are skipped
    with one warning that counts them; a given file that is not a font, or no usable font at all,
    raises ``DataError``.
    """
    files = font_files(path)
    usable, lacking, unreadable = [], {}, []
    for file in files:
        try:
            missing = missing_glyphs(file)
        except DataError:
            if len(files) == 1:
                raise
            unreadable.append(file)
            continue
        if missing:
            lacking[file] = missing
        else:
            usable.append(file)
    reasons = []
    if lacking:
        file, missing = next(iter(lacking.items()))
        reasons.append(
            f"{len(lacking)} without some of the 62 characters 0-9 A-Z a-z (e.g. {file.name}: {_listing(missing, 3)})"
        )
    if unreadable:
        reasons.append(f"{len(unreadable)} not TrueType/OpenType fonts (e.g. {unreadable[0].name})")
    if not usable:
        raise DataError(f"{path}: no usable font among {len(files)} file(s): {'; '.join(reasons)}")
    if reasons:
        warnings.warn(
            f"{path}: skipped {len(files) - len(usable)} of {len(files)} fonts: {'; '.join(reasons)}", stacklevel=2
        )
    return usable


def read_glyphs(path: str | os.PathLike | None = None) -> GlyphSet:
    """The glyph sketches of ``GLYPH_CHARS`` in every usable font of a font file or folder
    (``usable_fonts``); by default in matplotlib's fonts that have real digits and all 62
    characters (the symbol and fallback fonts are left out silently). Glyphs without an outline
    are left out."""
    if path is None:
        files = [f for f in matplotlib_font_files() if has_real_digits(f) and has_glyphs(f, GLYPH_CHARS)]
    else:
        files = usable_fonts(path)
    sketches, classes, fonts = [], [], []
    for font_id, file in enumerate(files):
        for i, char in enumerate(GLYPH_CHARS):
            sketch = glyph_sketch(file, char)
            if len(sketch):
                sketches.append(sketch)
                classes.append(i)
                fonts.append(font_id)
    return GlyphSet(sketches, np.array(classes, dtype=np.int64), np.array(fonts, dtype=np.int64), files)
