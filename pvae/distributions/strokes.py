"""Stroke-5 distributions of sketch-rnn (Ha & Eck 2017): one pen step, and a whole padded sketch.

A stroke-5 row is ``(dx, dy, p1, p2, p3)``: an offset and a one-hot pen state (p1 pen down,
p2 pen lifted after this point, p3 end of sketch; padding rows are ``(0, 0, 0, 0, 1)``). One step
is a mixture of M correlated bivariate normals over the offset and a categorical over the pen:

    p(dx, dy) = sum_j pi_j N2(dx, dy | mu_j, sigma_j, rho_j),    p(pen) = q_pen

    log N2 = -log(2 pi sigma_x sigma_y sqrt(1 - rho^2)) - Z / (2 (1 - rho^2)),
    Z = u^2 + v^2 - 2 rho u v,   u = (dx - mu_x) / sigma_x,   v = (dy - mu_y) / sigma_y

computed in log space (logsumexp over the components), with sigma floored at ``SIGMA_MIN`` and
|rho| at most ``RHO_MAX``. A sketch of N_s points padded to T rows follows sketch-rnn's masking:
the offset term counts the N_s real points, the pen term all T rows (``mask_pen`` counts the real
points and the first end-of-sketch row only).
"""

from __future__ import annotations

import math

import torch
from pyro.distributions import TorchDistribution
from torch.distributions import constraints
from torch.nn import functional as F

SIGMA_MIN = 1e-4
RHO_MAX = 1 - 1e-5
LOG_2PI = math.log(2 * math.pi)


def sketch_lengths(x: torch.Tensor) -> torch.Tensor:
    """Real points N_s of padded stroke-5 sketches ``(..., T, 5)``: the rows before the first p3."""
    ended = x[..., 4] > 0.5
    return torch.where(
        ended.any(-1), ended.int().argmax(-1), torch.full_like(ended[..., 0], x.shape[-2], dtype=torch.long)
    )


def drawn_segments(x: torch.Tensor) -> torch.Tensor:
    """Pen-down segments of padded stroke-5 sketches ``(..., T, 5)``: the lines drawn from a real point t
    to the next real point, one for each t < N_s - 1 whose pen state is p1 (the pen stays down),
    ``(...)`` long. A drawing from stroke-3 (``pvae.render``) has exactly these lines."""
    t = torch.arange(x.shape[-2], device=x.device)
    inside = t < (sketch_lengths(x) - 1).unsqueeze(-1)
    return ((x[..., 2] > 0.5) & inside).sum(-1)


