"""The sketch VAE: every objective trains it, the decoder-only model, generation, the CLI's SVG
output (parsed back as XML) and bad input."""

from __future__ import annotations

import json
import re
import xml.etree.ElementTree as ET

import numpy as np
import pyro
import pytest
import torch

from guides.rnn import RNNGuide
from models.sketch_vae import SketchVAE
from pvae.cli import main
from pvae.kinds.strokes.data import prepare
from pvae.objectives import IWAE, KLControl, make_objective
from pvae.objectives.kl import kl_weight
from pvae.svi import SVI, make_optimizer, sketch_lr
from pvae.train import TrainConfig

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def shapes(stroke_shapes):
    data = prepare({"train": stroke_shapes(48), "test": stroke_shapes(8, 1)}, "shapes")
    return data, data.split("train").tensor()


@pytest.mark.parametrize(
    "objective, kl", [("elbo", None), ("meanfield", KLControl(0.5, 0.2)), ("iwae", KLControl(0.5))]
)
def test_every_objective_trains_the_sketch_vae(shapes, objective, kl):
    data, x = shapes
    torch.manual_seed(0)
    model, guide = SketchVAE(data.rows, latent_dim=8, dec_hidden=32, mixtures=3), RNNGuide(8, 16)
    svi = SVI(
        model,
        guide,
        make_objective(objective, 3 if objective == "iwae" else 1, kl=kl),
        make_optimizer([*model.parameters(), *guide.parameters()], 1e-2),
        clip_value=1.0,
    )
    losses = [svi.step(x) for _ in range(40)]
    assert np.mean(losses[-5:]) < np.mean(losses[:5]) - 5


def test_iwae_flattens_particles_for_the_lstm(shapes):
    data, x = shapes
    model, guide = SketchVAE(data.rows, latent_dim=4, dec_hidden=16, mixtures=2), RNNGuide(4, 8)
    log_w, _ = IWAE(num_particles=3).log_weights(model.model, guide.guide, x[:5])
    assert log_w.shape == (3, 5)
    # particle k of datapoint b scores x_b with its own z: recompute one by hand
    pyro.set_rng_seed(1)
    z, log_w = IWAE(num_particles=3).weighted_samples(model.model, guide.guide, x[:5])
    d = model.likelihood(z[2, 4:5])
    expected = d.log_prob(x[4:5]) + model.prior(1).log_prob(z[2, 4:5]) - guide.posterior(x[4:5]).log_prob(z[2, 4:5])
    torch.testing.assert_close(log_w[2, 4:5], expected)


def test_decoder_only_model_trains_without_a_guide(shapes):
    data, x = shapes
    model = SketchVAE(data.rows, dec_hidden=32, mixtures=3, unconditional=True)
    assert model.latent_dim == 0
    svi = SVI(model, None, make_objective("elbo"), make_optimizer(list(model.parameters()), 1e-2))
    losses = [svi.step(x) for _ in range(30)]
    assert losses[-1] < losses[0] - 5
    assert model.generate(None, n=3).shape == (3, data.rows, 5)


def test_generation_keeps_the_prefix_and_pads_after_the_end(shapes):
    data, x = shapes
    torch.manual_seed(0)
    model = SketchVAE(data.rows, latent_dim=4, dec_hidden=16, mixtures=2)
    z = torch.randn(3, 4)
    prefix = x[:3, :2]
    out = model.generate(z, temperature=0.7, prefix=prefix)
    assert torch.equal(out[:, :2], prefix)
    for row in out:
        ended = (row[:, 4] > 0.5).nonzero()
        if len(ended):
            assert (row[int(ended[0]) :, 4] == 1).all()
        assert row[:, 2:].sum(-1).eq(1).all()


def test_schedules():
    cfg = TrainConfig.for_model(model="sketch", kl_anneal_rate=0.99995)  # the paper's annealing
    assert (cfg.kl_weight, cfg.kl_weight_start, cfg.kl_anneal_rate, cfg.kl_floor) == (0.5, 0.01, 0.99995, 0.2)
    assert kl_weight(cfg, 0, 100) == pytest.approx(0.01)
    assert kl_weight(cfg, 10**7, 100) == pytest.approx(0.5)
    assert kl_weight(cfg, 20000, 100) == pytest.approx(0.5 - 0.49 * 0.99995**20000)  # whatever the planned steps
    assert sketch_lr(cfg, 0) == pytest.approx(1e-3) and sketch_lr(cfg, 10**7) == pytest.approx(1e-5)
    assert TrainConfig.for_model(model="sketch", kl_weight=1.0).kl_weight == 1.0  # a flag beats the model's default


def _write_ndjson(path, sketches: list[np.ndarray]):
    lines = []
    for i, sketch in enumerate(sketches):
        points = np.cumsum(sketch[:, :2], 0).astype(int)
        lines.append(json.dumps({"word": "shape", "drawing": [[points[:, 0].tolist(), points[:, 1].tolist()]]}))
    path.write_text("\n".join(lines) + "\n")


