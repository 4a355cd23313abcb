"""The stroke-drawing VAE (``--model strokes-raster``), the point-estimate guide (``--guide delta``)
and ``pvae vectorise``: the likelihood against torch's own Bernoulli, the sigma schedule against
its formula, the commands end to end, and bad input in one line."""

from __future__ import annotations

import math
import xml.etree.ElementTree as ET

import pytest
import torch

from models import MODELS
from models.strokes_raster import INK_FLOOR, SIGMA_ANNEAL, StrokesRaster
from pvae.cli import main
from pvae.errors import UserError
from pvae.raster import soft_render
from pvae.train import TrainConfig, Trainer

TINY = ["--latent-dim", "4", "--hidden", "16", "--batch-size", "8"]


def test_likelihood_is_bernoulli_over_the_rendered_ink():
    torch.manual_seed(0)
    model = StrokesRaster(784, latent_dim=3, hidden=(8,), segments=3, primitive="bezier")
    z = torch.randn(5, 3)
    x = (torch.rand(5, 784) < 0.2).float()
    ink = soft_render(model.strokes(z), 2.0, 28)
    p = INK_FLOOR + (1 - 2 * INK_FLOOR) * ink
    expected = torch.distributions.Bernoulli(probs=p).log_prob(x).sum(-1)
    torch.testing.assert_close(model.likelihood(z).log_prob(x), expected, rtol=1e-4, atol=1e-3)
    strokes = model.strokes(z)
    assert strokes.points.shape == (5, 3, 3, 2) and strokes.width.shape == strokes.ink.shape == (5, 3)
    assert ((strokes.points >= 0) & (strokes.points <= 28)).all() and ((strokes.ink > 0) & (strokes.ink < 1)).all()


def test_sigma_is_annealed_geometrically_then_kept():
    model = StrokesRaster(784, sigma=4.0, sigma_final=0.25)
    steps = 400  # SIGMA_ANNEAL * steps is a whole number of steps
    for step, expected in [(0, 4.0), (SIGMA_ANNEAL * steps / 2, 1.0), (SIGMA_ANNEAL * steps, 0.25), (steps, 0.25)]:
        model.set_progress(round(step), steps)
        assert float(model.sigma) == pytest.approx(expected, rel=1e-6)
    model.set_progress(round(SIGMA_ANNEAL * steps / 2), 2 * steps)  # resumed with a larger limit: the same schedule
    assert float(model.sigma) == pytest.approx(1.0, rel=1e-6)


@pytest.mark.parametrize(
    "flags, message",
    [
        (["--segments", "0"], "--segments 0: must be at least 1"),
        (["--sigma", "0"], "--sigma 0.0: must be positive"),
        (["--sigma", "1", "--sigma-final", "2"], "--sigma-final 2.0: must be at most --sigma 1.0"),
        (["--renderer", "neural", "--sigma", "3"], "--sigma 3.0: used only with --renderer soft"),
        (["--segments", "4", "--model", "gaussian"], "--segments 4: --model gaussian does not use it"),
        (["--guide", "delta", "--objective", "iwae"], "--objective iwae needs a guide with a density"),
    ],
)
def test_bad_input_is_one_line(flags, message, tmp_path, capsys):
    args = ["train", "--model", "strokes-raster", "--data", "digits:32", "--steps", "1", *flags]
    assert main([*args, "--out", str(tmp_path / "r"), "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1, err


@pytest.mark.parametrize("model", [name for name, cls in MODELS.items() if cls.data_kind == "image"])
def test_delta_guide_trains_with_every_image_model(model, tmp_path, one_thread):
    config = TrainConfig.for_model(model=model, guide="delta", data="digits:32", latent_dim=2, hidden=[8], steps=2)
    if model == "completion":
        config.baseline_epochs = 1
    trainer = Trainer(config, tmp_path, progress=False)
    x, labels = next(trainer.train_split.batches(8, trainer.data_generator))
    y = trainer.model.condition(x, labels)
    with torch.no_grad():  # with elbo and a point estimate the loss is -[log p(x | mu) + log p(mu)]
        mu = trainer.guide.posterior(x, y).mean
        joint = trainer.model.likelihood(mu, y).log_prob(x) + trainer.model.prior(len(x), y).log_prob(mu)
    losses = [trainer.svi.step(x, y) for _ in range(3)]
    assert all(math.isfinite(v) for v in losses)
    assert losses[0] == pytest.approx(-float(joint.mean()), rel=1e-5)  # nats per datapoint, before the step


def test_delta_guide_is_refused_by_objectives_that_need_a_density(tmp_path):
    for objective in ("iwae", "iwae-dreg", "elbo-stl"):
        config = TrainConfig.for_model(guide="delta", objective=objective, data="digits:32", steps=1)
        with pytest.raises(UserError, match=f"--objective {objective}"):
            Trainer(config, tmp_path, progress=False)


@pytest.fixture(scope="module")
def raster_run(tmp_path_factory):
    run = tmp_path_factory.mktemp("raster") / "run"
    args = ["--model", "strokes-raster", "--guide", "delta", "--data", "digits:64", "--steps", "4", "--segments", "3"]
    assert main(["train", *args, *TINY, "--out", str(run), "--no-progress"]) == 0
    return run


def test_vectorise_writes_one_svg_per_image_with_one_path_per_stroke(raster_run, capsys):
    assert main(["vectorise", str(raster_run), "-n", "4"]) == 0
    written = capsys.readouterr().out.removeprefix("written: ").strip().split(", ")
    sheet, svgs = written[0], written[1:]
    assert sheet.endswith("sheet.png") and len(svgs) == 4
    for svg in svgs:
        paths = list(ET.parse(svg).getroot().iter("{http://www.w3.org/2000/svg}path"))
        assert len(paths) == 3
    assert main(["vectorise", str(raster_run), "-n", "2", "--data", "digits:16:5"]) == 0


def test_sample_writes_prior_drawings_as_svg(raster_run, capsys):
    assert main(["sample", str(raster_run), "-n", "3"]) == 0
    written = capsys.readouterr().out
    assert written.count(".svg") == 3 and "sample/n=3,seed=0/samples.png" in written


def test_commands_that_need_a_density_or_strokes_say_so(raster_run, tmp_path, capsys):
    assert main(["bounds", str(raster_run), "--k", "1", "--limit", "8", "--no-progress"]) == 2
    assert "point estimate with no density" in capsys.readouterr().err
    assert main(["inspect", str(raster_run), "--limit", "32"]) == 0
    assert "no KL(q || p): the guide is a point estimate" in capsys.readouterr().out
    gaussian = tmp_path / "gaussian"
    assert main(["train", "--data", "digits:32", "--steps", "1", *TINY, "--out", str(gaussian), "--no-progress"]) == 0
    capsys.readouterr()
    assert main(["vectorise", str(gaussian)]) == 2
    err = capsys.readouterr().err
    assert "does not draw strokes" in err and err.count("\n") == 1
