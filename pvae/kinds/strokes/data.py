"""Stroke data for sketch models: stroke-3 sketches, stroke-5 batches, cleaning, normalisation,
augmentation, and the readers of sketch-rnn's ``.npz`` files and of our pickle-free cache.

A sketch is a stroke-3 array ``(n, 3)`` of rows ``(dx, dy, pen_lifted)``: the offset from the
previous point and whether the pen leaves the paper after this point (Ha & Eck 2017). Batches are
stroke-5 ``(B, T, 5)`` with rows ``(dx, dy, p1, p2, p3)`` and padding ``(0, 0, 0, 0, 1)``; T is
the longest sketch of the dataset plus one, so every sketch ends with an end-of-sketch row.

sketch-rnn's ``.npz`` files hold object arrays (Python 2 pickles). ``np.load`` with pickles allowed
would run any code such a file names, so we read them with ``pvae.data.npz``'s restricted
unpickler, which rebuilds numeric arrays and refuses everything else. ``save_stroke_cache``
writes the same splits as one int16/float32 point array and an offsets array per split, which
``read_stroke_file`` loads without pickle.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, replace

import numpy as np
import torch

from pvae.data.npz import NpzFile
from pvae.data.splits import SPLITS, NamedSplits
from pvae.errors import DataError

OFFSET_LIMIT = 1000  # sketch-rnn clamps offsets to +-1000 before normalising


def rdp(points: np.ndarray, epsilon: float) -> np.ndarray:
    """Ramer-Douglas-Peucker: the subset of ``points`` ``(n, 2)`` (first and last kept) such that
    every dropped point lies within ``epsilon`` of the segment that replaces it."""
    points = np.asarray(points, dtype=np.float64)
    if len(points) < 3:
        return points.copy()
    keep = np.zeros(len(points), dtype=bool)
    keep[0] = keep[-1] = True
    stack = [(0, len(points) - 1)]
    while stack:
        first, last = stack.pop()
        if last - first < 2:
            continue
        a, b = points[first], points[last]
        inner = points[first + 1 : last]
        ab = b - a
        norm = np.hypot(*ab)
        if norm == 0:
            dist = np.hypot(*(inner - a).T)
        else:  # distance to the line through a and b: |cross(ab, p - a)| / |ab|
            dist = np.abs(ab[0] * (inner[:, 1] - a[1]) - ab[1] * (inner[:, 0] - a[0])) / norm
        i = int(np.argmax(dist))
        if dist[i] > epsilon:
            split = first + 1 + i
            keep[split] = True
            stack += [(first, split), (split, last)]
    return points[keep]


def lines_to_stroke3(lines: list[np.ndarray]) -> np.ndarray:
    """Polylines of absolute points ``[(n_i, 2), ...]`` drawn in order -> stroke-3 ``(sum n_i, 3)``.

    The first row moves from the first point to itself (0, 0); the pen lifts after each line's
    last point.
    """
    points = np.concatenate(lines)
    offsets = np.diff(points, axis=0, prepend=points[:1])
    pen = np.zeros(len(points))
    pen[np.cumsum([len(line) for line in lines]) - 1] = 1
    return np.column_stack([offsets, pen])


def stroke3_to_lines(sketch: np.ndarray) -> list[np.ndarray]:
    """Stroke-3 -> absolute polylines, one per pen-down run (the inverse of ``lines_to_stroke3``
    up to a translation)."""
    points = np.cumsum(sketch[:, :2], axis=0)
    ends = np.flatnonzero(sketch[:, 2] > 0.5) + 1
    return [line for line in np.split(points, ends) if len(line)]


def to_stroke5(sketch: np.ndarray, rows: int) -> np.ndarray:
    """Stroke-3 ``(n, 3)`` -> stroke-5 ``(rows, 5)`` float32, padded with ``(0, 0, 0, 0, 1)``."""
    n = len(sketch)
    if n >= rows:
        raise ValueError(f"a sketch of {n} points needs more than {rows} rows")
    out = np.zeros((rows, 5), dtype=np.float32)
    out[:n, :2] = sketch[:, :2]
    out[:n, 3] = sketch[:, 2]
    out[:n, 2] = 1 - sketch[:, 2]
    out[n:, 4] = 1
    return out


def to_stroke3(x: np.ndarray | torch.Tensor) -> np.ndarray:
    """Stroke-5 ``(T, 5)`` -> stroke-3 ``(n, 3)``: the rows before the first end-of-sketch row."""
    x = np.asarray(x)
    ended = np.flatnonzero(x[:, 4] > 0.5)
    n = int(ended[0]) if len(ended) else len(x)
    return np.column_stack([x[:n, :2], x[:n, 3]]).astype(np.float32)


def augment(sketch: np.ndarray, rng: np.random.Generator, scale: float = 0.15, drop: float = 0.10) -> np.ndarray:
    """sketch-rnn's two augmentations of a (normalised) stroke-3 sketch.

    - x and y offsets scaled by independent factors from U[1 - scale, 1 + scale];
    - interior points dropped with probability ``drop``: a pen-down point whose predecessor is
      pen-down and that is at least the fourth point of its stroke; the remaining points keep their
      positions, so each dropped point's offset merges into the next one's.
    """
    out = sketch.astype(np.float32, copy=True)
    out[:, :2] *= rng.uniform(1 - scale, 1 + scale, size=2).astype(np.float32)
    if drop > 0 and len(out) > 3:
        pen = out[:, 2] > 0.5
        starts = np.concatenate([[True], pen[:-1]])  # a stroke starts after a lift
        index = np.arange(len(out)) - np.maximum.accumulate(np.where(starts, np.arange(len(out)), 0))
        droppable = ~pen & ~np.concatenate([[True], pen[:-1]]) & (index >= 3)
        dropped = droppable & (rng.random(len(out)) < drop)
        if dropped.any():
            positions = np.cumsum(out[:, :2], axis=0)[~dropped]
            pens = out[~dropped, 2]
            out = np.column_stack([np.diff(positions, axis=0, prepend=np.zeros((1, 2))), pens]).astype(np.float32)
    return out


PROBLEMS = ("not an (n, 3) array", "no points", "NaN or inf", "pen values outside {0, 1}")


def checked(sketch) -> tuple[np.ndarray | None, str | None]:
    """``(a, None)`` for a usable sketch, ``a`` float64 stroke-3 with offsets clamped to +-1000;
    ``(None, problem)`` (one of ``PROBLEMS``) for one that is not. The length is not checked."""
    a = np.asarray(sketch, dtype=np.float64) if _numeric(sketch) else None
    if a is None or a.ndim != 2 or a.shape[1] != 3:
        return None, PROBLEMS[0]
    if len(a) == 0:
        return None, PROBLEMS[1]
    if not np.isfinite(a).all():
        return None, PROBLEMS[2]
    if not np.isin(a[:, 2], (0, 1)).all():
        return None, PROBLEMS[3]
    a[:, :2] = np.clip(a[:, :2], -OFFSET_LIMIT, OFFSET_LIMIT)
    return a, None


def warn_dropped(source: str, dropped: dict[str, int], read: int) -> None:
    """One warning that counts the sketches dropped for each reason."""
    if dropped:
        counts = ", ".join(f"{n} {reason}" for reason, n in dropped.items())
        warnings.warn(f"{source}: dropped {sum(dropped.values())} of {read} sketches ({counts})", stacklevel=3)


def clean(sketches: list, max_seq_len: int, source: str) -> tuple[list[np.ndarray], list[int]]:
    """The usable sketches (``checked``, as float32) no longer than ``max_seq_len`` points, and their
    indices; the others are dropped with one warning that counts each reason."""
    kept, index, dropped = [], [], {}
    for i, sketch in enumerate(sketches):
        a, reason = checked(sketch)
        if reason is None and len(a) > max_seq_len:
            reason = f"longer than max_seq_len {max_seq_len}"
        if reason is None:
            kept.append(a.astype(np.float32))
            index.append(i)
        else:
            dropped[reason] = dropped.get(reason, 0) + 1
    warn_dropped(source, dropped, len(sketches))
    return kept, index


def _numeric(sketch) -> bool:
    try:
        return np.asarray(sketch).dtype.kind in "biuf"
    except (ValueError, TypeError):
        return False


def normalizing_scale(sketches: list[np.ndarray]) -> float:
    """The standard deviation of all offsets (dx and dy together), sketch-rnn's normaliser."""
    offsets = np.concatenate([s[:, :2] for s in sketches]).ravel()
    scale = float(np.std(offsets, dtype=np.float64))
    return scale if scale > 0 else 1.0


