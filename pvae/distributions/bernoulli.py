"""Independent Bernoulli pixels as one event, with a ``log_prob`` that makes three cheap passes, not six.

For logits l and pixels x of one image,

    log p(x | l) = sum_d [x_d l_d - softplus(l_d)]

``Bernoulli(logits=l).to_event(1)`` computes the same number through
``-binary_cross_entropy_with_logits``: it expands x to the shape of l, then makes about six
elementwise passes over the ``(..., D)`` logits. With K particles the logits are K times larger
than the data, and those passes cost more than the decoder's last matrix product (bench_bounds).

For binary x (the support), with s_d = 2 x_d - 1 in {-1, +1}, each term is log sigmoid(s_d l_d),
so over groups g of G pixels

    log p(x | l) = sum_g log prod_{d in g} sigmoid(s_d l_d)

one multiply, one in-place sigmoid and one product per logit, and one log per G pixels: on the
CPU a log (softplus is one) costs several times a sigmoid. A product that underflows (pixels of a
group whose likelihood is below ``finfo.tiny``, e^-87 in float32) is summed for that group alone
from the logs of its factors, and a datapoint with a factor itself below tiny (one pixel below
-87 nats) from sum_d -softplus(-s_d l_d). A caller that made the logits and alone holds them can
have the factors written over them (``log_sigmoid_sum_``, ``PixelDecoder.log_prob``), which saves
a pass that writes a buffer of their size. This form is for evaluation (no gradients: ``pvae bounds``,
1.24x faster L_5000 in bench_bounds); with gradients, and for pixels that are not all 0 or 1, the
first formula is computed by torch's fused ``binary_cross_entropy_with_logits`` (one pass forward,
one backward; without Pyro's ``Bernoulli`` around it), whose backward is cheaper than the product's
(bench_step: the grouped form made a training step slower; at batch 20 this ``log_prob`` with its
backward took 64 us, and 75 us as a multiply-sum of x and l beside a softplus-sum).
Its two checks read a value back, so on a GPU such a ``log_prob`` waits for the device twice.
"""

from __future__ import annotations

import math
from functools import cache

import torch
from pyro.distributions import TorchDistribution
from torch.distributions import constraints
from torch.nn import functional as F

MAX_GROUP = 112  # pixels per product of sigmoids (784 = 7 x 112): fewer logs, but more groups underflow


@cache
def group_size(pixels: int) -> int:
    """G: the largest divisor of ``pixels`` that is at most ``MAX_GROUP``."""
    return max(g for g in range(1, min(pixels, MAX_GROUP) + 1) if pixels % g == 0)


def log_sigmoid_sum_(y: torch.Tensor) -> torch.Tensor:
    """sum_d log sigmoid(y_d) over the last dim of ``y`` ``(..., D)``, shape ``(...)``, by products of
    G = ``group_size(D)`` sigmoids; ``y`` is overwritten by the factors sigmoid(y).

    A group whose product underflows (below ``finfo.tiny``) is summed from its factors,
    log sigmoid(y) = log f (exact to 6e-8 a pixel, where f rounds to 1), and is -inf where a
    factor is itself below tiny (y below about -87): only y gives that logarithm exactly, so the
    callers score such rows again from y.
    """
    size = group_size(y.shape[-1])
    factors = y.sigmoid_().unflatten(-1, (-1, size))  # (..., D / G, G)
    products = factors.prod(-1)  # (..., D / G)
    tiny = torch.finfo(products.dtype).tiny
    underflow = products < tiny
    groups = products.masked_fill(underflow, 1.0).log()  # log prod_g sigmoid(y), 0 where it underflowed
    if underflow.any():  # those groups term by term
        f = factors[underflow]  # (underflowed groups, G)
        groups = groups.index_put((underflow,), f.log().masked_fill_(f < tiny, -math.inf).sum(-1))
    return groups.sum(-1)


def binary_log_prob(logits: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """sum_d log sigmoid(s_d l_d), s_d = 2 x_d - 1, for pixels ``x`` in {0, 1} and ``logits`` ``(..., D)``
    (broadcasting): shape ``broadcast(x, logits).shape[:-1]``, by ``log_sigmoid_sum_`` of s l; a row
    it leaves at -inf is summed again term by term, log sigmoid(s l) = -softplus(-s l). Computed in
    the logits' dtype, as ``binary_cross_entropy_with_logits`` takes its targets (so uint8 pixels
    give s = -1, not 255)."""
    sign = 2 * x.to(logits.dtype) - 1
    out = log_sigmoid_sum_(torch.mul(logits, sign))
    lost = out == -math.inf
    if lost.any():
        shape = (*out.shape, logits.shape[-1])
        out[lost] = F.logsigmoid(sign.expand(shape)[lost] * logits.expand(shape)[lost]).sum(-1)
    return out


def is_binary(x: torch.Tensor) -> bool:
    """Every value of ``x`` is 0 or 1 (reads a value back: on a GPU, waits for the device)."""
    return torch.equal(x, x.bool().to(x.dtype))


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
        """sum_d [x_d l_d - softplus(l_d)], shape ``broadcast(value, logits).shape[:-1]``: by
        ``binary_log_prob`` without gradients where every pixel is 0 or 1."""
        if self._validate_args:
            self._validate_sample(value)
        if self.mask is not None:
            return ((value * self.logits - F.softplus(self.logits)) * self.mask).sum(-1)
        if not torch.is_grad_enabled() and is_binary(value):
            return binary_log_prob(self.logits, value)
        logits = self.logits
        if value.dtype != logits.dtype:  # e.g. uint8 pixels: the loss takes targets of the logits' dtype
            value = value.to(logits.dtype)
        if value.shape != logits.shape:
            logits, value = torch.broadcast_tensors(logits, value)
        return -F.binary_cross_entropy_with_logits(logits, value, reduction="none").sum(-1)

    def entropy(self) -> torch.Tensor:
        # H = sum_d [softplus(l_d) - sigmoid(l_d) l_d]
        return (F.softplus(self.logits) - self.probs * self.logits).sum(-1)
