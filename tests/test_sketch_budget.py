"""sketch-rnn at CPU budgets: KL annealing over a fraction of the run's planned steps, the share of
empty draws that ``pvae sample`` prints, and completions that continue from the decoder's state
after the given part."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET

import numpy as np
import pytest
import torch

from models import MODELS
from models.sketch_vae import SketchVAE
from pvae import runs
from pvae.cli import main
from pvae.distributions.strokes import drawn_segments
from pvae.errors import UserError
from pvae.kinds.strokes.data import prepare, save_stroke_cache, to_stroke3, to_stroke5
from pvae.kinds.strokes.generate import EMPTY_BELOW, empty
from pvae.objectives.kl import ANNEAL_LEFT, kl_anneal_rate, kl_weight
from pvae.options import TrainConfig
from pvae.render import _polylines
from pvae.train import Trainer

pytestmark = pytest.mark.usefixtures("one_thread")
SVG = "{http://www.w3.org/2000/svg}"
TINY = ["--latent-dim", "2", "--enc-hidden", "4", "--dec-hidden", "16", "--mixtures", "2", "--batch-size", "8"]


# --- KL annealing over the run's budget -----------------------------------------------------------


def test_the_fraction_reaches_99_percent_at_its_step():
    cfg = TrainConfig.for_model(model="sketch")
    assert (cfg.kl_anneal_fraction, cfg.kl_anneal_rate, cfg.kl_weight_start, cfg.kl_weight) == (0.5, None, 0.01, 0.5)
    planned = 1500
    assert kl_anneal_rate(cfg, planned) == pytest.approx(0.01 ** (1 / 750))
    left = [(cfg.kl_weight - kl_weight(cfg, s, planned)) / (cfg.kl_weight - cfg.kl_weight_start) for s in (0, 375, 750)]
    assert left == pytest.approx([1.0, 0.1, ANNEAL_LEFT])  # w_s = w - (w - w_0) 0.01^(s / (F P))
    for s in (1, 200, 1499):
        assert kl_weight(cfg, s, planned) == pytest.approx(0.5 - 0.49 * 0.01 ** (s / (0.5 * planned)))
    # the paper's rate leaves the weight near 0.045 at step 1500; the fraction there: 0.4999
    assert kl_weight(TrainConfig.for_model(model="sketch", kl_anneal_rate=0.99995), 1500, planned) < 0.05
    assert kl_weight(cfg, 1500, planned) == pytest.approx(0.5 - 0.49e-4)


def test_one_annealing_speed_given_replaces_the_models_and_both_are_refused(tmp_path, capsys):
    rate = TrainConfig.for_model(model="sketch", kl_anneal_rate=0.998)
    assert (rate.kl_anneal_rate, rate.kl_anneal_fraction) == (0.998, None)
    melody = TrainConfig.for_model(model="melody", kl_anneal_fraction=0.3)  # melody's own default is a rate
    assert (melody.kl_anneal_rate, melody.kl_anneal_fraction) == (None, 0.3)
    melody = MODELS["melody"].train_defaults["kl_anneal_rate"]
    assert TrainConfig.for_model(model="melody").kl_anneal_rate == melody  # left as it was
    both = TrainConfig.for_model(model="sketch", kl_anneal_rate=0.998, kl_anneal_fraction=0.5)
    with pytest.raises(UserError, match=r"^--kl-anneal-fraction 0.5 and --kl-anneal-rate 0.998: give one"):
        both.check()
    args = ["train", "--model", "sketch", "--kl-anneal-fraction", "0.5", "--kl-anneal-rate", "0.998"]
    assert main([*args, "--out", str(tmp_path / "r"), "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "give one (the fraction sets the rate" in err, err
    assert not (tmp_path / "r").exists()
    for value in ("0", "1.5"):
        assert main(["train", "--model", "sketch", "--kl-anneal-fraction", value, "--out", str(tmp_path / "r")]) == 2
        assert f"--kl-anneal-fraction {float(value)}: must be in (0, 1]" in capsys.readouterr().err


def test_a_fraction_without_a_start_weight_is_refused(tmp_path, capsys):
    args = ["train", "--data", "digits:64", "--kl-anneal-fraction", "0.5", "--out", str(tmp_path / "r")]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--kl-anneal-fraction 0.5: used only with --kl-weight-start" in err, err


@pytest.fixture(scope="module")
def shapes_spec(tmp_path_factory, stroke_shapes) -> str:
    path = tmp_path_factory.mktemp("shapes") / "shapes.npz"
    save_stroke_cache(path, {"train": stroke_shapes(16), "test": stroke_shapes(4, seed=1)})
    return f"sketch:{path}"


def test_the_trainer_anneals_over_the_plan_at_the_start_and_keeps_it_on_resume(tmp_path, shapes_spec):
    options = dict(latent_dim=2, enc_hidden=4, dec_hidden=8, mixtures=2, batch_size=8, augment_drop=0.0)
    config = TrainConfig.for_model(model="sketch", data=shapes_spec, steps=4, **options)
    trainer = Trainer(config, tmp_path / "run", progress=False)
    trainer.train()
    rows = trainer.run["data"]["rows"]
    nats = rows / 2  # sketch-rnn's units: w T / Z on the KL in nats
    assert trainer.kl.weight == pytest.approx(kl_weight(config, 3, 4) * nats)  # set before the last step
    assert runs.load_checkpoint(tmp_path / "run")["planned_steps"] == 4
    longer = TrainConfig(**{**runs.load_config(tmp_path / "run")["train"], "steps": 8, "epochs": None})
    resumed = Trainer(longer, tmp_path / "run", progress=False)
    resumed.train(resume=True)
    assert resumed.kl.weight == pytest.approx(kl_weight(longer, 7, 4) * nats)  # the schedule of 4 planned steps
    assert kl_weight(longer, 7, 4) != pytest.approx(kl_weight(longer, 7, 8))
    assert runs.load_checkpoint(tmp_path / "run")["planned_steps"] == 4


# --- empty draws ---------------------------------------------------------------------------------


def _stroke5(points: list[tuple[float, float, int]], rows: int = 8) -> np.ndarray:
    """Stroke-3 points ``(dx, dy, lifted)`` as a padded stroke-5 sketch."""
    return to_stroke5(np.array(points, dtype=np.float32).reshape(-1, 3), rows)


def test_empty_draws_on_a_hand_made_batch(stroke_shapes):
    batch = [
        _stroke5([]),  # ends at once
        _stroke5([(1, 0, 0), (1, 0, 1)]),  # one line
        _stroke5([(1, 0, 1), (0, 1, 1), (1, 1, 1)]),  # moves only
        _stroke5([(1, 0, 0), (0, 1, 0), (1, 0, 0)]),  # two lines: the last point's pen leads nowhere
        _stroke5([(1, 0, 0), (0, 1, 0), (1, 0, 0), (0, 1, 1)]),  # three lines
        _stroke5([(1, 0, 0), (0, 1, 1), (5, 5, 0), (1, 0, 0), (0, 1, 1)]),  # a line, a lift, two lines
    ]
    x = torch.from_numpy(np.stack(batch))
    assert drawn_segments(x).tolist() == [0, 1, 0, 2, 3, 3]
    assert empty(x).tolist() == [True, True, True, True, False, False]
    squares = torch.from_numpy(np.stack([to_stroke5(s, 8) for s in stroke_shapes(4)]))
    assert not empty(squares).any() and EMPTY_BELOW == 3
    # the lines the figures draw: one fewer than the points of each polyline
    for sketch in [*x, *squares]:
        assert sum(len(p) - 1 for p, _ in _polylines([(to_stroke3(sketch), "black")])) == int(drawn_segments(sketch))


@pytest.fixture(scope="module")
def sketch_run(tmp_path_factory, shapes_spec):
    run = tmp_path_factory.mktemp("vae") / "run"
    args = ["train", "--model", "sketch", "--data", shapes_spec, "--steps", "60", "--lr", "0.01", *TINY]
    assert main([*args, "--out", str(run), "--no-progress"]) == 0  # 3 s: some prior draws are empty, some not
    return run


@pytest.fixture(scope="module")
def decoder_only_run(tmp_path_factory, shapes_spec):
    run = tmp_path_factory.mktemp("decoder") / "run"
    args = ["train", "--model", "sketch", "--unconditional", "--data", shapes_spec, "--steps", "4", *TINY[4:]]
    assert main([*args, "--out", str(run), "--no-progress"]) == 0
    return run


def _segments_per_cell(svg, cell: float = 80.0) -> dict[tuple[int, int], int]:
    """Lines drawn in each cell (row, column) of a sketch grid SVG (``pvae.render.sketches_svg``)."""
    counts: dict[tuple[int, int], int] = {}
    for line in ET.parse(svg).getroot().iter(f"{SVG}polyline"):
        points = [tuple(map(float, p.split(","))) for p in line.get("points").split()]
        x, y = np.mean(points, 0)
        key = (int(y // cell), int(x // cell))
        counts[key] = counts.get(key, 0) + len(points) - 1
    return counts


LINE = re.compile(
    r"empty draws: (\d+) of (\d+) \(([\d.]+)%\) (.*?)(; empty test sketches: (\d+) of (\d+).*?)? \(empty: fewer than 3"
)


@pytest.mark.parametrize("prior", [True, False])
def test_sample_prints_the_share_of_empty_draws(sketch_run, capsys, prior):
    n = 20 if prior else 4
    assert main(["sample", str(sketch_run), "-n", str(n), *(["--prior"] if prior else [])]) == 0
    out = capsys.readouterr().out.splitlines()
    match = LINE.match(out[0])
    assert match and out[1].startswith("written: "), out
    count, total = int(match[1]), int(match[2])
    assert total == n and float(match[3]) == pytest.approx(round(100 * count / n, 1))
    svg = sketch_run / "sample" / f"n={n},temperature=0.5,prior={prior},seed=0" / "samples.svg"
    cells = _segments_per_cell(svg)
    if prior:  # ten draws a row
        drawn = [cells.get(divmod(i, 10), 0) for i in range(n)]
        assert match[4].startswith("from the prior")
    else:  # the n test sketches, then their draws
        drawn = [cells.get((0, n + i), 0) for i in range(n)]
        assert match[4].startswith("from the codes of test sketches") and match.group(6, 7) == ("0", str(n))
    assert count == sum(d < EMPTY_BELOW for d in drawn)
    assert 0 < count < n or not prior  # the run above draws some of each from the prior (seed 0)


# --- completion -----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def shapes(stroke_shapes):
    return prepare({"train": stroke_shapes(8), "test": stroke_shapes(2, 1)}, "shapes").split("train").tensor()


def _step_by_step(model: SketchVAE, prefix: torch.Tensor, code: torch.Tensor | None):
    """The decoder's LSTM run one row at a time through S_0, x_1..x_P: its last output and state."""
    n = prefix.shape[0]
    state = None if code is None else model.initial_state(code)
    rows = torch.cat([model.start.expand(n, 1, 5), prefix], 1)
    for t in range(rows.shape[1]):
        row = rows[:, t : t + 1]
        if code is not None:
            row = torch.cat([row, code[:, None]], -1)
        out, state = model.rnn(row, state)
    return out, state