@dataclass
class StrokeSplit:
    """One split of normalised stroke-3 sketches, padded to ``rows`` stroke-5 rows in batches.

    ``sketches`` is any sequence of ``(n, 3)`` arrays: a list, or one that decodes each sketch from
    its file when it is read (``pvae.kinds.strokes.quickdraw.LazySketches``), so a split need not fit in
    memory. ``augment_scale``/``augment_drop`` set sketch-rnn's training augmentations (0 for none).
    """

    sketches: Sequence[np.ndarray]
    rows: int
    labels: torch.Tensor | None = None
    augment_scale: float = 0.0
    augment_drop: float = 0.0

    def __len__(self) -> int:
        return len(self.sketches)

    def head(self, n: int | None) -> StrokeSplit:
        if n is None:
            return self
        return replace(self, sketches=self.sketches[:n], labels=None if self.labels is None else self.labels[:n])

    def with_augmentation(self, scale: float, drop: float) -> StrokeSplit:
        return replace(self, augment_scale=scale, augment_drop=drop)

    def tensor(self) -> torch.Tensor:
        """All sketches as stroke-5 ``(N, rows, 5)`` float32, without augmentation."""
        return self._stack(list(self.sketches))

    def _stack(self, sketches: list[np.ndarray]) -> torch.Tensor:
        return torch.from_numpy(np.stack([to_stroke5(s, self.rows) for s in sketches]))

    def chunks(self, size: int, part: tuple[int, int] = (0, 1)) -> Iterator[tuple[torch.Tensor, torch.Tensor | None]]:
        """The split in order, in chunks of ``size``, without augmentation; with ``part`` (r, N),
        only the r-th of N contiguous parts (a rank's share of an evaluation)."""
        index = torch.tensor_split(torch.arange(len(self)), part[1])[part[0]]
        for chunk in index.split(size):
            picked = chunk.tolist()
            yield self._stack([self.sketches[i] for i in picked]), None if self.labels is None else self.labels[picked]

    def batches(
        self, batch_size: int, generator: torch.Generator, skip: int = 0, part: tuple[int, int] = (0, 1)
    ) -> Iterator[tuple[torch.Tensor, torch.Tensor | None]]:
        """One shuffled, augmented pass; the order and every sketch's augmentation are drawn from
        ``generator`` at the start, so its saved state replays the epoch; ``skip`` leaves out the
        first batches (resuming an interrupted epoch). With ``part`` (r, N), each batch is only the
        r-th of its N contiguous slices, and only those sketches are decoded."""
        order = torch.randperm(len(self), generator=generator)
        seeds = torch.randint(2**31 - 1, (len(self),), generator=generator)
        augmenting = self.augment_scale > 0 or self.augment_drop > 0
        for start in range(skip * batch_size, len(self), batch_size):
            picked = torch.tensor_split(order[start : start + batch_size], part[1])[part[0]].tolist()
            sketches = [self.sketches[i] for i in picked]
            if augmenting:
                sketches = [
                    augment(s, np.random.default_rng(int(seeds[i])), self.augment_scale, self.augment_drop)
                    for s, i in zip(sketches, picked)
                ]
            x = self._stack(sketches) if sketches else torch.zeros(0, self.rows, 5)
            yield x, None if self.labels is None else self.labels[picked]


