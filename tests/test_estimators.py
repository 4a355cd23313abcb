"""Gradient estimators (STL, DReG) on a linear-Gaussian model, where the gradient of the ELBO is
known in closed form and the IWAE gradient is the plain estimator's mean over very many draws.

Many independent draws come cheaply from one batch: the per-datapoint bounds are independent, so
a batch of R copies of the data gives, divided by R, the mean of R draws of the gradient; C such
batches give C independent means, whose spread is the standard error.
"""

from __future__ import annotations

import math

import numpy as np
import pyro
import pyro.distributions as dist
import pytest
import torch
from pyro import poutine

from guides import IAFGuide, LinearGuide, LowRankGuide, MLPGuide
from models.gaussian_vae import GaussianVAE
from models.linear_vae import LinearVAE
from pvae.objectives import ELBOSTL, IWAESTL, OBJECTIVES, IWAEDReG, KLControl, make_objective

D, Z = 4, 2


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(autouse=True)
def _no_validation():
    with pyro.validation_enabled(False):  # thousands of identical steps: checked once elsewhere
        yield


def _linear_model() -> tuple[LinearVAE, torch.Tensor]:
    torch.manual_seed(0)
    model = LinearVAE(D, Z)
    with torch.no_grad():
        model.weight.mul_(1.5)
        model.raw_variance.fill_(-1.0)  # noise variance ~0.31: a posterior far from the prior
    return model, 1.5 * torch.randn(2, D)


def _guide(kind: str) -> torch.nn.Module:
    torch.manual_seed(1)
    if kind == "iaf":
        guide = IAFGuide(Z, data_dim=D, hidden=[], flow_hidden=8)
    elif kind == "lowrank":
        guide = LowRankGuide(Z, data_dim=D, hidden=[], rank=1)
    else:
        guide = LinearGuide(D, Z, covariance=kind)
    with torch.no_grad():  # away from any optimum, so every gradient is far from zero
        for p in guide.parameters():
            p.add_(0.3 * torch.randn_like(p))
    return guide


def _chunk_means(objective, model, guide, x, copies: int, chunks: int) -> tuple[torch.Tensor, torch.Tensor]:
    """``chunks`` independent means of ``copies`` gradient draws each: model ``(C, P_m)``, guide ``(C, P_g)``."""
    model_params, guide_params = list(model.parameters()), list(guide.parameters())
    batch = x.repeat(copies, 1)
    out = []
    for _ in range(chunks):
        loss = objective.differentiable_loss(model.model, guide.guide, batch) / copies
        grads = torch.autograd.grad(loss, model_params + guide_params)
        out.append(torch.cat([g.reshape(-1) for g in grads]).double())
    out = torch.stack(out)
    split = sum(p.numel() for p in model_params)
    return out[:, :split], out[:, split:]


def _z_scores(a: torch.Tensor, b: torch.Tensor | None, exact: torch.Tensor | None = None) -> torch.Tensor:
    """|mean(a) - mean(b)| (or - exact) in standard errors, over elements whose draws vary."""
    se2 = a.var(0) / len(a)
    ref = exact
    if b is not None:
        se2, ref = se2 + b.var(0) / len(b), b.mean(0)
    keep = se2 > 0
    return ((a.mean(0) - ref)[keep] / se2[keep].sqrt()).abs()


def _closed_form_elbo(model: LinearVAE, guide: LinearGuide, x: torch.Tensor) -> torch.Tensor:
    """sum_b E_q[log p(x_b | z)] - KL(q(z | x_b) || N(0, I)) in closed form (differentiable)."""
    mu, tril = guide.loc(x), guide.scale_tril
    cov = tril @ tril.T
    W, b, s2 = model.weight, model.bias, model.variance
    residual = ((x - mu @ W.T - b) ** 2).sum(-1) + torch.trace(W @ cov @ W.T)
    recon = -0.5 * D * torch.log(2 * math.pi * s2) - residual / (2 * s2)
    kl = 0.5 * (torch.trace(cov) + (mu**2).sum(-1) - Z - torch.logdet(cov))
    return (recon - kl).sum()


