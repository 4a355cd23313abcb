"""The Gaussian VAE on images (Kingma & Welling 2014): a standard normal prior and an MLP decoder,
optionally class-conditional (Kingma et al. 2014's M2 with the label observed; Sohn et al. 2015).

    z ~ N(0, I_Z)                          or, with labels y and ``learned_prior``,  N(mu(y), diag(sigma(y))^2)
    x | z ~ Bernoulli(logits = f(c))       (likelihood="bernoulli", binary pixels)
    x | z ~ N(f(c), diag(s^2))             (likelihood="gaussian", s learned per pixel or fixed)

with c = z, or c = [z, onehot(y)] for class labels y (``num_classes`` > 0). The label is the
condition y of docs/architecture.md: an argument of model and guide, so objectives and
(conditional) guides still swap. With z drawn once and y varied, the decoder keeps the style and
changes the class: the content/style split of the conditional-autoencoder literature.

Shapes: ``x`` is ``(B, D)`` with D the number of pixels; ``z`` is ``(..., B, Z)``, where any
leading dims (vectorised particles) broadcast through the decoder; labels ``y`` are ``(B,)``.
"""

from __future__ import annotations

from collections.abc import Sequence

import pyro.distributions as dist
import torch
from torch import nn
from torch.nn import functional as F

from pvae.contracts import CONDITIONAL, LATENT_DIM, PRIOR, Model, Option
from pvae.distributions.priors import MOG_COMPONENTS, checked_prior, mixture_component
from pvae.layers import ACTIVATION, HIDDEN, LIKELIHOOD, OBS_SCALE, PixelDecoder, one_hot

SOFTPLUS_INV_ONE = 0.5413248546129181  # softplus(0 + c) = 1: a learned prior starts as N(0, I)

LEARNED_PRIOR = Option("learned_prior", False, "p(z | y) learned per class", "conditioning", bool, scope="model")
LABEL_REGULARISED = Option(
    "label_regularised",
    False,
    "labels pick a mog10 component of p(z | y) and reach no network (label-regularised AAE)",
    "conditioning",
    bool,
    scope="model",
)


class GaussianVAE(Model):
    """Standard normal (or learned class-conditional) prior, MLP decoder, Bernoulli or Gaussian pixels.

    :param data_dim: pixels per image, D.
    :param latent_dim: Z.
    :param hidden: decoder hidden sizes, from z outwards.
    :param activation: hidden activation name (see ``pvae.layers.ACTIVATIONS``).
    :param likelihood: ``"bernoulli"`` or ``"gaussian"``.
    :param obs_scale: Gaussian only: a fixed pixel std, or ``None`` to learn one per pixel.
    :param num_classes: C > 0: p(x | z, y) for class labels y in 0..C-1 (the decoder reads
        [z, onehot(y)]); 0: unconditional.
    :param learned_prior: class-conditional only: p(z | y) with a mean and std per class instead of N(0, I).
    :param prior: p(z) otherwise, a name of ``pvae.distributions.priors.PRIORS``.
    :param label_regularised: class labels pick the component of the mog10 prior, p(z | y) = its
        y-th Gaussian, and reach neither decoder nor guide (``guide_reads_labels``): the
        label-regularised adversarial autoencoder (Makhzani et al. 2015, figure 4); needs
        ``prior="mog10"`` and at most 10 classes.
    """

    name = "gaussian"
    options = (
        LATENT_DIM,
        HIDDEN,
        ACTIVATION,
        PRIOR,
        LIKELIHOOD,
        OBS_SCALE,
        CONDITIONAL,
        LEARNED_PRIOR,
        LABEL_REGULARISED,
    )
    data_kind = "image"
    traceable = True

    def __init__(
        self,
        data_dim: int,
        latent_dim: int = 20,
        hidden: Sequence[int] = (400,),
        activation: str = "relu",
        likelihood: str = "bernoulli",
        obs_scale: float | None = None,
        num_classes: int = 0,
        learned_prior: bool = False,
        prior: str = "normal",
        label_regularised: bool = False,
    ) -> None:
        super().__init__()
        self.prior_name = checked_prior(prior, latent_dim)
        if label_regularised and (prior != "mog10" or not 0 < num_classes <= MOG_COMPONENTS):
            raise ValueError(
                f"label_regularised needs the mog10 prior and 1-{MOG_COMPONENTS} classes, not the {prior} prior "
                f"with {num_classes}"
            )
        self.label_regularised = label_regularised
        self.guide_reads_labels = self.labels_reach_decoder = not label_regularised
        self.prior_has_parameters = learned_prior
        if num_classes < 0:
            raise ValueError(f"num_classes must not be negative, not {num_classes}")
        if learned_prior and not num_classes:
            raise ValueError(
                "learned_prior needs class labels (num_classes > 0): p(z | y) has one mean and std per class"
            )
        self.data_dim, self.latent_dim, self.num_classes = data_dim, latent_dim, num_classes
        code = latent_dim + (0 if label_regularised else num_classes)
        self.decoder = PixelDecoder(code, data_dim, hidden, activation, likelihood, obs_scale)
        self.prior_net = nn.Embedding(num_classes, 2 * latent_dim) if learned_prior else None
        if self.prior_net is not None:
            nn.init.zeros_(self.prior_net.weight)  # starts as N(0, I)
        self.binary = likelihood == "bernoulli"  # Bernoulli pixels must be 0 or 1

    def prior(self, batch_size: int, y: torch.Tensor | None = None) -> dist.Distribution:
        """p(z) = N(0, I), or p(z | y) with ``learned_prior``: batch ``(batch_size,)``, event ``(Z,)``."""
        if self.label_regularised:
            return mixture_component(self._labels(y), self.latent_dim, self._zero)
        if self.prior_net is None:
            return super().prior(batch_size, y)
        loc, raw = self.prior_net(self._labels(y)).chunk(2, dim=-1)
        return dist.Normal(loc, F.softplus(raw + SOFTPLUS_INV_ONE)).to_event(1)

    def likelihood(self, z: torch.Tensor, y: torch.Tensor | None = None) -> dist.Distribution:
        """p(x | z) or p(x | z, y): batch ``z.shape[:-1]``, event ``(D,)``."""
        return self.decoder(self._code(z, y))

    def log_likelihood(self, x: torch.Tensor, z: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        """``Model.log_likelihood`` by ``PixelDecoder.log_prob`` (in place without gradients)."""
        return self.decoder.log_prob(self._code(z, y), x)

    def _code(self, z: torch.Tensor, y: torch.Tensor | None) -> torch.Tensor:
        """What the decoder reads: z, or [z, onehot(y)] where the labels reach it."""
        if not self.num_classes or self.label_regularised:
            return z
        code = one_hot(self._labels(y), self.num_classes, z).expand(*z.shape[:-1], self.num_classes)
        return torch.cat([z, code], -1)

    def _labels(self, y: torch.Tensor | None) -> torch.Tensor:
        if y is None:
            raise ValueError("this model is class-conditional: give the labels y")
        return y

    def init_output_bias(self, data_mean: torch.Tensor) -> None:
        """Start the decoder at the data mean (Burda et al.: Bernoulli bias = logit of the mean)."""
        self.decoder.init_output_bias(data_mean)