@dataclass
class StrokeData(NamedSplits):
    """A stroke dataset: ``splits`` of normalised sketches, the ``scale`` they were divided by,
    and ``rows`` (T) of every stroke-5 batch."""

    name: str
    splits: dict[str, StrokeSplit]
    scale: float
    rows: int
    kind: str = "strokes"
    binary: bool = False


def prepare(
    raw: dict[str, list],
    name: str,
    max_seq_len: int = 250,
    scale: float | None = None,
    labels: dict[str, torch.Tensor] | None = None,
    rows: int | None = None,
) -> StrokeData:
    """Clean every split, normalise offsets by ``scale`` (by default the train split's
    ``normalizing_scale``) and pad to ``rows`` (by default one more than the longest sketch); a
    dataset with no usable sketch is an error. A run's own ``scale`` and ``rows`` reload any of
    its splits alone."""
    splits = {}
    labels = labels or {}
    for split, sketches in raw.items():
        if not len(sketches):
            continue
        kept, index = clean(sketches, max_seq_len, f"{name} [{split}]")
        if not kept:
            raise DataError(f"{name}: no usable sketch in split {split!r} ({len(sketches)} read)")
        split_labels = labels.get(split)
        splits[split] = (kept, None if split_labels is None else split_labels[index])
    if scale is None and "train" not in splits:
        raise DataError(f"{name}: no sketches in the train split")
    if not splits:
        raise DataError(f"{name}: no sketches")
    scale = scale or normalizing_scale(splits["train"][0])
    rows = rows or 1 + max(len(s) for kept, _ in splits.values() for s in kept)
    out = {}
    for split, (kept, split_labels) in splits.items():
        normalised = [np.column_stack([s[:, :2] / scale, s[:, 2]]).astype(np.float32) for s in kept]
        out[split] = StrokeSplit(normalised, rows, split_labels)
    return StrokeData(name=name, splits=out, scale=scale, rows=rows)