@pytest.mark.parametrize("kind", ["vae", "decoder-only", "layer-norm"])
def test_the_state_after_the_prefix_is_that_of_stepping_through_it(shapes, kind):
    torch.manual_seed(0)
    rows = shapes.shape[1]
    model = SketchVAE(rows, latent_dim=3, dec_hidden=12, mixtures=2, unconditional=kind == "decoder-only",
                      layer_norm=kind == "layer-norm").eval()  # fmt: skip
    code = None if kind == "decoder-only" else model.code(torch.randn(3, 3), None)
    prefix = shapes[:3, :3]  # 3 of the 4 or 5 points of a triangle or square
    params, (h, c) = model.read_prefix(prefix, code)
    out, (h1, c1) = _step_by_step(model, prefix, code)
    torch.testing.assert_close((h, c), (h1, c1))
    expected = model.step_params(out)
    torch.testing.assert_close((params.loc, params.pen_logits), (expected.loc, expected.pen_logits))
    # the continuation is drawn from that state: replay the draws one row at a time
    torch.manual_seed(1)
    drawn = model.generate(code, n=3, temperature=0.5, prefix=prefix)
    torch.manual_seed(1)
    state, replay = (h1, c1), [prefix]
    for _ in range(rows - 3):
        step = expected.sample(temperature=0.5)
        replay.append(step)
        row = step if code is None else torch.cat([step, code[:, None]], -1)
        out, state = model.rnn(row, state)
        expected = model.step_params(out)
    replay = torch.cat(replay, 1)
    for sketch, again in zip(drawn, replay):  # the same rows up to each draw's end, padding after
        ended = (sketch[:, 4] > 0.5).nonzero()
        stop = int(ended[0]) + 1 if len(ended) else rows
        assert stop > 3
        torch.testing.assert_close(sketch[:stop], again[:stop])


