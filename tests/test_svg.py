"""SVG-VAE's parts: the command reader (fontTools fonts made here), quadratic -> cubic, the command
distribution against a numpy loop, the SVG text, the model's teacher forcing against step-by-step
decoding, and the CLI on a tiny run."""

from __future__ import annotations

import math
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import write_font, write_test_fonts

from models.svg_vae import SVGVAE
from pvae.cli import main
from pvae.distributions.svg import CURVE, EOS, LINE, MOVE, ROW, USES, CommandSequence, command_lengths
from pvae.errors import DataError
from pvae.kinds.svg.data import load_svg, read_glyphs, split_glyph
from pvae.kinds.svg.outlines import (
    canonical,
    parse_svg_path,
    quad_to_cubic,
    rasterise,
    read_font,
    svg_path,
    to_absolute,
    to_relative,
    to_rows,
)


def test_quadratic_segments_become_the_same_cubic_curve():
    rng = np.random.default_rng(0)
    p0, q, p2 = rng.normal(size=(3, 2))
    c1, c2 = quad_to_cubic(p0, q, p2)
    for t in np.linspace(0, 1, 11):
        quadratic = (1 - t) ** 2 * p0 + 2 * t * (1 - t) * q + t**2 * p2
        cubic = (1 - t) ** 3 * p0 + 3 * t * (1 - t) ** 2 * c1 + 3 * t**2 * (1 - t) * c2 + t**3 * p2
        np.testing.assert_allclose(cubic, quadratic, atol=1e-12)


def _square(pen, i):
    pen.moveTo((100, 0))
    pen.lineTo((100, 500))
    pen.qCurveTo((350, 700), (600, 500))  # one quadratic segment
    pen.lineTo((600, 0))
    pen.closePath()


def test_the_reader_gives_the_outline_in_the_viewbox(tmp_path):
    font = write_font(tmp_path / "box.ttf", _square, chars="A")
    contours = read_font(font, "A")["A"]
    factor = 24 / 1000  # ascent 800 - descent -200
    x = lambda u: 12 - 300 * factor + u * factor  # noqa: E731  centred on the 600-unit advance
    y = lambda v: (800 - v) * factor  # noqa: E731
    commands = [cmd for cmd, _ in contours[0]]
    assert commands == ["M", "L", "C", "L", "L"]  # the closing line back to the start is explicit
    (p,) = contours[0][0][1]
    np.testing.assert_allclose(p, [x(100), y(0)])
    c1, c2, end = contours[0][2][1]
    q = np.array([x(350), y(700)])
    start, stop = np.array([x(100), y(500)]), np.array([x(600), y(500)])
    np.testing.assert_allclose(c1, start + 2 / 3 * (q - start))
    np.testing.assert_allclose(c2, stop + 2 / 3 * (q - stop))
    np.testing.assert_allclose(end, stop)


def test_contours_are_clockwise_from_their_top_left_point(tmp_path):
    font = write_font(tmp_path / "box.ttf", _square, chars="A")
    (contour,) = read_font(font, "A")["A"]
    rows = to_rows([contour])
    assert rows[0, 0] == MOVE and rows[-1, 0] == LINE
    points = rows[:, 5:7]
    np.testing.assert_allclose(points[0], points[-1])  # closed
    assert np.argmin(points[:-1].sum(1)) == 0  # starts at the point nearest the top left
    x, y = points[:, 0], points[:, 1]
    assert np.sum(x * np.roll(y, -1) - np.roll(x, -1) * y) > 0  # clockwise with y down
    reversed_contour = [("M", [points[0]])] + [("L", [p]) for p in points[::-1][1:]]  # counter-clockwise
    turned = to_rows([reversed_contour])[:, 5:7]
    np.testing.assert_allclose(turned, points)  # the same points, turned back: clockwise from the top left
    assert canonical(reversed_contour)[0][0] == "M"


