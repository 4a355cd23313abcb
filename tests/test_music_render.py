"""Melody output (pvae.kinds.events.generate): notes of an event array, MIDI files read back with mido,
piano-roll PNGs."""

from __future__ import annotations

import sys

import numpy as np
import pytest

mido = pytest.importorskip("mido")

from matplotlib.figure import Figure  # noqa: E402
from matplotlib.image import imread  # noqa: E402

from pvae.errors import UserError  # noqa: E402
from pvae.kinds.events.encoding import NO_EVENT, NOTE_OFF, notes  # noqa: E402
from pvae.kinds.events.generate import piano_roll, piano_roll_sheet, write_midi  # noqa: E402

N, OFF = NO_EVENT, NOTE_OFF

# 60 for 2 steps, straight into 62 held 3 steps, NOTE_OFF, 2 rests, 64 for 1 step, 65 sounding at the end.
MELODY = [60, N, 62, N, N, OFF, N, 64, 65, N]


def test_notes_of_hand_made_events():
    assert notes(MELODY) == [(60, 0, 2), (62, 2, 5), (64, 7, 8), (65, 8, 10)]
    assert notes(np.array([N, OFF, N])) == []
    assert notes([]) == []
    assert notes([67]) == [(67, 0, 1)]
    assert notes([60, 60, OFF]) == [(60, 0, 1), (60, 1, 2)]  # a repeated pitch is two notes


def test_notes_rejects_bad_events():
    with pytest.raises(ValueError):
        notes([60, -3])
    with pytest.raises(ValueError):
        notes([[60, 62]])


def _read(path):
    """(type, pitch, absolute tick) of each note on/off in the file, note_on with velocity 0 counted as off."""
    midi = mido.MidiFile(path)
    (track,) = midi.tracks
    found, tick = [], 0
    for message in track:
        tick += message.time
        if message.type == "note_on" and message.velocity > 0:
            found.append(("on", message.note, tick))
        elif message.type in ("note_on", "note_off"):
            found.append(("off", message.note, tick))
    return midi, found, tick


def test_write_midi_reads_back(tmp_path):
    path = write_midi(np.array(MELODY), tmp_path / "one.mid", tempo_bpm=90, velocity=100)
    assert path == tmp_path / "one.mid"
    midi, found, end = _read(path)
    assert midi.ticks_per_beat == 480
    expected = [
        ("on", 60, 0),
        ("off", 60, 240),
        ("on", 62, 240),
        ("off", 62, 600),
        ("on", 64, 840),
        ("off", 64, 960),
        ("on", 65, 960),
        ("off", 65, 1200),
    ]
    assert found == expected
    assert end == 1200  # the file lasts the melody's 10 steps
    metas = {message.type: message for message in midi.tracks[0] if message.is_meta}
    assert metas["set_tempo"].tempo == 666667  # 60e6 / 90 microseconds per quarter
    assert (metas["time_signature"].numerator, metas["time_signature"].denominator) == (4, 4)
    velocities = [m.velocity for m in midi.tracks[0] if m.type == "note_on" and m.velocity > 0]
    assert velocities == [100] * 4


def test_write_midi_plays_melodies_in_turn_with_gaps(tmp_path):
    first = [60, N, OFF, N]  # T = 4
    second = [N, 72, N, N, N, N]  # T = 6, a held note sounding at the end
    third = [OFF, 48]  # T = 2
    _, found, end = _read(write_midi([first, second, third], tmp_path / "path.mid", gap_bars=1))
    second_at = 4 + 16  # steps
    third_at = second_at + 6 + 16
    assert found == [
        ("on", 60, 0),
        ("off", 60, 2 * 120),
        ("on", 72, (second_at + 1) * 120),
        ("off", 72, (second_at + 6) * 120),
        ("on", 48, (third_at + 1) * 120),
        ("off", 48, (third_at + 2) * 120),
    ]
    assert end == (third_at + 2) * 120


def test_write_midi_rows_of_an_array_and_no_gap(tmp_path):
    rows = np.array([[60, N], [60, OFF]])
    _, found, _ = _read(write_midi(rows, tmp_path / "rows.mid"))
    assert found == [("on", 60, 0), ("off", 60, 240), ("on", 60, 240), ("off", 60, 360)]


def test_piano_roll_draws_notes_and_an_empty_melody():
    fig = Figure()
    full, empty = fig.subplots(2, 1)
    piano_roll(full, MELODY + [N] * 22, title="melody")
    piano_roll(empty, [N] * 32)
    assert len(full.patches) == 4 and len(empty.patches) == 0
    assert [label.get_text() for label in full.get_yticklabels()] == ["C4"]
    assert full.get_xlim() == (0, 32)
    assert len(empty.get_yticklabels()) >= 1  # the default range still shows a C


def test_piano_roll_sheet_png(tmp_path):
    rng = np.random.default_rng(0)
    melodies = [np.where(rng.random(256) < 0.3, rng.integers(55, 80, 256), N) for _ in range(8)]
    small = imread(piano_roll_sheet(melodies[:2], tmp_path / "two.png", titles=["a", "b"]))
    big = imread(piano_roll_sheet(melodies + [[N] * 64], tmp_path / "nine.png"))
    assert small.size and big.size
    assert big.shape[0] > small.shape[0]
    assert big.shape[1] == small.shape[1]
    assert small.min() < 0.5  # something was drawn, not a blank page
    with pytest.raises(ValueError):
        piano_roll_sheet([], tmp_path / "none.png")


def test_write_midi_without_mido_is_a_user_error(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "mido", None)  # import mido now raises ImportError
    with pytest.raises(UserError, match="pip install"):
        write_midi([60], tmp_path / "x.mid")
