"""One SVI step with one fused torch optimiser over the known parameters of a model and a guide.

``pyro.infer.SVI`` finds the parameters anew at every step (a param-only trace of the whole loss),
keeps one torch optimiser per parameter and zeroes gradients one by one. Our models and guides are
``nn.Module``s, so their parameters are known up front: one ``torch.optim.Adam(fused=True)`` updates
all of them in a single kernel. Pyro's validation (site shapes, model/guide agreement, distribution
arguments) runs on the first step, which catches a broken model early, and is then switched off:
on a small VAE it costs about a tenth of each step. ``scripts/bench_step.py`` measures the result
against the same step written by hand.

With ``jit=True`` (``pvae train --jit``) the loss is recorded by ``torch.jit.trace`` once per batch
shape and replayed (``TracedLoss``), as Pyro's ``JitTrace_ELBO`` does: the Python of Pyro's traces,
pvae's modules and distribution objects runs once per shape instead of once per step.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable
from typing import Any

import pyro
import torch
from pyro.infer import ELBO
from pyro.poutine.runtime import am_i_wrapped
from torch import nn

from pvae import distributed
from pvae.contracts import Option
from pvae.distributed import Ranks
from pvae.errors import UserError
from pvae.objectives import KLControl, KLControlled, Objective


class NonFinite(ArithmeticError):
    """A step's loss or gradient was NaN or infinite; the parameters were left unchanged."""

    def __init__(self, what: str, loss: float) -> None:
        super().__init__(f"non-finite {what} (loss {loss})")
        self.what, self.loss = what, loss


FLAGS = 2  # numbers a step can share with the other ranks besides its loss (the trainer's stop and checkpoint)


