"""Monophonic tunes read as melody events (``pvae.kinds.events.encoding``): ABC through music21
(including the folk corpora inside music21's package), MIDI through mido; both optional (the
``music`` extra), imported when a file is read.

Only meters of 16 sixteenths a bar (4/4, 2/2) or 8 (2/4: two real bars make one 16-step bar)
are read; step 0 is the first full bar line (a pickup is dropped), so windows start on bar lines.
Parsing the Essen collection takes minutes, so ``read_tunes`` keeps what it read in a
pickle-free ``.npz`` in ``cache_dir()``, keyed by the files' paths, sizes and times. A folder skips
the files it cannot read and the tunes it cannot use, counted in one warning; what music21 itself
writes to stderr while reading (``abcFormat: WARNING: ...``) is counted in one more.
"""

from __future__ import annotations

import bisect
import contextlib
import hashlib
import importlib
import io
import json
import os
import re
import sys
import warnings
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path

import numpy as np
from tqdm import tqdm

from pvae.data.npz import CORRUPT, NpzFile, cache_dir, one_line, save_npz
from pvae.errors import DataError
from pvae.kinds.events.encoding import (
    NO_EVENT,
    STEPS_PER_BAR,
    STEPS_PER_QUARTER,
    events_from_notes,
    notes,
)

ENCODING_VERSION = 5  # part of the cache key: bump when reading or encoding changes
MAX_STEPS = 1000 * STEPS_PER_BAR  # a longer melody is skipped ("too long") before its events are allocated
FOLK = {"essen": "essenFolksong", "oneills": "oneills1850"}  # corpora inside music21's package
MIDI_SUFFIXES = (".mid", ".midi")
SCHEMES = "folk:essen, folk:oneills, abc:PATH or midi:PATH"
MUSIC21_WARNING = re.compile(r"^([\w.]+): WARNING: ")  # how music21's Environment.warn starts a line


# --- music21 --------------------------------------------------------------------------------------


def _require(module: str, what: str):
    """The optional ``module`` (music21 or mido), or a ``DataError`` saying how to install it."""
    try:
        return importlib.import_module(module)
    except ImportError:
        raise DataError(f"{what} needs {module}: pip install 'pvae[music]'") from None


def _on_grid(quarters: Fraction) -> bool:
    return quarters * STEPS_PER_QUARTER % 1 == 0


def _meter_changes(measures: list, bar: Fraction) -> bool:
    """Whether the measures' lengths show a meter other than one of ``bar`` quarters: a measure
    longer than a bar, or incomplete measures in a row longer than a bar together. (An incomplete
    measure alone or with its complement, such as a section's last bar and the next one's pickup, is
    no change; music21 reads an inline ``[M:3/4]`` as no time signature, only bars of that length.)"""
    run = Fraction(0)
    for measure in measures:
        length = Fraction(measure.duration.quarterLength)
        run = run + length if length < bar else Fraction(0)
        if length > bar or run > bar:
            return True
    return False


def _bar_lines(measures: list, bar: Fraction) -> tuple[list[Fraction], list[Fraction]]:
    """The offsets of the measures from the first full one on, and what to add to a time in each to
    align it: step 0 is that measure's bar line (a pickup before it is dropped), and every measure
    at least a bar long starts on a bar line, a rest filling the gap after incomplete measures that
    do not add up to whole bars."""
    first = next((i for i, m in enumerate(measures) if m.duration.quarterLength >= bar), None)
    if first is None:  # no bar lines to align to (music21 makes no measures of a tune of one or two bars)
        return [Fraction(0)], [Fraction(0)]
    offsets, shifts, at = [], [], Fraction(0)
    for measure in measures[first:]:
        length, offset = Fraction(measure.duration.quarterLength), Fraction(measure.offset)
        if length >= bar and at % bar:
            at += bar - at % bar
        offsets.append(offset)
        shifts.append(at - offset)
        at += length
    return offsets, shifts