def test_relative_rows_invert_and_fill_even_odd():
    square = lambda a, b: [  # noqa: E731
        [1, 0, 0, 0, 0, a, a],
        [2, 0, 0, 0, 0, b, a],
        [2, 0, 0, 0, 0, b, b],
        [2, 0, 0, 0, 0, a, b],
        [2, 0, 0, 0, 0, a, a],
    ]
    rows = np.array(square(6, 18) + square(9, 15), dtype=np.float64)
    np.testing.assert_allclose(to_absolute(to_relative(rows)), rows)
    assert to_relative(rows)[5, 5:7].tolist() == [3.0, 3.0]  # the second moveTo from the pen at (6, 6)
    pixels = rasterise(rows, 64)  # pixel centres (i + 0.5) * 24 / 64: 32 x 32 inside, minus 16 x 16 of hole
    assert pixels.sum() == 32 * 32 - 16 * 16


def test_svg_text_holds_the_commands_exactly():
    rng = np.random.default_rng(1)
    rows = np.zeros((6, ROW), dtype=np.float32)
    rows[:, 0] = [MOVE, CURVE, LINE, MOVE, CURVE, LINE]
    rows[:, 1:] = rng.normal(scale=10, size=(6, 6))
    rows[rows[:, 0] != CURVE, 1:5] = 0
    text = svg_path(rows)
    assert text.startswith("M ") and " C " in text and text.count("Z") == 2
    np.testing.assert_array_equal(parse_svg_path(text).astype(np.float32), rows)


def _numpy_log_prob(logits, mix, loc, scale, x):
    """log p(x) of one command sequence by loops over the steps, arguments and components."""
    total = 0.0
    for t in range(x.shape[0]):
        c = int(x[t, 0])
        total += logits[t, c] - math.log(np.exp(logits[t]).sum())
        for j in range(6):
            if USES[c][j]:
                w = np.exp(mix[t, j]) / np.exp(mix[t, j]).sum()
                dens = (
                    w
                    * np.exp(-0.5 * ((x[t, 1 + j] - loc[t, j]) / scale[t, j]) ** 2)
                    / (scale[t, j] * math.sqrt(2 * math.pi))
                )
                total += math.log(dens.sum())
        if c == EOS:
            break
    return total


def _random_sequence(rng, t=7, k=3, batch=(2,)):
    logits = torch.tensor(rng.normal(size=(*batch, t, 4)))
    mix, loc = (torch.tensor(rng.normal(size=(*batch, t, 6, k))) for _ in range(2))
    scale = torch.tensor(rng.uniform(0.3, 2.0, size=(*batch, t, 6, k)))
    x = torch.zeros(*batch, t, ROW, dtype=torch.float64)
    x[..., 0] = torch.tensor(rng.integers(1, 4, size=(*batch, t)), dtype=torch.float64)
    x[..., 1:] = torch.tensor(rng.normal(size=(*batch, t, 6)))
    return CommandSequence(logits, mix, loc, scale), x


def test_command_log_prob_equals_a_numpy_loop():
    rng = np.random.default_rng(2)
    d, x = _random_sequence(rng)
    x[0, 4, 0] = EOS  # the first sequence ends at step 5; the second runs all 7 rows
    assert d.batch_shape == (2,) and d.event_shape == (7, ROW)
    assert command_lengths(x).tolist() == [5, 7]
    got = d.log_prob(x)
    for b in range(2):
        want = _numpy_log_prob(*(p[b].numpy() for p in (d.command_logits, d.mix_logits, d.loc, d.scale)), x[b].numpy())
        assert float(got[b]) == pytest.approx(want, rel=1e-10)
    assert d.expand((3, 2)).log_prob(x).shape == (3, 2)


def test_unused_arguments_and_padding_do_not_change_log_prob():
    rng = np.random.default_rng(3)
    d, x = _random_sequence(rng)
    x[:, 5, 0] = EOS
    other = x.clone()
    uses = torch.tensor(USES)[x[..., 0].long()]
    other[..., 1:][~uses] += 100.0  # every argument a command does not use
    other[:, 6, 0] = LINE  # a row after the end
    other[:, 6, 1:] = 5.0
    torch.testing.assert_close(d.log_prob(other), d.log_prob(x))
    used = x.clone()
    used[0, 1, 6] += 1.0  # an argument that counts
    assert not torch.isclose(d.log_prob(used)[0], d.log_prob(x)[0])


