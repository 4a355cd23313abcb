"""The Fornax ring, the toy of tutorials 1 and 2: a generator whose log p(x) is known by
numerical integration, so every estimator of it can be scored against the truth.

    z ~ N(0, I_2),    x | z ~ N(alpha z + z / |z|, sigma^2 I_2)

The points lie near a ring of radius 1 + alpha |z| ~ 1 + 1.25 alpha; sigma is small, so p(x | z)
is sharp and most prior draws of z explain a given x badly: the reason naive Monte Carlo fails.
"""

from __future__ import annotations

import math
import os
from pathlib import Path

import pyro.distributions as dist
import torch
from torch import nn

from pvae.contracts import Model

QUICK = os.environ.get("PVAE_TUTORIAL_QUICK") == "1"  # tiny sizes, seconds: what the tests run
OUT = Path(os.environ.get("PVAE_TUTORIAL_OUT", "tutorial_figures"))  # where each script writes its figures
ALPHA, SIGMA = 0.5, 0.1


class Ring(Model):
    """The ring generator: ``alpha`` (a scalar, learnt unless ``learn_alpha`` is False) and a fixed
    noise ``sigma``."""

    latent_dim = 2

    def __init__(self, alpha: float = ALPHA, sigma: float = SIGMA, learn_alpha: bool = True) -> None:
        super().__init__()
        value = torch.tensor(float(alpha))
        if learn_alpha:
            self.alpha = nn.Parameter(value)
        else:
            self.register_buffer("alpha", value)
        self.sigma = sigma

    def likelihood(self, z: torch.Tensor, y: torch.Tensor | None = None) -> dist.Distribution:
        """p(x | z): batch ``z.shape[:-1]``, event ``(2,)``."""
        loc = self.alpha * z + z / z.norm(dim=-1, keepdim=True).clamp_min(1e-12)
        return dist.Normal(loc, torch.full_like(loc, self.sigma)).to_event(1)

    @torch.no_grad()
    def sample_data(self, n: int, seed: int) -> torch.Tensor:
        """``n`` points ``(n, 2)`` drawn from the generator."""
        g = torch.Generator().manual_seed(seed)
        z = torch.randn(n, 2, generator=g)
        return self.likelihood(z).base_dist.loc + self.sigma * torch.randn(n, 2, generator=g)


@torch.no_grad()
def exact_log_prob(x: torch.Tensor, alpha: float = ALPHA, sigma: float = SIGMA, points: int = 1201) -> torch.Tensor:
    """log p(x) ``(N,)`` for points ``x`` ``(N, 2)``: the integral of N(z; 0, I) N(x; f(z), sigma^2 I)
    over z by the midpoint rule on a ``points`` x ``points`` grid over [-5, 5]^2 (float64)."""
    edge = 5.0
    h = 2 * edge / points
    axis = torch.linspace(-edge + h / 2, edge - h / 2, points, dtype=torch.float64)
    z = torch.stack(torch.meshgrid(axis, axis, indexing="ij"), -1).reshape(-1, 2)
    f = alpha * z + z / z.norm(dim=-1, keepdim=True)
    log_prior = -0.5 * (z**2).sum(-1) - math.log(2 * math.pi)
    out = []
    for xi in x.double():
        log_lik = -0.5 * ((xi - f) ** 2).sum(-1) / sigma**2 - math.log(2 * math.pi * sigma**2)
        out.append(torch.logsumexp(log_prior + log_lik, 0) + 2 * math.log(h))
    return torch.stack(out)
