"""Heads: a context vector h ``(B, H)`` from an encoder trunk -> q(z | x), batch ``(B,)``, event ``(Z,)``.

- ``DiagonalHead``: N(mu, diag(sigma^2)), (mu, r) = W h + b, sigma = g(r) (Kingma & Welling 2014).
- ``LowRankHead``: N(mu, F F^T + diag(sigma^2)) with F ``(Z, rank)``.
- ``FullHead``: N(mu, L L^T), L lower triangular: diagonal g(r) > 0, strictly lower part free.
- ``IAFHead``: a diagonal Normal pushed through N IAF steps that read h (``guides.flows``).
- ``DeltaHead``: a point mass at mu = W h + b (a deterministic encoder).

g is softplus (default), exp, or exp(r / 2) (``"logvar"``: r is log sigma^2, sketch-rnn's
parameterisation), plus a floor of ``pvae.layers.MIN_SCALE``. The Gaussian heads' distributions
have KL(q || p) in closed form against a diagonal Normal prior (registered here for torch's
``kl_divergence``, so ``meanfield`` and the analytic KL of ``pvae.bounds`` work with them); the flow
has none.
"""

from __future__ import annotations

import pyro.distributions as dist
import torch
from torch import nn
from torch.distributions import Independent, Normal, register_kl
from torch.nn import functional as F

from guides.flows import MADE, FlowPosterior, IAFStep
from pvae.distributions import ReparamNormal
from pvae.layers import MIN_SCALE

SCALES = ("softplus", "exp", "logvar")


def positive(raw: torch.Tensor, scale: str) -> torch.Tensor:
    """g(raw) + MIN_SCALE, g = softplus, exp, or exp(raw / 2) (``"logvar"``: raw is log sigma^2)."""
    if scale == "softplus":
        return F.softplus(raw) + MIN_SCALE
    return torch.exp(raw / 2 if scale == "logvar" else raw) + MIN_SCALE


def _check_scale(scale: str) -> None:
    if scale not in SCALES:
        raise ValueError(f"scale must be one of {', '.join(map(repr, SCALES))}, not {scale!r}")


class FullCovarianceNormal(dist.MultivariateNormal):
    """``MultivariateNormal`` from a Cholesky factor; its own class only so that its closed-form
    KL against a diagonal Normal is registered without touching other MultivariateNormals."""


class LowRankNormal(dist.LowRankMultivariateNormal):
    """``LowRankMultivariateNormal`` with a closed-form KL against a diagonal Normal."""


class DiagonalHead(nn.Linear):
    """N(mu, diag(sigma^2)) from (mu, r) = W h + b: a ``Linear`` layer, so its parameters are
    ``weight`` and ``bias`` as in ``MLPGuide``'s ``head``."""

    def __init__(self, context_dim: int, latent_dim: int, scale: str = "softplus") -> None:
        _check_scale(scale)
        super().__init__(context_dim, 2 * latent_dim)
        self.latent_dim, self.scale = latent_dim, scale

    def forward(self, context: torch.Tensor) -> dist.Distribution:
        loc, raw = F.linear(context, self.weight, self.bias).chunk(2, dim=-1)
        return ReparamNormal(loc, positive(raw, self.scale)).to_event(1)


class DeltaHead(nn.Linear):
    """Delta(mu), mu = W h + b: every draw is mu, log q = 0 there (Pyro's ``Delta``)."""

    def __init__(self, context_dim: int, latent_dim: int) -> None:
        super().__init__(context_dim, latent_dim)
        self.latent_dim = latent_dim

    def forward(self, context: torch.Tensor) -> dist.Distribution:
        return dist.Delta(F.linear(context, self.weight, self.bias), event_dim=1)


class LowRankHead(nn.Linear):
    """N(mu, F F^T + diag(sigma^2)), with mu, F ``(Z, rank)`` and r (sigma = g(r)) linear in h."""

    def __init__(self, context_dim: int, latent_dim: int, scale: str = "softplus", rank: int = 2) -> None:
        _check_scale(scale)
        if rank < 1:
            raise ValueError(f"rank must be at least 1, not {rank}")
        super().__init__(context_dim, latent_dim * (rank + 2))
        self.latent_dim, self.scale, self.rank = latent_dim, scale, rank

    def forward(self, context: torch.Tensor) -> dist.Distribution:
        z, r = self.latent_dim, self.rank
        out = F.linear(context, self.weight, self.bias)
        loc, factor, raw = out[..., :z], out[..., z : z + z * r], out[..., z + z * r :]
        factor = factor.reshape(*factor.shape[:-1], z, r)
        return LowRankNormal(loc, factor, positive(raw, self.scale).pow(2))