def test_new_objectives_are_selectable_by_name():
    assert {"elbo-stl", "iwae-stl", "iwae-dreg"} <= set(OBJECTIVES)
    kinds = {"elbo-stl": ELBOSTL, "iwae-stl": IWAESTL, "iwae-dreg": IWAEDReG}
    for name, cls in kinds.items():
        assert OBJECTIVES[name] is cls and type(make_objective(name, 3)) is cls
        assert make_objective(name, 3).num_particles == 3
        assert type(make_objective(name, 3, kl=KLControl(0.5)).base) is cls


@pytest.mark.parametrize("guide_cls", [MLPGuide, LowRankGuide, IAFGuide])
def test_same_value_and_model_gradient_as_the_parent_bound(guide_cls):
    torch.manual_seed(0)
    model = GaussianVAE(data_dim=6, latent_dim=3, hidden=[5])
    guide = guide_cls(data_dim=6, latent_dim=3, hidden=[4])
    x = torch.bernoulli(torch.full((4, 6), 0.4))
    model_params = list(model.parameters())
    for parent, children in (("elbo", ["elbo-stl"]), ("iwae", ["iwae-stl", "iwae-dreg"])):
        results = {}
        for name in [parent, *children]:
            pyro.set_rng_seed(3)
            loss = make_objective(name, 5).differentiable_loss(model.model, guide.guide, x)
            results[name] = (loss.item(), torch.autograd.grad(loss, model_params))
        for name in children:
            assert results[name][0] == pytest.approx(results[parent][0], rel=1e-6)
            for a, b in zip(results[name][1], results[parent][1]):
                torch.testing.assert_close(a, b)
    # one particle: STL on the ELBO, on IWAE and DReG are one estimator
    grads = []
    for name in ("elbo-stl", "iwae-stl", "iwae-dreg"):
        pyro.set_rng_seed(4)
        loss = make_objective(name, 1).differentiable_loss(model.model, guide.guide, x)
        grads.append(torch.autograd.grad(loss, model_params + list(guide.parameters())))
    for other in grads[1:]:
        for a, b in zip(grads[0], other):
            torch.testing.assert_close(a, b)


@pytest.mark.parametrize("covariance", ["diag", "full"])
def test_elbo_stl_is_unbiased_for_the_closed_form_gradient(covariance):
    model, x = _linear_model()
    guide = _guide(covariance)
    params = list(model.parameters()) + list(guide.parameters())
    exact = torch.cat([g.reshape(-1) for g in torch.autograd.grad(-_closed_form_elbo(model, guide, x), params)])
    split = sum(p.numel() for p in model.parameters())
    for particles in (1, 3):
        model_draws, guide_draws = _chunk_means(make_objective("elbo-stl", particles), model, guide, x, 2000, 30)
        assert _z_scores(model_draws, None, exact[:split].double()).max() < 4.5
        assert _z_scores(guide_draws, None, exact[split:].double()).max() < 4.5


@pytest.mark.parametrize("kind, weight", [("diag", 1.0), ("full", 0.5), ("iaf", 1.0)])
def test_dreg_is_unbiased_and_iwae_stl_is_not(kind, weight):
    """DReG's mean gradient matches the plain IWAE estimator's (with a KL weight too, where DReG
    reweights by (1 - w) + w w~); IWAE-STL's does not (it is biased for K > 1)."""
    model, x = _linear_model()
    guide = _guide(kind)
    kl = None if weight == 1.0 else KLControl(weight=weight)
    copies = 4000
    iwae_model, iwae_guide = _chunk_means(make_objective("iwae", 5, kl=kl), model, guide, x, copies, 40)
    dreg_model, dreg_guide = _chunk_means(make_objective("iwae-dreg", 5, kl=kl), model, guide, x, copies, 20)
    assert _z_scores(dreg_guide, iwae_guide).max() < 4.5
    assert _z_scores(dreg_model, iwae_model).max() < 4.5
    _, stl_guide = _chunk_means(make_objective("iwae-stl", 5, kl=kl), model, guide, x, copies, 10)
    assert _z_scores(stl_guide, iwae_guide).max() > 10


