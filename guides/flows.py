"""Amortised inverse autoregressive flow (IAF, Kingma et al. 2016).

A MADE (Germain et al. 2015) that also reads the encoder's context vector h gives, for each
latent dimension i in an order o (a permutation), a shift m_i and a gate logit s_i that depend
on x_j only for o_j < o_i (and on h freely). One IAF step, in the paper's numerically stable
form (its eqs. 14-15), is

    g = sigmoid(s),   y = g * x + (1 - g) * m,   log |det dy/dx| = sum_i log g_i

(the Jacobian is triangular in the order o with diagonal g). ``FlowPosterior`` pushes a diagonal
Normal N(mu(h), sigma(h)) through N such steps, the order reversed between steps.

Sampling and the log density of one's own samples take one MADE pass per step (the transform
caches x, y and the log-det). The density of any other point z needs the inverse, which is
sequential: x_i = (y_i - (1 - g_i) m_i) / g_i once x_{<i} is known. We run the fixed-point
iteration x <- (y - (1 - g(x)) m(x)) / g(x) from x = 0 for Z passes: pass n makes coordinate n
(in the order) exact as a *function* of y, so after Z passes the iterate is the inverse itself and
its derivatives with respect to y are exact too. That is what the path-derivative estimators
(``pvae.objectives``: STL, DReG) need: ``FlowPosterior.detach_parameters()`` is the same flow with
every parameter and the context cut from the graph, and its ``log_prob(z)`` inverts the flow at z,
so gradients reach the guide through z alone. It costs Z MADE passes per step.
"""

from __future__ import annotations

import pyro.distributions as dist
import torch
from torch import nn
from torch.distributions import Transform, constraints
from torch.nn import functional as F

GATE_BIAS = 2.0  # initial gate logit: g = sigmoid(2) ~ 0.88, each step starts close to y = x
MEAN_SAMPLES = 64  # draws (fixed, antithetic, shared by all datapoints) behind FlowPosterior.mean


class MaskedLinear(nn.Linear):
    """A linear layer whose weight is multiplied by a fixed 0/1 mask ``(out, in)``."""

    def __init__(self, in_features: int, out_features: int, mask: torch.Tensor) -> None:
        super().__init__(in_features, out_features)
        self.register_buffer("mask", mask.to(self.weight.dtype), persistent=False)

    def forward(self, x: torch.Tensor, detach: bool = False) -> torch.Tensor:
        weight, bias = (self.weight.detach(), self.bias.detach()) if detach else (self.weight, self.bias)
        return F.linear(x, weight * self.mask, bias)


class MADE(nn.Module):
    """(m, s) = MADE(x, h): two masked hidden layers (ELU) over x ``(..., Z)`` plus a linear map of
    the context h ``(..., C)`` added to the first; outputs m_i, s_i ``(..., Z)`` each depend on x_j
    only for o_j < o_i, with o the identity order (or its reverse).

    Degrees (Germain et al.): input j has degree o_j + 1 in 1..Z; hidden units cycle through
    1..Z-1; a hidden unit reads inputs of degree <= its own, output i reads hidden units of degree
    < o_i + 1. With Z = 1 the outputs depend on the context alone.

    :param detach: in ``forward``, use detached parameters (the path-derivative estimators).
    """

    def __init__(self, latent_dim: int, context_dim: int, hidden: int, reverse: bool = False) -> None:
        super().__init__()
        z = latent_dim
        order = torch.arange(z).flip(0) if reverse else torch.arange(z)
        degree_in = order + 1
        degree_hidden = torch.arange(hidden) % max(z - 1, 1) + 1 if z > 1 else torch.zeros(hidden, dtype=torch.long)
        self.latent_dim = z
        self.register_buffer("order", order, persistent=False)
        self.input = MaskedLinear(z, hidden, degree_hidden[:, None] >= degree_in[None, :])
        self.context = nn.Linear(context_dim, hidden) if context_dim > 0 else None
        self.hidden = MaskedLinear(hidden, hidden, degree_hidden[:, None] >= degree_hidden[None, :])
        self.output = MaskedLinear(hidden, 2 * z, (degree_in[:, None] > degree_hidden[None, :]).repeat(2, 1))
        with torch.no_grad():
            self.output.bias[z:].fill_(GATE_BIAS)

    def forward(
        self, x: torch.Tensor, context: torch.Tensor | None, detach: bool = False
    ) -> tuple[torch.Tensor, torch.Tensor]:
        h = self.input(x, detach)
        if self.context is not None:
            weight, bias = self.context.weight, self.context.bias
            if detach:
                weight, bias = weight.detach(), bias.detach()
            h = h + F.linear(context, weight, bias)  # (B, H) broadcasts over leading particle dims
        h = F.elu(self.hidden(F.elu(h), detach))
        shift, logit = self.output(h, detach).chunk(2, dim=-1)
        return shift, logit


