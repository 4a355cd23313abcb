"""Likelihood-free variational inference (``lfvi``): its discriminator against a closed-form log
ratio of Gaussians, its gradients against the same terms written out by hand (the site's own draws,
and the hard rasteriser's straight through the soft renderer), plain Pyro SVI, and bad input."""

from __future__ import annotations

import math

import pyro
import pyro.distributions as dist
import pytest
import torch
from torch.nn.functional import softplus

from guides import DiagGuide
from models import GaussianVAE, StrokesRaster
from pvae.cli import main
from pvae.errors import UserError
from pvae.objectives import ALI, LFVI, make_objective
from pvae.raster import hard_render

DATA_SCALE, SLOPE, SPREAD = 1.2, -0.3, 0.8  # x ~ N(0, 1.2^2); q(z | x) = N(-0.3 x, 0.8^2)


def _model(x=None, y=None, batch_size=None):
    """z ~ N(0, 1), x | z ~ N(z, 1)."""
    n = x.shape[0] if x is not None else batch_size
    with pyro.plate("data", n):
        z = pyro.sample("z", dist.Normal(0.0, 1.0).expand([n, 1]).to_event(1))
        pyro.sample("x", dist.Normal(z, 1.0).to_event(1), obs=x)


def _guide(x, y=None):
    with pyro.plate("data", x.shape[0]):
        pyro.sample("z", dist.Normal(SLOPE * x, SPREAD).to_event(1))


