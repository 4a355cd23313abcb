"""Independent Bernoulli pixels as one event, with a ``log_prob`` that makes two passes, not six.

For logits l and binary pixels x of one image,

    log p(x | l) = sum_d [x_d l_d - softplus(l_d)]

``Bernoulli(logits=l).to_event(1)`` computes the same number through
``-binary_cross_entropy_with_logits``: it expands x to the shape of l, then makes about six
elementwise passes over the ``(..., D)`` logits. With K particles the logits are K times larger
than the data, and those passes cost more than the decoder's last matrix product (bench_bounds).
Here: one fused multiply-sum of x and l, and one softplus-sum.
"""

from __future__ import annotations

import torch
from pyro.distributions import TorchDistribution
from torch.distributions import constraints
from torch.nn import functional as F


class BernoulliImage(TorchDistribution):
    """Independent Bernoulli(sigmoid(l_d)) pixels; batch ``logits.shape[:-1]``, event ``(D,)``.

    :param logits: ``(..., D)`` log-odds of each pixel being 1.
    :param mask: optional boolean ``(D,)`` (or broadcastable): only these pixels are observed and
        scored (e.g. the hidden part of an image to complete); ``sample`` still draws them all.
    """

    arg_constraints = {"logits": constraints.real}
    support = constraints.independent(constraints.boolean, 1)
    has_rsample = False

    def __init__(
        self, logits: torch.Tensor, mask: torch.Tensor | None = None, validate_args: bool | None = None
    ) -> None:
        self.logits, self.mask = logits, mask
        super().__init__(logits.shape[:-1], logits.shape[-1:], validate_args=validate_args)

    def expand(self, batch_shape, _instance=None) -> BernoulliImage:
        new = self._get_checked_instance(BernoulliImage, _instance)
        batch_shape = torch.Size(batch_shape)
        new.logits = self.logits.expand(batch_shape + self.event_shape)
        new.mask = self.mask
        super(BernoulliImage, new).__init__(batch_shape, self.event_shape, validate_args=False)
        new._validate_args = self._validate_args
        return new

    @property
    def probs(self) -> torch.Tensor:
        return torch.sigmoid(self.logits)

    @property
    def mean(self) -> torch.Tensor:
        return self.probs

    @property
    def variance(self) -> torch.Tensor:
        p = self.probs
        return p * (1 - p)

    def sample(self, sample_shape: torch.Size = torch.Size()) -> torch.Tensor:
        shape = self._extended_shape(sample_shape)
        with torch.no_grad():
            return torch.bernoulli(self.probs.expand(shape))

    def log_prob(self, value: torch.Tensor) -> torch.Tensor:
        """sum_d [x_d l_d - softplus(l_d)], shape ``broadcast(value, logits).shape[:-1]``."""
        if self._validate_args:
            self._validate_sample(value)
        if self.mask is not None:
            return ((value * self.logits - F.softplus(self.logits)) * self.mask).sum(-1)
        return (value * self.logits).sum(-1) - F.softplus(self.logits).sum(-1)

    def entropy(self) -> torch.Tensor:
        # H = sum_d [softplus(l_d) - sigmoid(l_d) l_d]
        return (F.softplus(self.logits) - self.probs * self.logits).sum(-1)
