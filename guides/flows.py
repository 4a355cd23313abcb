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
its derivatives with respect to y are exact too.

The path-derivative estimators (``pvae.objectives``: STL, DReG) need log q with every parameter
and the context cut from the graph, as a function of z, but only at the sample z_0 just drawn
and only to first order: its value and d/dz. ``FlowPosterior.detach_parameters()`` keeps the
sample's chain x_0 -> ... -> x_N = z_0 and, at z equal to z_0, replaces each step's inverse by
its linearisation there,

    x_{n-1}(y) = x_{n-1}^0 + J_n^{-1} (y - y^0),   J_n = dy/dx at x_{n-1}^0 (triangular),

which has the inverse's value and first derivative at y^0, so log q and its gradient are exact.
That costs one Jacobian per step (``MADE.jacobian``, batched matrix products) and a triangular
solve instead of Z sequential MADE passes, forward and backward. At any other z it inverts.
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
        self.latent_dim, self.reverse = z, reverse
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

    @torch.no_grad()
    def jacobian(
        self, x: torch.Tensor, context: torch.Tensor | None
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """shift and logit ``(..., Z)`` at x, and d shift / dx and d logit / dx ``(..., Z, Z)``
        (constants: no graph), the derivatives by the chain rule

            d out / dx = W_out diag(elu'(a_2)) W_hidden diag(elu'(a_1)) W_in,   elu'(a) = min(exp(a), 1)

        with a_1, a_2 the pre-activations of the two hidden layers and W the masked weights.
        """
        a1 = self.input(x)
        if self.context is not None:
            a1 = a1 + self.context(context)
        a2 = self.hidden(F.elu(a1))
        shift, logit = self.output(F.elu(a2)).chunk(2, dim=-1)
        # Transposed, (d out / dx)^T = W_in^T diag(elu'(a_1)) W_hidden^T diag(elu'(a_2)) W_out^T: each
        # product is then one matrix product over all rows (..., Z) at once.
        z, rows = self.latent_dim, a1.shape[:-1]
        t = (self.input.weight * self.input.mask).T * a1.clamp(max=0).exp().unsqueeze(-2)  # (..., Z, H)
        t = (t.reshape(-1, t.shape[-1]) @ (self.hidden.weight * self.hidden.mask).T).reshape(t.shape)
        t = t * a2.clamp(max=0).exp().unsqueeze(-2)
        out = (t.reshape(-1, t.shape[-1]) @ (self.output.weight * self.output.mask).T).reshape(*rows, z, 2 * z)
        return shift, logit, out[..., :z].transpose(-1, -2), out[..., z:].transpose(-1, -2)


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

    def step(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """y and log |det dy/dx| at x, nothing cached."""
        shift, logit = self.made(x, self.context, self.detach)
        gate = torch.sigmoid(logit)
        return gate * x + (1 - gate) * shift, F.logsigmoid(logit).sum(-1)

    def _call(self, x: torch.Tensor) -> torch.Tensor:
        y, log_det = self.step(x)
        self._log_det = (x, y, log_det)
        return y

    def linearised_inverse(self, y: torch.Tensor, x0: torch.Tensor, y0: torch.Tensor) -> torch.Tensor:
        """x0 + J^{-1} (y - y0), J = dy/dx at x0 (y0 = step(x0)): the inverse's value and first
        derivative at y0, for the path derivative (module docstring). Shapes ``(..., Z)``.

        dy/dx = diag(g) + diag((1 - g)) dm/dx + diag(g (1 - g) (x - m)) ds/dx, g = sigmoid(s);
        lower triangular in the identity order, upper in the reversed one.
        """
        with torch.no_grad():
            shift, logit, dshift, dlogit = self.made.jacobian(x0, self.context)
            gate = torch.sigmoid(logit)
            J = (1 - gate).unsqueeze(-1) * dshift + (gate * (1 - gate) * (x0 - shift)).unsqueeze(-1) * dlogit
            J = J + torch.diag_embed(gate)
        step = torch.linalg.solve_triangular(J, (y - y0).unsqueeze(-1), upper=self.made.reverse)
        return x0 + step.squeeze(-1)

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

    _anchor: list[torch.Tensor] | None = None  # the sample chain of detach_parameters()

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
            z = transform.step(z)[0]  # not through the caches, which keep the last sample's chain
        return z.mean(0)

    def _sample_chain(self) -> list[torch.Tensor] | None:
        """x_0, ..., x_N = z of the last sample (or inversion), detached; None if the steps' caches
        do not form one chain."""
        records = [t._log_det for t in self.transforms]
        if any(r is None for r in records) or any(a[1] is not b[0] for a, b in zip(records, records[1:])):
            return None
        return [r[0].detach() for r in records] + [records[-1][1].detach()]

    def detach_parameters(self) -> FlowPosterior:
        """The same q with every parameter detached, so the gradient of its ``log_prob`` reaches
        the guide only through z (sticking the landing). At the last sample z_0 it is evaluated
        through the linearised inverse (exact value and d/dz; module docstring), elsewhere by
        inverting the flow."""
        loc, scale, ndims = self._normal()
        base = dist.Normal(loc.detach(), scale.detach()).to_event(ndims)
        detached = FlowPosterior(base, [t.detached() for t in self.transforms])
        detached._anchor = self._sample_chain()
        return detached

    def log_prob(self, value: torch.Tensor) -> torch.Tensor:
        chain = self._anchor
        if chain is None or value.shape != chain[-1].shape or not torch.equal(value.detach(), chain[-1]):
            return super().log_prob(value)
        y, log_det = value, 0.0
        for transform, x0, y0 in zip(reversed(self.transforms), reversed(chain[:-1]), reversed(chain[1:])):
            x = transform.linearised_inverse(y, x0, y0)
            log_det = log_det + transform.step(x)[1]
            y = x
        return self.base_dist.log_prob(y) - log_det
