"""The bound estimator's numerics: ``BernoulliImage.log_prob`` by products of sigmoids (and in place,
``PixelDecoder.log_prob``), L_k whatever the chunk size, the guide's network once per batch, centred
low-precision products, and contract pairs scored without traces."""

from __future__ import annotations

import pyro
import pytest
import torch
from torch.nn import functional as F

from models.gaussian_vae import GaussianVAE
from pvae.bounds import estimate_bounds
from pvae.contracts import Guide
from pvae.distributions import BernoulliImage
from pvae.distributions.bernoulli import MAX_GROUP, binary_log_prob, group_size, log_sigmoid_sum_
from pvae.distributions.priors import standard_normal
from pvae.layers import MIN_LOW_PRECISION_FEATURES, Linear, PixelDecoder, particle_products


def _exact(logits: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """sum_d [x_d l_d - softplus(l_d)] = sum_d log sigmoid((2 x_d - 1) l_d) for binary x, in float64."""
    return F.logsigmoid((2 * x.double() - 1) * logits.double()).sum(-1)


def test_group_size_is_the_largest_divisor_up_to_max_group():
    assert group_size(784) == 112 and group_size(4096) == 64 and group_size(7) == 7
    assert group_size(127) == 1  # prime: one log per pixel, still exact
    assert all(group_size(d) <= MAX_GROUP and d % group_size(d) == 0 for d in range(1, 500))


@pytest.mark.parametrize("dtype, rtol", [(torch.float64, 1e-12), (torch.float32, 1e-6)])
@pytest.mark.parametrize("pixels", [784, 127, 6])
@pytest.mark.parametrize("scale", [3.0, 40.0])
def test_binary_log_prob_matches_the_softplus_formula(dtype, rtol, pixels, scale):
    """Every group, underflowed or not (scale 40 underflows many in float32), to float rounding."""
    torch.manual_seed(0)
    logits = (torch.randn(5, 8, pixels, dtype=torch.float64) * scale - 2).to(dtype)
    x = torch.bernoulli(torch.full((8, pixels), 0.3, dtype=dtype))  # broadcasts over the leading 5
    got = binary_log_prob(logits, x)
    assert got.shape == (5, 8) and got.dtype == dtype
    expected = _exact(logits, x)
    torch.testing.assert_close(got.double(), expected, rtol=rtol, atol=rtol * expected.abs().max().item())


def test_binary_log_prob_underflow_infinities_and_broadcasting():
    x = torch.tensor([[1.0, 0.0, 1.0, 1.0], [0.0, 0.0, 1.0, 0.0]])
    logits = torch.tensor([-120.0, 3.0, -95.0, 0.5])  # the first image's pixels 0 and 2 underflow float32
    got = binary_log_prob(logits, x)  # x broadcasts logits
    torch.testing.assert_close(got.double(), _exact(logits.expand(2, 4), x))
    assert got[0].item() == pytest.approx(-120 - 3.048587 - 95 - 0.474077, abs=1e-4)  # log sigmoid(s l) each
    inf = float("inf")
    assert binary_log_prob(torch.tensor([-inf, 0.0, inf]), torch.tensor([0.0, 1.0, 1.0])).item() == pytest.approx(
        -0.693147, abs=1e-6
    )
    assert binary_log_prob(torch.tensor([-inf, 0.0]), torch.tensor([1.0, 1.0])).item() == -inf
    assert torch.isnan(binary_log_prob(torch.tensor([float("nan"), 0.0]), torch.tensor([1.0, 1.0])))


def test_binary_log_prob_gradient_matches_the_softplus_formula():
    torch.manual_seed(1)
    logits = (torch.randn(4, 3, 784, dtype=torch.float64) * 30).requires_grad_()
    x = torch.bernoulli(torch.full((3, 784), 0.2, dtype=torch.float64))
    (got,) = torch.autograd.grad(binary_log_prob(logits, x).sum(), logits)
    (expected,) = torch.autograd.grad(_exact(logits, x).sum(), logits)
    assert torch.isfinite(got).all()
    torch.testing.assert_close(got, expected)


def test_products_of_sigmoids_only_without_gradients(monkeypatch):
    """Evaluation takes ``binary_log_prob``; a training step, whose backward through the products
    would be slower, takes the two-pass formula: the same numbers."""
    from pvae.distributions import bernoulli

    calls = []
    monkeypatch.setattr(bernoulli, "binary_log_prob", lambda *a: calls.append(1) or binary_log_prob(*a))
    logits = torch.randn(2, 3, 784, requires_grad=True)
    x = torch.bernoulli(torch.full((3, 784), 0.3))
    with torch.no_grad():
        evaluated = BernoulliImage(logits).log_prob(x)
    assert calls == [1]
    trained = BernoulliImage(logits).log_prob(x)
    assert calls == [1] and trained.requires_grad
    torch.testing.assert_close(evaluated, trained.detach(), rtol=1e-6, atol=1e-4)


def test_grey_pixels_take_the_general_formula():
    torch.manual_seed(2)
    logits = torch.randn(3, 4, 10, dtype=torch.float64) * 3
    x = torch.rand(4, 10, dtype=torch.float64)
    expected = (x * logits - F.softplus(logits)).sum(-1)
    torch.testing.assert_close(BernoulliImage(logits, validate_args=False).log_prob(x), expected)


class _ExactGuide(Guide):
    """q(z | x) = N(0, I) = p(z): log w = log p(x | z), so L_k depends on the draws only through z."""

    data_kinds = ("image",)
    latent_dim = 3

    def posterior(self, x, y=None):
        return standard_normal(x.shape[0], self.latent_dim, x)


def test_bounds_do_not_depend_on_the_chunk_size():
    """L_k from chunks of 7 datapoint-particles and of 2^15: estimates of the same number, within Monte Carlo error."""
    torch.manual_seed(3)
    model = GaussianVAE(data_dim=6, latent_dim=3, hidden=[5]).eval()
    guide = _ExactGuide()
    x = torch.bernoulli(torch.full((4, 6), 0.4))
    small = estimate_bounds(model, guide, x, ks=(1, 2000), batch_size=2, points_per_chunk=7)
    large = estimate_bounds(model, guide, x, ks=(1, 2000), batch_size=2, points_per_chunk=2**15)
    torch.testing.assert_close(small.values[2000], large.values[2000], atol=0.02, rtol=0)
    torch.testing.assert_close(small.values[1], large.values[1], atol=0.3, rtol=0)


class _CountingGuide(_ExactGuide):
    calls = 0

    def posterior(self, x, y=None):
        self.calls += 1
        return super().posterior(x, y)


def test_the_guide_runs_once_per_batch_not_once_per_chunk():
    model = GaussianVAE(data_dim=6, latent_dim=3, hidden=[5]).eval()
    guide = _CountingGuide()
    estimate_bounds(model, guide, torch.ones(4, 6), ks=(1, 50), batch_size=2, points_per_chunk=7)  # 15 chunks a batch
    assert guide.calls == 2


class _TracedGuide(_ExactGuide):
    """Overrides ``guide`` (with the same program), so the bounds run it for every chunk."""

    def guide(self, x, y=None, batch_size=None):
        super().guide(x, y, batch_size)


def test_the_guide_once_per_batch_gives_the_same_bounds_as_once_per_chunk():
    torch.manual_seed(0)
    model = GaussianVAE(data_dim=6, latent_dim=3, hidden=[5]).eval()
    x = torch.bernoulli(torch.full((4, 6), 0.4))
    once = estimate_bounds(model, _ExactGuide(), x, ks=(1, 50), batch_size=2, points_per_chunk=7)
    every = estimate_bounds(model, _TracedGuide(), x, ks=(1, 50), batch_size=2, points_per_chunk=7)
    for k in (1, 50):
        assert torch.equal(once.values[k], every.values[k])


def _particles(k: int = 16, b: int = 4, features: int = 200, spread: float = 0.05) -> torch.Tensor:
    """(K, B, features): K particles close to each of B points, as draws from a narrow q(z | x) are."""
    return torch.randn(b, features) + spread * torch.randn(k, b, features)


def test_centred_bfloat16_products_are_close_to_float64_and_closer_than_plain_bfloat16():
    torch.manual_seed(0)
    layer = Linear(200, 300)
    x = _particles()
    exact = F.linear(x.double(), layer.weight.double(), layer.bias.double())
    with torch.no_grad(), particle_products(torch.bfloat16):
        centred = layer(x)
    plain = F.linear(x.bfloat16(), layer.weight.bfloat16(), layer.bias.bfloat16())
    centred_error = (centred.double() - exact).abs().max()
    plain_error = (plain.double() - exact).abs().max()
    float32_error = (F.linear(x, layer.weight, layer.bias).double() - exact).abs().max()
    assert centred.dtype == torch.float32 and centred.shape == (16, 4, 300)
    assert centred_error < plain_error / 10
    assert centred_error > 4 * float32_error  # the product did run in bfloat16


def test_particle_products_leave_other_inputs_alone():
    torch.manual_seed(0)
    wide, narrow = Linear(200, 30), Linear(MIN_LOW_PRECISION_FEATURES - 1, 30)
    x = _particles()
    with torch.no_grad():
        expected = wide(x)
        with particle_products(torch.bfloat16):
            assert torch.equal(wide(x[0]), F.linear(x[0], wide.weight, wide.bias))  # no particle dimension
            assert torch.equal(
                narrow(x[..., : narrow.in_features]), F.linear(x[..., : narrow.in_features], narrow.weight, narrow.bias)
            )
            assert not torch.equal(wide(x), expected)
            with particle_products(None):
                assert torch.equal(wide(x), expected)
            with particle_products(torch.float32):  # the input's own dtype: as usual
                assert torch.equal(wide(x), expected)
        assert torch.equal(wide(x), expected)  # the context is gone


def test_bfloat16_products_move_the_bounds_by_little():
    """L_k with the decoder's products in bfloat16 against float32, the same draws: within 0.01 nats."""
    torch.manual_seed(4)
    model = GaussianVAE(data_dim=100, latent_dim=3, hidden=[64]).eval()
    x = torch.bernoulli(torch.full((6, 100), 0.3))
    exact = estimate_bounds(model, _ExactGuide(), x, ks=(1, 500), batch_size=3)
    low = estimate_bounds(model, _ExactGuide(), x, ks=(1, 500), batch_size=3, matmul_dtype=torch.bfloat16)
    for k in (1, 500):
        difference = (low.values[k] - exact.values[k]).abs()
        assert 0 < difference.max() < 0.01, k


def test_log_sigmoid_sum_gives_every_row_its_factors_can():
    """Against float64 log sigmoid: exact where every factor is at least float32's tiny (underflowed
    groups included), -inf on the rows where one is not (a pixel below about -87 nats)."""
    torch.manual_seed(5)
    y = torch.randn(6, 9, 784) * 40 + 30  # many groups underflow; a few pixels are below -87
    expected = F.logsigmoid(y.double()).sum(-1)
    lost = (torch.sigmoid(y) < torch.finfo(torch.float32).tiny).any(-1)
    got = log_sigmoid_sum_(y.clone())
    assert 0 < lost.sum() < lost.numel()
    assert torch.equal(got == -float("inf"), lost)
    torch.testing.assert_close(got[~lost].double(), expected[~lost], rtol=1e-6, atol=0)


def _decoder(likelihood: str = "bernoulli", weight_scale: float = 1.0) -> PixelDecoder:
    """A float64 784-pixel decoder from a 3-dim code; ``weight_scale`` multiplies its last layer."""
    torch.manual_seed(6)
    decoder = PixelDecoder(3, 784, [200], "tanh", likelihood, obs_scale=0.5 if likelihood == "gaussian" else None)
    with torch.no_grad():
        decoder.net[-1].weight.mul_(weight_scale)
    return decoder.double()


@pytest.mark.parametrize(
    "dtype, weight_scale, rtol",
    [(torch.float64, 1.0, 1e-12), (torch.float32, 1.0, 1e-6), (torch.float32, 100.0, 1e-6)],  # 100: rows lost
)
def test_pixel_decoder_log_prob_is_its_distributions(dtype, weight_scale, rtol):
    decoder = _decoder(weight_scale=weight_scale).to(dtype)
    code = torch.randn(5, 4, 3, dtype=dtype)
    x = torch.bernoulli(torch.full((4, 784), 0.3, dtype=dtype))
    with torch.no_grad(), pyro.validation_enabled(False):  # as in the bounds: the in-place path
        logits = decoder.net(code)
        got = decoder.log_prob(code, x)
        if weight_scale > 1:  # some rows, not all, have a pixel below float32's tiny, scored again
            lost = (torch.sigmoid((2 * x - 1) * logits) < torch.finfo(dtype).tiny).any(-1)
            assert 0 < lost.sum() < lost.numel()
    assert got.shape == (5, 4)
    expected = _exact(logits, x)
    torch.testing.assert_close(got.double(), expected, rtol=rtol, atol=0)
    torch.testing.assert_close(decoder.log_prob(code, x).double(), expected, rtol=rtol, atol=0)  # with gradients


@pytest.mark.parametrize("pixels", [torch.uint8, torch.bool, torch.float64])
def test_pixels_of_another_dtype_are_scored_as_the_logits_dtype(pixels):
    """As ``binary_cross_entropy_with_logits`` takes its targets: uint8 pixels give s = -1, not 255."""
    decoder = _decoder(weight_scale=100.0).float()  # rows lost too
    code = torch.randn(5, 4, 3)
    x = torch.bernoulli(torch.full((4, 784), 0.3))
    with torch.no_grad(), pyro.validation_enabled(False):
        expected = _exact(decoder.net(code), x)
        for got in (decoder.log_prob(code, x.to(pixels)), binary_log_prob(decoder.net(code), x.to(pixels))):
            assert got.dtype == torch.float32
            torch.testing.assert_close(got.double(), expected, rtol=1e-6, atol=0)


def test_pixel_decoder_log_prob_of_grey_pixels_and_gaussian_pixels():
    code = torch.randn(5, 4, 3, dtype=torch.float64)
    grey = torch.rand(4, 784, dtype=torch.float64)
    for decoder, x in ((_decoder(), grey), (_decoder("gaussian"), grey)):
        with torch.no_grad(), pyro.validation_enabled(False):  # grey pixels are outside Bernoulli's support
            torch.testing.assert_close(decoder.log_prob(code, x), decoder(code).log_prob(x), rtol=0, atol=0)


def test_scaled_linear_is_the_product_with_the_scale():
    torch.manual_seed(7)
    layer = Linear(200, 300)
    x, scale = _particles(), torch.randn(4, 300)
    with torch.no_grad():
        torch.testing.assert_close(layer.scaled(x, scale), layer(x) * scale, rtol=1e-6, atol=1e-6)
        with particle_products(torch.bfloat16):
            exact = F.linear(x.double(), layer.weight.double(), layer.bias.double()) * scale.double()
            error = (layer.scaled(x, scale).double() - exact).abs().max()
            assert error <= 2 * ((layer(x) * scale).double() - exact).abs().max()  # as precise as forward


@pytest.mark.parametrize("guide_name", ["diag", "iaf"])
@pytest.mark.parametrize("matmul_dtype", [None, torch.bfloat16])
@pytest.mark.parametrize("weight_scale", [1.0, 400.0])  # 400: particles lost by the in-place scoring
def test_contract_pairs_give_the_numbers_of_the_traces(guide_name, matmul_dtype, weight_scale):
    """``log_weights`` evaluates a contract pair (here class-conditional) without Pyro's traces, and
    with ``Model.log_likelihood``: the traced IWAE's log w from the same seed, to the bit."""
    from guides import GUIDES
    from models.cvae import CVAE
    from pvae.bounds import log_weights
    from pvae.objectives import IWAE

    torch.manual_seed(8)
    model = CVAE(data_dim=784, latent_dim=4, hidden=[200, 200], num_classes=3).eval()
    guide = GUIDES[guide_name](latent_dim=4, data_dim=784, hidden=[32], num_classes=3).eval()
    with torch.no_grad():
        model.decoder.net[-1].weight.mul_(weight_scale)
    x, y = torch.bernoulli(torch.full((5, 784), 0.3)), torch.tensor([0, 2, 1, 1, 0])
    with torch.no_grad():
        logits = model.decoder.net(model._code(guide.posterior(x, y).sample((12,)), y))
        lost = (torch.sigmoid((2 * x - 1) * logits) < torch.finfo(torch.float32).tiny).any(-1)
    assert (lost.sum() == 0) if weight_scale == 1 else (0 < lost.sum() < lost.numel())
    torch.manual_seed(9)
    got = log_weights(model, guide, x, 12, 12, y, matmul_dtype)
    torch.manual_seed(9)
    with torch.no_grad(), pyro.validation_enabled(False), particle_products(matmul_dtype):
        expected, _ = IWAE(num_particles=12).log_weights(model.model, guide.guide, x, y)
    assert got.shape == (12, 5)
    assert torch.equal(got, expected.double())
