"""The linear VAE: probabilistic PCA (Tipping & Bishop 1999) written as a Pyro model.

    z ~ N(0, I_Z)  (``Model.prior``),    x | z ~ N(W z + b, s2 I_D)

Its marginal likelihood is exact, p(x) = N(x; b, C) with C = W W^T + s2 I_D, so every bound on
log p(x) can be checked against ``exact_log_prob`` (Plaut 2018: with a Gaussian guide, the
linear VAE's optimum is the pPCA maximum-likelihood solution).
"""

from __future__ import annotations

import math

import pyro.distributions as dist
import torch
from torch import nn
from torch.nn import functional as F

from pvae.contracts import LATENT_DIM, Model

MIN_VARIANCE = 1e-6


class LinearVAE(Model):
    """pPCA with learned W ``(D, Z)``, b ``(D,)`` and noise variance s2 (a scalar).

    :param data_dim: D.
    :param latent_dim: Z.
    """

    name = "linear"
    options = (LATENT_DIM,)
    data_kind = "image"  # a Gaussian likelihood (binary is False): grey or real-valued data as they are
    traceable = True

    def __init__(self, data_dim: int, latent_dim: int = 2) -> None:
        super().__init__()
        self.data_dim, self.latent_dim = data_dim, latent_dim
        self.weight = nn.Parameter(torch.randn(data_dim, latent_dim) / math.sqrt(latent_dim))
        self.bias = nn.Parameter(torch.zeros(data_dim))
        self.raw_variance = nn.Parameter(torch.zeros(()))  # s2 = softplus(raw) + MIN_VARIANCE

    @property
    def variance(self) -> torch.Tensor:
        """s2, the per-dimension noise variance."""
        return F.softplus(self.raw_variance) + MIN_VARIANCE

    def likelihood(self, z: torch.Tensor, y: torch.Tensor | None = None) -> dist.Distribution:
        """p(x | z) = N(W z + b, s2 I): batch ``z.shape[:-1]``, event ``(D,)``."""
        loc = z @ self.weight.T + self.bias
        return dist.Normal(loc, self.variance.sqrt().expand_as(loc)).to_event(1)

    @torch.no_grad()
    def init_output_bias(self, data_mean: torch.Tensor) -> None:
        """Start b at the data mean (the maximum-likelihood b of pPCA)."""
        self.bias.copy_(data_mean.reshape(-1))

    def marginal(self) -> dist.MultivariateNormal:
        """p(x) = N(b, W W^T + s2 I), through the Cholesky factor of the covariance."""
        cov = self.weight @ self.weight.T + self.variance * torch.eye(self.data_dim, dtype=self.weight.dtype)
        return dist.MultivariateNormal(self.bias, scale_tril=torch.linalg.cholesky(cov))

    def exact_log_prob(self, x: torch.Tensor) -> torch.Tensor:
        """log p(x) for each row of ``x`` ``(..., D)``: shape ``x.shape[:-1]``."""
        return self.marginal().log_prob(x)

    def exact_posterior(self, x: torch.Tensor) -> dist.MultivariateNormal:
        """p(z | x) = N(M^-1 W^T (x - b), s2 M^-1) with M = W^T W + s2 I: batch ``x.shape[:-1]``."""
        eye = torch.eye(self.latent_dim, dtype=self.weight.dtype)
        m = self.weight.T @ self.weight + self.variance * eye
        m_inv = torch.linalg.inv(m)
        loc = (x - self.bias) @ (m_inv @ self.weight.T).T
        return dist.MultivariateNormal(loc, scale_tril=torch.linalg.cholesky(self.variance * m_inv))
