"""Melody output: MIDI files (mido) and piano rolls (matplotlib, no display needed).

A melody is an int array ``(T,)`` of events, one per sixteenth-note step (MusicVAE's melody
encoding): a value >= 0 starts that MIDI pitch (ending any sounding note), ``NOTE_OFF`` ends the
sounding note, ``NO_EVENT`` changes nothing. Also the generation commands of melody runs
(``pvae sample``, ``reconstruct``, ``interpolate``), their training figures, and MusicVAE's
reconstruction accuracies.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import torch
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from torch import nn

from pvae import runs
from pvae.errors import UserError
from pvae.kinds.base import require_command
from pvae.kinds.events.audio import write_wav
from pvae.kinds.events.encoding import STEPS_PER_BAR, STEPS_PER_QUARTER, decode, notes
from pvae.kinds.events.statistics import mean_statistics, statistics_table
from pvae.posterior import encode, slerp

TICKS_PER_BEAT = 480  # MIDI resolution: one quarter note
TICKS_PER_STEP = TICKS_PER_BEAT // STEPS_PER_QUARTER
STATISTICS_WINDOWS = 200  # test melodies whose statistics ``pvae sample`` shows beside the prior draws'

_NOTE_NAMES = ("C", "C#", "D", "D#", "E", "F", "F#", "G", "G#", "A", "A#", "B")

Melodies = np.ndarray | Sequence[int] | Sequence[np.ndarray | Sequence[int]]


def _as_melodies(melodies: Melodies) -> list[np.ndarray]:
    """One melody ``(T,)`` or several (``(N, T)`` or a sequence of ``(T_i,)``) as a list of arrays."""
    if hasattr(melodies, "ndim"):  # an array or tensor: (T,) or (N, T)
        array = np.asarray(melodies)
        return [array] if array.ndim == 1 else list(array)
    items = list(melodies)
    if all(np.ndim(item) == 0 for item in items):
        return [np.asarray(items, dtype=np.int64)]
    return [np.asarray(item) for item in items]


def write_midi(
    melodies: Melodies,
    path: str | os.PathLike,
    tempo_bpm: float = 120,
    gap_bars: int = 0,
    program: int = 0,
    velocity: int = 80,
) -> Path:
    """Write one melody, or several played one after another with ``gap_bars`` bars of silence between, as a
    type-0 MIDI file (4/4, 480 ticks per quarter, so one step is 120 ticks) on channel 0 with GM ``program``.

    The file lasts to the end of the last melody, trailing rests included.
    """
    try:
        import mido  # lazy: mido is optional (the music extra)
    except ImportError as error:
        raise UserError("writing MIDI needs mido: pip install 'pvae[music]'") from error

    # Absolute (tick, message) pairs; at equal ticks a note_off (0) sorts before a note_on (1).
    timed = []
    offset = 0
    for i, events in enumerate(_as_melodies(melodies)):
        if i:
            offset += gap_bars * STEPS_PER_BAR
        for pitch, start, end in notes(events):
            timed.append(((offset + start) * TICKS_PER_STEP, 1, mido.Message("note_on", note=pitch, velocity=velocity)))
            timed.append(((offset + end) * TICKS_PER_STEP, 0, mido.Message("note_off", note=pitch, velocity=0)))
        offset += len(events)
    timed.sort(key=lambda item: item[:2])

    track = mido.MidiTrack(
        [
            mido.MetaMessage("time_signature", numerator=4, denominator=4),
            mido.MetaMessage("set_tempo", tempo=mido.bpm2tempo(tempo_bpm)),
            mido.Message("program_change", program=program),
        ]
    )
    now = 0
    for tick, _, message in timed:
        track.append(message.copy(time=tick - now))
        now = tick
    track.append(mido.MetaMessage("end_of_track", time=offset * TICKS_PER_STEP - now))
    midi = mido.MidiFile(type=0, ticks_per_beat=TICKS_PER_BEAT, tracks=[track])
    path = Path(path)
    midi.save(path)
    return path


def _pitch_name(pitch: int) -> str:
    """Scientific pitch name, C4 = 60."""
    return f"{_NOTE_NAMES[pitch % 12]}{pitch // 12 - 1}"


def _pitch_range(melodies: Sequence[np.ndarray | Sequence[int]]) -> tuple[int, int]:
    """Lowest and highest pitch to show for these melodies: their notes plus one semitone, at least an octave
    (so a C is labelled), C4..C5 when there are no notes."""
    pitches = [pitch for events in melodies for pitch, _, _ in notes(events)]
    if not pitches:
        return 60, 72
    low, high = min(pitches) - 1, max(pitches) + 1
    widen = max(0, 12 - (high - low))
    low -= widen // 2
    high += widen - widen // 2
    return max(0, low), min(127, high)


def piano_roll(
    ax: Axes,
    events: np.ndarray | Sequence[int],
    low: int | None = None,
    high: int | None = None,
    title: str | None = None,
) -> None:
    """Draw one melody ``(T,)`` on ``ax``: a bar per note (pitch against step), light bar lines every
    16 steps, C's named on the pitch axis. ``low``..``high`` is the pitch range shown (default: the notes')."""
    events = np.asarray(events)
    found = notes(events)
    if low is None or high is None:
        default_low, default_high = _pitch_range([events])
        low = default_low if low is None else low
        high = default_high if high is None else high
    steps = max(len(events), STEPS_PER_BAR)
    if found:
        pitches, starts, ends = (np.array(column) for column in zip(*found))
        ax.barh(pitches, ends - starts, left=starts, height=0.8, color="tab:blue", edgecolor="black", linewidth=0.4)
    for bar in range(STEPS_PER_BAR, len(events), STEPS_PER_BAR):
        ax.axvline(bar, color="0.85", linewidth=0.6, zorder=0)
    cs = [pitch for pitch in range(low, high + 1) if pitch % 12 == 0]
    for pitch in cs:
        ax.axhline(pitch, color="0.92", linewidth=0.5, zorder=0)
    ax.set_yticks(cs, [_pitch_name(pitch) for pitch in cs], fontsize=7)
    ax.set_ylim(low - 0.5, high + 0.5)
    ax.set_xlim(0, steps)
    ax.set_xticks(range(0, steps + 1, STEPS_PER_BAR))
    ax.tick_params(axis="x", labelsize=7)
    if title:
        ax.set_title(title, fontsize=8, loc="left")


def piano_roll_sheet(
    rows: Sequence[np.ndarray | Sequence[int]],
    path: str | os.PathLike,
    titles: Sequence[str] | None = None,
    low: int | None = None,
    high: int | None = None,
) -> Path:
    """Save melodies stacked one per row as a PNG (e.g. originals over reconstructions, or the steps of an
    interpolation), on one step axis and one pitch range so rows compare; 8-16 rows of 16 bars stay readable."""
    rows = [np.asarray(events) for events in rows]
    if not rows:
        raise ValueError("piano_roll_sheet needs at least one melody")
    if titles is not None and len(titles) != len(rows):
        raise ValueError(f"{len(titles)} titles for {len(rows)} melodies")
    if low is None or high is None:
        default_low, default_high = _pitch_range(rows)
        low = default_low if low is None else low
        high = default_high if high is None else high
    steps = max(STEPS_PER_BAR, *(len(events) for events in rows))

    fig = Figure(figsize=(12, 0.4 + 1.1 * len(rows)), layout="constrained")
    axes = fig.subplots(len(rows), 1, sharex=True, squeeze=False)[:, 0]
    for i, (ax, events) in enumerate(zip(axes, rows)):
        piano_roll(ax, events, low, high, None if titles is None else titles[i])
    axes[0].set_xlim(0, steps)
    axes[0].set_xticks(range(0, steps + 1, STEPS_PER_BAR))
    axes[-1].set_xlabel("step (16 per bar)", fontsize=8)
    path = Path(path)
    fig.savefig(path, dpi=110)
    return path


# Generation commands and reconstruction accuracy (runs of --model melody)

RECONSTRUCTION_TEMPERATURE = 0.1  # tau of sampled reconstructions: near the most likely event at every step


def _events(tokens: torch.Tensor, low: int) -> list[np.ndarray]:
    """Token rows ``(N, T)`` -> the melodies they encode (events, absolute pitches)."""
    return [decode(row, low) for row in tokens.cpu().numpy()]


@torch.no_grad()
def reconstruction_accuracy(
    model: nn.Module,
    guide: nn.Module,
    tokens: torch.Tensor,
    temperature: float = RECONSTRUCTION_TEMPERATURE,
    chunk: int = 256,
) -> dict[str, float]:
    """MusicVAE's two reconstruction accuracies of token rows ``(N, T)``, each the fraction of steps
    whose event is right, with z the posterior mean: ``teacher_forced`` (the decoder reads the true
    previous events; its most likely event counts) and ``sampled`` (it reads its own samples at
    ``temperature``). No-events are most steps of a melody (about 70% of folk tunes'), so the same
    two over the note-on steps alone (``..._notes``: the right pitch at the right step) say more.
    ``..._se`` is the standard error of each of the first two over the N windows (all of length T, so
    the fraction of steps is the mean of the windows' own fractions): sqrt(var_n(a_n) / N)."""
    windows = {"teacher_forced": [], "sampled": []}  # each window's fraction of right steps
    notes_right = {"teacher_forced": 0, "sampled": 0}
    for x in tokens.split(chunk):
        z = encode(guide, x)
        notes = x >= 2  # note-on tokens (pvae.kinds.events.encoding.encode)
        for name, predicted in (
            ("teacher_forced", model.logits(z, x).argmax(-1)),
            ("sampled", model.generate(z, temperature)[0]),
        ):
            hits = predicted == x
            windows[name].append(hits.double().mean(1))
            notes_right[name] += int((hits & notes).sum())
    notes = int((tokens >= 2).sum())
    result = {}
    for name, parts in windows.items():
        a = torch.cat(parts)
        result[name] = float(a.mean())
        result[f"{name}_se"] = float(a.std() / len(a) ** 0.5) if len(a) > 1 else float("nan")
        result[f"{name}_notes"] = notes_right[name] / notes
    return result


def _load(run: str | os.PathLike, command: str):
    require_command(command, runs.load_config(run), run)
    return runs.load_run(run)


def _write(folder: Path, rows: list[np.ndarray], titles: list[str], low: int, high: int) -> Path:
    return piano_roll_sheet(rows, folder / "piano_roll.png", titles, low, high)


def training_figures(out: Path, model: nn.Module, guide: nn.Module, test, config: dict, seed: int = 0) -> None:
    """Four test melodies over their reconstructions, and four draws from the prior, as piano rolls in
    ``out/figures/``."""
    low, high = config["data"]["low"], config["data"]["high"]
    folder = Path(out) / runs.FIGURES
    folder.mkdir(parents=True, exist_ok=True)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        x = test.head(4).tensor()
        recon, _ = model.generate(encode(guide, x), RECONSTRUCTION_TEMPERATURE)
        originals, decoded = _events(x, low), _events(recon, low)
        rows = [m for pair in zip(originals, decoded) for m in pair]
        titles = [
            t
            for i in range(len(x))
            for t in (f"test melody {i}", f"its reconstruction (tau {RECONSTRUCTION_TEMPERATURE:g})")
        ]
        piano_roll_sheet(rows, folder / "reconstructions.png", titles, low, high)
        samples, _ = model.generate(model.prior(4).sample(), 1.0)
        piano_roll_sheet(
            _events(samples, low),
            folder / "prior_samples.png",
            [f"prior sample {i} (tau 1)" for i in range(4)],
            low,
            high,
        )


def sample_run(
    run: str | os.PathLike,
    n: int = 8,
    temperature: float = 0.5,
    seed: int = 0,
    label: str | None = None,
    say: Callable[[str], None] | None = None,
) -> list[Path]:
    """``n`` melodies from the prior, decoded at ``temperature``: one MIDI file each, all of them as one
    WAV (a bar of silence between) and a piano roll sheet, in ``RUN/sample/n=N,temperature=T,seed=S/``,
    with ``statistics.json``: the statistics of the draws (``pvae.kinds.events.statistics``) beside
    those of the first ``STATISTICS_WINDOWS`` test melodies, also given to ``say`` as a table. (``label``:
    refused, melody models have no classes.)"""
    config, model, _ = _load(run, "sample")
    if label is not None:
        raise UserError(f"--label {label}: melody runs are not class-conditional")
    low, high = config["data"]["low"], config["data"]["high"]
    folder = runs.output_dir(run, "sample", n=n, temperature=temperature, seed=seed)
    torch.manual_seed(seed)
    melodies = _events(model.generate(model.prior(n).sample(), temperature)[0], low)
    paths = [write_midi(m, folder / f"sample_{i:02d}.mid") for i, m in enumerate(melodies)]
    titles = [f"sample {i} (prior, tau {temperature:g})" for i in range(n)]
    test = _events(runs.load_split(config, "test").head(STATISTICS_WINDOWS).tensor(), low)
    table = {f"prior draws ({n})": mean_statistics(melodies), f"test melodies ({len(test)})": mean_statistics(test)}
    (folder / "statistics.json").write_text(json.dumps(table, indent=2))
    if say is not None:
        say(statistics_table(table))
    wav = write_wav(melodies, folder / "samples.wav")
    return [*paths, wav, folder / "statistics.json", _write(folder, melodies, titles, low, high)]


def reconstruct_run(run: str | os.PathLike, n: int = 8, seed: int = 0) -> list[Path]:
    """The first ``n`` test melodies and their reconstructions (z the posterior mean, tau
    ``RECONSTRUCTION_TEMPERATURE``): a MIDI file per melody playing the original, a bar of rest, the
    reconstruction; and a piano roll sheet, in ``RUN/reconstruct/n=N,seed=S/`` (N: the melodies
    read, at most the test split's)."""
    config, model, guide = _load(run, "reconstruct")
    low, high = config["data"]["low"], config["data"]["high"]
    torch.manual_seed(seed)
    x = runs.load_split(config, "test").head(n).tensor()
    folder = runs.output_dir(run, "reconstruct", n=len(x), seed=seed)
    originals = _events(x, low)
    decoded = _events(model.generate(encode(guide, x), RECONSTRUCTION_TEMPERATURE)[0], low)
    paths = [
        write_midi([a, b], folder / f"melody_{i:02d}.mid", gap_bars=1)
        for i, (a, b) in enumerate(zip(originals, decoded))
    ]
    rows = [m for pair in zip(originals, decoded) for m in pair]
    titles = [
        t for i in range(len(x)) for t in (f"test melody {i}", f"reconstruction (tau {RECONSTRUCTION_TEMPERATURE:g})")
    ]
    return [*paths, _write(folder, rows, titles, low, high)]


def interpolate_run(
    run: str | os.PathLike, first: int = 0, second: int = 1, steps: int = 10, temperature: float = 0.1, seed: int = 0
) -> list[Path]:
    """MusicVAE's interpolation: decode ``steps`` codes on the spherical path between the codes of two test
    melodies. One MIDI file and one WAV play the first melody, the path, then the second (a bar of rest
    between); a piano roll sheet shows the same rows, in ``RUN/interpolate/pair=I-J,steps=N,temperature=T,seed=S/``."""
    config, model, guide = _load(run, "interpolate")
    low, high = config["data"]["low"], config["data"]["high"]
    test = runs.load_split(config, "test")
    for i in (first, second):
        if not 0 <= i < len(test):
            raise UserError(f"--pair {i}: the test split has melodies 0-{len(test) - 1}")
    folder = runs.output_dir(run, "interpolate", pair=[first, second], steps=steps, temperature=temperature, seed=seed)
    torch.manual_seed(seed)
    x = test.tensor()[[first, second]]
    z0, z1 = encode(guide, x)
    t = torch.linspace(0, 1, steps)
    path = _events(model.generate(slerp(z0, z1, t), temperature)[0], low)
    rows = [*_events(x[:1], low), *path, *_events(x[1:], low)]
    titles = (
        [f"test melody {first}"]
        + [f"t = {v:.2f} (tau {temperature:g})" for v in t.tolist()]
        + [f"test melody {second}"]
    )
    midi = write_midi(rows, folder / "interpolation.mid", gap_bars=1)
    return [midi, write_wav(rows, folder / "interpolation.wav"), _write(folder, rows, titles, low, high)]
