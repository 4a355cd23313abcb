"""What every objective shares: the capabilities it declares (``Objective``), and the traces of a
contract pair written down without Pyro's effect handlers (``contract_traces``: the same traces
``get_importance_trace`` gives, 0.26 to 0.64 ms a step less), which the objectives read where the
model and guide follow the contracts and trace the programs as Pyro does elsewhere.
"""

from __future__ import annotations

from typing import ClassVar

import torch
from pyro.distributions.torch_distribution import TorchDistributionMixin
from pyro.distributions.util import is_identically_zero
from pyro.infer import ELBO
from pyro.infer.util import is_validation_enabled, torch_item
from pyro.poutine.indep_messenger import CondIndepStackFrame
from pyro.poutine.runtime import am_i_wrapped
from pyro.poutine.trace_struct import Trace
from pyro.poutine.util import site_is_subsample
from pyro.util import warn_if_nan
from torch import nn

from pvae.contracts import Guide, Model, Option


class Objective:
    """What an objective class declares about itself, read before it is built (class attributes).

    :cvar name: its key in ``OBJECTIVES`` (``--objective NAME``); a class without a name of its own
        is a base for others and is not registered.
    :cvar options: the ``Option`` s its constructor reads (``pvae.options`` gathers every part's).
    :cvar closed_form_kl: its KL terms are KL(q || p) in closed form wherever torch has one.
    :cvar requires_density: it needs q to be a density (the guide's ``density``): importance
        weights p / q and the gradients of log q mean nothing for a point estimate.
    :cvar uses_kl: its loss holds the latent sites' log p(z) - log q(z | x), which the KL controls
        (weight, annealing, floor) act on.
    :cvar data_kinds: the data kinds it reads (``None``: any; ``ali``'s discriminator reads images).
    :cvar trains_prior: its loss differentiates log p(z); the adversarial ones only sample the prior,
        so they refuse a model whose prior has parameters (``Model.prior_has_parameters``).
    :cvar traceable: its loss is a function of tensors alone, so ``torch.jit.trace`` records it
        (``pvae train --jit``); not where gradients are changed by hooks that run in Python.
    """

    name: ClassVar[str]
    options: ClassVar[tuple[Option, ...]] = ()
    closed_form_kl: bool = False
    requires_density: bool = False
    uses_kl: bool = True
    trains_prior: bool = True
    traceable: bool = False
    data_kinds: tuple[str, ...] | None = None  # the data kinds it reads; None: any
    lr_ratio: float = 1.0  # learning rate of ``networks()`` over the model's and guide's

    def networks(self) -> list[nn.Module]:
        """Modules the objective trains besides the model and the guide (a discriminator)."""
        return []

    def refusal(self, model: Model) -> str | None:
        """Why this objective, as built (its options), cannot train ``model``: one line, or ``None``."""
        return None


def contract_call(model, guide, args, kwargs) -> tuple[Model, Guide, torch.Tensor, torch.Tensor | None] | None:
    """(model module, guide module, x, y) when ``model`` and ``guide`` are the unmodified Pyro programs
    of the contracts (``Model.model`` and ``Guide.guide`` bound to their modules), called on data x
    (and a condition y), with no Pyro handler around the call and validation off; else ``None``."""
    if am_i_wrapped() or is_validation_enabled():
        return None
    if getattr(model, "__func__", None) is not Model.model or getattr(guide, "__func__", None) is not Guide.guide:
        return None
    if kwargs or not 1 <= len(args) <= 2 or not isinstance(args[0], torch.Tensor):
        return None
    return model.__self__, guide.__self__, args[0], args[1] if len(args) == 2 else None


def _contract_site(name: str, fn, value: torch.Tensor, frames: tuple, batch: torch.Size, observed: bool) -> dict:
    """A sample site as Pyro's trace records it inside ``frames``, ``fn`` broadcast to the plates'
    ``batch`` shape as ``BroadcastMessenger`` does."""
    return dict(
        type="sample", name=name, fn=broadcast_to(fn, batch), value=value, is_observed=observed, args=(),
        kwargs={}, infer={}, scale=1.0, mask=None, cond_indep_stack=frames, done=True, stop=False, continuation=None,
    )  # fmt: skip


def contract_plates(n: int, particles: int | None, particle_dim: int) -> tuple[tuple, torch.Size]:
    """The plate frames of a contract pair's sites (K = ``particles`` at ``particle_dim``, if any,
    outside the data plate of ``n`` datapoints) and the batch shape they broadcast a site to."""
    frames: tuple = (CondIndepStackFrame("data", -1, n, 0),)
    batch = torch.Size([n])
    if particles is not None:
        frames = (CondIndepStackFrame("num_particles_vectorized", particle_dim, particles, 0), *frames)
        batch = torch.Size([particles, *[1] * (-particle_dim - 2), n])
    return frames, batch