def _log_ratio(x: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
    """r(x, z) = log p(z) p(x | z) - log p_data(x) q(z | x), each a Gaussian density."""
    normal = torch.distributions.Normal
    joint = normal(0.0, 1.0).log_prob(z) + normal(z, 1.0).log_prob(x)
    return (joint - normal(0.0, DATA_SCALE).log_prob(x) - normal(SLOPE * x, SPREAD).log_prob(z)).squeeze(-1)


def test_the_discriminator_learns_the_log_density_ratio_of_two_gaussian_joints(one_thread):
    """Trained by lfvi's own loss (only D's parameters step), D's logit is r(x, z) of the closed form."""
    torch.manual_seed(0)
    lfvi = LFVI(data_dim=1, latent_dim=1, disc_hidden=(64, 64))
    x = torch.randn(512, 1) * DATA_SCALE
    lfvi.differentiable_loss(_model, _guide, x)  # sizes D
    optimiser = torch.optim.Adam(lfvi.discriminator.parameters(), lr=3e-3)
    for _ in range(1500):
        loss = lfvi.differentiable_loss(_model, _guide, torch.randn(512, 1) * DATA_SCALE)
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
    with torch.no_grad():  # where both joints have mass: half data pairs, half generated pairs
        xq = torch.randn(2000, 1) * DATA_SCALE
        zq = SLOPE * xq + SPREAD * torch.randn(2000, 1)
        zp = torch.randn(2000, 1)
        xs, zs = torch.cat([xq, zp + torch.randn(2000, 1)]), torch.cat([zq, zp])
        estimate, exact = lfvi.discriminator(xs, zs), _log_ratio(xs, zs)
    error = (estimate - exact).abs()
    assert float(exact.std()) > 2  # a ratio far from constant (2.2 nats)
    assert float(error.median()) < 0.1 and float(error.mean()) < 0.2, (error.median(), error.mean())  # 0.06, 0.13
    assert float(torch.corrcoef(torch.stack([estimate, exact]))[0, 1]) > 0.99


def _players(model, guide, d) -> dict[str, list[torch.Tensor]]:
    return {"guide": list(guide.parameters()), "model": list(model.parameters()), "d": list(d.parameters())}


def _check(ours, players, fool, judge) -> None:
    expected = {
        "guide": torch.autograd.grad(fool, players["guide"], retain_graph=True, allow_unused=True),
        "model": torch.autograd.grad(fool, players["model"], retain_graph=True, allow_unused=True),
        "d": torch.autograd.grad(judge, players["d"]),
    }
    for player in players:
        for a, b in zip(ours[player], expected[player]):
            torch.testing.assert_close(a, torch.zeros_like(a) if b is None else b, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("name", ["ali", "lfvi"])
def test_each_player_gets_only_its_own_gradient(name):
    """From the same draws (z ~ q(z | x), z' ~ p(z), b ~ p(x | z')) with x' = b + p - sg(p):
    ali: the model and guide descend softplus(-D(x, z)) + softplus(D(x', z')), lfvi -D(x, z) + D(x', z'),
    with D fixed; D descends softplus(-D(sg x', z')) + softplus(D(x, sg z)) in both."""
    torch.manual_seed(0)
    model, guide = GaussianVAE(16, latent_dim=2, hidden=(8,)), DiagGuide(2, data_dim=16, hidden=[8])
    objective = make_objective(name, 1, data_dim=16, latent_dim=2, disc_hidden=[8, 8])
    d = objective.discriminator
    x = (torch.rand(5, 16) < 0.4).float()
    players = _players(model, guide, d)
    torch.manual_seed(1)
    loss = objective.differentiable_loss(model.model, guide.guide, x)
    ours = {k: torch.autograd.grad(loss, v, retain_graph=True, allow_unused=True) for k, v in players.items()}
    torch.manual_seed(1)  # the same draws, each with a particle dim of 1
    z = guide.posterior(x).rsample((1,))
    prior_z = model.prior(5).sample((1,))
    x = x.expand(1, -1, -1)
    likelihood = model.likelihood(prior_z)
    p = likelihood.mean
    fake = likelihood.sample() + p - p.detach()
    if name == "ali":
        fool = (softplus(-d(x, z)) + softplus(d(fake, prior_z))).sum()
    else:
        fool = (-d(x, z) + d(fake, prior_z)).sum()
    judge = (softplus(-d(fake.detach(), prior_z)) + softplus(d(x, z.detach()))).sum()
    ours = {k: [torch.zeros_like(p) if g is None else g for p, g in zip(players[k], v)] for k, v in ours.items()}
    _check(ours, players, fool, judge)


def _drawing() -> tuple[StrokesRaster, DiagGuide]:
    return StrokesRaster(64, latent_dim=3, hidden=(16,), segments=2), DiagGuide(3, data_dim=64, hidden=[16])


def test_the_hard_simulator_is_sampled_and_the_decoder_learns_through_the_soft_renderer():
    """x' is the hard render's draw b ~ Bernoulli(ink) in value, with the soft renderer's gradient."""
    torch.manual_seed(0)
    model, guide = _drawing()
    lfvi = LFVI(data_dim=64, latent_dim=3, disc_hidden=(8, 8), simulator="hard")
    d = lfvi.discriminator
    x = (torch.rand(4, 64) < 0.2).float()
    players = _players(model, guide, d)
    torch.manual_seed(1)
    loss = lfvi.differentiable_loss(model.model, guide.guide, x)
    ours = {k: torch.autograd.grad(loss, v, retain_graph=True, allow_unused=True) for k, v in players.items()}
    torch.manual_seed(1)
    z = guide.posterior(x).rsample((1,))
    prior_z = model.prior(4).sample((1,))
    x = x.expand(1, -1, -1)
    likelihood = model.likelihood(prior_z)
    likelihood.sample()  # the model's own draw at its site, which the hard simulator replaces
    p = likelihood.mean
    b = torch.bernoulli(torch.as_tensor(hard_render(model.strokes(prior_z), 8), dtype=p.dtype))
    fake = b + p - p.detach()
    torch.testing.assert_close(fake.detach(), b)  # binary in value (to rounding), as the data are
    fool = (-d(x, z) + d(fake, prior_z)).sum()
    judge = (softplus(-d(fake.detach(), prior_z)) + softplus(d(x, z.detach()))).sum()
    ours = {k: [torch.zeros_like(p) if g is None else g for p, g in zip(players[k], v)] for k, v in ours.items()}
    assert any(g.abs().sum() > 0 for g in ours["model"])  # the decoder does learn, through the soft renderer
    _check(ours, players, fool, judge)


@pytest.mark.parametrize("simulator", ["site", "hard"])
def test_plain_pyro_svi_trains_model_guide_and_discriminator(simulator):
    torch.manual_seed(0)
    pyro.clear_param_store()
    model, guide = _drawing()
    objective = make_objective("lfvi", 1, simulator=simulator)  # no sizes: D is sized from its first input
    svi = pyro.infer.SVI(model.model, guide.guide, pyro.optim.Adam({"lr": 1e-2}), loss=objective)
    x = (torch.rand(16, 64) < 0.2).float()
    losses = [svi.step(x)]
    before = {k: v.detach().clone() for k, v in pyro.get_param_store().items()}
    losses += [svi.step(x) for _ in range(2)]
    assert all(math.isfinite(v) for v in losses)
    store = pyro.get_param_store()
    for prefix in ("model$$$decoder", "guide$$$trunk", "lfvi_discriminator$$$"):
        names = [k for k in store.keys() if k.startswith(prefix)]
        assert names and all(not torch.equal(store[k], before[k]) for k in names), prefix


def test_the_hard_simulator_needs_a_model_that_draws():
    model, guide = GaussianVAE(16, latent_dim=2, hidden=(8,)), DiagGuide(2, data_dim=16, hidden=[8])
    with pytest.raises(UserError, match="--simulator hard needs a model that draws strokes") as error:
        LFVI(simulator="hard").differentiable_loss(model.model, guide.guide, torch.zeros(3, 16))
    assert "\n" not in str(error.value)
    with pytest.raises(ValueError, match="simulator must be one of site, hard"):
        LFVI(simulator="soft")
    with pytest.raises(ValueError, match="fake_pixels must be one of sample, mean"):
        ALI(fake_pixels="mode")


@pytest.mark.parametrize(
    "flags, message",
    [
        (["--objective", "lfvi", "--simulator", "hard"], "--simulator hard needs a model that draws strokes"),
        (["--objective", "lfvi", "--fake-pixels", "mean"], "--fake-pixels mean: --objective lfvi does not use it"),
        (["--objective", "ali", "--simulator", "hard"], "--simulator hard: --objective ali does not use it"),
        (["--objective", "lfvi", "--kl-weight", "0.5"], "--kl-weight 0.5: --objective lfvi (no KL term)"),
        (["--objective", "lfvi", "--disc-dropout", "1"], "--disc-dropout 1.0: must be in [0, 1)"),
    ],
)
def test_bad_combinations_are_one_line(flags, message, tmp_path, capsys):
    args = ["train", *flags, "--data", "digits:32", "--steps", "1", "--hidden", "8"]
    assert main([*args, "--out", str(tmp_path / "r"), "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1, err
