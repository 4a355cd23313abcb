"""Event sequences of MusicVAE (Roberts et al. 2018): one categorical token per time step.

A melody of T sixteenth-note steps is a token sequence x_1..x_T over a vocabulary of V events
(no-event, note-off, a note-on per pitch; ``pvae.kinds.events.encoding``). Given every step's logits,

    log p(x) = sum_t log softmax(l_t)[x_t]

which is what an autoregressive decoder scores with teacher forcing (l_t computed from x_<t).
"""

from __future__ import annotations

import torch
from pyro.distributions import TorchDistribution
from torch.distributions import constraints
from torch.nn import functional as F


class EventSequence(TorchDistribution):
    """A token sequence given each step's logits: batch ``logits.shape[:-2]``, event ``(T,)``.

    :param logits: ``(..., T, V)`` unnormalised log-probabilities of each step's event.
    """

    arg_constraints = {"logits": constraints.real}
    support = constraints.independent(constraints.nonnegative_integer, 1)
    has_rsample = False

    def __init__(self, logits: torch.Tensor, validate_args=None) -> None:
        if logits.dim() < 2:
            raise ValueError(f"logits must be (..., T, V), not {tuple(logits.shape)}")
        self.logits = logits
        super().__init__(logits.shape[:-2], logits.shape[-2:-1], validate_args=validate_args)

    def expand(self, batch_shape, _instance=None) -> EventSequence:
        batch_shape = torch.Size(batch_shape)
        return EventSequence(self.logits.expand(batch_shape + self.logits.shape[-2:]), validate_args=False)

    def step_log_prob(self, value: torch.Tensor) -> torch.Tensor:
        """log softmax(l_t)[x_t] of every step: ``batch + (T,)``."""
        logits = self.logits.expand(value.shape + self.logits.shape[-1:])
        return F.log_softmax(logits, -1).gather(-1, value.long().unsqueeze(-1)).squeeze(-1)

    def log_prob(self, value: torch.Tensor) -> torch.Tensor:
        value, _ = torch.broadcast_tensors(value, self.logits[..., 0])
        return self.step_log_prob(value).sum(-1)

    def sample(self, sample_shape=torch.Size(), temperature: float = 1.0) -> torch.Tensor:
        """Each step drawn independently from softmax(l_t / tau) (no feedback: that is the
        decoder's job); tau = 0 takes the most likely event."""
        with torch.no_grad():
            logits = self.logits.expand(torch.Size(sample_shape) + self.logits.shape)
            if temperature == 0:
                return logits.argmax(-1)
            return torch.distributions.Categorical(logits=logits / temperature).sample()