def broadcast_to(fn, batch: torch.Size):
    """``fn`` expanded to the plates' ``batch`` shape, as ``BroadcastMessenger`` does."""
    return fn.expand(batch) if isinstance(fn, TorchDistributionMixin) and fn.batch_shape != batch else fn


def contract_traces(
    model, guide, args, kwargs, particles: int | None, particle_dim: int, posterior=None, value=None
) -> tuple[Trace, Trace] | None:
    r"""The (model trace, guide trace) that ``get_importance_trace`` returns for a contract pair,
    built without Pyro's effect handlers; ``None`` where the pair or the call is not one
    (``contract_call``), and the objectives then trace the programs as Pyro does.

    The programs are fixed by the contracts (``pvae.contracts``), with K = ``particles`` in a plate at
    ``particle_dim`` (``None``: no particle plate) outside the data plate of B datapoints:

        guide:  z ~ q(z | x, y)            model:  z ~ p(z | y),  x ~ p(x | z, y)  (observed)

    so the traces are written down directly: the same distributions broadcast to the plates, the
    same draws in the same order (z = q.rsample() of the broadcast q), log p and the score parts
    computed by ``Trace`` itself. The sites carry no ``pyro.module`` parameters: this path runs
    only outside any handler, so never under ``pyro.infer.SVI``, whose parameter capture is one.
    Tests check every objective's value and gradients against the traced path from the same seed.
    0.26 to 0.64 ms a step less on the 784-400-50 VAE (docs/results.md, Speed). ``posterior``: the
    guide's q(z | x, y) where the caller has built it already, and ``value`` its draw (broadcast
    to the plates) where the caller has drawn it.
    """
    call = contract_call(model, guide, args, kwargs)
    if call is None:
        return None
    model, guide, x, y = call
    n = x.shape[0]
    frames, batch = contract_plates(n, particles, particle_dim)
    q = guide.posterior(x, y) if posterior is None else posterior
    guide_site = _contract_site("z", q, None, frames, batch, False)
    q = guide_site["fn"]
    if value is None:
        value = q.rsample() if q.has_rsample else q.sample()
    z = guide_site["value"] = value
    guide_trace, model_trace = Trace(), Trace()
    guide_trace.add_node("z", **guide_site)
    model_trace.add_node("z", **_contract_site("z", model.prior(n, y), z, frames, batch, False))
    model_trace.add_node("x", **_contract_site("x", model.likelihood(z, y), x, frames, batch, True))
    model_trace.compute_log_prob()
    guide_trace.compute_score_parts()
    return model_trace, guide_trace


def _is_latent(site) -> bool:
    return site["type"] == "sample" and not site["is_observed"] and not site_is_subsample(site)


def _reparameterised(guide_trace) -> bool:
    """No guide site of ``guide_trace`` (with score parts) has a score-function term."""
    return all(
        is_identically_zero(site["score_parts"].score_function)
        for site in guide_trace.nodes.values()
        if site["type"] == "sample"
    )


class _ContractTraced:
    """``Trace_ELBO``'s trace hooks, taking ``contract_traces`` wherever it applies."""

    def _get_trace(self, model, guide, args, kwargs):
        traces = contract_traces(model, guide, args, kwargs, None, -1)
        return traces if traces is not None else super()._get_trace(model, guide, args, kwargs)

    def _get_vectorized_trace(self, model, guide, args, kwargs):
        particles = self.num_particles if self.num_particles > 1 else None  # as ``_vectorized_num_particles``
        traces = contract_traces(model, guide, args, kwargs, particles, -self.max_plate_nesting)
        return traces if traces is not None else super()._get_vectorized_trace(model, guide, args, kwargs)


class _LossFromDifferentiable(Objective, ELBO):
    """An ELBO whose ``differentiable_loss`` is the one definition: ``loss`` and ``loss_and_grads``
    (what ``pyro.infer.SVI`` calls) follow from it."""

    def _get_trace(self, model, guide, args, kwargs):  # abstract in ELBO; nothing here draws traces through it
        raise NotImplementedError(f"{type(self).__name__}: use differentiable_loss")

    def loss(self, model, guide, *args, **kwargs) -> float:
        with torch.no_grad():
            return torch_item(self.differentiable_loss(model, guide, *args, **kwargs))

    def loss_and_grads(self, model, guide, *args, **kwargs) -> float:
        loss = self.differentiable_loss(model, guide, *args, **kwargs)
        loss.backward(retain_graph=self.retain_graph)
        value = torch_item(loss)
        warn_if_nan(value, "loss")
        return value
