"""An MLP encoder giving a diagonal Normal q(z | x) (Kingma & Welling 2014).

    h = trunk(x);  (mu, r) = head(h);  q(z | x) = N(mu, diag(sigma^2)),  sigma = g(r)

with g = softplus (default) or exp, the IWAE paper's choice.
"""

from __future__ import annotations

from collections.abc import Sequence

import pyro.distributions as dist
import torch
from torch import nn
from torch.nn import functional as F

from guides.trunks import MLPTrunk
from pvae.nn import Guide

MIN_SCALE = 1e-5  # floor of sigma, so log q stays finite


class MLPGuide(Guide):
    """Diagonal Normal q(z | x) from an MLP over the flattened datapoint.

    :param data_dim: D, the size of one flattened datapoint.
    :param latent_dim: Z.
    :param hidden: encoder hidden sizes, from x inwards.
    :param activation: hidden activation name (see ``pvae.nn.ACTIVATIONS``).
    :param scale: ``"softplus"`` or ``"exp"``: how the head's output becomes sigma.
    :param num_classes: C > 0 makes q(z | x, y) for class labels y: the MLP reads [x, onehot(y)].
    """

    def __init__(
        self,
        data_dim: int,
        latent_dim: int = 20,
        hidden: Sequence[int] = (400,),
        activation: str = "relu",
        scale: str = "softplus",
        num_classes: int = 0,
    ) -> None:
        super().__init__()
        if scale not in ("softplus", "exp"):
            raise ValueError(f"scale must be 'softplus' or 'exp', not {scale!r}")
        self.data_dim, self.latent_dim, self.scale, self.num_classes = data_dim, latent_dim, scale, num_classes
        self.trunk = MLPTrunk(data_dim, list(hidden), activation, num_classes)
        self.head = nn.Linear(self.trunk.out_dim, 2 * latent_dim)

    def posterior(self, x: torch.Tensor, y: torch.Tensor | None = None) -> dist.Distribution:
        """q(z | x) (or q(z | x, y)): batch ``(B,)``, event ``(Z,)``."""
        loc, raw = self.head(self.trunk(x, y)).chunk(2, dim=-1)
        sigma = F.softplus(raw) if self.scale == "softplus" else torch.exp(raw)
        return dist.Normal(loc, sigma + MIN_SCALE).to_event(1)
