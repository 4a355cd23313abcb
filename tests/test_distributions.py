"""Custom distributions against numpy and against torch's own."""

from __future__ import annotations

import numpy as np
import pyro.distributions as dist
import pytest
import torch

from pvae.distributions import BernoulliImage, ReparamNormal, StandardNormal
from pvae.objectives import detach_parameters


def test_bernoulli_image_log_prob_matches_numpy_and_torch():
    torch.manual_seed(0)
    logits = torch.randn(3, 4, 7, dtype=torch.float64) * 4
    x = torch.bernoulli(torch.full((4, 7), 0.4, dtype=torch.float64))  # broadcasts over the leading 3
    d = BernoulliImage(logits)
    assert d.batch_shape == (3, 4) and d.event_shape == (7,)
    got = d.log_prob(x)
    p = 1 / (1 + np.exp(-logits.numpy()))
    expected = (x.numpy() * np.log(p) + (1 - x.numpy()) * np.log1p(-p)).sum(-1)
    np.testing.assert_allclose(got.numpy(), expected, rtol=1e-10)
    torch.testing.assert_close(got, dist.Bernoulli(logits=logits).to_event(1).log_prob(x))
    torch.testing.assert_close(d.entropy(), dist.Bernoulli(logits=logits).to_event(1).entropy())


def test_bernoulli_image_takes_integer_pixels_with_gradients():
    logits = torch.randn(2, 3, 5, requires_grad=True)
    x = torch.bernoulli(torch.full((3, 5), 0.5))
    got = BernoulliImage(logits).log_prob(x.to(torch.uint8))
    torch.testing.assert_close(got, dist.Bernoulli(logits=logits).to_event(1).log_prob(x))
    got.sum().backward()
    assert logits.grad is not None


def test_bernoulli_image_shapes_sampling_and_validation():
    logits = torch.randn(5, 10)
    d = BernoulliImage(logits)
    assert d.expand((2, 5)).batch_shape == (2, 5)
    assert d.sample((3,)).shape == (3, 5, 10)
    torch.testing.assert_close(d.mean, torch.sigmoid(logits))
    big = BernoulliImage(torch.full((20000, 3), 1.0)).sample()
    assert set(big.unique().tolist()) == {0.0, 1.0}
    assert big.mean().item() == pytest.approx(float(torch.sigmoid(torch.tensor(1.0))), abs=0.01)
    with pytest.raises(ValueError):
        BernoulliImage(logits, validate_args=True).log_prob(torch.full((5, 10), 0.5))


def _normal_log_density(v: np.ndarray, loc: np.ndarray, scale: np.ndarray) -> np.ndarray:
    return -0.5 * ((v - loc) / scale) ** 2 - np.log(scale) - 0.5 * np.log(2 * np.pi)


def test_reparam_normal_at_its_draw_matches_numpy_and_torchs_gradient():
    loc = torch.randn(4, 3, dtype=torch.float64, requires_grad=True)
    scale = (torch.rand(4, 3, dtype=torch.float64) + 0.2).requires_grad_()
    torch.manual_seed(1)
    q = ReparamNormal(loc, scale)
    z = q.rsample((5,))
    torch.manual_seed(1)
    reference = dist.Normal(loc, scale)
    z_reference = reference.rsample((5,))
    assert torch.equal(z, z_reference)  # the same draws as torch's Normal from the same seed
    got = q.log_prob(z)
    expected = _normal_log_density(z.detach().numpy(), loc.detach().numpy(), scale.detach().numpy())
    np.testing.assert_allclose(got.detach().numpy(), expected, rtol=1e-12)
    # d/dloc is 0 either way: through z and through loc in torch's formula, not at all here
    grads = torch.autograd.grad(got.sum(), (loc, scale), allow_unused=True, materialize_grads=True)
    expected_grads = torch.autograd.grad(reference.log_prob(z_reference).sum(), (loc, scale))
    for g, e in zip(grads, expected_grads):
        torch.testing.assert_close(g, e)
    assert torch.count_nonzero(grads[1]) > 0


