"""``--model melody`` end to end on a handful of tunes: both decoders train, the commands write MIDI
files that parse with the right notes, and bad input gives one line."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

pytest.importorskip("music21")
mido = pytest.importorskip("mido")

from conftest import write_abc_tunes  # noqa: E402

from pvae.cli import main  # noqa: E402
from pvae.kinds.events.data import load_melodies  # noqa: E402
from pvae.kinds.events.encoding import decode  # noqa: E402
from pvae.kinds.events.generate import TICKS_PER_STEP  # noqa: E402
from pvae.train import TrainConfig, Trainer  # noqa: E402

TINY = ["--latent-dim", "3", "--enc-hidden", "8", "--dec-hidden", "8", "--batch-size", "4"]


@pytest.fixture(scope="module")
def tunes(tmp_path_factory):
    folder = tmp_path_factory.mktemp("tunes")
    return f"abc:{write_abc_tunes(folder / 'tunes.abc')}"


@pytest.mark.parametrize("decoder", ["flat", "hierarchical"])
def test_each_decoder_trains_on_a_few_tunes(decoder, tunes, tmp_path, one_thread):
    config = TrainConfig.for_model(
        model="melody",
        data=tunes,
        bars=2,
        decoder=decoder,
        latent_dim=3,
        enc_hidden=8,
        dec_hidden=8,
        steps=6,
        batch_size=4,
    )
    trainer = Trainer(config, tmp_path / "run", progress=False)
    assert trainer.model.steps == 32 and trainer.model.segments == (2 if decoder == "hierarchical" else 1)
    x, _ = next(trainer.train_split.batches(4, trainer.data_generator))
    losses = [trainer.svi.step(x, None) for _ in range(6)]
    assert all(math.isfinite(v) for v in losses) and losses[-1] < losses[0]


@pytest.fixture(scope="module")
def melody_run(tunes, tmp_path_factory):
    run = tmp_path_factory.mktemp("melody") / "run"
    args = ["--model", "melody", "--data", tunes, "--bars", "2", "--steps", "3", *TINY]
    assert main(["train", *args, "--out", str(run), "--no-progress"]) == 0
    return run


def _written(capsys) -> list[str]:
    return capsys.readouterr().out.removeprefix("written: ").strip().split(", ")


def _notes(path) -> list[tuple[int, int, int]]:
    """(pitch, start tick, end tick) of every note of a MIDI file, read with mido alone."""
    now, sounding, found = 0, {}, []
    for message in mido.MidiFile(path).tracks[0]:
        now += message.time
        if message.type == "note_on" and message.velocity > 0:
            sounding[message.note] = now
        elif message.type in ("note_on", "note_off"):
            found.append((message.note, sounding.pop(message.note), now))
    return sorted(found, key=lambda n: n[1])


def test_reconstruct_writes_midi_of_the_test_melodies(melody_run, tunes, capsys):
    assert main(["reconstruct", str(melody_run), "-n", "2"]) == 0
    written = _written(capsys)
    midis = [p for p in written if p.endswith(".mid")]
    assert len(midis) == 2 and any(p.endswith("piano_roll.png") for p in written)
    data = load_melodies(tunes, 2)
    original = decode(data.split("test").tensor()[0].numpy(), data.low)
    # the file starts with the test melody itself: its notes, at 120 ticks a step
    expected, pitch, start = [], None, 0
    for step, event in enumerate(list(original) + [-1]):
        if event == -2:
            continue
        if pitch is not None:
            expected.append((pitch, start * TICKS_PER_STEP, step * TICKS_PER_STEP))
        pitch, start = (int(event), step) if event >= 0 else (None, 0)
    assert _notes(midis[0])[: len(expected)] == expected


def test_sample_and_interpolate_write_midi_and_piano_rolls(melody_run, capsys):
    assert main(["sample", str(melody_run), "-n", "3"]) == 0
    out, err = capsys.readouterr()
    written = out.removeprefix("written: ").strip().split(", ")
    assert sum(p.endswith(".mid") for p in written) == 3
    assert sum(p.endswith(".wav") for p in written) == 1 and "notes per bar" in err  # the statistics table
    for path in written[:3]:
        assert mido.MidiFile(path).ticks_per_beat == 480
    assert main(["interpolate", str(melody_run), "--pair", "0", "0", "--steps", "3"]) == 0
    midi, wav, png = _written(capsys)
    assert midi.endswith("interpolation.mid") and wav.endswith("interpolation.wav") and png.endswith("piano_roll.png")
    # the first melody, three steps of the path and the second, a bar of rest between each
    end = max(n[2] for n in _notes(midi))
    assert end <= (5 * 32 + 4 * 16) * TICKS_PER_STEP


def test_generation_folders_are_the_command_then_its_arguments(melody_run, tunes, capsys):
    """RUN/COMMAND/ARGUMENTS/, as on every kind; n is the number of test melodies read."""
    test = len(load_melodies(tunes, 2).split("test"))
    assert main(["reconstruct", str(melody_run), "-n", str(test + 5)]) == 0
    folder = melody_run / "reconstruct" / f"n={test},seed=0"
    assert {Path(p).parent for p in _written(capsys)} == {folder} and len(list(folder.glob("*.mid"))) == test
    assert main(["sample", str(melody_run), "-n", "2", "--temperature", "0.7"]) == 0
    assert {Path(p).parent for p in _written(capsys)} == {melody_run / "sample" / "n=2,temperature=0.7,seed=0"}
    assert main(["interpolate", str(melody_run), "--pair", "0", "0", "--steps", "3"]) == 0
    folder = melody_run / "interpolate" / "pair=0-0,steps=3,temperature=0.1,seed=0"
    assert {Path(p).parent for p in _written(capsys)} == {folder}


@pytest.mark.parametrize(
    "flags, message",
    [
        (["--bars", "3", "--segment-bars", "2"], "--bars 3 is not a multiple of --segment-bars 2"),
        (
            ["--bars", "2", "--decoder", "flat", "--segment-bars", "2"],
            "--segment-bars 2: used only with --decoder hierarchical",
        ),
        (["--bars", "0"], "--bars 0: must be at least 1"),
    ],
)
def test_bad_input_is_one_line(flags, message, tunes, tmp_path, capsys):
    args = ["train", "--model", "melody", "--data", tunes, "--steps", "1", *TINY, *flags]
    assert main([*args, "--out", str(tmp_path / "r"), "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1, err


def test_an_abc_file_with_no_tune_is_one_line(tmp_path, capsys):
    empty = tmp_path / "empty.abc"
    empty.write_text("% nothing but a comment\n")
    args = ["train", "--model", "melody", "--data", f"abc:{empty}", "--steps", "1", *TINY]
    assert main([*args, "--out", str(tmp_path / "r"), "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert str(empty) in err and err.count("\n") == 1, err


def test_melody_commands_refuse_other_runs(melody_run, tmp_path, capsys):
    assert main(["style", str(melody_run), "--font", str(tmp_path / "x.ttf")]) == 2
    assert "pvae style applies to runs of strokes or svg data" in capsys.readouterr().err


def test_a_polyphonic_midi_file_is_one_line(tmp_path, capsys):
    track = mido.MidiTrack()
    track += [
        mido.Message("note_on", note=60, velocity=80, time=0),
        mido.Message("note_on", note=64, velocity=80, time=0),
    ]
    track += [mido.Message("note_off", note=60, time=480), mido.Message("note_off", note=64, time=0)]
    path = tmp_path / "chord.mid"
    mido.MidiFile(tracks=[track]).save(path)
    args = ["train", "--model", "melody", "--data", f"midi:{path}", "--bars", "1", "--steps", "1", *TINY]
    assert main([*args, "--out", str(tmp_path / "r"), "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert str(path) in err and "polyphonic" in err and err.count("\n") == 1, err


def test_bounds_inspect_and_resume_of_a_melody_run(melody_run, tunes, tmp_path, capsys):
    assert main(["bounds", str(melody_run), "--k", "1", "5", "--limit", "4", "--no-progress"]) == 0
    assert main(["inspect", str(melody_run), "--limit", "8"]) == 0
    assert "active" in capsys.readouterr().out
    run = tmp_path / "resumed"
    args = ["--model", "melody", "--data", tunes, "--bars", "2", *TINY, "--out", str(run), "--no-progress"]
    assert main(["train", *args, "--steps", "2"]) == 0
    assert main(["train", *args, "--steps", "4", "--resume"]) == 0
    assert (run / "metrics.csv").read_text().strip().splitlines()[-1].split(",")[1] == "4"
