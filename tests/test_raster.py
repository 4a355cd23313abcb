"""Renderers, the stroke-drawing model and its SVG output, each against an independent computation:
distances by dense sampling of the curve, covered areas by geometry, the soft renderer by its
formula evaluated pixel by pixel in numpy, SVG by parsing the file."""

from __future__ import annotations

import math
import xml.etree.ElementTree as ET

import numpy as np
import pytest
import torch

from pvae import render
from pvae.raster import (
    BEZIER_PIECES,
    NeuralRenderer,
    Strokes,
    hard_render,
    pixel_centres,
    random_strokes,
    soft_render,
    stroke_distance2,
)

SIZE = 28


def _curve(points: np.ndarray, samples: int = 20001) -> np.ndarray:
    """Dense points on a line (2 control points) or quadratic Bézier (3), ``(samples, 2)``."""
    t = np.linspace(0, 1, samples)[:, None]
    if len(points) == 2:
        return (1 - t) * points[0] + t * points[1]
    return (1 - t) ** 2 * points[0] + 2 * t * (1 - t) * points[1] + t**2 * points[2]


def _brute_distance(points: np.ndarray, pixels: np.ndarray) -> np.ndarray:
    curve = _curve(points)
    return np.array([np.sqrt(((curve - p) ** 2).sum(1)).min() for p in pixels])


LINES = [[[3.0, 4.0], [20.0, 9.5]], [[14.0, 2.0], [14.0, 25.0]], [[7.3, 7.3], [7.3, 7.3]], [[25.0, 1.0], [2.0, 26.0]]]
BEZIERS = [[[3.0, 20.0], [14.0, -4.0], [25.0, 20.0]], [[5.0, 5.0], [25.0, 5.0], [5.0, 25.0]]]


@pytest.mark.parametrize("points", LINES + BEZIERS)
def test_distance_to_each_stroke_matches_dense_sampling(points):
    points = np.array(points)
    pixels = pixel_centres(SIZE, torch.zeros((), dtype=torch.float64)).numpy()
    ours = stroke_distance2(Strokes(torch.tensor(points)[None], torch.ones(1), torch.ones(1)), torch.tensor(pixels))
    ours = np.sqrt(ours[0].numpy())
    brute = _brute_distance(points, pixels)
    # a line is exact; a Bézier in BEZIER_PIECES lines strays at most |P0 - 2 P1 + P2| / (4 L^2)
    stray = 0.0 if len(points) == 2 else np.linalg.norm(points[0] - 2 * points[1] + points[2]) / (4 * BEZIER_PIECES**2)
    assert np.abs(ours - brute).max() <= stray + 2e-3


@pytest.mark.parametrize("windowed", [True, False])
def test_soft_render_is_its_formula_pixel_by_pixel(windowed):
    points = np.array([LINES[0], LINES[1], LINES[2]])
    width, ink, sigma = np.array([1.0, 2.5, 3.0]), np.array([0.9, 0.5, 0.7]), 1.3
    strokes = Strokes(torch.tensor(points), torch.tensor(width), torch.tensor(ink))
    ours = soft_render(strokes, sigma, SIZE, windowed=windowed).numpy()
    pixels = pixel_centres(SIZE, torch.zeros((), dtype=torch.float64)).numpy()
    blank = np.ones(len(pixels))
    for n in range(3):  # ink_n = a_n exp(-relu(d_n - w_n / 2)^2 / sigma^2), soft OR
        d = _brute_distance(points[n], pixels)
        blank *= 1 - ink[n] * np.exp(-(np.maximum(d - width[n] / 2, 0) ** 2) / sigma**2)
    np.testing.assert_allclose(ours, 1 - blank, atol=2e-3)


def test_a_stroke_far_from_the_ink_is_pulled_towards_it_at_a_wide_sigma_only():
    target = torch.zeros(SIZE, SIZE, dtype=torch.float64)
    target[20:24, 20:24] = 1  # ink in one corner; the stroke more than 5 pixels away
    points = torch.tensor([[[11.0, 11.0], [16.0, 16.0]]], dtype=torch.float64, requires_grad=True)

    def gradient(sigma: float) -> torch.Tensor:
        p = 1e-3 + (1 - 2e-3) * soft_render(Strokes(points, torch.tensor([2.0]), torch.tensor([0.9])), sigma, SIZE)
        loss = -torch.distributions.Bernoulli(probs=p).log_prob(target.reshape(-1)).sum()
        (grad,) = torch.autograd.grad(loss, points)
        return grad

    wide, narrow = gradient(2.0), gradient(0.5)
    assert torch.isfinite(wide).all() and wide.abs().sum() > 1e-3
    # the pull of the ink: the derivative along a translation of the whole stroke towards it (which
    # leaves the stroke's own, unwanted ink unchanged away from the borders)
    towards = torch.tensor([1.0, 1.0], dtype=torch.float64)
    pull_wide, pull_narrow = wide[0].sum(0) @ towards, narrow[0].sum(0) @ towards
    assert pull_wide < -1e-3  # descent moves it towards the ink
    assert abs(pull_narrow) < 1e-5 * abs(pull_wide)  # at a narrow sigma the ink is out of reach