@pytest.fixture(scope="module")
def sketch_run(tmp_path_factory, stroke_shapes):
    folder = tmp_path_factory.mktemp("sketch")
    _write_ndjson(folder / "shapes.ndjson", stroke_shapes(40))
    run = folder / "run"
    args = [
        "train",
        "--model",
        "sketch",
        "--data",
        f"quickdraw:{folder / 'shapes.ndjson'}",
        "--epochs",
        "2",
        "--batch-size",
        "8",
        "--latent-dim",
        "4",
        "--enc-hidden",
        "8",
        "--dec-hidden",
        "16",
        "--mixtures",
        "2",
        "--out",
        str(run),
        "--no-progress",
    ]
    assert main(args) == 0
    return run


def _polylines(svg_path) -> int:
    root = ET.parse(svg_path).getroot()  # a valid XML document
    assert root.tag.endswith("svg")
    return len(root.findall(".//{http://www.w3.org/2000/svg}polyline"))


def test_sketch_run_folder_and_metrics(sketch_run):
    import csv

    rows = list(csv.DictReader(open(sketch_run / "metrics.csv")))
    assert len(rows) == 2 and float(rows[-1]["test_L_R"]) > 0 and float(rows[-1]["test_L_KL"]) >= 0
    config = json.loads((sketch_run / "config.json").read_text())
    assert config["data"]["kind"] == "strokes" and config["data"]["scale"] > 0
    assert config["train"]["kl_weight_units"] == "sketch-rnn" and config["guide"]["name"] == "rnn"
    assert _polylines(sketch_run / "figures" / "prior_samples.svg") > 0


@pytest.mark.parametrize(
    "command, output",
    [
        (["sample", "-n", "6"], "sample/n=4,temperature=0.5,prior=False,seed=0/samples"),  # 4 test sketches
        (["sample", "--prior", "--temperature", "0.3"], "sample/n=20,temperature=0.3,prior=True,seed=0/samples"),
        (["reconstruct", "-n", "2"], "reconstruct/n=2,seed=0/reconstructions"),
        (["interpolate", "--steps", "4"], "interpolate/pair=0-1,steps=4,temperature=0.1,seed=0/interpolation"),
        (
            ["complete", "-n", "2", "--samples", "2"],
            "complete/n=2,samples=2,fraction=0.5,temperature=0.5,z=prefix,seed=0/completions",
        ),
    ],
)
def test_generation_commands_write_valid_svg(sketch_run, capsys, command, output):
    """Each into RUN/COMMAND/ARGUMENTS/, as SVG and PNG, and nothing into the training figures."""
    trained = sorted(path.name for path in (sketch_run / "figures").iterdir())
    assert main([command[0], str(sketch_run), *command[1:]]) == 0
    assert _polylines(sketch_run / f"{output}.svg") > 0
    assert (sketch_run / f"{output}.png").stat().st_size > 1000
    assert sorted(path.name for path in (sketch_run / "figures").iterdir()) == trained


def test_completion_draws_the_continuation_in_red(sketch_run):
    main(["complete", str(sketch_run), "-n", "2", "--samples", "4"])
    folder = "complete/n=2,samples=4,fraction=0.5,temperature=0.5,z=prefix,seed=0"
    root = ET.parse(sketch_run / folder / "completions.svg").getroot()
    colours = {p.get("stroke") for p in root.iter("{http://www.w3.org/2000/svg}polyline")}
    assert colours == {"black", "#d62728"}


@pytest.mark.parametrize(
    "args, message",
    [
        (["train", "--model", "sketch", "--data", "sketch:{corrupt}"], r"c\.npz: not (a readable|an) \.npz"),
        (["train", "--model", "sketch", "--data", "quickdraw:{empty}"], "no drawings"),
        (["interpolate", "{run}", "--pair", "0", "999"], "--pair 999: the test split has sketches"),
        (["sample", "{run}", "--temperature", "0"], "--temperature 0.0: must be positive"),
        (["interpolate", "{image_run}"], r"(a run of|this run's data are) image"),
    ],
)
def test_bad_sketch_input_is_one_line(sketch_run, tmp_path, capsys, args, message):
    (tmp_path / "c.npz").write_bytes(b"PK\x03\x04 broken")
    (tmp_path / "e.ndjson").write_text("\n")
    image_run = tmp_path / "image"
    image_run.mkdir()
    (image_run / "config.json").write_text(json.dumps({"data": {"kind": "image"}, "model": {}, "train": {}}))
    args = [
        a.format(corrupt=tmp_path / "c.npz", empty=tmp_path / "e.ndjson", run=sketch_run, image_run=image_run)
        for a in args
    ]
    if args[0] == "train":
        args += ["--out", str(tmp_path / "r"), "--no-progress"]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and re.search(message, err), err
