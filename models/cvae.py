"""The class-conditional VAE (Kingma et al. 2014's M2 with the label observed; Sohn et al. 2015).

    z | y ~ N(0, I)   or, with ``learned_prior``,   N(mu(y), diag(sigma(y))^2)
    x | z, y ~ p(x | f([z, onehot(y)]))            (Bernoulli or Gaussian pixels)

The label is the condition y of ARCHITECTURE.md: an argument of model and guide, so objectives and
(conditional) guides still swap. With z drawn once and y varied, the decoder keeps the style and
changes the class: the content/style split of the conditional-autoencoder literature.
"""

from __future__ import annotations

from collections.abc import Sequence

import pyro.distributions as dist
import torch
from torch import nn
from torch.nn import functional as F

from pvae.nn import Model, PixelDecoder, one_hot


class CVAE(Model):
    """Class-conditional VAE on images.

    :param data_dim: pixels per image, D.
    :param num_classes: C, labels 0..C-1.
    :param latent_dim: Z.
    :param hidden: decoder hidden sizes.
    :param activation: hidden activation name.
    :param likelihood: ``"bernoulli"`` or ``"gaussian"``.
    :param obs_scale: Gaussian only: a fixed pixel std, or ``None`` to learn one per pixel.
    :param learned_prior: p(z | y) with a mean and std per class instead of N(0, I).
    """

    train_defaults = dict(conditional=True)

    def __init__(
        self,
        data_dim: int,
        num_classes: int,
        latent_dim: int = 20,
        hidden: Sequence[int] = (400,),
        activation: str = "relu",
        likelihood: str = "bernoulli",
        obs_scale: float | None = None,
        learned_prior: bool = False,
    ) -> None:
        super().__init__()
        if num_classes < 2:
            raise ValueError(f"a class-conditional model needs at least 2 classes, not {num_classes}")
        self.data_dim, self.latent_dim, self.num_classes = data_dim, latent_dim, num_classes
        self.decoder = PixelDecoder(latent_dim + num_classes, data_dim, hidden, activation, likelihood, obs_scale)
        self.prior_net = nn.Embedding(num_classes, 2 * latent_dim) if learned_prior else None
        if self.prior_net is not None:
            nn.init.zeros_(self.prior_net.weight)  # starts as N(0, I)
        self.register_buffer("_zero", torch.zeros(()), persistent=False)

    @property
    def binary(self) -> bool:
        return self.decoder.likelihood == "bernoulli"

    def prior(self, batch_size: int, y: torch.Tensor | None = None) -> dist.Distribution:
        """p(z | y): batch ``(batch_size,)``, event ``(Z,)``."""
        if self.prior_net is None:
            zero = self._zero.expand(batch_size, self.latent_dim)
            return dist.Normal(zero, torch.ones_like(zero)).to_event(1)
        loc, raw = self.prior_net(y).chunk(2, dim=-1)
        return dist.Normal(loc, F.softplus(raw + 0.5413248546129181)).to_event(1)  # softplus(0 + c) = 1

    def likelihood(self, z: torch.Tensor, y: torch.Tensor | None = None) -> dist.Distribution:
        """p(x | z, y): batch ``z.shape[:-1]``, event ``(D,)``."""
        code = one_hot(y, self.num_classes, z).expand(*z.shape[:-1], self.num_classes)
        return self.decoder(torch.cat([z, code], -1))

    def init_output_bias(self, data_mean: torch.Tensor) -> None:
        self.decoder.init_output_bias(data_mean)
