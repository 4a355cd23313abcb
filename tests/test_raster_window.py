"""The windowed soft renderer (each stroke computed only near itself) against the dense one (every
stroke at every pixel), in values and gradients: within ``INK_BOUND`` in float64, on random lines and
Béziers at several sigmas and widths, with strokes along the borders, across the whole canvas, dots and
strokes partly off the canvas; in float32, no further from the float64 render than the dense one."""

from __future__ import annotations

import math

import pytest
import torch

from models.strokes_raster import StrokesRaster
from pvae.raster import BEZIER_PIECES, INK_BOUND, Strokes, _WindowTerms, soft_render, window_k

SIGMAS = [0.3, 0.5, 1.0, 2.0]


def _strokes(primitive: str, batch: int, n: int, size: int, seed: int, dtype=torch.float64) -> Strokes:
    """Random strokes, control points over the canvas and 2 pixels beyond, widths over [0.5, 4] (the
    model's range) and inks over (0, 0.999); in every drawing stroke 0 runs corner to corner, stroke 1
    along the left border, stroke 2 is a dot (its end at its start) and stroke 3 hugs the bottom right."""
    g = torch.Generator().manual_seed(seed)
    points = torch.rand(batch, n, 2 if primitive == "line" else 3, 2, generator=g, dtype=dtype) * (size + 4) - 2
    points[:, 0, 0], points[:, 0, -1] = torch.tensor([0.2, 0.3]), torch.tensor([size - 0.1, size - 0.4])
    points[:, 1, :, 0] = 0.3
    points[:, 2, -1] = points[:, 2, 0]
    points[:, 3] = size - 0.5 * torch.rand(points.shape[-2:], generator=g, dtype=dtype)
    width = 0.5 + 3.5 * torch.rand(batch, n, generator=g, dtype=dtype)
    return Strokes(points, width, 0.999 * torch.rand(batch, n, generator=g, dtype=dtype))


def _render(strokes: Strokes, sigma: float, size: int, windowed: bool, weights: torch.Tensor):
    """The image and the gradients of sum(weights x image) for points, width, ink and sigma."""
    leaves = [v.detach().clone().requires_grad_() for v in (strokes.points, strokes.width, strokes.ink)]
    sigma = torch.tensor(sigma, dtype=strokes.points.dtype, requires_grad=True)
    image = soft_render(Strokes(*leaves), sigma, size, windowed=windowed)
    (image * weights).sum().backward()
    return image.detach(), [v.grad for v in (*leaves, sigma)]


def test_k_keeps_the_dropped_ink_of_n_strokes_below_the_bound():
    for n in (1, 8, 16, 64):
        delta = math.exp(-(window_k(n) ** 2))  # the most ink of one stroke beyond w/2 + k sigma
        assert n * delta / (1 - delta) == pytest.approx(INK_BOUND, rel=1e-6)
    assert window_k(16) == pytest.approx(4.07, abs=0.01) and window_k(8) == pytest.approx(3.99, abs=0.01)
    # the renderer's own ink just beyond the window, for a dot of full ink
    sigma, width, k = 0.7, 2.0, window_k(1)
    dot = Strokes(torch.tensor([[[0.0, 0.5], [0.0, 0.5]]], dtype=torch.float64), torch.tensor([width]), torch.ones(1))
    ink = soft_render(dot, sigma, 28, windowed=False).reshape(28, 28)[0]  # row 0: distance j + 1/2 from the dot
    beyond = torch.arange(28) + 0.5 > width / 2 + k * sigma
    assert ink[beyond].max() < math.exp(-(k**2)) and ink[~beyond].min() > 0.5 * math.exp(-(k**2))