def test_the_continuation_starts_where_the_prefix_ends():
    prefix = np.array([[1, 0, 0], [0, 2, 0]], dtype=np.float32)  # ends at (1, 2), pen down
    continuation = np.array([[3, 0, 0], [0, 1, 1]], dtype=np.float32)
    lines = _polylines([(prefix, "black"), (continuation, "red")])
    red = [p for p, colour in lines if colour == "red"]
    np.testing.assert_allclose(red[0], [[1, 2], [4, 2], [4, 3]])  # drawn on from the prefix's last point
    lifted = prefix.copy()
    lifted[-1, 2] = 1  # the prefix lifts the pen at its end: the continuation moves first
    red = [p for p, colour in _polylines([(lifted, "black"), (continuation, "red")]) if colour == "red"]
    np.testing.assert_allclose(red[0], [[4, 2], [4, 3]])
    whole = torch.from_numpy(to_stroke5(np.concatenate([prefix, continuation]), 8))
    assert sum(len(p) - 1 for p, _ in lines) == int(drawn_segments(whole))


COMPLETION = re.compile(
    r"continuations \((?:z from the )?(prior|prefix|decoder-only)\): [\d.]+ pen-down segments on average, "
    r"the rest of the test sketches [\d.]+; empty continuations: \d+ of (\d+) \([\d.]+%\) \(fewer than 3 segments\)"
)


