"""Melodies as sound: a plain additive synthesiser in numpy and 16-bit mono WAV files (the standard
library's ``wave``), so a user can listen to samples without a MIDI player.

A note of MIDI pitch p sounds at f = 440 * 2^((p - 69) / 12) Hz as three harmonics,

    x(t) = env(t) * (sin(2 pi f t) + 0.5 sin(4 pi f t) + 0.25 sin(6 pi f t)) / 1.75,

with a 10 ms linear attack, an exponential decay (time constant 0.4 s) and a 20 ms linear release at
the note's end, so that notes neither click nor blur into each other.
"""

from __future__ import annotations

import os
import wave
from pathlib import Path

import numpy as np

from pvae.kinds.events.encoding import STEPS_PER_QUARTER, notes

SAMPLE_RATE = 16000  # Hz: enough for melodies (the harmonics of C8 stay under 8 kHz)
HARMONICS = (1.0, 0.5, 0.25)
ATTACK, DECAY, RELEASE = 0.010, 0.4, 0.020  # seconds
LEVEL = 0.3  # peak amplitude of one note, of full scale


def frequency(pitch: int) -> float:
    """Equal temperament, A4 (MIDI 69) = 440 Hz."""
    return 440.0 * 2.0 ** ((pitch - 69) / 12)


def synthesize(events: np.ndarray, tempo_bpm: float = 120, sample_rate: int = SAMPLE_RATE) -> np.ndarray:
    """The samples ``(T * step,)`` float32 in [-1, 1] of a melody of events ``(T,)``, one step a
    sixteenth note at ``tempo_bpm`` quarter notes a minute."""
    step = 60.0 / tempo_bpm / STEPS_PER_QUARTER  # seconds
    out = np.zeros(round(len(events) * step * sample_rate), dtype=np.float64)
    for pitch, start, end in notes(np.asarray(events)):
        first, last = round(start * step * sample_rate), min(len(out), round(end * step * sample_rate))
        t = np.arange(last - first) / sample_rate
        f = frequency(pitch)
        tone = sum(a * np.sin(2 * np.pi * (k + 1) * f * t) for k, a in enumerate(HARMONICS)) / sum(HARMONICS)
        envelope = np.minimum(1.0, t / ATTACK) * np.exp(-t / DECAY)
        envelope *= np.clip((t[-1] - t) / RELEASE, 0.0, 1.0) if len(t) else 1.0
        out[first:last] += LEVEL * envelope * tone
    return np.clip(out, -1.0, 1.0).astype(np.float32)


def write_wav(melodies: list[np.ndarray], path: str | os.PathLike, tempo_bpm: float = 120, gap_bars: int = 1) -> Path:
    """Write melodies one after another, ``gap_bars`` bars of silence between, as a 16-bit mono WAV."""
    sample_rate = SAMPLE_RATE
    gap = np.zeros(round(gap_bars * 4 * 60.0 / tempo_bpm * sample_rate), dtype=np.float32)
    parts = []
    for i, melody in enumerate(melodies):
        parts += [gap] if i else []
        parts.append(synthesize(melody, tempo_bpm, sample_rate))
    pcm = (np.concatenate(parts) * 32767).round().astype("<i2") if parts else np.zeros(0, dtype="<i2")
    path = Path(path)
    with wave.open(str(path), "wb") as f:
        f.setnchannels(1)
        f.setsampwidth(2)
        f.setframerate(sample_rate)
        f.writeframes(pcm.tobytes())
    return path