def test_hard_render_covers_the_geometry():
    line = Strokes(np.array([[[4.0, 14.0], [24.0, 14.0]]]), np.array([2.0]), np.array([1.0]))
    image = hard_render(line, SIZE).reshape(SIZE, SIZE)
    np.testing.assert_allclose(image[13:15, 5:23], 1)  # rows 13, 14 span y in [13, 15]
    assert image[12].max() == 0 and image[15].max() == 0
    offset = Strokes(np.array([[[4.0, 14.25], [24.0, 14.25]]]), np.array([1.0]), np.array([1.0]))
    image = hard_render(offset, SIZE).reshape(SIZE, SIZE)  # y in [13.75, 14.75]
    np.testing.assert_allclose(image[13, 6:22], 0.25)
    np.testing.assert_allclose(image[14, 6:22], 0.75)
    dot = Strokes(np.array([[[14.0, 14.0], [14.0, 14.0]]]), np.array([2.0]), np.array([1.0]))  # a disc of radius 1
    image = hard_render(dot, SIZE, supersample=32).reshape(SIZE, SIZE)
    np.testing.assert_allclose(image[13:15, 13:15], math.pi / 4, atol=0.01)
    assert image.sum() == pytest.approx(math.pi, abs=0.02)


def test_overlapping_inks_composite_as_svg_opacity():
    points = np.array([[[4.0, 14.0], [24.0, 14.0]], [[14.0, 4.0], [14.0, 24.0]]])
    cross = Strokes(points, np.full(2, 2.0), np.full(2, 0.5))
    image = hard_render(cross, SIZE).reshape(SIZE, SIZE)
    assert image[13, 13] == pytest.approx(0.75)  # 1 - (1 - 0.5)^2
    assert image[13, 6] == pytest.approx(0.5)


def test_bezier_hard_render_follows_the_curve():
    strokes = Strokes(np.array([BEZIERS[0]]), np.array([3.0]), np.array([1.0]))
    image = hard_render(strokes, SIZE)
    pixels = pixel_centres(SIZE, torch.zeros((), dtype=torch.float64)).numpy()
    d = _brute_distance(np.array(BEZIERS[0]), pixels)
    # a pixel's samples lie within 1/sqrt(2) of its centre; the drawn curve strays at most 48 / 1024
    reach = 0.5**0.5 + 48 / 1024
    assert (image[d < 1.5 - reach] == 1).all() and (d < 1.5 - reach).sum() > 20
    assert (image[d > 1.5 + reach] == 0).all()
    assert ((image > 0) & (image < 1)).sum() > 20  # anti-aliased edges


@pytest.mark.parametrize("primitive", ["line", "bezier"])
def test_neural_renderer_imitates_the_hard_one(primitive, one_thread):
    renderer = NeuralRenderer(primitive, SIZE, hidden=(128, 256))  # smaller and shorter than the model's
    bce = renderer.fit(steps=600, examples=4096, heldout=512, seed=1)
    assert bce < {"line": 0.08, "bezier": 0.13}[primitive]  # nats per pixel on held-out strokes
    s = random_strokes(512, primitive, SIZE, np.random.default_rng(1))  # other strokes than the held-out ones
    ink = hard_render(s, SIZE).mean()
    constant = -(ink * math.log(ink) + (1 - ink) * math.log(1 - ink))  # BCE of guessing the mean ink everywhere
    assert bce < 0.6 * constant
    assert not any(p.requires_grad for p in renderer.parameters())  # frozen
    strokes = Strokes(*(torch.as_tensor(v, dtype=torch.float32) for v in (s.points, s.width, s.ink)))
    assert renderer(strokes[:3]).shape == (3, SIZE * SIZE)


@pytest.mark.parametrize("primitive", ["line", "bezier"])
def test_svg_holds_exactly_the_strokes(primitive, tmp_path):
    rng = np.random.default_rng(3)
    strokes = random_strokes(5, primitive, SIZE, rng)
    strokes = Strokes(strokes.points[:, 0], strokes.width[:, 0], rng.uniform(0.2, 0.9, 5))  # one drawing of 5
    path = tmp_path / "drawing.svg"
    render.strokes_svg(strokes, SIZE, path)
    root = ET.parse(path).getroot()
    assert root.tag == "{http://www.w3.org/2000/svg}svg" and root.get("viewBox") == f"0 0 {SIZE} {SIZE}"
    paths = list(root.iter("{http://www.w3.org/2000/svg}path"))
    assert len(paths) == 5
    command = "L" if primitive == "line" else "Q"
    assert all(p.get("d").split()[0] == "M" and command in p.get("d").split() for p in paths)
    back = render.read_strokes_svg(path)
    np.testing.assert_allclose(back.points, strokes.points, atol=1e-3)
    np.testing.assert_allclose(back.width, strokes.width, atol=1e-3)
    np.testing.assert_allclose(back.ink, strokes.ink, atol=1e-4)
    np.testing.assert_allclose(hard_render(back, SIZE), hard_render(strokes, SIZE), atol=0.07)
