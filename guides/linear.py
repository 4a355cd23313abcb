"""A linear-Gaussian guide: q(z | x) = N(A x + c, S), with S diagonal or full and the same for
every x, which is the form of the exact posterior of probabilistic PCA (so with ``full`` this
guide can equal it).

Both covariances have KL(q || p) in closed form against a diagonal Normal prior (``diag``: torch's
Normal-Normal KL; ``full``: ``guides.heads.FullCovarianceNormal``'s registered KL), so
``analytic_kl`` holds for the class; ``factorised`` only for ``covariance="diag"``, which the
instance states (the class says False, what holds for every configuration)."""

from __future__ import annotations

import pyro.distributions as dist
import torch
from torch import nn
from torch.nn import functional as F

from guides.heads import FullCovarianceNormal
from pvae.contracts import LATENT_DIM, Guide, Option
from pvae.layers import MIN_SCALE

COVARIANCE = Option(
    "covariance",
    "diag",
    "linear guide: diagonal or full covariance",
    "networks",
    choices=("diag", "full"),
    scope="guide",
)


class LinearGuide(Guide):
    """q(z | x) = N(A x + c, L L^T), L diagonal (``covariance="diag"``) or lower triangular (``"full"``).

    :param data_dim: D.
    :param latent_dim: Z.
    :param covariance: ``"diag"`` or ``"full"``.
    """

    name = "linear"
    options = (LATENT_DIM, COVARIANCE)
    analytic_kl = True
    factorised = False  # True on instances with covariance="diag"
    traceable = True
    data_kinds = ("image",)

    def __init__(self, data_dim: int, latent_dim: int = 2, covariance: str = "diag") -> None:
        super().__init__()
        if covariance not in ("diag", "full"):
            raise ValueError(f"covariance must be 'diag' or 'full', not {covariance!r}")
        self.data_dim, self.latent_dim, self.covariance = data_dim, latent_dim, covariance
        self.factorised = covariance == "diag"
        self.loc = nn.Linear(data_dim, latent_dim)
        shape = (latent_dim,) if covariance == "diag" else (latent_dim, latent_dim)
        self.raw_scale = nn.Parameter(torch.zeros(shape))

    @property
    def scale_tril(self) -> torch.Tensor:
        """L ``(Z, Z)``: positive diagonal (softplus of the raw parameters), free lower triangle."""
        diag = F.softplus(self.raw_scale if self.covariance == "diag" else self.raw_scale.diagonal()) + MIN_SCALE
        if self.covariance == "diag":
            return torch.diag(diag)
        return self.raw_scale.tril(-1) + torch.diag(diag)

    def posterior(self, x: torch.Tensor, y: torch.Tensor | None = None) -> dist.Distribution:
        """q(z | x): batch ``(B,)``, event ``(Z,)``."""
        loc = self.loc(x.reshape(x.shape[0], -1))
        if self.covariance == "diag":
            scale = F.softplus(self.raw_scale) + MIN_SCALE
            return dist.Normal(loc, scale.expand_as(loc)).to_event(1)
        return FullCovarianceNormal(loc, scale_tril=self.scale_tril.expand(loc.shape[0], -1, -1))

    @torch.no_grad()
    def set_posterior(self, weight: torch.Tensor, bias: torch.Tensor, scale_tril: torch.Tensor) -> None:
        """Set A, c and L (full covariance only), e.g. to a pPCA model's exact posterior."""
        if self.covariance != "full":
            raise ValueError("set_posterior needs covariance='full'")
        self.loc.weight.copy_(weight)
        self.loc.bias.copy_(bias)
        diag = scale_tril.diagonal() - MIN_SCALE
        raw_diag = diag + torch.log(-torch.expm1(-diag))  # softplus^-1
        self.raw_scale.copy_(scale_tril.tril(-1) + torch.diag(raw_diag))
