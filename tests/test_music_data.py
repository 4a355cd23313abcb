"""Melody data (pvae.kinds.events: encoding, readers, data): events and tokens, ABC and MIDI reading,
windows, splits, cache."""

from __future__ import annotations

import sys
from collections import Counter

import numpy as np
import pytest
import torch

music21 = pytest.importorskip("music21")
mido = pytest.importorskip("mido")

from pvae.data.splits import split_seeded  # noqa: E402
from pvae.errors import DataError, UserError  # noqa: E402
from pvae.kinds.events import data as melody_data  # noqa: E402
from pvae.kinds.events import readers  # noqa: E402
from pvae.kinds.events.data import MelodySplit, load_melodies, prepare  # noqa: E402
from pvae.kinds.events.encoding import NO_EVENT, NOTE_OFF, decode, encode, vocab_size  # noqa: E402
from pvae.kinds.events.readers import (  # noqa: E402
    Tunes,
    corpus_files,
    melody_from_stream,
    read_abc,
    read_midi,
    read_tunes,
    stream_from_melody,
)


def melody(events: dict[int, int], length: int) -> list[int]:
    """Events of ``length`` steps: NO_EVENT but at the given steps."""
    out = [NO_EVENT] * length
    for step, event in events.items():
        out[step] = event
    return out


def one_line(error: pytest.ExceptionInfo) -> str:
    message = str(error.value)
    assert "\n" not in message
    return message


