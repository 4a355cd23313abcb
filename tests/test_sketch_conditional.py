"""The class-conditional sketch VAE (SVG-VAE's idea): the decoder and guide read onehot(y), a
tiny run trains on one font's glyphs, and the style commands draw a font's glyph as every
character (SVG parsed back as XML); bad glyphs, labels, fonts and runs are one-line errors."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET

import pytest
import torch

from guides.rnn import RNNGuide
from models.sketch_vae import SketchVAE
from pvae import runs
from pvae.data.fonts import matplotlib_font_files
from pvae.errors import DataError, UserError
from pvae.kinds.base import load_dataset
from pvae.kinds.strokes.generate import (
    INK,
    SOURCE,
    complete_run,
    font_interpolation_run,
    interpolate_run,
    reconstruct_run,
    sample_run,
    style_run,
)
from pvae.train import TrainConfig, train

SVG = "{http://www.w3.org/2000/svg}"
CELL = 80  # pvae.render.sketches_svg's default cell size


pytestmark = pytest.mark.usefixtures("one_thread")


def _font(name: str = "DejaVuSans.ttf"):
    return next(f for f in matplotlib_font_files() if f.name == name)


@pytest.fixture(scope="module")
def glyphs():
    return load_dataset(f"glyphs:{_font()}")


def test_log_likelihood_and_posterior_depend_on_the_label(glyphs):
    x = glyphs.split("train").tensor()[:3]
    torch.manual_seed(0)
    model, guide = SketchVAE(glyphs.rows, 4, dec_hidden=16, mixtures=2, num_classes=62), RNNGuide(4, 8, num_classes=62)
    z = torch.randn(2, 3, 4)  # two particles of three sketches: labels broadcast over particles
    a, b = (model.likelihood(z, torch.tensor(y)).log_prob(x) for y in ([0, 1, 2], [5, 5, 5]))
    assert a.shape == (2, 3) and torch.isfinite(a).all() and (a - b).abs().min() > 1e-4
    q0, q1 = guide.posterior(x, torch.tensor([0, 1, 2])), guide.posterior(x, torch.tensor([7, 7, 7]))
    assert not torch.allclose(q0.mean, q1.mean)
    out = model.generate(z[0], temperature=0.5, y=torch.tensor([3, 4, 5]))
    assert out.shape == (3, glyphs.rows, 5)
    assert model.generate(z[0], y=torch.tensor(3)).shape == (3, glyphs.rows, 5)  # one label for all
    with pytest.raises(ValueError, match="give the labels y"):
        model.likelihood(z).log_prob(x)
    # num_classes=0 is the plain model: the same parameters as before conditioning existed
    plain = SketchVAE(glyphs.rows, 4, dec_hidden=16, mixtures=2)
    assert model.rnn.weight_ih_l0.shape[1] == plain.rnn.weight_ih_l0.shape[1] + 62
    assert plain.init_state.in_features == 4 and RNNGuide(4, 8).head.in_features == 16


def test_class_conditional_decoder_only_model(glyphs):
    model = SketchVAE(glyphs.rows, dec_hidden=16, mixtures=2, unconditional=True, num_classes=62)
    x = glyphs.split("train").tensor()[:2]
    lp = [model.likelihood(None, torch.tensor(y), batch_size=2).log_prob(x) for y in ([0, 1], [9, 9])]
    assert (lp[0] - lp[1]).abs().min() > 1e-4
    assert model.generate(None, y=torch.tensor([1, 2])).shape == (2, glyphs.rows, 5)


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    config = TrainConfig.for_model(
        model="sketch",
        conditional=True,
        data=f"glyphs:{_font()}",
        latent_dim=4,
        enc_hidden=8,
        dec_hidden=16,
        mixtures=2,
        batch_size=16,
        epochs=6,  # 24 steps: enough that the decoder no longer ends every sketch at once
        lr=1e-2,
    )
    return train(config, tmp_path_factory.mktemp("conditional") / "run", progress=False)


def _cells(svg) -> dict[tuple[int, int], set[str]]:
    """The colours drawn in each grid cell of an SVG sheet (parsed as XML)."""
    root = ET.parse(svg).getroot()
    assert root.tag == f"{SVG}svg"
    cells: dict[tuple[int, int], set[str]] = {}
    for line in root.iter(f"{SVG}polyline"):
        x, y = (float(v) for v in line.get("points").split()[0].split(","))
        cells.setdefault((int(y // CELL), int(x // CELL)), set()).add(line.get("stroke"))
    return cells


def test_conditional_run_builds_model_and_guide_with_62_classes(run):
    config = json.loads((run / "config.json").read_text())
    assert config["model"]["kwargs"]["num_classes"] == 62 and config["guide"]["kwargs"]["num_classes"] == 62
    assert (run / "figures" / "reconstructions.svg").is_file() and (run / "figures" / "prior_samples.svg").is_file()


def test_style_draws_one_glyph_as_62_characters(run):
    svg, png = style_run(run, _font("DejaVuSerif.ttf"), "g")
    assert svg == run / "style" / "font=DejaVuSerif,glyph=g,temperature=0.1,seed=0" / "style.svg"
    assert png.stat().st_size > 1000
    cells = _cells(svg)
    assert {cell for cell, colours in cells.items() if colours == {SOURCE}} == {(0, 25)}  # the encoded glyph
    drawn = {cell for cell, colours in cells.items() if colours == {INK}}
    assert len(drawn) == 62 and {r for r, _ in drawn} == {0, 1, 2}  # digits, capitals, small letters


def test_font_interpolation_sheet(run):
    svg, _ = font_interpolation_run(run, _font(), _font("DejaVuSansMono.ttf"), steps=3, glyph="A", chars="Ab")
    folder = f"font={_font().stem},glyph=A,to=DejaVuSansMono,steps=3,chars=Ab,temperature=0.1,seed=0"
    assert svg == run / "style" / folder / "interpolation.svg"
    root = ET.parse(svg).getroot()
    assert (root.get("width"), root.get("height")) == (f"{3 * CELL}px", f"{3 * CELL}px")  # [source] A b per step
    cells = _cells(svg)
    assert {cell for cell, colours in cells.items() if SOURCE in colours} == {(0, 0), (2, 0)}


def test_generation_commands_pass_the_labels(run):
    svg, _ = sample_run(run, n=4, prior=True, label="A")
    assert svg == run / "sample" / "n=4,label=10,temperature=0.5,prior=True,seed=0" / "samples.svg"
    assert len(_cells(svg)) > 0
    svg, _ = sample_run(run, n=4, label=10)  # the test sketches of class 10 ('A'), and samples from their codes
    assert svg.parent.name.startswith("n=") and svg.parent.name.endswith(",label=10,temperature=0.5,prior=False,seed=0")
    for svg, _ in (reconstruct_run(run, n=2), interpolate_run(run, steps=3), complete_run(run, n=2, samples=2)):
        ET.parse(svg)


def test_bad_glyphs_labels_fonts_and_runs(run, tmp_path):
    garbage = tmp_path / "garbage.ttf"
    garbage.write_bytes(b"no font here" * 30)
    for call, error, message in [
        (lambda: style_run(run, _font(), "é"), UserError, "--glyph 'é': not one of the 62 characters"),
        (lambda: style_run(run, _font(), "AB"), UserError, "--glyph 'AB': not one of the 62 characters"),
        (lambda: style_run(run, garbage, "A"), DataError, f"{garbage}: not a TrueType/OpenType font"),
        (lambda: font_interpolation_run(run, _font(), _font(), steps=1), UserError, "--steps 1: must be at least 2"),
        (lambda: sample_run(run, label="é"), UserError, "--label é: not a class number or one of the characters"),
        (lambda: sample_run(run, label=62), UserError, "--label 62: out of range; this run's classes are 0-61"),
    ]:
        with pytest.raises(error) as raised:
            call()
        assert message in str(raised.value) and "\n" not in str(raised.value), str(raised.value)

    plain = tmp_path / "plain"  # the same run without labels: a plain model and guide
    plain.mkdir()
    config = json.loads((run / "config.json").read_text())
    for part in ("model", "guide"):
        config[part]["kwargs"]["num_classes"] = 0
    runs.save_config(plain, config)
    model, guide = runs.build("model", **config["model"]), runs.build("guide", **config["guide"])
    runs.save_checkpoint(plain, {"model": model.state_dict(), "guide": guide.state_dict()})
    with pytest.raises(UserError, match="needs a class-conditional run on glyph data"):
        style_run(plain, _font(), "A")
    with pytest.raises(UserError, match="needs a class-conditional run on glyph data"):
        style_run(plain, None, "A")  # the run is checked before the font
    for call in (lambda: style_run(run, None, "A"), lambda: font_interpolation_run(run, None, _font())):
        with pytest.raises(UserError, match="--font FILE is required"):
            call()
    with pytest.raises(UserError, match="the prior of this run is not class-conditional"):
        sample_run(plain, prior=True, label="A")
