"""Normal distributions whose ``log_prob`` skips work that torch's general formula does.

``Normal.log_prob`` computes

    log N(v; mu, sigma) = -(v - mu)^2 / (2 sigma^2) - log sigma - log sqrt(2 pi)

as about nine elementwise operations, each recorded for backward. In a VAE's training step two
calls need fewer, and on small batches those operations are most of the cost of the densities
(bench_step):

- ``ReparamNormal``, the guide's q at its own reparameterised draw v = mu + sigma * eps: there
  (v - mu) / sigma is eps, so

      log q(v) = -eps^2 / 2 - log sigma - log sqrt(2 pi)

  the same number and, as a function of mu and sigma through v, the same gradient (the terms
  through v and through mu cancel in the general formula); it has no gradient in v alone, which
  no objective asks for. Any other value takes the general formula, so a copy of the draw
  (DReG's) or a q with detached parameters (STL's) is unaffected; so is the draw itself once
  changed in place, or when it was drawn without gradients and its density is taken with them.
- ``StandardNormal``, the prior N(0, 1): log p(v) = -v^2 / 2 - log sqrt(2 pi); and its KL from
  any Normal q, registered with ``torch.distributions.kl``, in the form without the prior's zero
  mean and unit scale (``meanfield``'s closed form):

      KL(N(mu, sigma^2) || N(0, 1)) = (mu^2 + sigma^2 - 1) / 2 - log sigma

Both are ``Normal`` subclasses, so torch's KL registrations (``TraceMeanField_ELBO``'s closed
form), ``expand`` and Pyro's handling apply to them unchanged.
"""

from __future__ import annotations

import math

import pyro.distributions as dist
import torch
from torch.distributions import register_kl
from torch.distributions.utils import _standard_normal

HALF_LOG_2PI = 0.5 * math.log(2 * math.pi)


class ReparamNormal(dist.Normal):
    """``Normal(loc, scale)`` that keeps the noise of its last ``rsample`` (see the module)."""

    # the last rsample: (v, eps, v's version counter, whether gradients were on)
    _drawn: tuple[torch.Tensor, torch.Tensor, int, bool] | None = None

    def rsample(self, sample_shape: torch.Size = torch.Size()) -> torch.Tensor:
        eps = _standard_normal(self._extended_shape(sample_shape), dtype=self.loc.dtype, device=self.loc.device)
        value = self.loc + eps * self.scale  # as torch's Normal.rsample, so the draws are the same
        self._drawn = value, eps, value._version, torch.is_grad_enabled()
        return value

    def log_prob(self, value: torch.Tensor) -> torch.Tensor:
        drawn = self._drawn
        if (
            drawn is None
            or value is not drawn[0]
            or value._version != drawn[2]  # changed in place since
            or (torch.is_grad_enabled() and not drawn[3])  # drawn as a constant, differentiated now
        ):
            return super().log_prob(value)
        if self._validate_args:
            self._validate_sample(value)
        return -0.5 * drawn[1].square() - self.scale.log() - HALF_LOG_2PI


class StandardNormal(dist.Normal):
    """N(0, 1) over ``batch_shape`` on the dtype and device of ``like``: no parameters, and a
    ``log_prob`` of -v^2 / 2 - log sqrt(2 pi), shape ``broadcast(v, batch_shape)``."""

    def __init__(self, batch_shape: torch.Size, like: torch.Tensor, validate_args: bool | None = None) -> None:
        zero = like.new_zeros(()).expand(batch_shape)
        super().__init__(zero, like.new_ones(()).expand(batch_shape), validate_args=validate_args)

    def detach_parameters(self) -> StandardNormal:
        """Itself: it has no parameters (``pvae.objectives.detach_parameters``)."""
        return self

    def expand(self, batch_shape, _instance=None) -> StandardNormal:
        new = self._get_checked_instance(StandardNormal, _instance)
        return super().expand(batch_shape, _instance=new)

    def log_prob(self, value: torch.Tensor) -> torch.Tensor:
        if self._validate_args:
            self._validate_sample(value)
        density = -0.5 * value.square() - HALF_LOG_2PI
        batch = self.batch_shape
        if value.shape[max(0, value.dim() - len(batch)) :] == batch:  # value spans the batch shape already
            return density
        return density.expand(torch.broadcast_shapes(value.shape, batch))


@register_kl(dist.Normal, StandardNormal)
def _kl_normal_standard(q: dist.Normal, p: StandardNormal) -> torch.Tensor:
    """KL(q || N(0, 1)) per element, shape ``broadcast(q.batch_shape, p.batch_shape)`` (see the module);
    torch's Normal-Normal formula would divide by the unit scale and subtract the zero mean."""
    kl = 0.5 * (q.loc.square() + q.scale.square() - 1) - q.scale.log()
    shape = torch.broadcast_shapes(q.batch_shape, p.batch_shape)
    return kl if kl.shape == shape else kl.expand(shape)
