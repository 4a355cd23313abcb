"""The Gaussian VAE on images (Kingma & Welling 2014): a standard normal prior and an MLP decoder.

    z ~ N(0, I_Z)
    x | z ~ Bernoulli(logits = f(z))        (likelihood="bernoulli", binary pixels)
    x | z ~ N(f(z), diag(s^2))              (likelihood="gaussian", s learned per pixel or fixed)

Shapes: ``x`` is ``(B, D)`` with D the number of pixels; ``z`` is ``(..., B, Z)``, where any
leading dims (vectorised particles) broadcast through the decoder.
"""

from __future__ import annotations

from collections.abc import Sequence

import pyro.distributions as dist
import torch
from torch import nn
from torch.nn import functional as F

from pvae.distributions import BernoulliImage
from pvae.nn import Model, mlp

MIN_SCALE = 1e-2  # floor of a learned pixel std, so constant pixels cannot drive it to zero


class GaussianVAE(Model):
    """Standard normal prior, MLP decoder, Bernoulli or Gaussian pixel likelihood.

    :param data_dim: pixels per image, D.
    :param latent_dim: Z.
    :param hidden: decoder hidden sizes, from z outwards.
    :param activation: hidden activation name (see ``pvae.nn.ACTIVATIONS``).
    :param likelihood: ``"bernoulli"`` or ``"gaussian"``.
    :param obs_scale: Gaussian only: a fixed pixel std, or ``None`` to learn one per pixel.
    """

    def __init__(
        self,
        data_dim: int,
        latent_dim: int = 20,
        hidden: Sequence[int] = (400,),
        activation: str = "relu",
        likelihood: str = "bernoulli",
        obs_scale: float | None = None,
    ) -> None:
        super().__init__()
        if likelihood not in ("bernoulli", "gaussian"):
            raise ValueError(f"likelihood must be 'bernoulli' or 'gaussian', not {likelihood!r}")
        if obs_scale is not None and obs_scale <= 0:
            raise ValueError(f"obs_scale must be positive, not {obs_scale}")
        self.data_dim, self.latent_dim, self.likelihood_name = data_dim, latent_dim, likelihood
        self.decoder = mlp([latent_dim, *hidden, data_dim], activation)
        if likelihood == "gaussian" and obs_scale is None:
            self.raw_scale = nn.Parameter(torch.zeros(data_dim))
        else:
            self.raw_scale = None
        self.obs_scale = obs_scale
        self.register_buffer("_zero", torch.zeros(()), persistent=False)

    @property
    def binary(self) -> bool:
        """True when p(x | z) needs pixels in {0, 1} (so grey images must be binarised)."""
        return self.likelihood_name == "bernoulli"

    def prior(self, batch_size: int, y: torch.Tensor | None = None) -> dist.Distribution:
        """p(z) = N(0, I): batch ``(batch_size,)``, event ``(Z,)``."""
        zero = self._zero.expand(batch_size, self.latent_dim)
        return dist.Normal(zero, torch.ones_like(zero)).to_event(1)

    def likelihood(self, z: torch.Tensor, y: torch.Tensor | None = None) -> dist.Distribution:
        """p(x | z): batch ``z.shape[:-1]``, event ``(D,)``."""
        out = self.decoder(z)
        if self.likelihood_name == "bernoulli":
            return BernoulliImage(out)
        if self.raw_scale is None:
            scale = torch.full_like(out, self.obs_scale)
        else:
            scale = (F.softplus(self.raw_scale) + MIN_SCALE).expand_as(out)
        return dist.Normal(out, scale).to_event(1)

    @torch.no_grad()
    def init_output_bias(self, data_mean: torch.Tensor) -> None:
        """Start the decoder at the data mean (Burda et al.: Bernoulli bias = logit of the mean)."""
        last = self.decoder[-1]
        mean = data_mean.reshape(-1).to(last.bias)
        if self.likelihood_name == "bernoulli":
            mean = mean.clamp(1e-3, 1 - 1e-3)
            last.bias.copy_(torch.log(mean) - torch.log1p(-mean))
        else:
            last.bias.copy_(mean)
