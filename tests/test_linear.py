"""The linear VAE (pPCA): exact log p(x) against numpy, every bound against it, and training
against the closed-form maximum-likelihood solution of Tipping & Bishop."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from guides.linear import LinearGuide
from models.linear_vae import LinearVAE
from pvae.bounds import estimate_bounds
from pvae.objectives import make_objective
from pvae.svi import SVI, make_optimizer


@pytest.fixture
def ppca():
    torch.manual_seed(0)
    model = LinearVAE(data_dim=5, latent_dim=2)
    with torch.no_grad():
        model.weight.copy_(torch.randn(5, 2))
        model.bias.copy_(torch.randn(5))
        model.raw_variance.fill_(-1.0)
    x = model.marginal().sample((200,))
    return model, x


def test_exact_log_prob_matches_numpy(ppca):
    model, x = ppca
    W, b, s2 = (t.detach().double().numpy() for t in (model.weight, model.bias, model.variance))
    C = W @ W.T + s2 * np.eye(5)
    diff = x.double().numpy() - b
    _, logdet = np.linalg.slogdet(C)
    expected = -0.5 * (5 * np.log(2 * np.pi) + logdet + np.einsum("nd,nd->n", diff @ np.linalg.inv(C), diff))
    np.testing.assert_allclose(model.exact_log_prob(x).detach().numpy(), expected, rtol=1e-5)


def _mismatched_guide(model: LinearVAE) -> LinearGuide:
    """A diagonal guide near the exact posterior: the exact mean, a too-narrow diagonal."""
    guide = LinearGuide(5, 2, covariance="diag")
    post = model.exact_posterior(torch.zeros(1, 5))
    m_inv_wt = (post.loc - model.exact_posterior(torch.eye(5)).loc).T  # -(M^-1 W^T)
    with torch.no_grad():
        guide.loc.weight.copy_(-m_inv_wt)
        guide.loc.bias.copy_(post.loc[0])
        narrow = 0.5 * post.covariance_matrix[0].diagonal().sqrt()
        guide.raw_scale.copy_(torch.log(torch.expm1(narrow)))
    return guide


def test_bounds_sandwich_the_exact_log_likelihood(ppca):
    model, x = ppca
    guide = _mismatched_guide(model)
    exact = model.exact_log_prob(x).detach().double()
    bounds = estimate_bounds(model, guide, x, ks=(1, 5, 50, 500, 5000), batch_size=50, seed=1)
    elbo = bounds.values[1]
    assert bool((elbo <= exact + 1e-6).all())  # Jensen: E_q log w <= log E_q w, per datapoint

    # L_k grows with k, by more than 3 standard errors of the paired differences.
    for small, large in ((1, 5), (5, 50), (50, 500)):
        d = bounds.values[large] - bounds.values[small]
        assert d.mean() > 3 * d.std() / math.sqrt(len(d)), (small, large)
    gap = bounds.values[5000] - exact
    assert abs(float(gap.mean())) < 3 * float(gap.std()) / math.sqrt(len(gap)) + 1e-3
    assert bounds.mean(1) < bounds.mean(5000) <= float(exact.mean()) + 3 * bounds.stderr(5000)


def test_bound_with_the_exact_posterior_is_log_p_for_every_k(ppca):
    model, x = ppca
    guide = LinearGuide(5, 2, covariance="full")
    post = model.exact_posterior(torch.zeros(1, 5))
    a = (model.exact_posterior(torch.eye(5)).loc - post.loc).T  # M^-1 W^T
    guide.set_posterior(a.detach(), post.loc[0].detach(), post.scale_tril[0].detach())
    exact = model.exact_log_prob(x).detach().double()
    bounds = estimate_bounds(model, guide, x, ks=(1, 5, 50), batch_size=100, seed=2)
    for k in (1, 5, 50):
        torch.testing.assert_close(bounds.values[k], exact, rtol=0, atol=2e-4)


@pytest.mark.parametrize("covariance, objective", [("diag", "meanfield"), ("full", "elbo")])
def test_linear_vae_reaches_the_ppca_maximum_likelihood(covariance, objective):
    """Plaut (2018): the linear VAE with a Gaussian guide finds the pPCA MLE (Tipping & Bishop 1999)."""
    rng = np.random.default_rng(0)
    d, q, n = 8, 2, 1000
    w_true = rng.normal(size=(d, q)) * np.array([1.5, 0.8])
    data = rng.normal(size=(n, q)) @ w_true.T + rng.normal(size=d) + 0.5 * rng.normal(size=(n, d))
    x = torch.tensor(data, dtype=torch.float32)

    # Closed form: s2 = mean of the d - q smallest eigenvalues of the sample covariance,
    # W = U_q (L_q - s2 I)^(1/2), mu = sample mean.
    mu = data.mean(0)
    eigval, eigvec = np.linalg.eigh(np.cov(data.T, bias=True))
    eigval, eigvec = eigval[::-1], eigvec[:, ::-1]
    s2 = eigval[q:].mean()
    w_ml = eigvec[:, :q] * np.sqrt(eigval[:q] - s2)
    c = w_ml @ w_ml.T + s2 * np.eye(d)
    diff = data - mu
    _, logdet = np.linalg.slogdet(c)
    quad = np.einsum("nd,nd->n", diff @ np.linalg.inv(c), diff)
    best = float(np.mean(-0.5 * (d * np.log(2 * np.pi) + logdet + quad)))

    torch.manual_seed(0)
    model, guide = LinearVAE(d, q), LinearGuide(d, q, covariance=covariance)
    model.init_output_bias(x.mean(0))
    optimizer = make_optimizer([*model.parameters(), *guide.parameters()], lr=0.05)
    svi = SVI(model, guide, make_objective(objective, 1), optimizer)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, 1000, eta_min=1e-3)
    for _ in range(1000):
        svi.step(x)
        schedule.step()
    with torch.no_grad():
        achieved = float(model.exact_log_prob(x).mean())
    assert achieved == pytest.approx(best, rel=0.01)
    assert achieved <= best + 1e-4  # the MLE is the maximum
    assert float(model.variance.detach()) == pytest.approx(s2, rel=0.05)

    # Column space of the decoder vs the top principal subspace: largest principal angle.
    learned, _ = np.linalg.qr(model.weight.detach().double().numpy())
    cosines = np.linalg.svd(learned.T @ eigvec[:, :q], compute_uv=False)
    assert np.degrees(np.arccos(np.clip(cosines.min(), -1, 1))) < 10
