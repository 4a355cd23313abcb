"""MusicVAE's melody events and the tokens models see (Roberts et al. 2018).

A melody is an int array ``(T,)`` of events, one per sixteenth step: a value ``p >= 0`` is the
note-on of MIDI pitch ``p`` (ending any sounding note), ``NOTE_OFF`` ends the sounding note and
``NO_EVENT`` changes nothing (a held note or a continuing rest); a note that ends where the next
begins needs no ``NOTE_OFF``. Models see tokens (``encode``): 0 for ``NO_EVENT``, 1 for
``NOTE_OFF`` and ``2 + p - low`` for the note-on of ``p`` in the pitch range ``low..high``.
"""

from __future__ import annotations

import numpy as np
import torch

STEPS_PER_QUARTER = 4
STEPS_PER_BAR = 16
NOTE_OFF = -1  # Magenta's MELODY_NOTE_OFF
NO_EVENT = -2  # Magenta's MELODY_NO_EVENT


def encode(events: np.ndarray, low: int) -> np.ndarray:
    """Events (any shape) -> int64 tokens of the same shape: ``NO_EVENT`` 0, ``NOTE_OFF`` 1, pitch
    ``p`` ``2 + p - low``."""
    events = np.asarray(events, dtype=np.int64)
    if np.any((events >= 0) & (events < low)):
        raise ValueError(f"a pitch below the range's low end {low}")
    return np.where(events >= 0, events + 2 - low, events + 2)


def decode(tokens: np.ndarray | torch.Tensor, low: int) -> np.ndarray:
    """Tokens (any shape) -> int64 events, the inverse of ``encode``."""
    tokens = np.asarray(tokens, dtype=np.int64)
    return np.where(tokens >= 2, tokens - 2 + low, tokens - 2)


def vocab_size(low: int, high: int) -> int:
    """The number of tokens of the pitch range ``low..high``: no-event, note-off and one note-on each."""
    return 3 + high - low


def notes(events: np.ndarray | list[int]) -> list[tuple[int, int, int]]:
    """The notes of a melody ``(T,)`` as (pitch, start step, end step), end exclusive, in order of start.

    A note lasts until the next note-on or ``NOTE_OFF``; one still sounding at the end ends at T.
    """
    events = np.asarray(events)
    if events.ndim != 1:
        raise ValueError(f"a melody is one array of events (T,), got shape {events.shape}")
    if events.size and (events.min() < NO_EVENT or events.max() > 127):
        raise ValueError(
            f"melody events must be MIDI pitches 0..127, NOTE_OFF or NO_EVENT, got {events.min()}..{events.max()}"
        )
    found = []
    pitch, start = None, 0
    for step, event in enumerate(events.tolist()):
        if event == NO_EVENT:
            continue
        if pitch is not None:
            found.append((pitch, start, step))
        pitch, start = (event, step) if event >= 0 else (None, 0)
    if pitch is not None:
        found.append((pitch, start, len(events)))
    return found


def events_from_notes(onsets: np.ndarray, ends: np.ndarray, pitches: np.ndarray) -> np.ndarray:
    """Non-overlapping notes (steps) -> events ``(max end + 1,)``, ending with the last note's NOTE_OFF."""
    events = np.full(int(ends.max()) + 1, NO_EVENT, dtype=np.int64)
    events[ends] = NOTE_OFF
    events[onsets] = pitches  # after the NOTE_OFFs: a note that begins where one ends replaces its NOTE_OFF
    return events
