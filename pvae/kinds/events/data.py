"""Melody datasets for MusicVAE-style models: tunes (``pvae.kinds.events.readers``) cut into
windows of ``bars`` bars at 16 steps a bar, split by tune, as tokens of the training split's pitch
range (``pvae.kinds.events.encoding``).
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from dataclasses import dataclass, field, replace

import numpy as np
import torch

from pvae.data.splits import SPLITS, NamedSplits, split_seeded
from pvae.errors import DataError
from pvae.kinds.events.encoding import NO_EVENT, STEPS_PER_BAR, encode, vocab_size
from pvae.kinds.events.readers import Tunes, read_tunes


def _windows(events: np.ndarray, steps: int, hop: int) -> np.ndarray:
    """Windows ``(n, steps)`` of a melody starting on every ``hop``-th bar line, those with a
    note-on only. The melody is first padded with rest to its last bar (the final NOTE_OFF on a
    bar line belongs to the bar before)."""
    length = -(-(len(events) - 1) // STEPS_PER_BAR) * STEPS_PER_BAR
    if length < steps:
        return np.zeros((0, steps), dtype=np.int64)
    padded = np.full(length, NO_EVENT, dtype=np.int64)
    padded[: min(len(events), length)] = events[:length]
    windows = np.lib.stride_tricks.sliding_window_view(padded, steps)[:: hop * STEPS_PER_BAR]
    return windows[(windows >= 0).any(1)]


def _pitch_bounds(windows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per window ``(N, T)`` events, the lowest and highest note-on pitch ``(N,)`` each."""
    notes = windows >= 0
    return np.where(notes, windows, 1 << 30).min(1), np.where(notes, windows, -1).max(1)