def test_samples_have_the_layout():
    rng = np.random.default_rng(4)
    d, _ = _random_sequence(rng, t=20)
    s = d.sample((5,), temperature=0.5)
    assert s.shape == (5, 2, 20, ROW)
    uses = torch.tensor(USES)[s[..., 0].long()]
    assert (s[..., 1:][~uses] == 0).all()
    ended = torch.cumsum((s[..., 0] == EOS).int(), -1) > 1
    assert (s[..., 0][ended] == EOS).all()


@pytest.fixture(scope="module")
def fonts(tmp_path_factory):
    return write_test_fonts(tmp_path_factory.mktemp("fonts") / "fonts")


def test_the_dataset_splits_by_font_and_rows_hold_pixels_then_commands(fonts):
    data = load_svg(fonts, 50)
    assert {s: len(set(data.fonts[s])) for s in data.splits} == {"train": 1, "valid": 1, "test": 1}
    test = data.split("test")
    assert len(test) == 62 and test.labels.tolist() == list(range(62))
    images, commands = split_glyph(test.images)  # the box from its top-left corner, clockwise: the curved top first
    assert images.shape == (62, 4096) and commands.shape == (62, 51, ROW)
    assert set(images.unique().tolist()) == {0.0, 1.0}
    absolute = data.commands_of(commands[0])
    assert [int(c) for c in absolute[:, 0]] == [MOVE, CURVE, LINE, LINE, LINE, MOVE, LINE, LINE, LINE, LINE]
    np.testing.assert_array_equal(rasterise(absolute).ravel(), images[0].numpy())


def test_bad_fonts_are_one_line_errors(tmp_path, fonts):
    empty = write_font(tmp_path / "empty.ttf", None)
    with pytest.raises(DataError, match="no glyph outline"):
        read_glyphs([empty], 50, "svg:empty.ttf")
    (tmp_path / "none").mkdir()
    with pytest.raises(DataError, match="no .ttf or .otf"):
        load_svg(tmp_path / "none", 50)
    junk = tmp_path / "junk.ttf"
    junk.write_bytes(b"not a font")
    with pytest.raises(DataError, match="not a readable"):
        load_svg(junk, 50)
    with pytest.raises(DataError, match="no glyph outline .*: 186 glyphs of more than 5 commands"):
        load_svg(fonts, 5)


def _tiny_model(**kw):
    torch.manual_seed(0)
    return SVGVAE(4096, 6, 62, latent_dim=3, dec_hidden=8, mixtures=2, vae_first=0.0, **kw)


def test_teacher_forcing_equals_step_by_step_decoding():
    model = _tiny_model()
    rng = np.random.default_rng(5)
    _, x = _random_sequence(rng, t=7, k=2, batch=(3,))
    rows = x.float()
    rows[1, 3, 0] = EOS
    code = model.code(torch.randn(3, 3), torch.tensor([0, 5, 61]))
    batched = model.command_distribution(rows, code).log_prob(rows)
    total, state = torch.zeros(3), None
    previous = torch.zeros(3, 1, ROW)
    alive = torch.ones(3, dtype=torch.bool)
    for t in range(7):
        step, state = model.decode(model.inputs(previous), code, state)
        total += torch.where(alive, step.log_prob(rows[:, t : t + 1]), torch.zeros(3))
        alive = alive & (rows[:, t, 0] != EOS)
        previous = rows[:, t : t + 1]
    torch.testing.assert_close(batched, total, rtol=1e-5, atol=1e-4)


def test_the_command_decoder_does_not_shape_z_and_waits_for_the_vae():
    model = _tiny_model()
    z = torch.randn(2, 3, requires_grad=True)
    y = torch.tensor([1, 2])
    x = torch.cat([torch.zeros(2, 4096), torch.zeros(2, 7 * ROW)], -1)
    image, commands = model.likelihood(z, y).terms(x)
    (grad,) = torch.autograd.grad(commands.sum(), z, allow_unused=True)
    assert grad is None or (grad == 0).all()  # the paper's stop-gradient
    assert torch.autograd.grad(image.sum(), z)[0].abs().sum() > 0
    model.vae_first = 0.5
    model.set_progress(10, 100)
    assert not model.likelihood(z, y).terms(x)[1].requires_grad
    model.set_progress(50, 100)
    assert model.likelihood(z, y).terms(x)[1].requires_grad