def read_stroke_file(path: str | os.PathLike, splits: tuple[str, ...] = SPLITS) -> dict[str, list[np.ndarray]]:
    """Splits of raw stroke-3 sketches from sketch-rnn's ``.npz`` (object arrays, unpickled by
    ``NumericUnpickler``: numeric arrays only) or from our pickle-free cache
    (``{split}_points`` + ``{split}_offsets``); only the ``splits`` asked for are read."""
    with NpzFile(path) as archive:
        if any(f"{s}_points" in archive.files for s in SPLITS):
            return {k: v for k, v in _read_cache(archive).items() if k in splits}
        if "train" not in archive.files:
            raise DataError(f"{path}: missing key 'train' (has {archive.listing()})")
        return {split: _sketch_list(archive, split) for split in splits if split in archive.files}


def _sketch_list(archive: NpzFile, split: str) -> list:
    """The elements of sketch-rnn's object array ``split``, which must be one-dimensional."""
    sketches = archive.objects(split)
    if sketches.ndim != 1:
        raise DataError(f"{archive.path}: key {split!r} has shape {sketches.shape}, expected a list of sketches")
    return list(sketches)


def _read_cache(archive: NpzFile) -> dict[str, list[np.ndarray]]:
    path = archive.path
    out = {}
    for split in SPLITS:
        if f"{split}_points" not in archive.files:
            continue
        points, offsets = archive.array(f"{split}_points"), archive.array(f"{split}_offsets")
        if (
            points.ndim != 2
            or points.shape[1] != 3
            or offsets.ndim != 1
            or offsets.dtype.kind not in "iu"
            or len(offsets) == 0
            or offsets[0] != 0
            or offsets[-1] != len(points)
            or np.any(offsets[1:] < offsets[:-1])  # not np.diff: unsigned differences wrap around
        ):
            raise DataError(f"{path}: '{split}_points' {points.shape} and '{split}_offsets' do not match")
        out[split] = [points[a:b] for a, b in zip(offsets[:-1], offsets[1:])]
    if "train" not in out:
        raise DataError(f"{path}: missing key 'train_points'")
    return out


def save_stroke_cache(path: str | os.PathLike, splits: dict[str, list[np.ndarray]]) -> None:
    """Write splits of stroke-3 sketches as one points array and one offsets array each (no pickle);
    integer offsets are kept as int16 when they fit."""
    arrays = {}
    for split, sketches in splits.items():
        points = np.concatenate([np.asarray(s) for s in sketches]) if sketches else np.zeros((0, 3))
        if np.all(np.mod(points, 1) == 0) and np.abs(points).max(initial=0) < 2**15:
            points = points.astype(np.int16)
        else:
            points = points.astype(np.float32)
        arrays[f"{split}_points"] = points
        arrays[f"{split}_offsets"] = np.concatenate([[0], np.cumsum([len(s) for s in sketches])]).astype(np.int64)
    np.savez_compressed(path, **arrays)