@pytest.fixture(autouse=True)
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("PVAE_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache"


# --- events and tokens ----------------------------------------------------------------------------


def test_tokens_round_trip_and_vocab():
    events = np.array([60, NO_EVENT, NOTE_OFF, 72, 65, NO_EVENT])
    tokens = encode(events, low=60)
    assert tokens.dtype == np.int64
    assert tokens.tolist() == [2, 0, 1, 14, 7, 0]
    assert decode(tokens, 60).tolist() == events.tolist()
    assert decode(torch.from_numpy(tokens), 60).tolist() == events.tolist()
    assert vocab_size(60, 72) == 15  # no-event, note-off, 13 pitches
    with pytest.raises(ValueError):
        encode(np.array([59]), low=60)


# --- ABC ------------------------------------------------------------------------------------------

TUNES = """X:1
T:Pickup
M:4/4
L:1/8
K:C
G | c2 z c- cB A>G | F4 E4 | D8 |]

X:2
T:Two four
M:2/4
L:1/8
K:G
A | c2 d2 | e4 | c2 z2 | f4 |]
"""

PICKUP = melody({0: 72, 4: NOTE_OFF, 6: 72, 10: 71, 12: 69, 15: 67, 16: 65, 24: 64, 32: 62, 48: NOTE_OFF}, 49)
# 2/4: two real bars make one 16-step bar; K:G makes f F#5
TWO_FOUR = melody({0: 72, 4: 74, 8: 76, 16: 72, 20: NOTE_OFF, 24: 78, 32: NOTE_OFF}, 33)


def test_abc_to_events(tmp_path):
    path = tmp_path / "tunes.abc"
    path.write_text(TUNES)
    tunes, skipped = read_abc(path)
    assert skipped == Counter()
    assert [title for title, _ in tunes] == ["Pickup", "Two four"]
    # pickup G dropped; c quarter, eighth rest, c tied to c (a quarter), B, dotted A, G sixteenth
    assert tunes[0][1].tolist() == PICKUP
    assert tunes[1][1].tolist() == TWO_FOUR


def test_abc_stream_round_trip(tmp_path):
    path = tmp_path / "tunes.abc"
    path.write_text(TUNES)
    for _, events in read_abc(path)[0]:
        back, reason = melody_from_stream(stream_from_melody(events, title="t"))
        assert reason is None
        assert back.tolist() == events.tolist()
    # a leading rest, a note across the bar line (5 steps), a note-off mid-bar and a final one
    events = np.array(melody({2: 60, 14: 67, 19: NOTE_OFF, 22: 64, 23: 65, 40: NOTE_OFF}, 41))
    assert melody_from_stream(stream_from_melody(events))[0].tolist() == events.tolist()


SKIPPED = """X:1
T:waltz
M:3/4
L:1/8
K:C
c2 d2 e2 | f2 g2 a2 | g6 |]

X:2
T:triplet
M:4/4
L:1/8
K:C
c2 d2 (3efg a2 | b8 | c'8 |]

X:3
T:chord
M:4/4
L:1/8
K:C
[ce]2 d2 e4 | c8 | d8 |]

X:4
T:free
L:1/8
K:C
cdef g2 | c8 | d8 |]

X:5
T:change
M:4/4
L:1/8
K:C
c8 | d8 | [M:3/4] e6 | f6 | g6 |]

X:6
T:rests
M:4/4
L:1/8
K:C
z8 | z8 | z8 |]

X:7
T:paired
M:4/4
L:1/8
K:C
"C"c8 | {g}d8 | e6 || G2 | c8 | d8 |]

X:8
T:lone pickup
M:4/4
L:1/8
K:C
c8 | d8 | e8 || G2 | c8 | d8 |]
"""


def test_skip_reasons_and_bar_lines(tmp_path):
    path = tmp_path / "mixed.abc"
    path.write_text(SKIPPED)
    tunes, skipped = read_abc(path)
    assert skipped == {
        "meter": 1,
        "off grid": 1,
        "chord": 1,
        "no time signature": 1,
        "meter change": 1,
        "empty": 1,
    }
    assert [title for title, _ in tunes] == ["paired", "lone pickup"]
    # a section's short last bar and the next one's pickup make a bar; chord symbol and grace note ignored
    assert tunes[0][1].tolist() == melody({0: 72, 16: 74, 32: 76, 44: 67, 48: 72, 64: 74, 80: NOTE_OFF}, 81)
    # a pickup alone: rest fills its bar, so the next full bar starts on a bar line
    assert tunes[1][1].tolist() == melody({0: 72, 16: 74, 32: 76, 48: 67, 52: NOTE_OFF, 64: 72, 80: 74, 96: -1}, 97)


def test_abc_without_a_tune(tmp_path):
    for text in ("just some text\nno header\n", ""):
        path = tmp_path / "empty.abc"
        path.write_text(text)
        with pytest.raises(DataError) as error:
            read_abc(path)
        assert str(path) in one_line(error)


def test_oneills_first_file():
    path = corpus_files("oneills")[0]
    assert path.name == "0001-0050.abc"
    tunes, skipped = read_abc(path)
    # 35 of its 50 tunes are in 3/4, 6/8 or 9/8; 15 in 4/4 or 2/4, of which some have 32nds or triplets
    assert len(tunes) + sum(skipped.values()) == 50
    assert skipped["meter"] == 35
    assert set(skipped) == {"meter", "off grid"}
    if music21.__version__.startswith("10.5."):  # another music21 may read a tune more or less
        assert len(tunes) == 8
    assert tunes[0][0] == "The Little Girl of my Heart"
    for _, events in tunes:
        notes = events[events >= 0]
        assert notes.min() >= 40 and notes.max() <= 100
        assert set(np.unique(events[events < 0]).tolist()) <= {NOTE_OFF, NO_EVENT}
        assert events[0] >= 0 and events[-1] == NOTE_OFF and len(events) > 100


def test_corpus_names_and_music21_missing(monkeypatch):
    with pytest.raises(DataError) as error:
        corpus_files("bach")
    assert "folk:essen" in one_line(error) and "folk:oneills" in str(error.value)
    monkeypatch.setitem(sys.modules, "music21", None)
    with pytest.raises(DataError, match=r"needs music21: pip install 'pvae\[music\]'"):
        corpus_files("essen")


# --- MIDI -----------------------------------------------------------------------------------------


def write_midi(path, notes: list[tuple[int, int, int]], ticks_per_beat: int = 480) -> None:
    """A type 1 file: a tempo track, and ``(onset tick, end tick, pitch)`` notes on a second track
    (the ends as note-on with velocity 0)."""
    moments = sorted(
        [(on, 1, "note_on", p, 80) for on, _, p in notes] + [(off, 0, "note_on", p, 0) for _, off, p in notes]
    )
    track, tick = mido.MidiTrack(), 0
    for at, _, kind, pitch, velocity in moments:
        track.append(mido.Message(kind, note=pitch, velocity=velocity, time=at - tick))
        tick = at
    tempo = mido.MidiTrack([mido.MetaMessage("set_tempo", tempo=500000, time=0)])
    mido.MidiFile(ticks_per_beat=ticks_per_beat, tracks=[tempo, track]).save(path)


def test_midi_to_events(tmp_path):
    path = tmp_path / "tune.mid"
    # quarter, eighth, eighth rest, half; then a note off the grid: 1925 -> step 16, 2398 -> step 20
    write_midi(path, [(0, 480, 60), (480, 720, 62), (960, 1920, 64), (1925, 2398, 65)])
    assert read_midi(path).tolist() == melody({0: 60, 4: 62, 6: NOTE_OFF, 8: 64, 16: 65, 20: NOTE_OFF}, 21)


def test_polyphonic_or_unreadable_midi(tmp_path):
    path = tmp_path / "chords.mid"
    write_midi(path, [(0, 960, 60), (480, 960, 64)])
    with pytest.raises(DataError) as error:
        read_midi(path)
    assert str(path) in one_line(error) and "polyphonic: notes overlap at tick 480 (step 4)" in str(error.value)
    bad = tmp_path / "bad.mid"
    bad.write_bytes(b"not midi at all")
    with pytest.raises(DataError) as error:
        read_midi(bad)
    assert str(bad) in one_line(error)


def test_midi_folder_skips_polyphonic_files(tmp_path):
    folder = tmp_path / "midi"
    folder.mkdir()
    write_midi(folder / "a.mid", [(0, 480 * 8, 60)])
    write_midi(folder / "b.midi", [(0, 960, 60), (480, 960, 64)])
    with pytest.warns(UserWarning, match=r"skipped 1 of 2 tunes \(chord 1\)"):
        tunes = read_tunes(f"midi:{folder}")
    assert tunes.names == ["a.mid"]
    assert tunes.melodies[0].tolist() == melody({0: 60, 32: NOTE_OFF}, 33)
    with pytest.raises(DataError, match="polyphonic"):
        read_tunes(f"midi:{folder / 'b.midi'}")


def test_midi_folder_skips_and_counts_unreadable_files(tmp_path):
    """A corrupt file in a folder is skipped as a glyph folder skips a corrupt font: one warning line
    with the count and the first file; only a folder with nothing left is refused."""
    folder = tmp_path / "midi"
    folder.mkdir()
    write_midi(folder / "a.mid", [(0, 480 * 8, 60)])
    write_midi(folder / "b.mid", [(0, 960, 60), (480, 960, 64)])
    for name in ("c.mid", "d.mid"):
        (folder / name).write_bytes(b"not midi at all")
    for _ in range(2):  # read, then from the cache
        with pytest.warns(UserWarning) as warned:
            tunes = read_tunes(f"midi:{folder}")
        assert [str(w.message) for w in warned] == [
            f"midi:{folder}: skipped 3 of 4 tunes (chord 1, unreadable 2 (e.g. c.mid))"
        ]
        assert tunes.names == ["a.mid"] and tunes.unreadable == ["c.mid", "d.mid"]
    (folder / "a.mid").write_bytes(b"broken too")
    with pytest.raises(DataError) as error:
        read_tunes(f"midi:{folder}")
    assert one_line(error) == f"midi:{folder}: no usable tune among 4 (chord 1, unreadable 3 (e.g. a.mid))"
    with pytest.raises(DataError, match="not a MIDI file mido can read"):  # a file named alone must be readable
        read_tunes(f"midi:{folder / 'c.mid'}")


@pytest.mark.parametrize(
    "count, message",
    [
        (2, "2 usable tune(s) read; the splits need at least 3 (one each for train, valid and test)"),
        (3, "its 1 tune(s) have no window of 2 bars with a note"),
    ],
)
def test_a_missing_split_says_why(count, message):
    """Too few tunes for a test split, or a test tune too short for a window: how many there are."""
    tunes = [bars_melody([60, 62, 64, 65])] * count
    if count == 3:
        test = int(split_seeded(tunes)["test"][0])
        tunes[test] = bars_melody([60])
    data = prepare(Tunes([str(i) for i in range(count)], tunes, {}), "midi:m", bars=2)
    with pytest.raises(DataError) as error:
        data.split("test")
    assert one_line(error) == f"midi:m: no test split: {message}"
    with pytest.raises(UserError, match="has no split 'bogus'"):
        data.split("bogus")


# --- specs and the cache --------------------------------------------------------------------------


def test_bad_specs(tmp_path):
    for spec in ("wav:x", "abc:", f"abc:{tmp_path / 'missing'}", "folk:nothing", f"midi:{tmp_path}"):
        with pytest.raises(DataError) as error:
            read_tunes(spec)
        one_line(error)
    tunes = Tunes(["a"], [np.array(melody({0: 60, 16: NOTE_OFF}, 17))], {})
    with pytest.raises(DataError, match="bars"):
        prepare(tunes, "t", 0)


def test_cache_reused_and_rebuilt(tmp_path, cache, monkeypatch):
    path = tmp_path / "tunes.abc"
    path.write_text(TUNES)
    first = read_tunes(f"abc:{path}")
    assert first.names == ["tunes.abc: Pickup", "tunes.abc: Two four"]
    [stored] = cache.glob("music-*.npz")
    assert set(np.load(stored, allow_pickle=False).files) == {
        "events",
        "offsets",
        "names",
        "name_offsets",
        "reasons",
        "reason_offsets",
        "counts",
        "unreadable",
        "unreadable_offsets",
        "warned",
        "warned_offsets",
    }
    parse = readers.read_abc

    def refuse(*args):
        raise AssertionError("parsed again")

    monkeypatch.setattr(readers, "read_abc", refuse)
    second = read_tunes(f"abc:{path}")
    assert second.names == first.names and second.skipped == first.skipped == {}
    assert [m.tolist() for m in second.melodies] == [PICKUP, TWO_FOUR]
    stored.write_bytes(stored.read_bytes()[:100])  # damaged: rebuilt
    calls = []
    monkeypatch.setattr(readers, "read_abc", lambda p: calls.append(p) or parse(p))
    assert [m.tolist() for m in read_tunes(f"abc:{path}").melodies] == [PICKUP, TWO_FOUR]
    assert calls == [path.resolve()]
    assert [m.tolist() for m in read_tunes(f"abc:{path}").melodies] == [PICKUP, TWO_FOUR]
    assert calls == [path.resolve()]
    path.write_text(TUNES.replace("D8", "C8"))  # a changed file is read again
    assert read_tunes(f"abc:{path}").melodies[0][32] == 60
    assert len(calls) == 2


def test_skip_warning_from_cache_too(tmp_path):
    path = tmp_path / "mixed.abc"
    path.write_text(SKIPPED)
    for _ in range(2):
        with pytest.warns(UserWarning, match=r"skipped 6 of 8 tunes \(meter 1, off grid 1, chord 1, "):
            tunes = read_tunes(f"abc:{tmp_path}")
        assert tunes.names == ["mixed.abc: paired", "mixed.abc: lone pickup"]


def test_music21_warnings_are_counted_not_printed(tmp_path, capfd):
    """music21 prints its own warnings to stderr ("abcFormat: WARNING: ..."): they are collected and
    counted in one warning line naming the file, from the cache too."""
    path = tmp_path / "stray.abc"
    path.write_text("X:1\nT:stray\nM:4/4\nL:1/8\nK:C\nC2 D2 ^ E2 ^ F|G8|]\n")  # a lone ^: "assuming C"
    for _ in range(2):  # read, then from the cache
        with pytest.warns(UserWarning) as warned:
            tunes = read_tunes(f"abc:{path}")
        assert [str(w.message) for w in warned] == [
            f"abc:{path}: 2 music21 warning(s) in 1 file(s) (e.g. stray.abc: abcFormat: Could not get pitch "
            "information from note: ^, assuming C)"
        ]
        assert tunes.names == ["stray.abc: stray"]
        assert capfd.readouterr().err == ""


# --- windows, splits and batches ------------------------------------------------------------------


def bars_melody(pitches: list[int | None]) -> np.ndarray:
    """One whole note a bar of each pitch (None: a bar of rest), then a NOTE_OFF."""
    events = []
    for pitch in pitches:
        events += [NOTE_OFF if pitch is None else pitch] + [NO_EVENT] * 15
    return np.array(events + [NOTE_OFF])


def test_windows_hops_and_counts():
    # tune i < 9: 3 + i bars whose pitches tell the bar (60 + bar); tune 9 has two bars of rest
    melodies = [bars_melody([60 + b for b in range(3 + i)]) for i in range(9)]
    melodies.append(bars_melody([60, 61, None, None, 64]))
    parts = split_seeded(melodies, 0)
    data = prepare(Tunes([str(i) for i in range(10)], melodies, {}), "t", bars=2)
    assert data.steps == 32 and data.bars == 2 and data.kind == "events"
    for split, index in parts.items():
        hop = 1 if split == "train" else 2
        firsts = []  # the first event of each window, in order
        for i in index:
            if i == 9:  # the window of bars 2-3 has no note-on
                firsts += [{0: 60, 1: 61, 3: NOTE_OFF}[s] for s in range(0, 4, hop) if s != 2]
            else:
                firsts += [60 + s for s in range(0, 3 + i - 1, hop)]
        tokens = data.split(split).tensor()
        assert tokens.shape == (len(firsts), 32) and tokens.dtype == torch.int64
        assert decode(tokens[:, 0], data.low).tolist() == firsts
    highest = [62 + i if i < 9 else 64 for i in parts["train"]]
    assert (data.low, data.high) == (60, max(highest))
    assert data.vocab == 3 + data.high - data.low
    with pytest.raises(UserError):
        data.split("nothing")


def test_window_starts_and_final_bar():
    events = bars_melody([60, 62, 64, 65])
    events[-1], events[-9] = NO_EVENT, NOTE_OFF  # the last note ends mid-bar: its bar still counts
    windows = melody_data._windows(events[: len(events) - 8], 32, 1)
    assert windows[:, 0].tolist() == [60, 62, 64]
    assert melody_data._windows(events[: len(events) - 8], 32, 2)[:, 0].tolist() == [60, 64]
    assert melody_data._windows(bars_melody([60, 62]), 48, 1).shape == (0, 48)


def test_pitch_range_octave_moves_and_drops():
    parts = split_seeded(range(10), 0)
    melodies = [bars_melody([60, 72, 66, 65])] * 10
    [v], [t] = parts["valid"], parts["test"]
    melodies[v] = bars_melody([74, 80, 75, 76])  # one octave down fits
    melodies[t] = bars_melody([50, 70, 48, 69])  # spans of 20 and 21 semitones: no octave of 60..72 holds them
    tunes = Tunes([str(i) for i in range(10)], melodies, {})
    with pytest.warns(UserWarning, match=r"^t: dropped 2 of 28 windows .* into 60\.\.72 \(test 2\)$"):
        data = prepare(tunes, "t", bars=2)
    assert (data.low, data.high) == (60, 72)
    assert set(data.splits) == {"train", "valid"}  # no test window left
    assert decode(data.split("valid").tokens[:, ::16], 60).tolist() == [[62, 68], [63, 64]]
    assert data.split("train").tokens.shape == (8 * 3, 32)
    # a run's own range: train windows too are moved or dropped ([60, 72] and [72, 66] do not fit 62..70)
    with pytest.warns(UserWarning, match=r"dropped 18 of 28 windows .* \(train 16, test 2\)$"):
        narrow = prepare(tunes, "t", bars=2, low=62, high=70)
    assert decode(narrow.split("train").tokens[:, ::16], 62).tolist() == [[66, 65]] * 8
    assert decode(narrow.split("valid").tokens[:, ::16], 62).tolist() == [[62, 68], [63, 64]]
    with pytest.warns(UserWarning, match=r"dropped 2 of 4 windows"):  # train is not read
        assert set(prepare(tunes, "t", bars=2, low=62, high=70, splits=("valid", "test")).splits) == {"valid"}


def test_no_train_windows():
    tunes = Tunes(["a", "b", "c"], [bars_melody([60, 62])] * 3, {})
    with pytest.raises(DataError) as error:
        prepare(tunes, "folk:x", bars=16)
    assert one_line(error) == "folk:x: no tune has 16 bars of usable melody"


def random_split(n: int = 37, transpose: int = 0) -> MelodySplit:
    rng = np.random.default_rng(0)
    events = np.where(rng.random((n, 32)) < 0.3, rng.integers(55, 80, (n, 32)), NO_EVENT)
    events[:, 5] = NOTE_OFF
    events[:, 0] = rng.integers(55, 80, n)
    low, high = int(events.max()) - 30, int(events.max())
    return MelodySplit(torch.from_numpy(encode(events, low)), low, high, transpose=transpose)


def test_transposition_in_range_and_replayed():
    split = random_split(transpose=5)
    generator = torch.Generator().manual_seed(3)
    state = generator.get_state()
    first = list(split.batches(8, generator))
    assert [len(x) for x, _ in first] == [8, 8, 8, 8, 5]
    assert all(y is None for _, y in first)
    generator.set_state(state)
    again = torch.cat([x for x, _ in split.batches(8, generator)])
    seen = torch.cat([x for x, _ in first])
    assert torch.equal(seen, again)
    assert seen.min() >= 0 and seen.max() <= 2 + split.high - split.low
    order = torch.randperm(len(split), generator=torch.Generator().manual_seed(3))
    original = split.tokens[order]
    notes = original >= 2
    assert torch.equal(seen >= 2, notes) and torch.equal(seen[~notes], original[~notes])
    shifts = (seen - original).masked_fill(~notes, 0)
    per_window = shifts[:, 0]  # every window begins with a note
    assert torch.equal(shifts, per_window[:, None] * notes)  # one shift per window
    assert per_window.abs().max() <= 5 and len(per_window.unique()) > 3
    plain = random_split()
    x = torch.cat([x for x, _ in plain.batches(8, torch.Generator().manual_seed(3))])
    assert torch.equal(x, original)
    assert torch.equal(plain.with_transposition(5).tokens, plain.tokens)


def test_parts_skip_head_and_chunks():
    split = random_split(transpose=3)
    generator = torch.Generator().manual_seed(1)
    state = generator.get_state()
    whole = list(split.batches(10, generator))
    halves = []
    for r in range(2):
        generator.set_state(state)
        halves.append(list(split.batches(10, generator, part=(r, 2))))
    for full, a, b in zip(whole, *halves):
        assert torch.equal(full[0], torch.cat([a[0], b[0]]))
    generator.set_state(state)
    assert torch.equal(next(split.batches(10, generator, skip=2))[0], whole[2][0])
    chunks = [x for r in range(3) for x, _ in split.chunks(5, part=(r, 3))]
    assert torch.equal(torch.cat(chunks), split.tensor())
    assert [len(x) for x, _ in split.chunks(5, part=(0, 3))] == [5, 5, 3]
    assert len(split.head(4)) == 4 and split.head(None) is split


def test_load_melodies_with_a_runs_range(tmp_path):
    folder = tmp_path / "abc"
    folder.mkdir()
    body = "|".join(f" {n}8 " for n in "cdefgab" * 2) + "|]\n"
    for i in range(6):
        (folder / f"t{i}.abc").write_text(f"X:1\nT:tune {i}\nM:4/4\nL:1/8\nK:C\n{body}")
    data = load_melodies(f"abc:{folder}", bars=4)
    assert (data.low, data.high, data.bars) == (72, 83, 4)
    assert len(data.split("train")) == 4 * 11 and len(data.split("test")) == 3
    saved = {"low": 60, "high": 90, "bars": 2, "steps": 32}
    again = load_melodies(f"abc:{folder}", bars=16, saved=saved, splits=("test",))
    assert set(again.splits) == {"test"} and (again.low, again.high, again.steps) == (60, 90, 32)
    assert again.split("test").tokens[0, 0] == 2 + 72 - 60


def test_written_accidentals_hold_to_the_end_of_their_bar(tmp_path):
    """ABC 2.1 (4.2): an accidental applies to later notes of its letter and octave in the bar;
    the key signature's accidentals apply elsewhere (G major: F#)."""
    path = tmp_path / "accidentals.abc"
    path.write_text("X:1\nT:acc\nM:4/4\nL:1/8\nK:G\n^F2F2 =F2F2|_B2B2 c2=c2|^f2F6|G8|]\n")
    ((title, events),) = read_abc(path)[0]
    assert events[events >= 0].tolist() == [66, 66, 65, 65, 70, 70, 72, 72, 78, 66, 67]
    assert np.flatnonzero(events >= 0).tolist() == [0, 4, 8, 12, 16, 20, 24, 28, 32, 36, 48]


def test_accidentals_of_a_two_bar_tune(tmp_path):
    """music21 makes no measures of a tune of two bars: the bars are then every 4 quarters."""
    path = tmp_path / "short.abc"
    path.write_text("X:1\nT:short\nM:4/4\nL:1/8\nK:C\n^F2F2 F2f2|F8|]\n")
    ((title, events),) = read_abc(path)[0]
    assert events[events >= 0].tolist() == [66, 66, 66, 77, 65]


def test_lengths_are_checked_before_the_events_are_allocated(tmp_path):
    path = tmp_path / "long.abc"
    path.write_text("X:1\nT:long\nM:4/4\nL:1/4\nK:C\nc4|c99999|]\n")
    tunes, skipped = read_abc(path)
    assert tunes == [] and skipped == Counter({"too long": 1})
    track = mido.MidiTrack([mido.Message("note_on", note=60, velocity=80, time=0)])
    track.append(mido.Message("note_off", note=60, time=2**27))  # 2^27 ticks at 1 tick a beat: 5e8 steps
    midi = tmp_path / "long.mid"
    mido.MidiFile(tracks=[track], ticks_per_beat=1).save(midi)
    with pytest.raises(DataError, match="longer than 1000 bars"):
        read_midi(midi)