class StrokeStep(TorchDistribution):
    """One stroke-5 step: batch ``pen_logits.shape[:-1]``, event ``(5,)``.

    :param mix_logits: ``(..., M)`` unnormalised log pi.
    :param loc: ``(..., M, 2)`` component means of (dx, dy).
    :param scale: ``(..., M, 2)`` component standard deviations (floored at ``SIGMA_MIN``).
    :param rho: ``(..., M)`` component correlations (clamped to +-``RHO_MAX``).
    :param pen_logits: ``(..., 3)`` unnormalised log q over (p1, p2, p3).
    """

    arg_constraints = {
        "mix_logits": constraints.real,
        "loc": constraints.real,
        "scale": constraints.positive,
        "rho": constraints.interval(-1.0, 1.0),
        "pen_logits": constraints.real,
    }
    support = constraints.real_vector
    has_rsample = False

    def __init__(self, mix_logits, loc, scale, rho, pen_logits, validate_args=None) -> None:
        self.mix_logits, self.loc, self.scale, self.rho, self.pen_logits = mix_logits, loc, scale, rho, pen_logits
        super().__init__(pen_logits.shape[:-1], torch.Size([5]), validate_args=validate_args)

    def expand(self, batch_shape, _instance=None) -> StrokeStep:
        batch_shape = torch.Size(batch_shape)
        m = self.mix_logits.shape[-1]
        return StrokeStep(
            self.mix_logits.expand(batch_shape + (m,)),
            self.loc.expand(batch_shape + (m, 2)),
            self.scale.expand(batch_shape + (m, 2)),
            self.rho.expand(batch_shape + (m,)),
            self.pen_logits.expand(batch_shape + (3,)),
            validate_args=False,
        )

    def offset_log_prob(self, offset: torch.Tensor) -> torch.Tensor:
        """log sum_j pi_j N2(offset | mu_j, sigma_j, rho_j) for ``offset`` ``(..., 2)``."""
        scale = self.scale.clamp(min=SIGMA_MIN)
        rho = self.rho.clamp(-RHO_MAX, RHO_MAX)
        uv = (offset.unsqueeze(-2) - self.loc) / scale  # (..., M, 2)
        u, v = uv[..., 0], uv[..., 1]
        one_minus_rho2 = 1 - rho**2
        z = u**2 + v**2 - 2 * rho * u * v
        log_n2 = -LOG_2PI - scale.log().sum(-1) - 0.5 * torch.log(one_minus_rho2) - z / (2 * one_minus_rho2)
        return torch.logsumexp(F.log_softmax(self.mix_logits, -1) + log_n2, dim=-1)

    def pen_log_prob(self, pen: torch.Tensor) -> torch.Tensor:
        """sum_k p_k log q_k for one-hot (or soft) pen states ``(..., 3)``."""
        return (pen * F.log_softmax(self.pen_logits, -1)).sum(-1)

    def log_prob(self, value: torch.Tensor) -> torch.Tensor:
        return self.offset_log_prob(value[..., :2]) + self.pen_log_prob(value[..., 2:])

    def sample(self, sample_shape=torch.Size(), temperature: float = 1.0) -> torch.Tensor:
        """Draw steps at temperature tau: pi and q from softmax(log / tau), Gaussian variance x tau
        (the paper's rule; magenta's code scales the std by tau^2 instead)."""
        with torch.no_grad():
            shape = torch.Size(sample_shape) + self.batch_shape
            component = torch.distributions.Categorical(logits=self.mix_logits / temperature).sample(sample_shape)
            pick = component[..., None, None].expand(*shape, 1, 2)
            loc = self.loc.expand(*shape, *self.loc.shape[-2:]).gather(-2, pick).squeeze(-2)
            scale = self.scale.clamp(min=SIGMA_MIN).expand(*shape, *self.scale.shape[-2:]).gather(-2, pick).squeeze(-2)
            rho = self.rho.clamp(-RHO_MAX, RHO_MAX).expand(*shape, self.rho.shape[-1]).gather(-1, component[..., None])
            scale = scale * math.sqrt(temperature)
            e1, e2 = torch.randn(shape + (2,), dtype=loc.dtype, device=loc.device).unbind(-1)
            rho = rho.squeeze(-1)
            dx = loc[..., 0] + scale[..., 0] * e1
            dy = loc[..., 1] + scale[..., 1] * (rho * e1 + torch.sqrt(1 - rho**2) * e2)
            pen = torch.distributions.Categorical(logits=self.pen_logits / temperature).sample(sample_shape)
            return torch.cat([torch.stack([dx, dy], -1), F.one_hot(pen, 3).to(loc.dtype)], -1)


class StrokeSequence(TorchDistribution):
    """A padded stroke-5 sketch given every step's parameters: batch ``(B,)``, event ``(T, 5)``.

    ``log_prob(x)`` sums ``step.offset_log_prob`` over the real points of x and
    ``step.pen_log_prob`` over all T rows (or, with ``mask_pen``, over the real points and the first
    end-of-sketch row), so ``-log_prob / T`` is sketch-rnn's L_R = L_s + L_p.

    :param step: a ``StrokeStep`` with batch ``(..., T)``.
    :param mask_pen: restrict the pen term as described above.
    """

    arg_constraints = {}
    support = constraints.independent(constraints.real_vector, 1)
    has_rsample = False

    def __init__(self, step: StrokeStep, mask_pen: bool = False, validate_args=None) -> None:
        self.step, self.mask_pen = step, mask_pen
        batch, t = step.batch_shape[:-1], step.batch_shape[-1]
        super().__init__(batch, torch.Size([t, 5]), validate_args=validate_args)

    def expand(self, batch_shape, _instance=None) -> StrokeSequence:
        batch_shape = torch.Size(batch_shape)
        return StrokeSequence(self.step.expand(batch_shape + self.event_shape[:1]), self.mask_pen, validate_args=False)

    def terms(self, value: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The offset and pen log-likelihoods of each sketch, both of shape ``batch``."""
        t = value.shape[-2]
        lengths = sketch_lengths(value)
        steps = torch.arange(t, device=value.device)
        real = steps < lengths.unsqueeze(-1)
        offset = (self.step.offset_log_prob(value[..., :2]) * real).sum(-1)
        pen = self.step.pen_log_prob(value[..., 2:])
        if self.mask_pen:
            pen = pen * (steps <= lengths.unsqueeze(-1))
        return offset, pen.sum(-1)

    def log_prob(self, value: torch.Tensor) -> torch.Tensor:
        offset, pen = self.terms(value)
        return offset + pen

    def sample(self, sample_shape=torch.Size(), temperature: float = 1.0) -> torch.Tensor:
        """Each step drawn independently from its own parameters (no feedback: that is the model's
        job); rows after the first end-of-sketch become padding."""
        rows = self.step.sample(sample_shape, temperature)
        ended = torch.cumsum(rows[..., 4], -1) > 0
        pad = torch.tensor([0.0, 0.0, 0.0, 0.0, 1.0], dtype=rows.dtype, device=rows.device)
        return torch.where(ended.unsqueeze(-1), pad, rows)