def _carry_accidentals(part, measures: list, bar: Fraction) -> None:
    """Apply each written accidental to the later notes of the same letter and octave in its bar,
    as ABC (2.1, section 4.2) and staff notation read it; music21's ABC reader applies it to its
    own note only, so ``^F2F2`` in C major would be F# then F. The bars are music21's measures, or
    every ``bar`` quarters of a tune it gave none (one or two bars). In place; music21 marks
    written accidentals ``displayStatus`` True and those of the key signature False."""
    from music21 import pitch as pitches  # lazy: music21 is optional (the music extra)

    starts = [Fraction(m.offset) for m in measures]
    written: dict[tuple[str, int], float] = {}
    current = None
    for n in part.flatten().notes:
        offset = Fraction(n.offset)
        index = bisect.bisect_right(starts, offset) if starts else offset // bar
        if index != current:
            written, current = {}, index
        for p in n.pitches:
            key = (p.step, p.octave)
            if p.accidental is not None and p.accidental.displayStatus:
                written[key] = p.accidental.alter
            elif key in written:
                p.accidental = pitches.Accidental(written[key])


def melody_from_stream(stream) -> tuple[np.ndarray | None, str | None]:
    """A music21 Score/Part/Stream of one tune -> ``(events, None)``, or ``(None, reason)`` when it
    cannot be used: "no time signature", "meter" (a bar other than 16 or 8 sixteenths), "meter
    change", "off grid" (an onset or end off the sixteenth grid), "chord" (polyphony), "empty",
    "too long" (over ``MAX_STEPS``).

    Written accidentals hold to the end of their bar (``_carry_accidentals``), ties are merged
    and grace notes dropped; step 0 is the first full bar line (a pickup before
    it is dropped), full bars start on bar lines (``_bar_lines``), and the melody ends with the
    NOTE_OFF of its last note."""
    from music21 import chord, harmony, meter  # lazy: music21 is optional (the music extra)
    from music21 import stream as streams

    parts = stream.getElementsByClass(streams.Part)
    if len(parts) > 1:
        return None, "chord"
    part = parts[0] if len(parts) else stream
    signatures = part.recurse().getElementsByClass(meter.TimeSignature)
    if not signatures:
        return None, "no time signature"
    bar = Fraction(signatures[0].barDuration.quarterLength)
    if bar * STEPS_PER_QUARTER not in (STEPS_PER_BAR, STEPS_PER_BAR // 2):
        return None, "meter"
    measures = list(part.getElementsByClass(streams.Measure))
    if _meter_changes(measures, bar):
        return None, "meter change"
    offsets, shifts = _bar_lines(measures, bar)
    _carry_accidentals(part, measures, bar)
    flat = part.stripTies(inPlace=False).flatten()
    notes = [n for n in flat.notes if n.quarterLength > 0 and not isinstance(n, harmony.Harmony)]
    notes = [n for n in notes if n.offset >= offsets[0]]
    if not notes:
        return None, "empty"
    if any(isinstance(n, chord.Chord) and len(n.pitches) > 1 for n in notes):
        return None, "chord"
    onsets, ends = [], []
    for n in notes:
        onset = Fraction(n.offset)
        end = onset + Fraction(n.quarterLength)
        onsets.append(onset + shifts[bisect.bisect_right(offsets, onset) - 1])
        ends.append(end + shifts[bisect.bisect_left(offsets, end) - 1])  # an end on a bar line is the bar's before
    if not all(_on_grid(t) for t in onsets + ends):
        return None, "off grid"
    onsets, ends = (np.array([int(t * STEPS_PER_QUARTER) for t in times]) for times in (onsets, ends))
    order = np.argsort(onsets, kind="stable")
    onsets, ends = onsets[order], ends[order]
    if np.any(onsets[1:] < ends[:-1]):
        return None, "chord"
    if ends.max() > MAX_STEPS:
        return None, "too long"
    pitches = np.array([n.pitches[0].midi for n in notes])[order]
    return events_from_notes(onsets, ends, pitches), None


def stream_from_melody(events: np.ndarray, title: str | None = None):
    """Events -> a music21 Score of one 4/4 part on the sixteenth grid (rests filling the gaps,
    notes across bar lines tied), for writing ABC, MusicXML or MIDI; ``melody_from_stream`` reads
    the events back."""
    _require("music21", "writing a melody as music")
    from music21 import metadata, meter, note  # lazy: music21 is optional (the music extra)
    from music21 import stream as streams

    part = streams.Part()
    part.insert(0, meter.TimeSignature("4/4"))
    at = 0
    for pitch, onset, end in notes(events):
        if onset > at:
            part.insert(at / STEPS_PER_QUARTER, note.Rest(quarterLength=(onset - at) / STEPS_PER_QUARTER))
        part.insert(onset / STEPS_PER_QUARTER, note.Note(pitch, quarterLength=(end - onset) / STEPS_PER_QUARTER))
        at = end
    part.makeNotation(inPlace=True)
    score = streams.Score([part])
    if title is not None:
        score.insert(0, metadata.Metadata(title=title))
    return score


@contextlib.contextmanager
def _music21_warnings() -> Iterator[list[str]]:
    """Collect the warnings music21 writes straight to ``sys.stderr`` (its ``Environment.warn``: "abcFormat:
    WARNING: Could not get pitch information from note: ..., assuming C") into the list it yields,
    as "abcFormat: ..." lines, so that they are counted instead of reaching the terminal raw;
    anything else written to stderr meanwhile is passed on."""
    said, buffer, stderr = [], io.StringIO(), sys.stderr
    try:
        with contextlib.redirect_stderr(buffer):
            yield said
    finally:
        for line in buffer.getvalue().splitlines(keepends=True):
            if MUSIC21_WARNING.match(line):
                said.append(" ".join(MUSIC21_WARNING.sub(r"\1: ", line).split()))
            else:
                stderr.write(line)


class _Unreadable(DataError):
    """A file that cannot be read as tunes at all: a folder skips it and counts it."""


def read_abc(path: str | os.PathLike) -> tuple[list[tuple[str, np.ndarray]], Counter]:
    """The ``(title, events)`` of each usable tune of an ABC file (which may hold many), and the
    number of tunes skipped for each of ``melody_from_stream``'s reasons."""
    path = Path(path)
    music21 = _require("music21", f"{path}: reading ABC")
    try:
        text = path.read_bytes()
    except OSError as e:
        raise _Unreadable(f"{path}: cannot read ({e.strerror})") from None
    if not re.search(rb"^\s*X:", text, re.MULTILINE):
        raise _Unreadable(f"{path}: no tune (no X: header)")
    try:  # forceSource: music21 would otherwise keep (and later load) a pickle of the file in its temp folder
        parsed = music21.converter.parse(path, format="abc", forceSource=True)
    except Exception as e:  # music21's ABC parser raises many kinds of errors on bad input
        raise _Unreadable(f"{path}: no tune music21 can read ({one_line(e)})") from None
    scores = list(parsed.scores) if isinstance(parsed, music21.stream.Opus) else [parsed]
    if not scores:
        raise _Unreadable(f"{path}: no tune music21 can read")
    tunes, skipped = [], Counter()
    for score in scores:
        events, reason = melody_from_stream(score)
        if reason is not None:
            skipped[reason] += 1
            continue
        info = score.metadata
        tunes.append((info.title if info and info.title else f"X:{info.number if info else '?'}", events))
    return tunes, skipped


# --- MIDI -----------------------------------------------------------------------------------------


class _Unusable(DataError):
    """A MIDI file read fine but holding no usable melody: a folder skips it, counted by ``reason``."""

    def __init__(self, message: str, reason: str) -> None:
        super().__init__(message)
        self.reason = reason


def read_midi(path: str | os.PathLike) -> np.ndarray:
    """The events of a monophonic MIDI file, note times rounded to the nearest sixteenth (a
    quarter is ``ticks_per_beat`` ticks); step 0 is tick 0. Notes that overlap after rounding are
    an error (notes shorter than half a step vanish)."""
    path = Path(path)
    mido = _require("mido", f"{path}: reading MIDI")
    try:
        midi = mido.MidiFile(path)
    except (*CORRUPT, KeyError, IndexError) as e:
        raise _Unreadable(f"{path}: not a MIDI file mido can read ({one_line(e)})") from None
    if midi.ticks_per_beat <= 0:
        raise _Unreadable(f"{path}: ticks_per_beat is {midi.ticks_per_beat}")
    notes, sounding, tick = [], {}, 0
    for message in mido.merge_tracks(midi.tracks):
        tick += message.time
        if message.type not in ("note_on", "note_off"):
            continue
        key = (message.channel, message.note)
        if key in sounding:  # a note-off, or a repeated note-on that ends the note first
            notes.append((sounding.pop(key), tick, message.note))
        if message.type == "note_on" and message.velocity > 0:
            sounding[key] = tick
    notes += [(onset, tick, pitch) for (_, pitch), onset in sounding.items()]
    if not notes:
        raise _Unusable(f"{path}: no notes", "empty")
    ticks = np.array(sorted(notes), dtype=np.int64).reshape(-1, 3)
    steps = (2 * STEPS_PER_QUARTER * ticks[:, :2] + midi.ticks_per_beat) // (2 * midi.ticks_per_beat)  # nearest
    if steps.max() > MAX_STEPS:
        raise _Unusable(f"{path}: longer than {MAX_STEPS // STEPS_PER_BAR} bars of 16 steps", "too long")
    kept = steps[:, 1] > steps[:, 0]
    ticks, steps = ticks[kept], steps[kept]
    if not len(steps):
        raise _Unusable(f"{path}: no note longer than half a sixteenth", "empty")
    overlap = np.flatnonzero(steps[1:, 0] < steps[:-1, 1])
    if len(overlap):
        i = overlap[0] + 1
        raise _Unusable(f"{path}: polyphonic: notes overlap at tick {ticks[i, 0]} (step {steps[i, 0]})", "chord")
    return events_from_notes(steps[:, 0], steps[:, 1], ticks[:, 2])


# --- specs, reading and the cache -----------------------------------------------------------------


def corpus_files(name: str) -> list[Path]:
    """The ABC files of the folk corpus ``name`` (a key of ``FOLK``) inside music21's package."""
    if name not in FOLK:
        raise DataError(f"folk:{name}: unknown corpus; known: {', '.join(f'folk:{k}' for k in FOLK)}")
    music21 = _require("music21", f"folk:{name}")
    return sorted((Path(music21.__file__).parent / "corpus" / FOLK[name]).glob("*.abc"))


def _spec_files(spec: str) -> tuple[str, Path, list[Path]]:
    """A spec's scheme ("abc" or "midi": how its files are read), the file or folder it names,
    and its files (sorted)."""
    scheme, _, rest = spec.partition(":")
    if scheme == "folk":
        files = corpus_files(rest)
        if not files:
            raise DataError(f"{spec}: no .abc files in music21's corpus (a music21 without its corpus?)")
        return "abc", files[0].parent, files
    if scheme not in ("abc", "midi"):
        raise DataError(f"{spec}: unknown melody data; use {SCHEMES}")
    if not rest:
        raise DataError(f"--data {spec} names no file or folder, e.g. {scheme}:PATH")
    root = Path(rest).expanduser().resolve()
    suffixes = (".abc",) if scheme == "abc" else MIDI_SUFFIXES
    if root.is_file():
        return scheme, root, [root]
    if not root.is_dir():
        raise DataError(f"{spec}: no such file or folder")
    files = sorted(p for p in root.rglob("*") if p.suffix.lower() in suffixes and p.is_file())
    if not files:
        raise DataError(f"{spec}: no {' or '.join(suffixes)} files in this folder")
    return scheme, root, files


def _cache_path(scheme: str, root: Path, files: list[Path]) -> Path:
    stamps = [(str(f.resolve()), f.stat().st_size, f.stat().st_mtime_ns) for f in files]
    reader = _require("music21", "reading ABC").__version__ if scheme == "abc" else None  # its parses differ
    key = json.dumps([ENCODING_VERSION, scheme, str(root), stamps, reader])
    return cache_dir() / f"music-{hashlib.sha1(key.encode()).hexdigest()}.npz"


@dataclass
class Tunes:
    """The usable tunes of a spec: their ``names`` and absolute events, the number of tunes
    ``skipped`` for each reason, the files of a folder that could not be read (``unreadable``) and
    the warnings music21 gave while reading, each "FILE: what it said" (``warned``)."""

    names: list[str]
    melodies: list[np.ndarray]
    skipped: dict[str, int]
    unreadable: list[str] = field(default_factory=list)
    warned: list[str] = field(default_factory=list)


def _offsets(lengths: list[int]) -> np.ndarray:
    return np.concatenate([[0], np.cumsum(lengths, dtype=np.int64)]).astype(np.int64)


def _packed(texts: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """Strings as their UTF-8 bytes concatenated (uint8) and the offsets between them."""
    encoded = [t.encode() for t in texts]
    return np.frombuffer(b"".join(encoded), dtype=np.uint8), _offsets([len(b) for b in encoded])


def _unpacked(data: np.ndarray, offsets: np.ndarray) -> list[str]:
    return [data[a:b].tobytes().decode() for a, b in zip(offsets[:-1], offsets[1:])]


def _save_tunes(path: Path, tunes: Tunes) -> None:
    """Write ``tunes`` to ``path`` atomically, numbers only (no pickles, no string arrays): events
    concatenated (int16), names, skip reasons, unreadable files and music21's warnings as UTF-8 bytes,
    each with its offsets."""
    names, name_offsets = _packed(tunes.names)
    reasons, reason_offsets = _packed(list(tunes.skipped))
    unreadable, unreadable_offsets = _packed(tunes.unreadable)
    warned, warned_offsets = _packed(tunes.warned)
    arrays = {
        "events": np.concatenate(tunes.melodies or [np.zeros(0)]).astype(np.int16),
        "offsets": _offsets([len(m) for m in tunes.melodies]),
        "names": names,
        "name_offsets": name_offsets,
        "reasons": reasons,
        "reason_offsets": reason_offsets,
        "counts": np.array(list(tunes.skipped.values()), dtype=np.int64),
        "unreadable": unreadable,
        "unreadable_offsets": unreadable_offsets,
        "warned": warned,
        "warned_offsets": warned_offsets,
    }
    save_npz(path, arrays)


def _load_tunes(path: Path) -> Tunes | None:
    """The tunes of a cache file, or None when it is missing or damaged (it is then rebuilt); read
    through ``NpzFile``, which checks every member's size against its header before reading it."""
    keys = ("events", "offsets", "names", "name_offsets", "reasons", "reason_offsets", "counts")
    keys += ("unreadable", "unreadable_offsets", "warned", "warned_offsets")
    try:
        with NpzFile(path) as archive:
            events, offsets, names, name_offsets, reasons, reason_offsets, counts, *texts = map(archive.array, keys)
        unreadable, unreadable_offsets, warned, warned_offsets = texts
        if not _valid_offsets(offsets, len(events)) or not _valid_offsets(name_offsets, len(names)):
            return None
        if not _valid_offsets(unreadable_offsets, len(unreadable)) or not _valid_offsets(warned_offsets, len(warned)):
            return None
        if not _valid_offsets(reason_offsets, len(reasons)) or len(reason_offsets) != len(counts) + 1:
            return None
        if len(name_offsets) != len(offsets) or np.any(np.diff(offsets) < 1) or counts.dtype.kind != "i":
            return None
        if events.dtype.kind != "i" or np.any((events < NO_EVENT) | (events > 127)):  # MIDI pitches are 0..127
            return None
        melodies = [events[a:b].astype(np.int64) for a, b in zip(offsets[:-1], offsets[1:])]
        skipped = dict(zip(_unpacked(reasons, reason_offsets), counts.tolist()))
        return Tunes(
            _unpacked(names, name_offsets),
            melodies,
            skipped,
            _unpacked(unreadable, unreadable_offsets),
            _unpacked(warned, warned_offsets),
        )
    except (DataError, UnicodeDecodeError):
        return None


def _valid_offsets(offsets: np.ndarray, total: int) -> bool:
    """Whether ``offsets`` cut an array of ``total`` items in order: 1-D integers from 0 to total."""
    return (
        offsets.ndim == 1
        and offsets.dtype.kind == "i"
        and len(offsets) >= 1
        and offsets[0] == 0
        and offsets[-1] == total
        and not np.any(np.diff(offsets) < 0)
    )


def _parse(spec: str, scheme: str, root: Path, files: list[Path]) -> Tunes:
    """Read every file of a spec (with a progress bar): ABC files' tunes, MIDI files' melodies
    (a folder skips the files it cannot read and the unusable MIDI files; a single file must be
    readable and usable). music21's warnings are collected (``_music21_warnings``), each after its file's name."""
    names, melodies, skipped, unreadable, warned = [], [], Counter(), [], []
    bar = tqdm(files, desc=f"reading {spec}", unit="file", disable=None, leave=False)
    for path in bar:
        where = path.relative_to(root).as_posix() if root.is_dir() else path.name
        try:
            if scheme == "abc":
                with _music21_warnings() as said:
                    tunes, reasons = read_abc(path)
                warned += [f"{where}: {line}" for line in said]
                skipped.update(reasons)
                names += [f"{where}: {title}" for title, _ in tunes]
                melodies += [events for _, events in tunes]
            else:
                melodies.append(read_midi(path))
                names.append(where)
        except _Unreadable:
            if not root.is_dir():
                raise
            unreadable.append(where)
        except _Unusable as e:
            if not root.is_dir():
                raise
            skipped[e.reason] += 1
        bar.set_postfix(tunes=len(melodies))
    return Tunes(names, melodies, dict(skipped.most_common()), unreadable, warned)


def read_tunes(spec: str) -> Tunes:
    """The tunes of a spec (``folk:essen``, ``folk:oneills``, ``abc:PATH``, ``midi:PATH``), from
    the cache when its files have not changed; one warning counts the tunes skipped by reason and
    the files that could not be read (each one tune), naming the first, and one more counts music21's
    warnings (from the cache too), naming the first; ``DataError`` when no tune is left."""
    scheme, root, files = _spec_files(spec)
    cache = _cache_path(scheme, root, files)
    tunes = _load_tunes(cache) if cache.is_file() else None
    if tunes is None:
        tunes = _parse(spec, scheme, root, files)
        try:
            _save_tunes(cache, tunes)
        except OSError as e:
            warnings.warn(f"{cache}: cannot write the melody cache ({e.strerror})", stacklevel=2)
    counts = [f"{reason} {n}" for reason, n in tunes.skipped.items()]
    if tunes.unreadable:
        counts.append(f"unreadable {len(tunes.unreadable)} (e.g. {tunes.unreadable[0]})")
    total = sum(tunes.skipped.values()) + len(tunes.unreadable)
    read = total + len(tunes.names)
    if tunes.warned:
        files = len({line.partition(": ")[0] for line in tunes.warned})
        warnings.warn(
            f"{spec}: {len(tunes.warned)} music21 warning(s) in {files} file(s) (e.g. {tunes.warned[0]})",
            stacklevel=2,
        )
    if not tunes.names:
        raise DataError(f"{spec}: no usable tune among {read} ({', '.join(counts)})")
    if total:
        warnings.warn(f"{spec}: skipped {total} of {read} tunes ({', '.join(counts)})", stacklevel=2)
    return tunes