def test_train_then_sample_reconstruct_and_interpolate(fonts, tmp_path, capsys, one_thread):
    run = tmp_path / "run"
    args = ["--model", "svg-vae", "--data", f"svg:{fonts}", "--steps", "3", "--batch-size", "8"]
    small = ["--latent-dim", "2", "--dec-hidden", "8", "--mixtures", "2", "--hidden", "8", "--no-progress"]
    assert main(["train", *args, *small, "--out", str(run)]) == 0
    assert (run / "figures" / "style.png").is_file()
    assert main(["sample", str(run), "--style-from", f"{fonts / 'test0.ttf'}:A"]) == 0
    out = capsys.readouterr()
    assert "commands per glyph: decoded" in out.err
    sheet, folder = out.out.split("written: ")[1].strip().split(", ")[1:]
    svgs = sorted(Path(folder).glob("*.svg"))
    assert len(svgs) == 63 and Path(sheet) in svgs  # a file per glyph and the sheet
    tree = ET.parse(Path(folder) / "10_A.svg")
    (path,) = [e for e in tree.iter() if e.tag.endswith("path")]
    assert path.get("fill-rule") == "evenodd"
    parse_svg_path(path.get("d"))
    assert main(["reconstruct", str(run), "-n", "3"]) == 0
    assert main(["interpolate", str(run), "--pair", "0", "0", "--steps", "2"]) == 0
    assert main(["sample", str(run), "-n", "1"]) == 0
    assert main(["sample", str(run), "--style-from", str(tmp_path / "missing.ttf")]) == 2
    assert "missing.ttf: no such font file" in capsys.readouterr().err
    assert main(["style", str(run)]) == 2  # --font is not an argparse requirement: the run is checked first
    assert "pvae style: error: --font FILE is required" in capsys.readouterr().err


def test_ignore_z_makes_the_command_decoder_read_the_class_alone():
    model = _tiny_model(ignore_z=True)
    rows = torch.zeros(2, 7, ROW)
    rows[:, :3, 0] = torch.tensor([MOVE, LINE, CURVE], dtype=torch.float32)
    rows[:, :3, 5:] = 1.0
    y = torch.tensor([3, 3])
    first = model.command_distribution(rows, model.code(torch.randn(2, 3), y)).log_prob(rows)
    second = model.command_distribution(rows, model.code(torch.randn(2, 3), y)).log_prob(rows)
    torch.testing.assert_close(first, second)
    other = model.command_distribution(rows, model.code(torch.randn(2, 3), torch.tensor([4, 4]))).log_prob(rows)
    assert not torch.allclose(first, other)


def test_the_table_script_runs_at_tiny_sizes(fonts, tmp_path):
    script = Path(__file__).resolve().parent.parent / "scripts" / "svg_vae_table.py"
    args = ["--data", f"svg:{fonts}", "--steps", "2", "--particles", "2", "--out", str(tmp_path / "table")]
    result = subprocess.run([sys.executable, str(script), *args], capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr
    table = (tmp_path / "table" / "table.md").read_text()
    assert "| svg-vae |" in table and "| decoder-only floor (--ignore-z) |" in table


def test_glyphs_are_read_once_then_from_a_cache_that_is_rebuilt_when_damaged(tmp_path, monkeypatch):
    fonts = write_test_fonts(tmp_path / "fonts", count=3)
    monkeypatch.setenv("PVAE_CACHE", str(tmp_path / "cache"))
    first = load_svg(fonts, 50)
    (cache,) = (tmp_path / "cache").glob("svg-*.npz")

    def refuse(*args):
        raise AssertionError("read the fonts again")

    monkeypatch.setattr("pvae.kinds.svg.data.read_font", refuse)
    again = load_svg(fonts, 50)
    torch.testing.assert_close(again.split("train").images, first.split("train").images)
    cache.write_bytes(b"damaged")
    monkeypatch.undo()
    monkeypatch.setenv("PVAE_CACHE", str(tmp_path / "cache"))
    rebuilt = load_svg(fonts, 50)
    torch.testing.assert_close(rebuilt.split("test").images, first.split("test").images)