@pytest.mark.parametrize("kind", ["diag", "full", "iaf"])
def test_dreg_has_a_lower_guide_variance_than_iwae(kind):
    model, x = _linear_model()
    guide = _guide(kind)
    variance = {}
    for name in ("iwae", "iwae-dreg"):
        _, draws = _chunk_means(make_objective(name, 20), model, guide, x, 200, 100)
        variance[name] = float(draws.var(0).sum())  # of one draw, / 200, summed over the guide's parameters
    assert variance["iwae-dreg"] < 0.8 * variance["iwae"]


def _draws(name: str, model, guide, x, n: int, particles: int = 5) -> torch.Tensor:
    """``n`` single gradient draws of the guide's parameters, ``(n, P_g)``."""
    return _chunk_means(make_objective(name, particles), model, guide, x, 1, n)[1]


def test_path_estimators_have_no_guide_variance_at_the_exact_posterior():
    model, x = _linear_model()
    guide = LinearGuide(D, Z, covariance="full")
    with torch.no_grad():
        W, b, s2 = model.weight, model.bias, model.variance
        m_inv = torch.linalg.inv(W.T @ W + s2 * torch.eye(Z))
        A = m_inv @ W.T
        guide.set_posterior(A, -A @ b, torch.linalg.cholesky(s2 * m_inv))
    torch.testing.assert_close(guide.posterior(x).loc, model.exact_posterior(x).loc, atol=1e-5, rtol=1e-5)
    plain = {name: _draws(name, model, guide, x, 30) for name in ("elbo", "iwae")}
    for name in ("elbo", "iwae"):
        assert plain[name].var(0).sum() > 1.0
    for name in ("elbo-stl", "iwae-stl", "iwae-dreg"):
        draws = _draws(name, model, guide, x, 30)
        assert draws.abs().max() < 1e-3, name  # zero but for float32 rounding: log w is constant in z
        assert draws.var(0).sum() < 1e-6 * plain["iwae"].var(0).sum()


def _hand_dreg(model: LinearVAE, guide: LinearGuide, x: torch.Tensor, z: torch.Tensor, weight: float):
    """DReG's gradients on the draws ``z`` ``(K, B, Z)``, written out for the linear-Gaussian pair
    with plain autograd: the model's as IWAE's (z held fixed), the guide's as the path derivative
    through z = mu(x) + L eps of log w with q's parameters detached, weighted by w~ ((1 - w) + w w~)
    (w~^2 at weight 1). log w = log p(x | z) + weight (log p(z) - log q(z | x))."""
    mu, tril = guide.loc(x), guide.scale_tril
    eps = torch.linalg.solve_triangular(tril.detach(), (z - mu.detach()).unsqueeze(-1), upper=False).squeeze(-1)

    def log_w(z: torch.Tensor) -> torch.Tensor:
        W, b, s2 = model.weight, model.bias, model.variance
        log_lik = -0.5 * D * torch.log(2 * math.pi * s2) - ((x - z @ W.T - b) ** 2).sum(-1) / (2 * s2)
        log_prior = -0.5 * (z**2).sum(-1) - 0.5 * Z * math.log(2 * math.pi)
        white = torch.linalg.solve_triangular(tril.detach(), (z - mu.detach()).unsqueeze(-1), upper=False)
        log_q = -0.5 * (white.squeeze(-1) ** 2).sum(-1) - tril.detach().diagonal().log().sum()
        log_q = log_q - 0.5 * Z * math.log(2 * math.pi)
        return log_lik + weight * (log_prior - log_q)  # (K, B)

    model_loss = -torch.logsumexp(log_w(z.detach()), 0).sum()
    model_grads = torch.autograd.grad(model_loss, list(model.parameters()))
    path = log_w(mu + eps @ tril.T)
    normalised = torch.softmax(path.detach(), 0)
    guide_loss = -(normalised * ((1 - weight) + weight * normalised) * path).sum()
    guide_grads = torch.autograd.grad(guide_loss, list(guide.parameters()))
    return model_grads, guide_grads