def _fit_range(windows: np.ndarray, low: int, high: int) -> tuple[np.ndarray, int]:
    """Windows ``(N, T)`` moved by the fewest whole octaves that bring their pitches into
    ``low..high``, those that cannot fit dropped; and how many were dropped."""
    lowest, highest = _pitch_bounds(windows)
    fewest = -((lowest - low) // 12)  # the fewest octaves up that bring the lowest pitch to low or above
    most = (high - highest) // 12  # the most octaves up that keep the highest pitch at high or below
    fits = fewest <= most
    octaves = np.where(fewest > 0, fewest, np.minimum(most, 0))  # the one nearest 0: 0 when already in range
    moved = np.where(windows >= 0, windows + 12 * octaves[:, None], windows)
    return moved[fits], int((~fits).sum())


@dataclass
class MelodySplit:
    """One split of melody windows as tokens ``(N, T)`` int64 of the range ``low..high``;
    ``transpose`` K > 0 shifts each training window by a random whole number of semitones in
    [-K, K] each epoch, clipped to keep its pitches in range."""

    tokens: torch.Tensor
    low: int
    high: int
    labels: torch.Tensor | None = None
    transpose: int = 0

    def __len__(self) -> int:
        return len(self.tokens)

    def head(self, n: int | None) -> MelodySplit:
        return self if n is None else replace(self, tokens=self.tokens[:n])

    def with_transposition(self, k: int) -> MelodySplit:
        return replace(self, transpose=k)

    def tensor(self) -> torch.Tensor:
        """All windows' tokens ``(N, T)`` int64, untransposed."""
        return self.tokens

    def chunks(self, size: int, part: tuple[int, int] = (0, 1)) -> Iterator[tuple[torch.Tensor, None]]:
        """The split in order, in chunks ``(size, T)`` of tokens, untransposed; with ``part`` (r, N),
        only the r-th of N contiguous parts (a rank's share of an evaluation)."""
        index = torch.tensor_split(torch.arange(len(self)), part[1])[part[0]]
        for chunk in index.split(size):
            yield self.tokens[chunk], None

    def batches(
        self, batch_size: int, generator: torch.Generator, skip: int = 0, part: tuple[int, int] = (0, 1)
    ) -> Iterator[tuple[torch.Tensor, None]]:
        """One shuffled pass of token batches ``(B, T)``; the order and every window's shift are
        drawn from ``generator`` at the start, so its saved state replays the epoch; ``skip`` leaves
        out the first batches (resuming an interrupted epoch). With ``part`` (r, N), each batch is
        only the r-th of its N contiguous slices."""
        order = torch.randperm(len(self), generator=generator)
        shifts = torch.randint(-self.transpose, self.transpose + 1, (len(self),), generator=generator)
        if self.transpose > 0:  # clipped so that each window's notes stay within low..high
            notes = self.tokens >= 2
            top = 2 + self.high - self.low  # the token of the highest pitch
            lowest = torch.where(notes, self.tokens, top).amin(1)
            highest = torch.where(notes, self.tokens, 2).amax(1)
            shifts = torch.minimum(torch.maximum(shifts, 2 - lowest), top - highest)
        for start in range(skip * batch_size, len(self), batch_size):
            picked = torch.tensor_split(order[start : start + batch_size], part[1])[part[0]]
            x = self.tokens[picked]
            if self.transpose > 0:
                x = torch.where(x >= 2, x + shifts[picked, None], x)
            yield x, None


@dataclass
class MelodyData(NamedSplits):
    """A melody dataset: ``splits`` of windows of ``bars`` bars, tokens of the pitch range
    ``low..high``; ``missing`` says why each split asked for and not there has no window."""

    name: str
    splits: dict[str, MelodySplit]
    low: int
    high: int
    bars: int
    kind: str = "events"
    binary: bool = False
    missing: dict[str, str] = field(default_factory=dict)

    def split(self, name: str) -> MelodySplit:
        if name not in self.splits and name in self.missing:
            raise DataError(f"{self.name}: no {name} split: {self.missing[name]}")
        return super().split(name)

    @property
    def steps(self) -> int:
        """T, the steps of a window."""
        return self.bars * STEPS_PER_BAR

    @property
    def vocab(self) -> int:
        return vocab_size(self.low, self.high)


def prepare(
    tunes: Tunes,
    name: str,
    bars: int,
    low: int | None = None,
    high: int | None = None,
    seed: int = 0,
    splits: tuple[str, ...] | None = None,
) -> MelodyData:
    """Split ``tunes`` by tune (``split_seeded``), then cut windows of ``bars`` bars at every bar
    line in train and without overlap in valid and test, keeping those with a note. The pitch
    range is the train windows' unless ``low`` and ``high`` are given (a run's own); windows
    outside it move by whole octaves when they fit and are dropped (one warning) when not.
    ``splits`` keeps only these (train is read for the range when none is given)."""
    if bars < 1:
        raise DataError(f"{name}: bars must be at least 1, not {bars}")
    steps, wanted = bars * STEPS_PER_BAR, splits or SPLITS
    windows, missing = {}, {}
    for split, index in split_seeded(tunes.melodies, seed).items():
        if split not in wanted and not (split == "train" and low is None):
            continue
        hop = 1 if split == "train" else bars
        cut = [_windows(tunes.melodies[i], steps, hop) for i in index]
        windows[split] = np.concatenate(cut) if cut else np.zeros((0, steps), dtype=np.int64)
        if not len(index):
            missing[split] = (
                f"{len(tunes.melodies)} usable tune(s) read; the splits need at least 3 (one each for train, "
                "valid and test)"
            )
        elif not len(windows[split]):
            missing[split] = f"its {len(index)} tune(s) have no window of {bars} bars with a note"
    if "train" in windows and not len(windows["train"]):
        raise DataError(f"{name}: no tune has {bars} bars of usable melody")
    if low is None or high is None:
        lowest, highest = _pitch_bounds(windows["train"])
        low, high = int(lowest.min()), int(highest.max())
    dropped, out = {}, {}
    for split, cut in windows.items():
        if split not in wanted:
            continue
        kept, dropped[split] = _fit_range(cut, low, high)
        if split == "train" and not len(kept):
            raise DataError(f"{name}: no train window fits the pitch range {low}..{high}")
        if len(kept):
            out[split] = MelodySplit(torch.from_numpy(encode(kept, low)), low, high)
        else:
            missing.setdefault(split, f"none of its {len(cut)} windows fits the pitch range {low}..{high}")
    if sum(dropped.values()):
        counts = ", ".join(f"{split} {n}" for split, n in dropped.items() if n)
        total = sum(len(windows[s]) for s in dropped)
        warnings.warn(
            f"{name}: dropped {sum(dropped.values())} of {total} windows with pitches that no octave shift "
            f"brings into {low}..{high} ({counts})",
            stacklevel=2,
        )
    if not out:
        raise DataError(f"{name}: no window of {bars} bars in the splits {', '.join(wanted)}")
    return MelodyData(name=name, splits=out, low=low, high=high, bars=bars, missing=missing)


def load_melodies(spec: str, bars: int, saved: dict | None = None, splits: tuple[str, ...] | None = None) -> MelodyData:
    """The melody dataset of a spec: its tunes (``read_tunes``, cached) in windows of ``bars``
    bars (``prepare``). ``saved`` (a run's data description) gives the run's pitch range and bars;
    ``splits`` the splits to keep."""
    saved = saved or {}
    bars = saved.get("bars", bars)
    return prepare(read_tunes(spec), spec, bars, saved.get("low"), saved.get("high"), splits=splits)
