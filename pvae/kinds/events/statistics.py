"""Simple statistics of melodies, to hold a model's prior draws against the corpus (``pvae sample``).

Of one melody, events ``(T,)`` at 16 steps a bar (``pvae.kinds.events.encoding``), with its notes
(pitch p_i sounding over steps [s_i, e_i), i = 1..n, in order) and B = T / 16 bars:

- notes per bar: n / B;
- pitch range: max_i p_i - min_i p_i, in semitones;
- repeated pitches: the share of consecutive notes with the same pitch, #{i > 1: p_i = p_{i-1}} / (n - 1);
- steps in key: the share of sounding steps whose pitch class is in the scale of the melody's key,
  sum over notes in the scale of (e_i - s_i) / sum_i (e_i - s_i), the key estimated per melody by
  music21 (``Stream.analyze('key')``, Krumhansl-Schmuckler);
- empty bars: the share of bars in which no note sounds.

A statistic a melody does not define (the range of a melody without notes) is left out of the mean.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from pvae.errors import DataError
from pvae.kinds.events.encoding import STEPS_PER_BAR, notes
from pvae.kinds.events.readers import stream_from_melody

STATISTICS = ("notes per bar", "pitch range", "repeated pitches", "steps in key", "empty bars")


def melody_statistics(events: np.ndarray, key_pitch_classes: set[int] | None = None) -> dict[str, float]:
    """The statistics of one melody ``(T,)``; ``key_pitch_classes`` (0 = C .. 11 = B) is the scale of its
    key, ``None`` to estimate it (music21; NaN without music21). NaN where the melody does not define one."""
    events = np.asarray(events)
    found = notes(events)
    bars = max(1, -(-len(events) // STEPS_PER_BAR))
    pitches = np.array([pitch for pitch, _, _ in found])
    lengths = np.array([end - start for _, start, end in found])
    sounding = np.zeros(bars * STEPS_PER_BAR, dtype=bool)
    for _, start, end in found:
        sounding[start:end] = True
    if key_pitch_classes is None and len(found):
        key_pitch_classes = estimated_key(events)
    in_key = math.nan
    if len(found) and key_pitch_classes is not None:
        in_key = float(lengths[np.isin(pitches % 12, sorted(key_pitch_classes))].sum() / lengths.sum())
    return {
        "notes per bar": len(found) / bars,
        "pitch range": float(pitches.max() - pitches.min()) if len(found) else math.nan,
        "repeated pitches": float((pitches[1:] == pitches[:-1]).mean()) if len(found) > 1 else math.nan,
        "steps in key": in_key,
        "empty bars": float((~sounding.reshape(bars, STEPS_PER_BAR).any(1)).mean()),
    }


def estimated_key(events: np.ndarray) -> set[int] | None:
    """The pitch classes of the scale of the key music21 estimates for a melody; ``None`` without music21."""
    try:
        key = stream_from_melody(np.asarray(events)).analyze("key")
    except DataError:  # music21 is not installed
        return None
    return {p.pitchClass for p in key.getScale().getPitches()}


def mean_statistics(melodies: Sequence[np.ndarray]) -> dict[str, float]:
    """Each statistic's mean over the melodies that define it (NaN where none does)."""
    rows = [melody_statistics(m) for m in melodies]
    means = {}
    for name in STATISTICS:
        values = [row[name] for row in rows if not math.isnan(row[name])]
        means[name] = float(np.mean(values)) if values else math.nan
    return means


def statistics_table(columns: dict[str, dict[str, float]]) -> str:
    """The statistics of several sets of melodies side by side (``{"prior draws": means, ...}``), as text."""
    width = max(len(name) for name in STATISTICS) + 2
    cells = [max(10, len(title) + 2) for title in columns]
    header = "".join(f"{title:>{cell}}" for title, cell in zip(columns, cells))
    lines = [f"{'':<{width}}{header}"]
    for name in STATISTICS:
        values = (f"{means[name]:>{cell}.3f}" for means, cell in zip(columns.values(), cells))
        lines.append(f"{name:<{width}}" + "".join(values))
    return "\n".join(lines)