@pytest.mark.parametrize("covariance, weight", [("diag", 1.0), ("full", 0.5)])
def test_dreg_gradients_on_fixed_draws_match_the_hand_written_estimator(covariance, weight):
    model, x = _linear_model()
    guide = _guide(covariance)
    kl = None if weight == 1.0 else KLControl(weight=weight)
    K, model_params = 5, list(model.parameters())

    def grads(name: str):
        pyro.set_rng_seed(8)
        tracer = poutine.trace(guide.guide)  # to read the draws the objective made
        loss = make_objective(name, K, kl=kl).differentiable_loss(model.model, tracer, x)
        out = torch.autograd.grad(loss, model_params + list(guide.parameters()))
        return out[: len(model_params)], out[len(model_params) :], tracer.trace.nodes["z"]["value"].detach()

    model_grads, guide_grads, z = grads("iwae-dreg")
    assert z.shape == (K, x.shape[0], Z)
    hand_model, hand_guide = _hand_dreg(model, guide, x, z, weight)
    for a, b in zip(model_grads + guide_grads, hand_model + hand_guide):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5)
    # The draws are the same for IWAE-STL, whose guide gradient (weights w~) is another number.
    _, stl_guide, stl_z = grads("iwae-stl")
    torch.testing.assert_close(stl_z, z)
    assert max((a - b).abs().max() for a, b in zip(stl_guide, hand_guide)) > 1e-2


def test_dreg_leaves_the_kl_floor_penalty_its_own_gradient():
    model, x = _linear_model()
    guide = _guide("diag")
    params = list(model.parameters()) + list(guide.parameters())

    def grads(name, floor):
        pyro.set_rng_seed(6)
        objective = make_objective(name, 4, kl=KLControl(weight=1.0, floor=floor))
        return torch.autograd.grad(objective.differentiable_loss(model.model, guide.guide, x), params)

    # the penalty's gradient (same draws) is the same whichever estimator the bound uses
    for iwae_on, iwae_off, dreg_on, dreg_off in zip(
        grads("iwae", 50.0), grads("iwae", 0.0), grads("iwae-dreg", 50.0), grads("iwae-dreg", 0.0)
    ):
        torch.testing.assert_close(dreg_on - dreg_off, iwae_on - iwae_off)


def test_a_guide_that_cannot_be_detached_is_one_clear_error():
    model, x = _linear_model()

    def student_guide(x, y=None):
        loc = torch.zeros(x.shape[0], Z, requires_grad=True)
        with pyro.plate("data", x.shape[0]):
            pyro.sample("z", dist.StudentT(4.0, loc, torch.ones_like(loc)).to_event(1))

    with pytest.raises(NotImplementedError, match="elbo-stl: guide site 'z': cannot evaluate a StudentT"):
        make_objective("elbo-stl", 2).differentiable_loss(model.model, student_guide, x)


@pytest.mark.parametrize("name", ["elbo-stl", "iwae-stl", "iwae-dreg"])
def test_plain_pyro_svi_trains_with_each_estimator(name):
    torch.manual_seed(0)
    model = GaussianVAE(data_dim=6, latent_dim=3, hidden=[5])
    guide = IAFGuide(latent_dim=3, data_dim=6, hidden=[4], flows=1)
    x = torch.bernoulli(torch.rand(32, 6).pow(2))
    svi = pyro.infer.SVI(model.model, guide.guide, pyro.optim.Adam({"lr": 0.03}), loss=make_objective(name, 3))
    losses = [svi.step(x) for _ in range(80)]
    assert np.isfinite(losses).all() and np.mean(losses[-10:]) < np.mean(losses[:10])
