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

from pvae.nn import Model, PixelDecoder


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
        self.data_dim, self.latent_dim = data_dim, latent_dim
        self.decoder = PixelDecoder(latent_dim, data_dim, hidden, activation, likelihood, obs_scale)
        self.register_buffer("_zero", torch.zeros(()), persistent=False)

    @property
    def binary(self) -> bool:
        """True when p(x | z) needs pixels in {0, 1} (so grey images must be binarised)."""
        return self.decoder.likelihood == "bernoulli"

    def prior(self, batch_size: int, y: torch.Tensor | None = None) -> dist.Distribution:
        """p(z) = N(0, I): batch ``(batch_size,)``, event ``(Z,)``."""
        zero = self._zero.expand(batch_size, self.latent_dim)
        return dist.Normal(zero, torch.ones_like(zero)).to_event(1)

    def likelihood(self, z: torch.Tensor, y: torch.Tensor | None = None) -> dist.Distribution:
        """p(x | z): batch ``z.shape[:-1]``, event ``(D,)``."""
        return self.decoder(z)

    def init_output_bias(self, data_mean: torch.Tensor) -> None:
        """Start the decoder at the data mean (Burda et al.: Bernoulli bias = logit of the mean)."""
        self.decoder.init_output_bias(data_mean)
