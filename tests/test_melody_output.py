"""Melody statistics against values counted by hand, and the synthesiser against the physics of its
notes: a WAV of the right length whose spectrum peaks at the note's frequency."""

from __future__ import annotations

import math
import subprocess
import sys
import wave
from pathlib import Path

import numpy as np
import pytest

from pvae.kinds.events.audio import SAMPLE_RATE, frequency, synthesize, write_wav
from pvae.kinds.events.encoding import NO_EVENT, NOTE_OFF
from pvae.kinds.events.statistics import STATISTICS, mean_statistics, melody_statistics, statistics_table

C_MAJOR = {0, 2, 4, 5, 7, 9, 11}


def made_up() -> np.ndarray:
    """Three bars: C4 E4 G4 G4 a quarter each, F#4 a quarter, then rest to the end (bar 3 empty)."""
    m = np.full(48, NO_EVENT)
    m[[0, 4, 8, 12, 16]] = [60, 64, 67, 67, 66]
    m[20] = NOTE_OFF
    return m


def test_statistics_of_a_made_up_melody_by_hand():
    got = melody_statistics(made_up(), C_MAJOR)
    assert got["notes per bar"] == pytest.approx(5 / 3)  # 5 notes in 3 bars
    assert got["pitch range"] == 67 - 60
    assert got["repeated pitches"] == pytest.approx(1 / 4)  # (60 64) (64 67) (67 67) (67 66)
    assert got["steps in key"] == pytest.approx(16 / 20)  # F#4's 4 of the 20 sounding steps are out of C major
    assert got["empty bars"] == pytest.approx(1 / 3)


def test_a_melody_without_notes_defines_only_its_counts():
    got = melody_statistics(np.full(32, NO_EVENT), C_MAJOR)
    assert got["notes per bar"] == 0 and got["empty bars"] == 1
    assert all(math.isnan(got[name]) for name in ("pitch range", "repeated pitches", "steps in key"))
    means = mean_statistics([np.full(32, NO_EVENT), made_up()])  # NaN left out of the means
    assert means["pitch range"] == 7 and means["empty bars"] == pytest.approx((1 + 1 / 3) / 2)
    table = statistics_table({"a": means, "b": means})
    assert all(name in table for name in STATISTICS) and table.count("\n") == len(STATISTICS)


def test_the_key_of_a_scale_is_estimated_by_music21():
    pytest.importorskip("music21")
    scale = np.full(32, NO_EVENT)
    scale[::4] = [60, 62, 64, 65, 67, 69, 71, 72]  # C major, up an octave
    scale[-1] = NOTE_OFF
    assert melody_statistics(scale)["steps in key"] == 1.0
    assert melody_statistics(scale, {1, 3, 6, 8, 10})["steps in key"] == 0.0  # the black keys: none of them


def test_the_synthesiser_sounds_the_note_for_its_steps():
    melody = np.full(32, NO_EVENT)
    melody[0], melody[16] = 69, NOTE_OFF  # A4 for a bar, then a bar of rest
    x = synthesize(melody, tempo_bpm=120)
    assert x.dtype == np.float32 and len(x) == 32 * (60 / 120 / 4) * SAMPLE_RATE  # 2 bars of 2 s at 120 bpm
    half = len(x) // 2
    assert np.abs(x[half:]).max() == 0  # silent after the note-off
    spectrum = np.abs(np.fft.rfft(x[:half]))
    peak = np.fft.rfftfreq(half, 1 / SAMPLE_RATE)[spectrum.argmax()]
    assert peak == pytest.approx(frequency(69), abs=1.0) and frequency(69) == 440.0
    assert np.abs(x).max() <= 1


def test_a_wav_holds_the_melodies_and_the_gaps(tmp_path):
    melody = np.full(16, NO_EVENT)
    melody[0] = 60
    path = write_wav([melody, melody], tmp_path / "two.wav", tempo_bpm=120, gap_bars=1)
    with wave.open(str(path)) as f:
        assert (f.getnchannels(), f.getsampwidth(), f.getframerate()) == (1, 2, SAMPLE_RATE)
        assert f.getnframes() == 3 * 2 * SAMPLE_RATE  # two bars of melody and one of silence, 2 s each


def test_bench_melody_runs_at_tiny_sizes():
    script = Path(__file__).resolve().parent.parent / "scripts" / "bench_melody.py"
    args = ["--steps", "1", "--warmup", "1", "--bars", "2", "--batch-size", "4"]
    result = subprocess.run([sys.executable, str(script), *args], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    assert "| flat, 2 bars |" in result.stdout and "| hierarchical, 2 bars |" in result.stdout