def test_reparam_normal_elsewhere_is_torchs_normal():
    """A copy of the draw (DReG), another value, an expanded q and detached parameters (STL): the general formula."""
    loc = torch.randn(4, 3, dtype=torch.float64, requires_grad=True)
    scale = torch.rand(4, 3, dtype=torch.float64) + 0.2
    q = ReparamNormal(loc, scale)
    z = q.rsample()
    copy = z.detach().clone().requires_grad_()
    (gradient,) = torch.autograd.grad(q.log_prob(copy).sum(), copy)
    torch.testing.assert_close(gradient, -(copy - loc) / scale**2)  # a gradient through the value, as torch's
    other = torch.randn(2, 4, 3, dtype=torch.float64)
    torch.testing.assert_close(q.log_prob(other), dist.Normal(loc, scale).log_prob(other))
    expanded = q.expand((6, 4, 3))
    assert type(expanded) is ReparamNormal and expanded.batch_shape == (6, 4, 3)
    draw = expanded.rsample()
    expected = _normal_log_density(draw.detach().numpy(), loc.detach().numpy(), scale.numpy())
    np.testing.assert_allclose(expanded.log_prob(draw).detach().numpy(), expected, rtol=1e-12)
    frozen = detach_parameters(q.to_event(1))
    assert not frozen.base_dist.loc.requires_grad and frozen.base_dist._drawn is None


def test_reparam_normal_draws_changed_or_drawn_as_constants_take_the_general_formula():
    loc = torch.randn(4, 3, dtype=torch.float64, requires_grad=True)
    scale = torch.rand(4, 3, dtype=torch.float64) + 0.2
    q = ReparamNormal(loc, scale)
    z = q.rsample()
    with torch.no_grad():
        z.add_(1.0)  # changed in place after the draw
    torch.testing.assert_close(q.log_prob(z), dist.Normal(loc, scale).log_prob(z))
    with torch.no_grad():
        constant = q.rsample()
    (gradient,) = torch.autograd.grad(q.log_prob(constant).sum(), loc)
    torch.testing.assert_close(gradient, (constant - loc.detach()) / scale**2)  # d/dloc of torch's formula


def test_standard_normal_matches_numpy_torch_and_the_closed_form_kl():
    like = torch.zeros((), dtype=torch.float64)
    p = StandardNormal(torch.Size([4, 3]), like)
    assert p.batch_shape == (4, 3) and p.sample((2,)).shape == (2, 4, 3) and p.sample().dtype == torch.float64
    for shape in [(4, 3), (5, 4, 3), (3,)]:  # the last broadcasts up to the batch shape
        v = torch.randn(shape, dtype=torch.float64)
        got = p.log_prob(v)
        assert got.shape == torch.broadcast_shapes(shape, (4, 3))
        expected = -0.5 * v.numpy() ** 2 - 0.5 * np.log(2 * np.pi)
        np.testing.assert_allclose(got.numpy(), np.broadcast_to(expected, got.shape), rtol=1e-12)
        torch.testing.assert_close(got, dist.Normal(0.0, 1.0).log_prob(v).expand(got.shape))
    expanded = p.expand((2, 4, 3))
    assert type(expanded) is StandardNormal and expanded.batch_shape == (2, 4, 3)
    assert detach_parameters(p) is p
    loc, scale = torch.randn(4, 3, dtype=torch.float64), torch.rand(4, 3, dtype=torch.float64) + 0.2
    loc.requires_grad_(True)
    kl = torch.distributions.kl_divergence(ReparamNormal(loc, scale).to_event(1), p.to_event(1))
    expected = 0.5 * (scale.numpy() ** 2 + loc.detach().numpy() ** 2 - 1 - 2 * np.log(scale.numpy())).sum(-1)
    np.testing.assert_allclose(kl.detach().numpy(), expected, rtol=1e-12)
    (gradient,) = torch.autograd.grad(kl.sum(), loc)
    torch.testing.assert_close(gradient, loc.detach())  # d/dmu of (mu^2 + ...) / 2
    generic = torch.distributions.kl_divergence(dist.Normal(loc, scale), dist.Normal(0.0, 1.0).expand((4, 3)))
    torch.testing.assert_close(torch.distributions.kl_divergence(dist.Normal(loc, scale), p), generic)
    wide = StandardNormal(torch.Size([2, 4, 3]), like)  # a prior with more batch dims than q
    assert torch.distributions.kl_divergence(dist.Normal(loc, scale), wide).shape == (2, 4, 3)