@pytest.mark.parametrize("z", ["prior", "prefix"])
def test_complete_writes_its_figure_and_says_what_the_continuations_draw(sketch_run, capsys, z):
    assert main(["complete", str(sketch_run), "-n", "2", "--samples", "3", "--z", z]) == 0
    out = capsys.readouterr().out.splitlines()
    match = COMPLETION.fullmatch(out[0])
    assert match and match[1] == z and match[2] == "6", out
    folder = sketch_run / "complete" / f"n=2,samples=3,fraction=0.5,temperature=0.5,z={z},seed=0"
    svg = folder / "completions.svg"
    assert {line.get("stroke") for line in ET.parse(svg).getroot().iter(f"{SVG}polyline")} <= {"black", "#d62728"}
    assert (folder / "completions.png").stat().st_size > 1000


def test_completions_take_the_code_of_the_given_part_by_default(sketch_run, capsys):
    assert main(["complete", str(sketch_run), "-n", "1", "--samples", "2"]) == 0
    assert COMPLETION.fullmatch(capsys.readouterr().out.splitlines()[0])[1] == "prefix"


def test_the_decoder_only_model_completes_and_samples(decoder_only_run, capsys):
    assert main(["complete", str(decoder_only_run), "-n", "2", "--samples", "2"]) == 0
    assert COMPLETION.fullmatch(capsys.readouterr().out.splitlines()[0])[1] == "decoder-only"
    folder = "complete/n=2,samples=2,fraction=0.5,temperature=0.5,seed=0"  # no z to choose
    assert (decoder_only_run / folder / "completions.svg").is_file()
    assert main(["sample", str(decoder_only_run), "-n", "3"]) == 0
    assert LINE.match(capsys.readouterr().out.splitlines()[0])[2] == "3"
    for z in ("prefix", "prior"):
        assert main(["complete", str(decoder_only_run), "--z", z]) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and f"--z {z} needs a latent code" in err, err