class ObjectiveLoss(nn.Module):
    """The objective's differentiable loss of a batch as a module, whose submodules are the model,
    the guide and the objective's own networks (``Objective.networks``: a discriminator): the one
    module ``DistributedDataParallel`` wraps (``pvae.distributed``).

    ``report`` is a side channel through the gradient all-reduce: a parameter that no optimiser
    updates, added to the loss as ``report . values``, so after backward its gradient holds the
    ``values`` of every rank, scaled and averaged as the loss is. The ranks learn each other's
    loss sums and flags (stop, checkpoint due) without a collective of their own.
    """

    def __init__(self, model: nn.Module, guide: nn.Module | None, objective: ELBO, reports: int = 0) -> None:
        super().__init__()
        self.model, self.guide, self.objective = model, guide, objective
        self.networks = nn.ModuleList(objective.networks() if isinstance(objective, Objective) else [])
        self.report = nn.Parameter(torch.zeros(reports))

    def forward(self, x: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        """The loss summed over the batch; a rank with no datapoints in a step gives a zero that
        still reaches every parameter (as DDP's reducer expects)."""
        if x.shape[0] == 0:
            return sum(p.sum() for p in self.parameters()) * 0.0
        guide = self.guide.guide if self.guide is not None else _no_guide
        return self.objective.differentiable_loss(self.model.model, guide, x, y)


def _no_guide(*args, **kwargs) -> None:
    """The guide of a model without latent sites."""


class _WeightAsInput(nn.Module):
    """``ObjectiveLoss`` with the KL weight w as its first argument, a 0-dim tensor, so that a trace
    reads w at every call instead of keeping the number it saw (the trainer anneals w)."""

    def __init__(self, loss: ObjectiveLoss, control: KLControl | None) -> None:
        super().__init__()
        self.loss, self.control = loss, control

    def forward(self, weight: torch.Tensor, x: torch.Tensor, *y: torch.Tensor) -> torch.Tensor:
        if self.control is None:
            return self.loss(x, *y)
        kept, self.control.weight = self.control.weight, weight
        try:
            return self.loss(x, *y)
        finally:
            self.control.weight = kept


class TracedLoss:
    """``ObjectiveLoss`` recorded by ``torch.jit.trace`` once per batch signature (the shapes,
    dtypes and devices of x and y), then replayed: the recorded graph of tensor operations runs,
    and none of the Python that built it (Pyro's trace records, effect handlers, pvae's modules and
    distribution objects). Random draws are operations in the graph, so each call draws anew.
    The graph runs as recorded (``torch.jit.optimized_execution(False)``): the optimising executor
    may reorder random draws, so that the same random state gives other (equally distributed)
    numbers than the eager program, and on CPU it was no faster here.

    A trace keeps every value that Python computed while it was recorded. So it is used only for
    programs that declare ``traceable`` (their Python depends on the shapes of the inputs alone),
    the KL weight, which the trainer changes, is an input of the trace, and each new trace is
    checked: from one random state, the recorded loss and its gradients must equal the eager ones
    (relative ``TOLERANCE``), or ``UserError``. Recording and checking run on a forked random
    state, so a run draws the same numbers with and without tracing. A call inside a Pyro handler
    (which a trace would keep) and a batch whose eager loss or gradients are not finite (nothing
    to compare; ``SVI.step`` then raises ``NonFinite``) take the eager program.
    """

    TOLERANCE = 1e-4

    def __init__(self, module: ObjectiveLoss) -> None:
        objective = module.objective
        self.module = _WeightAsInput(module, objective.control if isinstance(objective, KLControlled) else None)
        self.named = [(name, p) for name, p in module.named_parameters() if p.requires_grad]
        self.traces: dict[tuple, torch.jit.ScriptModule] = {}
        self.weight = torch.ones((), dtype=torch.float64)  # w as the trainer holds it, a Python float

    def __call__(self, x: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        """The loss summed over the batch, as ``ObjectiveLoss(x, y)``."""
        args = (x,) if y is None else (x, y)
        if self.weight.device != x.device:
            self.weight = self.weight.to(x.device)
        if self.module.control is not None:
            self.weight.fill_(self.module.control.weight)
        if am_i_wrapped():
            return self.module(self.weight, *args)
        key = tuple((a.shape, a.dtype, a.device) for a in args)
        traced = self.traces.get(key)
        if traced is None:
            traced = self._record(args)
            if traced is None:
                return self.module(self.weight, *args)
            self.traces[key] = traced
        with torch.jit.optimized_execution(False):
            return traced(self.weight, *args)

    def _record(self, args: tuple[torch.Tensor, ...]) -> torch.jit.ScriptModule | None:
        """The checked trace for inputs like ``args``; ``None`` when the eager loss or a gradient is
        not finite there."""
        inputs = (self.weight, *args)
        device = args[0].device
        forked = [] if device.type == "cpu" else range(torch.get_device_module(device.type).device_count())
        with warnings.catch_warnings(), torch.random.fork_rng(forked, device_type=device.type):
            # torch.jit's deprecation, and TracerWarnings on the shape tests every program makes
            warnings.simplefilter("ignore")
            traced = torch.jit.trace(self.module, inputs, check_trace=False)
            eager = self._loss_and_grads(self.module, inputs)
            if not all(t is None or bool(torch.isfinite(t).all()) for t in eager.values()):
                return None
            with torch.jit.optimized_execution(False):
                recorded = self._loss_and_grads(traced, inputs)
        for name, value in eager.items():
            other = recorded[name]
            if (value is None) != (other is None) or (value is not None and not self._close(value, other)):
                what = "loss" if name == "loss" else f"gradient of {name}"
                raise UserError(
                    f"--jit: the traced {what} differs from the eager one for this model, guide and objective; "
                    "train without --jit"
                )
        return traced

    def _loss_and_grads(
        self, fn: Callable[..., torch.Tensor], inputs: tuple[torch.Tensor, ...]
    ) -> dict[str, torch.Tensor | None]:
        """``{"loss": the loss, parameter name: its gradient}`` from one fixed random state; the
        parameters' ``.grad`` is left as it was."""
        kept = [p.grad for _, p in self.named]
        for _, p in self.named:
            p.grad = None
        torch.manual_seed(0)
        loss = fn(*inputs)
        loss.backward()
        out = {"loss": loss.detach(), **{name: p.grad for name, p in self.named}}
        for (_, p), g in zip(self.named, kept):
            p.grad = g
        return out

    def _close(self, eager: torch.Tensor, recorded: torch.Tensor) -> bool:
        """|recorded - eager| <= TOLERANCE max |eager|, elementwise."""
        if not eager.numel():
            return True
        return bool((eager - recorded).abs().max() <= self.TOLERANCE * eager.abs().max())


class SVI:
    """Gradient steps on ``objective`` for ``model.model`` and ``guide.guide``.

    :param model: a Model (``docs/architecture.md``): an ``nn.Module`` with a ``model(x, y=None)`` method.
    :param guide: a Guide: an ``nn.Module`` with a ``guide(x, y=None)`` method, or ``None`` for a
        model with no latent site to infer.
    :param objective: a ``pyro.infer.ELBO``; its loss is summed over the batch.
    :param optimizer: a torch optimiser over the parameters of ``model`` and ``guide``.
    :param clip_value: if given, clip every gradient element to [-clip_value, clip_value].
    :param ranks: the data-parallel processes (``pvae.distributed``); one by default.
    :param jit: after the first (validated) step, compute the loss by ``TracedLoss``: for programs
        whose Python depends on the shapes of their inputs alone (``traceable``; the trainer
        refuses others); one process only.
    """

    def __init__(
        self,
        model: nn.Module,
        guide: nn.Module | None,
        objective: ELBO,
        optimizer: torch.optim.Optimizer,
        clip_value: float | None = None,
        ranks: Ranks = Ranks(),
        jit: bool = False,
    ) -> None:
        if jit and ranks.parallel:
            raise ValueError("jit traces the loss in one process; it does not run under data parallelism")
        self.optimizer, self.clip_value, self.ranks = optimizer, clip_value, ranks
        self.params = [p for group in optimizer.param_groups for p in group["params"]]
        device = next(model.parameters()).device
        self.module = ObjectiveLoss(model, guide, objective, reports=1 + FLAGS).to(device)
        self.loss = distributed.wrap(self.module, ranks, device)
        self.traced = TracedLoss(self.module) if jit else None
        self.validated = False
        self.loss_sum, self.flags = 0.0, [0.0] * FLAGS

    def step(
        self, x: torch.Tensor, y: torch.Tensor | None = None, total: int | None = None, flags: tuple = ()
    ) -> float:
        """One optimiser step on the mean loss of a batch; returns the mean loss of ``x`` (nats per
        datapoint; NaN for no datapoints).

        :param x: this rank's datapoints (all of them in one process).
        :param total: the datapoints of the whole batch over all ranks (default ``len(x)``): the
            loss is scaled by N / total, so the gradient DDP averages is that of the batch's mean.
        :param flags: up to ``FLAGS`` numbers to sum over the ranks with the gradients; after the
            step ``self.flags`` holds the sums and ``self.loss_sum`` the batch's summed loss.

        A non-finite loss or gradient (on any rank, so on all) raises ``NonFinite`` before the
        parameters change, so they stay as they were after the last good step.
        """
        total = x.shape[0] if total is None else total
        try:
            with pyro.validation_enabled(not self.validated):
                summed = self.traced(x, y) if self.traced is not None and self.validated else self.loss(x, y)
        except ValueError:  # validation refusing NaN parameters: say so when the batch is to blame
            if x.is_floating_point() and not torch.isfinite(x).all():
                raise NonFinite("batch", math.nan) from None
            raise
        self.validated = True
        local = summed.item()
        value = local / x.shape[0] if x.shape[0] else math.nan
        flags = [float(f) for f in flags] + [0.0] * (FLAGS - len(flags))
        if self.ranks.parallel:  # the values ride on the gradient all-reduce (``ObjectiveLoss.report``)
            shared = torch.tensor([local, *flags], device=summed.device)
            ((summed + (self.module.report * shared).sum()) * (self.ranks.world / total)).backward()
            reported = (self.module.report.grad * total).tolist()  # each value summed over the ranks
            self.module.report.grad = None
            self.loss_sum, self.flags = reported[0], reported[1:]
        else:
            (summed / total).backward()
            self.loss_sum, self.flags = local, flags
        if not math.isfinite(self.loss_sum):
            self.optimizer.zero_grad(set_to_none=True)
            raise NonFinite("loss", value)
        if not self._finite_gradients():
            self.optimizer.zero_grad(set_to_none=True)
            raise NonFinite("gradient", value)
        if self.clip_value is not None:
            torch.nn.utils.clip_grad_value_(self.params, self.clip_value)
        self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)
        return value

    def _finite_gradients(self) -> bool:
        """Whether every gradient element is finite (NaN and inf alike); under data parallelism
        after the all-reduce, so that every rank decides alike."""
        return all_finite([p.grad for p in self.params if p.grad is not None])


def all_finite(tensors: list[torch.Tensor]) -> bool:
    """Whether every element of ``tensors`` (the gradients) is finite, in one fused pass per device
    and dtype: the check torch's ``GradScaler`` makes before an optimiser step, with a scale of 1
    (g * 1 = g exactly). Reading every gradient once after backward cost half of what a sum per
    parameter taken by a hook did (2.5% against 5% of a batch-20 step, docs/results.md, Speed)."""
    groups: dict[tuple, list[torch.Tensor]] = {}
    for t in tensors:
        groups.setdefault((t.device, t.dtype), []).append(t)
    for (device, _), group in groups.items():
        found, one = torch.zeros(1, device=device), torch.ones(1, device=device)
        torch._amp_foreach_non_finite_check_and_unscale_(group, found, one)
        if found.item():
            return False
    return True


def make_optimizer(params, lr: float, **kwargs) -> torch.optim.Optimizer:
    """Adam over ``params``, fused into one kernel where the device supports it."""
    try:
        return torch.optim.Adam(params, lr=lr, fused=True, **kwargs)
    except (RuntimeError, TypeError):  # a torch or device without the fused kernel
        return torch.optim.Adam(params, lr=lr, **kwargs)


def iwae_lr_factor(epoch: int) -> float:
    """Burda et al.'s schedule: stage i = 1, 2, ... lasts 3^(i-1) epochs at lr * 10^(-(i-1)/7)
    (eight stages, 3280 epochs, in the paper); ``epoch`` counts from 0."""
    stage, end = 1, 1
    while epoch >= end:
        stage += 1
        end += 3 ** (stage - 1)
    return 10 ** (-(stage - 1) / 7)


def sketch_lr(config, step: int) -> float:
    """sketch-rnn's decay: (lr - min_lr) * decay^step + min_lr."""
    return (config.lr - config.min_lr) * config.lr_decay**step + config.min_lr


LR_SCHEDULES: dict[str, Callable[[Any, int, int], float]] = {
    "constant": lambda config, epoch, step: config.lr,
    "iwae": lambda config, epoch, step: config.lr * iwae_lr_factor(epoch),
    "sketch": lambda config, epoch, step: sketch_lr(config, step),
}
"""The learning rate of a run's config at (epoch, step): ``iwae`` (Burda et al.): stage i lasts
3^(i-1) epochs at lr 10^(-(i-1)/7); ``sketch`` (Ha & Eck): lr_s = (lr - min_lr) decay^s + min_lr."""

_sketch_schedule = (lambda c: c.lr_schedule == "sketch", "--lr-schedule sketch")
OPTIMISER_OPTIONS = (
    Option("lr", 1e-3, "Adam learning rate", "optimiser", float, low=0.0, low_open=True),
    Option("adam_betas", [0.9, 0.999], "Adam betas", "optimiser", float, low=0.0, high=1.0, high_open=True, nargs=2,
           metavar="B"),
    Option("adam_eps", 1e-8, "Adam epsilon", "optimiser", float, low=0.0, low_open=True),
    Option("lr_schedule", "constant", "constant; iwae (Burda et al.); sketch (decay to --min-lr)", "optimiser",
           choices=tuple(LR_SCHEDULES)),
    Option("lr_decay", 0.9999, "sketch schedule: lr decay per step", "optimiser", float, low=0.0,
           low_open=True, high=1.0, needs=_sketch_schedule),
    Option("min_lr", 1e-5, "sketch schedule: the lr it decays to", "optimiser", float, low=0.0, low_open=True,
           needs=_sketch_schedule),
    Option("clip_value", None, "clip every gradient element to +-this", "optimiser", float, low=0.0, low_open=True,
           optional=True, default_text="no clipping"),
)  # fmt: skip
"""The optimiser's options, read by the trainer (``make_optimizer``, ``LR_SCHEDULES``, ``SVI``'s clipping)."""