@pytest.mark.parametrize("size", [28, 30])
@pytest.mark.parametrize("sigma", SIGMAS)
@pytest.mark.parametrize("primitive", ["line", "bezier"])
def test_windowed_equals_dense_to_the_bound_in_values_and_gradients(primitive, sigma, size):
    strokes = _strokes(primitive, 4, 16, size, seed=int(10 * sigma) + size)
    weights = torch.rand(4, size * size, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    dense, dense_grads = _render(strokes, sigma, size, False, weights)
    windowed, windowed_grads = _render(strokes, sigma, size, True, weights)
    assert (windowed - dense).abs().max() <= INK_BOUND
    # the gradients differ by the dropped terms' derivatives (each below 2 k delta / sigma, see window_k)
    # and by the change of exp(log_blank) (at most INK_BOUND): here within INK_BOUND of the largest
    for name, w, d in zip(("points", "width", "ink", "sigma"), windowed_grads, dense_grads):
        assert (w - d).abs().max() <= INK_BOUND * d.abs().max(), name


@pytest.mark.parametrize("primitive", ["line", "bezier"])
def test_float32_windowed_is_no_further_from_the_exact_render_than_dense(primitive):
    strokes = _strokes(primitive, 4, 16, 28, seed=5, dtype=torch.float32)
    # Béziers that fold back over themselves (the dot, the one on the border) have tied pieces, whose
    # gradients float32 rounding picks between: leave them to the float64 test
    strokes.points[:, 1:3] += torch.tensor([[3.0, 0.0], [0.0, 0.0], [-2.0, 4.0]][: strokes.points.shape[-2]])
    weights = torch.rand(4, 784, generator=torch.Generator().manual_seed(2))
    exact_strokes = Strokes(*(v.double() for v in vars(strokes).values()))
    for sigma in (0.5, 2.0):
        exact, exact_grads = _render(exact_strokes, sigma, 28, False, weights.double())
        dense, dense_grads = _render(strokes, sigma, 28, False, weights)
        windowed, windowed_grads = _render(strokes, sigma, 28, True, weights)
        assert (windowed.double() - exact).abs().max() <= 2 * (dense.double() - exact).abs().max() + INK_BOUND
        for w, d, e in zip(windowed_grads, dense_grads, exact_grads):
            assert (w.double() - e).abs().max() <= 2 * (d.double() - e).abs().max() + 1e-5 * e.abs().max()


@pytest.mark.parametrize("primitive", ["line", "bezier"])
def test_windowed_shapes_and_corner_cases(primitive):
    strokes = _strokes(primitive, 6, 4, 28, seed=3)
    image = soft_render(strokes, 1.0, 28)
    torch.testing.assert_close(image, soft_render(strokes, 1.0, 28, windowed=False), rtol=0, atol=INK_BOUND)
    lead = Strokes(*(v.reshape(2, 3, *v.shape[1:]) for v in vars(strokes).values()))  # two leading dims
    torch.testing.assert_close(soft_render(lead, 1.0, 28), image.reshape(2, 3, 784), rtol=0, atol=0)
    torch.testing.assert_close(soft_render(strokes[0], 1.0, 28), image[0], rtol=0, atol=0)  # none
    one = strokes[:, :1]  # N = 1
    torch.testing.assert_close(
        soft_render(one, 1.0, 28), soft_render(one, 1.0, 28, windowed=False), rtol=0, atol=INK_BOUND
    )
    # strokes far off the canvas: nothing to draw, no pair, zero ink and gradient
    away = Strokes((strokes.points + 100).requires_grad_(), strokes.width, strokes.ink)
    image = soft_render(away, 0.5, 28)
    assert image.abs().max() == 0
    image.sum().backward()
    assert away.points.grad.abs().max() == 0
    # a wide sigma: every stroke near every tile
    torch.testing.assert_close(
        soft_render(strokes, 6.0, 28), soft_render(strokes, 6.0, 28, windowed=False), rtol=0, atol=INK_BOUND
    )


@pytest.mark.parametrize("pieces", [1, BEZIER_PIECES])
def test_window_terms_backward_is_the_derivative_of_its_forward(pieces):
    """``_WindowTerms``'s written-out backward against finite differences, for a line (L = 1) and a
    Bézier's pieces with a given nearest piece per pixel, sigma included."""
    g = torch.Generator().manual_seed(4)
    m, q = 5, 16
    start = (torch.rand(2, pieces, m, generator=g, dtype=torch.float64) * 8 - 4).requires_grad_()
    ab = (torch.rand(2, pieces, m, generator=g, dtype=torch.float64) * 6 - 3).requires_grad_()
    width = (0.5 + 3 * torch.rand(1, m, generator=g, dtype=torch.float64)).requires_grad_()
    ink = (0.9 * torch.rand(1, m, generator=g, dtype=torch.float64)).requires_grad_()
    offsets = torch.stack(torch.meshgrid(torch.arange(4.0), torch.arange(4.0), indexing="xy"), -1).reshape(q, 2) + 0.5
    sigma = torch.tensor(1.3, dtype=torch.float64, requires_grad=True)
    nearest = None if pieces == 1 else torch.randint(pieces, (q, m), generator=g)
    terms = lambda *v: _WindowTerms.apply(*v[:4], offsets.double(), v[4], nearest)  # noqa: E731
    assert torch.autograd.gradcheck(terms, (start, ab, width, ink, sigma))


def test_the_model_draws_windowed_and_dense_on_request():
    torch.manual_seed(0)
    model = StrokesRaster(784, latent_dim=4, hidden=(16,), segments=6, primitive="bezier").double()
    model.sigma.fill_(0.7)
    z, x = torch.randn(8, 4, dtype=torch.float64), (torch.rand(8, 784) > 0.8).double()
    grads = {}
    for windowed in (True, False):
        model.windowed = windowed
        model.zero_grad()
        model.log_likelihood(x, z).sum().backward()
        grads[windowed] = [p.grad.clone() for p in model.parameters()]
    assert StrokesRaster.windowed  # the default
    for w, d in zip(grads[True], grads[False]):
        assert (w - d).abs().max() <= 1e-6 * d.abs().max()
