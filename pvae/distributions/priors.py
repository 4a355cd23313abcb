"""Priors p(z) by name (``PRIORS``, the ``--prior`` option of models that take one).

- ``normal``: N(0, I_Z).
- ``mog10``: the adversarial autoencoder paper's mixture of 10 Gaussians (Makhzani et al. 2015,
  figure 2), in Z dimensions: equal weights, component k centred at r (cos 2 pi k / 10,
  sin 2 pi k / 10, 0, ..., 0) with standard deviation s in the first two dimensions and 1 in the
  others (r = ``MOG_RADIUS``, s = ``MOG_SCALE``):

      p(z) = 1/10 sum_k N(z_{1:2}; m_k, s^2 I) N(z_{3:Z}; 0, I).

  Its density is exact (``log_prob``), so every objective trains against it; it has no closed-form
  KL to a Gaussian guide and no reparameterised sample.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import pyro.distributions as dist
import torch

from pvae.distributions.normal import StandardNormal

MOG_COMPONENTS, MOG_RADIUS, MOG_SCALE = 10, 4.0, 0.5


def standard_normal(batch_size: int, latent_dim: int, like: torch.Tensor) -> dist.Distribution:
    """N(0, I_Z) for each of ``batch_size`` datapoints: batch ``(batch_size,)``, event ``(latent_dim,)``,
    on the dtype and device of ``like``."""
    return StandardNormal(torch.Size([batch_size, latent_dim]), like).to_event(1)


def _components(latent_dim: int, like: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Means and standard deviations of the mog10 components, each ``(10, latent_dim)``."""
    if latent_dim < 2:
        raise ValueError(f"the mog10 prior needs at least 2 latent dimensions, not {latent_dim}")
    angle = 2 * math.pi * torch.arange(MOG_COMPONENTS, dtype=like.dtype, device=like.device) / MOG_COMPONENTS
    loc = like.new_zeros(MOG_COMPONENTS, latent_dim)
    loc[:, 0], loc[:, 1] = MOG_RADIUS * angle.cos(), MOG_RADIUS * angle.sin()
    scale = like.new_ones(MOG_COMPONENTS, latent_dim)
    scale[:, :2] = MOG_SCALE
    return loc, scale


def mixture_of_gaussians(batch_size: int, latent_dim: int, like: torch.Tensor) -> dist.Distribution:
    """The ``mog10`` prior: batch ``(batch_size,)``, event ``(latent_dim,)``; needs latent_dim >= 2."""
    loc, scale = _components(latent_dim, like)
    mixture = dist.Categorical(logits=like.new_zeros(MOG_COMPONENTS))
    return dist.MixtureSameFamily(mixture, dist.Normal(loc, scale).to_event(1)).expand((batch_size,))


def mixture_component(labels: torch.Tensor, latent_dim: int, like: torch.Tensor) -> dist.Distribution:
    """Component ``labels[b]`` of the mog10 prior for each datapoint b: batch ``(B,)``, event
    ``(latent_dim,)`` (the label-regularised prior of Makhzani et al. 2015, figure 4)."""
    loc, scale = _components(latent_dim, like)
    return dist.Normal(loc[labels], scale[labels]).to_event(1)


def checked_prior(name: str, latent_dim: int) -> str:
    """``name`` if it is a prior that ``latent_dim`` dimensions can have; else ``ValueError``."""
    if name not in PRIORS:
        raise ValueError(f"prior must be one of {', '.join(PRIORS)}, not {name!r}")
    if name == "mog10" and latent_dim < 2:
        raise ValueError(f"the mog10 prior needs at least 2 latent dimensions, not {latent_dim}")
    return name


PRIORS: dict[str, Callable[[int, int, torch.Tensor], dist.Distribution]] = {
    "normal": standard_normal,
    "mog10": mixture_of_gaussians,
}
