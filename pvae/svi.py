"""One SVI step with one fused torch optimiser over the known parameters of a model and a guide.

``pyro.infer.SVI`` finds the parameters anew at every step (a param-only trace of the whole loss),
keeps one torch optimiser per parameter and zeroes gradients one by one. Our models and guides are
``nn.Module``s, so their parameters are known up front: one ``torch.optim.Adam(fused=True)`` updates
all of them in a single kernel. Pyro's validation (site shapes, model/guide agreement, distribution
arguments) runs on the first step, which catches a broken model early, and is then switched off:
on a small VAE it costs about a tenth of each step. ``scripts/bench_step.py`` measures the result
against the same step written by hand.
"""

from __future__ import annotations

import math

import pyro
import torch
from pyro.infer import ELBO
from torch import nn


class NonFinite(ArithmeticError):
    """A step's loss or gradient was NaN or infinite; the parameters were left unchanged."""

    def __init__(self, what: str, loss: float) -> None:
        super().__init__(f"non-finite {what} (loss {loss})")
        self.what, self.loss = what, loss


class SVI:
    """Gradient steps on ``objective`` for ``model.model`` and ``guide.guide``.

    :param model: a Model (ARCHITECTURE.md): an ``nn.Module`` with a ``model(x, y=None)`` method.
    :param guide: a Guide: an ``nn.Module`` with a ``guide(x, y=None)`` method, or ``None`` for a
        model with no latent site to infer.
    :param objective: a ``pyro.infer.ELBO``; its loss is summed over the batch.
    :param optimizer: a torch optimiser over the parameters of ``model`` and ``guide``.
    :param clip_value: if given, clip every gradient element to [-clip_value, clip_value].
    """

    def __init__(
        self,
        model: nn.Module,
        guide: nn.Module | None,
        objective: ELBO,
        optimizer: torch.optim.Optimizer,
        clip_value: float | None = None,
    ) -> None:
        self.model, self.guide, self.objective, self.optimizer = model, guide, objective, optimizer
        self.clip_value = clip_value
        self.params = [p for group in optimizer.param_groups for p in group["params"]]
        self.validated = False

    def _guide_fn(self):
        return self.guide.guide if self.guide is not None else (lambda *args, **kwargs: None)

    def step(self, x: torch.Tensor, y: torch.Tensor | None = None) -> float:
        """One optimiser step on the loss averaged over the batch; returns that loss (nats/datapoint).

        A non-finite loss or gradient raises ``NonFinite`` before the parameters change, so they
        stay as they were after the last good step.
        """
        try:
            with pyro.validation_enabled(not self.validated):
                loss = self.objective.differentiable_loss(self.model.model, self._guide_fn(), x, y) / x.shape[0]
        except ValueError:  # validation refusing NaN parameters: say so when the batch is to blame
            if x.is_floating_point() and not torch.isfinite(x).all():
                raise NonFinite("batch", math.nan) from None
            raise
        self.validated = True
        value = loss.item()
        if not math.isfinite(value):
            self.optimizer.zero_grad(set_to_none=True)
            raise NonFinite("loss", value)
        loss.backward()
        grads = [p.grad for p in self.params if p.grad is not None]
        if grads and not torch.isfinite(torch.stack([g.abs().sum() for g in grads]).sum()):
            self.optimizer.zero_grad(set_to_none=True)
            raise NonFinite("gradient", value)
        if self.clip_value is not None:
            torch.nn.utils.clip_grad_value_(self.params, self.clip_value)
        self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)
        return value

    @torch.no_grad()
    def evaluate(self, x: torch.Tensor, y: torch.Tensor | None = None) -> float:
        """The objective's loss on a batch without a gradient step (nats/datapoint)."""
        with pyro.validation_enabled(False):
            loss = self.objective.differentiable_loss(self.model.model, self._guide_fn(), x, y)
        return loss.item() / x.shape[0]


def make_optimizer(params, lr: float, **kwargs) -> torch.optim.Optimizer:
    """Adam over ``params``, fused into one kernel where the device supports it."""
    try:
        return torch.optim.Adam(params, lr=lr, fused=True, **kwargs)
    except (RuntimeError, TypeError):  # a torch or device without the fused kernel
        return torch.optim.Adam(params, lr=lr, **kwargs)