class IAFStep(Transform):
    """One IAF step y = g x + (1 - g) m, (m, logit g) = MADE(x, h), for a given context h.

    :param made: the step's MADE.
    :param context: h ``(B, C)`` (leading particle dims of x broadcast against it).
    :param detach: evaluate the MADE with detached parameters (give a detached context too).
    """

    domain = constraints.independent(constraints.real, 1)
    codomain = constraints.independent(constraints.real, 1)
    bijective = True

    def __init__(
        self,
        made: MADE,
        context: torch.Tensor | None,
        detach: bool = False,
        cache_size: int = 1,
    ) -> None:
        super().__init__(cache_size=cache_size)
        self.made, self.context, self.detach = made, context, detach
        self._log_det: tuple[torch.Tensor, torch.Tensor, torch.Tensor] | None = None  # (x, y, log det)

    def detached(self) -> IAFStep:
        """The same step with its MADE's parameters and the context cut from the graph, no cache."""
        context = None if self.context is None else self.context.detach()
        return IAFStep(self.made, context, detach=True, cache_size=0)

    def _call(self, x: torch.Tensor) -> torch.Tensor:
        shift, logit = self.made(x, self.context, self.detach)
        gate = torch.sigmoid(logit)
        y = gate * x + (1 - gate) * shift
        self._log_det = (x, y, F.logsigmoid(logit).sum(-1))
        return y

    def _inverse(self, y: torch.Tensor) -> torch.Tensor:
        x = torch.zeros_like(y)
        for _ in range(self.made.latent_dim):  # pass n fixes coordinate n of the order (module docstring)
            shift, logit = self.made(x, self.context, self.detach)
            x = (y - (1 - torch.sigmoid(logit)) * shift) / torch.sigmoid(logit)
        # The last pass read an iterate exact in coordinates 1..Z-1, all that any logit reads.
        self._log_det = (x, y, F.logsigmoid(logit).sum(-1))
        return x

    def log_abs_det_jacobian(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        if self._log_det is not None and x is self._log_det[0] and y is self._log_det[1]:
            return self._log_det[2]
        _, logit = self.made(x, self.context, self.detach)
        return F.logsigmoid(logit).sum(-1)


class FlowPosterior(dist.TransformedDistribution):
    """q(z | x): a diagonal Normal base (``Normal(loc, scale).to_event(1)``) pushed through
    ``IAFStep`` transforms; batch ``(B,)``, event ``(Z,)``.

    ``mean`` has no closed form: it is the average of the flow over ``MEAN_SAMPLES`` fixed base draws
    in antithetic pairs (+eps_s, -eps_s), the same for every datapoint and every call,
    mean = (1/S) sum_s T(mu + sigma eps_s): deterministic, exact where the flow is affine, and where
    q does not depend on x its error does not either (which keeps Burda et al.'s active-unit
    statistic Cov_x(E_q[z]) honest).
    """

    def _normal(self) -> tuple[torch.Tensor, torch.Tensor, int]:
        base = self.base_dist
        if not (isinstance(base, dist.Independent) and isinstance(base.base_dist, dist.Normal)):
            raise NotImplementedError("FlowPosterior needs a Normal(loc, scale).to_event(n) base")
        return base.base_dist.loc, base.base_dist.scale, base.reinterpreted_batch_ndims

    @property
    def mean(self) -> torch.Tensor:
        loc, scale, _ = self._normal()
        batch, event = self.base_dist.batch_shape, self.base_dist.event_shape
        shape = (MEAN_SAMPLES // 2,) + (1,) * len(batch) + event  # shared by every datapoint
        eps = torch.randn(shape, generator=torch.Generator().manual_seed(0), dtype=loc.dtype).to(loc.device)
        z = loc + scale * torch.cat([eps, -eps])
        for transform in self.transforms:
            z = transform._call(z)  # not through the cache, which keeps the last sample's (x, y)
        return z.mean(0)

    def detach_parameters(self) -> FlowPosterior:
        """The same q with every parameter detached: ``log_prob`` inverts the flow at z, so its
        gradient reaches the guide only through z (sticking the landing)."""
        loc, scale, ndims = self._normal()
        base = dist.Normal(loc.detach(), scale.detach()).to_event(ndims)
        return FlowPosterior(base, [t.detached() for t in self.transforms])
