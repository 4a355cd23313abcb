"""SVG-VAE's distribution over drawing commands (Lopes et al. 2019): per step a categorical over
the command and a 1-D Gaussian mixture over each argument that the command uses.

A glyph is a sequence of T rows ``(c, a_1, ..., a_6)``: the command c (``EOS``, ``MOVE``, ``LINE``,
``CURVE``, stored as a float) and six arguments ``(c1x, c1y, c2x, c2y, x, y)``, the control points
and end point of a cubic Bezier curve; moveTo and lineTo use the end point alone (``USES``). Rows
after the first ``EOS`` are padding. Per step t, with K mixture components per argument,

    log p(row_t) = log softmax(l_t)[c_t] + sum_{j : USES[c_t, j]} log sum_k pi_tjk N(a_tj | mu_tjk, sigma_tjk)

and log p(x) sums the steps up to and including the first ``EOS`` (all T without one). The
arguments a command does not use never enter the likelihood, whatever they hold.
"""

from __future__ import annotations

import math

import torch
from pyro.distributions import TorchDistribution
from torch.distributions import constraints
from torch.nn import functional as F

COMMANDS = ("EOS", "M", "L", "C")  # the command ids 0-3 as SVG path letters (EOS ends the glyph)
EOS, MOVE, LINE, CURVE = range(4)
ARGS = 6  # (c1x, c1y, c2x, c2y, x, y)
ROW = 1 + ARGS  # one command row: the command, then its arguments
USES = ((False,) * 6, (False,) * 4 + (True,) * 2, (False,) * 4 + (True,) * 2, (True,) * 6)  # USES[c][j]
SIGMA_MIN = 1e-3
LOG_2PI = math.log(2 * math.pi)


def command_lengths(x: torch.Tensor) -> torch.Tensor:
    """The rows of command sequences ``(..., T, 7)`` that count: up to and including the first
    ``EOS`` (T without one), ``(...)`` long."""
    ended = x[..., 0].round() == EOS
    first = ended.int().argmax(-1)
    return torch.where(ended.any(-1), first + 1, torch.full_like(first, x.shape[-2]))


class CommandSequence(TorchDistribution):
    """Command sequences given every step's parameters: batch ``command_logits.shape[:-2]``, event ``(T, 7)``.

    :param command_logits: ``(..., T, 4)`` unnormalised log probabilities of the commands.
    :param mix_logits: ``(..., T, 6, K)`` unnormalised log weights of each argument's components.
    :param loc: ``(..., T, 6, K)`` component means.
    :param scale: ``(..., T, 6, K)`` component standard deviations (floored at ``SIGMA_MIN``).
    """

    arg_constraints = {
        "command_logits": constraints.real,
        "mix_logits": constraints.real,
        "loc": constraints.real,
        "scale": constraints.positive,
    }
    support = constraints.independent(constraints.real_vector, 1)
    has_rsample = False

    def __init__(self, command_logits, mix_logits, loc, scale, validate_args=None) -> None:
        self.command_logits, self.mix_logits, self.loc = command_logits, mix_logits, loc
        self.scale = scale.clamp(min=SIGMA_MIN)
        batch, t = command_logits.shape[:-2], command_logits.shape[-2]
        super().__init__(batch, torch.Size([t, ROW]), validate_args=validate_args)

    def expand(self, batch_shape, _instance=None) -> CommandSequence:
        new = self._get_checked_instance(CommandSequence, _instance)
        batch_shape = torch.Size(batch_shape)
        t, k = self.command_logits.shape[-2], self.loc.shape[-1]
        new.command_logits = self.command_logits.expand(batch_shape + (t, 4))
        new.mix_logits, new.loc, new.scale = (p.expand(batch_shape + (t, ARGS, k)) for p in self.params())
        super(CommandSequence, new).__init__(batch_shape, self.event_shape, validate_args=False)
        new._validate_args = self._validate_args
        return new

    def params(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """The mixtures' ``(mix_logits, loc, scale)``."""
        return self.mix_logits, self.loc, self.scale

    def terms(self, value: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The command and argument log-likelihoods of each sequence, both of shape ``batch``
        (``value`` broadcast against it)."""
        value = value.expand(torch.broadcast_shapes(value.shape[:-2], self.batch_shape) + self.event_shape)
        commands = value[..., 0].round().long().clamp(0, len(COMMANDS) - 1)  # (..., T)
        steps = torch.arange(value.shape[-2], device=value.device)
        counted = steps < command_lengths(value).unsqueeze(-1)  # (..., T)
        command = F.log_softmax(self.command_logits, -1).gather(-1, commands.unsqueeze(-1)).squeeze(-1)
        a = value[..., 1:].unsqueeze(-1)  # (..., T, 6, 1)
        normal = -0.5 * ((a - self.loc) / self.scale) ** 2 - self.scale.log() - 0.5 * LOG_2PI
        per_arg = torch.logsumexp(F.log_softmax(self.mix_logits, -1) + normal, -1)  # (..., T, 6)
        uses = torch.tensor(USES, device=value.device)[commands] & counted.unsqueeze(-1)
        args = torch.where(uses, per_arg, torch.zeros_like(per_arg)).sum((-1, -2))
        return torch.where(counted, command, torch.zeros_like(command)).sum(-1), args

    def log_prob(self, value: torch.Tensor) -> torch.Tensor:
        command, args = self.terms(value)
        return command + args

    def sample(self, sample_shape=torch.Size(), temperature: float = 1.0) -> torch.Tensor:
        """Each step drawn from its own parameters (no feedback: that is the decoder's job), with
        the logits divided by ``temperature`` and the standard deviations times its square root (as
        sketch-rnn); unused arguments are 0 and rows after the first ``EOS`` are ``EOS`` rows of zeros."""
        shape = torch.Size(sample_shape) + self.command_logits.shape
        with torch.no_grad():
            logits = (self.command_logits / temperature).expand(shape)
            commands = torch.distributions.Categorical(logits=logits).sample()  # (..., T)
            k_shape = torch.Size(sample_shape) + self.loc.shape
            pick = torch.distributions.Categorical(logits=(self.mix_logits / temperature).expand(k_shape)).sample()
            loc = self.loc.expand(k_shape).gather(-1, pick.unsqueeze(-1)).squeeze(-1)
            scale = self.scale.expand(k_shape).gather(-1, pick.unsqueeze(-1)).squeeze(-1) * math.sqrt(temperature)
            args = loc + scale * torch.randn_like(loc)
            uses = torch.tensor(USES, device=loc.device)[commands]
            ended = torch.cumsum((commands == EOS).int(), -1) - (commands == EOS).int() > 0  # after the first EOS
            commands = torch.where(ended, torch.full_like(commands, EOS), commands)
            args = torch.where(uses & ~ended.unsqueeze(-1), args, torch.zeros_like(args))
            return torch.cat([commands.unsqueeze(-1).to(args), args], -1)