class FullHead(nn.Linear):
    """N(mu, L L^T): mu, the diagonal r of L (diag L = g(r)) and the Z(Z-1)/2 entries below it,
    all linear in h."""

    def __init__(self, context_dim: int, latent_dim: int, scale: str = "softplus") -> None:
        _check_scale(scale)
        super().__init__(context_dim, 2 * latent_dim + latent_dim * (latent_dim - 1) // 2)
        self.latent_dim, self.scale = latent_dim, scale
        self.register_buffer("lower", torch.tril_indices(latent_dim, latent_dim, -1), persistent=False)

    def forward(self, context: torch.Tensor) -> dist.Distribution:
        z = self.latent_dim
        out = F.linear(context, self.weight, self.bias)
        loc, raw = out[..., :z], out[..., z : 2 * z]
        tril = out.new_zeros(*out.shape[:-1], z, z)
        tril[..., self.lower[0], self.lower[1]] = out[..., 2 * z :]
        tril = tril + torch.diag_embed(positive(raw, self.scale))
        return FullCovarianceNormal(loc, scale_tril=tril)


class IAFHead(nn.Module):
    """q(z | x) = IAF_N o ... o IAF_1 (N(mu, diag(sigma^2))), (mu, sigma) and every step reading h
    (Kingma et al. 2016); the order of z is reversed between steps.

    :param flows: N, the number of IAF steps.
    :param flow_hidden: hidden units of each step's MADE (default 2 Z, at least 16).
    """

    def __init__(
        self,
        context_dim: int,
        latent_dim: int,
        scale: str = "softplus",
        flows: int = 2,
        flow_hidden: int | None = None,
    ) -> None:
        super().__init__()
        if flows < 1:
            raise ValueError(f"flows must be at least 1, not {flows}")
        if flow_hidden is not None and flow_hidden < 1:
            raise ValueError(f"flow_hidden must be at least 1, not {flow_hidden}")
        self.latent_dim = latent_dim
        self.base = DiagonalHead(context_dim, latent_dim, scale)
        hidden = flow_hidden or max(2 * latent_dim, 16)
        self.flows = nn.ModuleList(MADE(latent_dim, context_dim, hidden, reverse=i % 2 == 1) for i in range(flows))

    def forward(self, context: torch.Tensor) -> dist.Distribution:
        return FlowPosterior(self.base(context), [IAFStep(made, context) for made in self.flows])


# Closed-form KL(q || p) of the full and low-rank Gaussians against p = Normal(m, s).to_event(1):
#     1/2 [ sum_i (Sigma_ii + (mu_i - m_i)^2) / s_i^2 - Z + 2 sum_i log s_i - log det Sigma ]


def _diagonal_normal(p) -> tuple[torch.Tensor, torch.Tensor]:
    if not (isinstance(p, Independent) and p.reinterpreted_batch_ndims == 1 and isinstance(p.base_dist, Normal)):
        raise NotImplementedError
    return p.base_dist.loc, p.base_dist.scale


def _kl_to_diagonal(loc, variance, log_det, p_loc, p_scale) -> torch.Tensor:
    terms = (variance + (loc - p_loc).pow(2)) / p_scale.pow(2) - 1 + 2 * torch.log(p_scale)
    return 0.5 * (terms.sum(-1) - log_det)


@register_kl(FullCovarianceNormal, Independent)
def _kl_full_diagonal(q: FullCovarianceNormal, p) -> torch.Tensor:
    p_loc, p_scale = _diagonal_normal(p)
    tril = q.scale_tril
    log_det = 2 * tril.diagonal(dim1=-2, dim2=-1).log().sum(-1)
    return _kl_to_diagonal(q.loc, tril.pow(2).sum(-1), log_det, p_loc, p_scale)


@register_kl(LowRankNormal, Independent)
def _kl_lowrank_diagonal(q: LowRankNormal, p) -> torch.Tensor:
    p_loc, p_scale = _diagonal_normal(p)
    factor, diag = q.cov_factor, q.cov_diag
    # log det(F F^T + D) = log det(I + F^T D^-1 F) + sum log D  (matrix determinant lemma)
    capacitance = torch.eye(factor.shape[-1], dtype=factor.dtype, device=factor.device) + factor.mT @ (
        factor / diag.unsqueeze(-1)
    )
    log_det = 2 * torch.linalg.cholesky(capacitance).diagonal(dim1=-2, dim2=-1).log().sum(-1) + diag.log().sum(-1)
    return _kl_to_diagonal(q.loc, factor.pow(2).sum(-1) + diag, log_det, p_loc, p_scale)
