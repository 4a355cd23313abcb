"""Objectives by name (``OBJECTIVES``): each is a ``pyro.infer.ELBO``, so plain ``pyro.infer.SVI``
accepts it, and each builds its traces with Pyro's public API (``get_importance_trace``, poutine),
or, for a model and guide that follow the contracts, writes the same traces down directly
(``contract_traces``: no effect handlers, 0.26 to 0.64 ms a step less).

- ``elbo``: ``TraceELBO``, Pyro's ``Trace_ELBO`` (the Monte Carlo ELBO E_q[log p(x, z) - log q(z | x)])
  with a shorter gradient path for reparameterised guides.
- ``meanfield`` (the default): ``MeanFieldELBO``, Pyro's ``TraceMeanField_ELBO``: the same bound
  with KL(q || p) in closed form wherever torch has it, by Monte Carlo elsewhere.
- ``iwae``: ``IWAE``, the per-datapoint importance-weighted bound of Burda et al. (2015).

Gradient estimators beyond Pyro: the same loss value as the parent bound, other gradients (every
guide site must be reparameterised):

- ``elbo-stl``: ``ELBOSTL``, the ELBO with "sticking the landing" (Roeder et al. 2017): log q(z|x)
  is evaluated with detached guide parameters at the reparameterised z, which drops the score
  term  -grad_phi log q_phi(z)|_z  (zero in expectation) and keeps the path term. Unbiased.
- ``iwae-stl``: ``IWAESTL``, the IWAE bound with the same change. For K > 1 the dropped term
  -sum_k w~_k grad_phi log q(z_k) is *not* zero in expectation, so this estimator is biased
  (Tucker et al. 2018, sec. 3); it is here for comparison.
- ``iwae-dreg``: ``IWAEDReG``, the doubly reparameterised IWAE gradient (Tucker et al. 2018):
  model gradients as IWAE's, guide gradients through z only, weighted by w~_k^2. Unbiased.

Each class declares what it needs before it is built (``Objective``), e.g. ``requires_density``
(the importance-weighted and path-derivative ones), read by the trainer to refuse a guide in one
line. With a point-estimate guide (``delta``) ``elbo`` and ``meanfield`` train the regularised
autoencoder log p(x | z) + log p(z).

How log q is evaluated with detached parameters: ``detach_parameters`` rebuilds Normal,
MultivariateNormal and LowRankMultivariateNormal (and ``Independent``/expanded wrappers) from
detached tensors; any other distribution must have a ``detach_parameters()`` method. The flow of
``guides.flows`` has one: at the sample just drawn it runs the flow's inverse linearised there
(one Jacobian and a triangular solve per step: the exact value and d/dz, all these estimators
use), and at any other z it inverts the flow (Z MADE passes per step).

All of them average K = ``num_particles`` samples per datapoint, vectorised in a plate to the left
of the data plate; the data plate is ``pyro.plate("data", B)`` at dim -1 (docs/architecture.md).
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import ClassVar

import pyro
import pyro.distributions as dist
import torch
from pyro import poutine
from pyro.distributions.torch_distribution import TorchDistributionMixin
from pyro.distributions.util import is_identically_zero, scale_and_mask
from pyro.infer import ELBO, Trace_ELBO, TraceMeanField_ELBO
from pyro.infer.enum import get_importance_trace
from pyro.infer.util import is_validation_enabled, torch_item
from pyro.poutine.indep_messenger import CondIndepStackFrame
from pyro.poutine.messenger import Messenger
from pyro.poutine.runtime import am_i_wrapped
from pyro.poutine.trace_struct import Trace
from pyro.poutine.util import site_is_subsample
from pyro.util import warn_if_nan
from torch import nn
from torch.distributions import kl_divergence
from torch.nn import functional as F

from pvae.errors import UserError
from pvae.nn import Guide, Model


class Objective:
    """What an objective class declares about itself, read before it is built (class attributes).

    :cvar name: its key in ``OBJECTIVES``.
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


def _contract_call(model, guide, args, kwargs) -> tuple[Model, Guide, torch.Tensor, torch.Tensor | None] | None:
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
    if isinstance(fn, TorchDistributionMixin) and fn.batch_shape != batch:
        fn = fn.expand(batch)
    return dict(
        type="sample", name=name, fn=fn, value=value, is_observed=observed, args=(), kwargs={}, infer={},
        scale=1.0, mask=None, cond_indep_stack=frames, done=True, stop=False, continuation=None,
    )  # fmt: skip


def contract_traces(model, guide, args, kwargs, particles: int | None, particle_dim: int) -> tuple[Trace, Trace] | None:
    r"""The (model trace, guide trace) that ``get_importance_trace`` returns for a contract pair,
    built without Pyro's effect handlers; ``None`` where the pair or the call is not one
    (``_contract_call``), and the objectives then trace the programs as Pyro does.

    The programs are fixed by the contracts (``pvae.nn``), with K = ``particles`` in a plate at
    ``particle_dim`` (``None``: no particle plate) outside the data plate of B datapoints:

        guide:  z ~ q(z | x, y)            model:  z ~ p(z | y),  x ~ p(x | z, y)  (observed)

    so the traces are written down directly: the same distributions broadcast to the plates, the
    same draws in the same order (z = q.rsample() of the broadcast q), log p and the score parts
    computed by ``Trace`` itself. The sites carry no ``pyro.module`` parameters: this path runs
    only outside any handler, so never under ``pyro.infer.SVI``, whose parameter capture is one.
    Tests check every objective's value and gradients against the traced path from the same seed.
    0.26 to 0.64 ms a step less on the 784-400-50 VAE (docs/results.md, Speed).
    """
    call = _contract_call(model, guide, args, kwargs)
    if call is None:
        return None
    model, guide, x, y = call
    n = x.shape[0]
    frames: tuple = (CondIndepStackFrame("data", -1, n, 0),)
    batch = torch.Size([n])
    if particles is not None:
        frames = (CondIndepStackFrame("num_particles_vectorized", particle_dim, particles, 0), *frames)
        batch = torch.Size([particles, *[1] * (-particle_dim - 2), n])
    guide_site = _contract_site("z", guide.posterior(x, y), None, frames, batch, False)
    q = guide_site["fn"]
    z = guide_site["value"] = q.rsample() if q.has_rsample else q.sample()
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


class TraceELBO(Objective, _ContractTraced, Trace_ELBO):
    r"""``Trace_ELBO`` whose differentiable loss skips the surrogate when it equals the ELBO.

    With every guide site reparameterised (no score-function term), Pyro's surrogate loss is the
    negated ELBO estimate itself,

        loss = -(1/K) \sum_k [\sum_{model sites} log p - \sum_{guide sites} log q],

    yet ``Trace_ELBO`` still builds it beside a float copy of the same sum, reads several scalars
    back, and hooks a NaN check into backward: about a third of a millisecond per step here. We
    return the sum directly, from the same traces (``Trace_ELBO._get_traces``). Once a guide shows a
    score-function site, this objective is ``Trace_ELBO`` itself from then on (the traces of that
    first step are drawn again by ``Trace_ELBO``, the fast path's draws discarded).

    :param num_particles: K, vectorised (by default) in a plate at dim ``-(max_plate_nesting + 1)``.
    :param max_plate_nesting: plates the model uses (1: the data plate alone).
    """

    name = "elbo"
    traceable = True

    def __init__(
        self, num_particles: int = 1, max_plate_nesting: int = 1, vectorize_particles: bool = True, **kwargs
    ) -> None:
        if vectorize_particles and not math.isfinite(max_plate_nesting):
            raise ValueError("TraceELBO: vectorised particles need a finite max_plate_nesting")
        super().__init__(
            num_particles=num_particles,
            max_plate_nesting=max_plate_nesting,
            vectorize_particles=vectorize_particles,
            **kwargs,
        )
        self.score_function = False  # a guide with a score-function site was seen: Trace_ELBO's surrogate

    def importance_traces(self, model, guide, *args, **kwargs) -> list:
        """(model trace, guide trace) pairs, as ``Trace_ELBO`` draws them: one pair with the K
        particles in a plate at dim ``-max_plate_nesting`` (vectorised, K > 1), else K pairs."""
        return list(self._get_traces(model, guide, args, kwargs))

    def differentiable_loss(self, model, guide, *args, **kwargs) -> torch.Tensor:
        if not self.score_function:
            traces = self.importance_traces(model, guide, *args, **kwargs)
            if all(_reparameterised(guide_trace) for _, guide_trace in traces):
                loss = sum(guide_tr.log_prob_sum() - model_tr.log_prob_sum() for model_tr, guide_tr in traces)
                return loss / self.num_particles
            self.score_function = True
        return super().differentiable_loss(model, guide, *args, **kwargs)

    def loss_and_grads(self, model, guide, *args, **kwargs) -> float:
        loss = self.differentiable_loss(model, guide, *args, **kwargs)
        if getattr(loss, "requires_grad", False):
            loss.backward(retain_graph=self.retain_graph)
        value = torch_item(loss)
        warn_if_nan(value, "loss")
        return value


class MeanFieldELBO(Objective, _ContractTraced, TraceMeanField_ELBO):
    """Pyro's ``TraceMeanField_ELBO``: the ELBO with KL(q || p) in closed form at every latent site
    where torch has ``kl_divergence(q, p)``, and the Monte Carlo term log q(z|x) - log p(z) at the
    others (an IAF guide, a mixture prior, a point estimate), as Pyro does.

    The default objective: the same bound as ``elbo`` with a lower-variance estimate of it. At the
    IWAE paper's budget the Monte Carlo KL alone cost 2.1 nats of test NLL (docs/results.md, "The
    plain ELBO against its peers").

    :param num_particles: K, vectorised (by default) in a plate at dim ``-(max_plate_nesting + 1)``.
    :param max_plate_nesting: plates the model uses (1: the data plate alone).
    """

    name = "meanfield"
    traceable = True
    closed_form_kl = True

    def __init__(
        self, num_particles: int = 1, max_plate_nesting: int = 1, vectorize_particles: bool = True, **kwargs
    ) -> None:
        super().__init__(
            num_particles=num_particles,
            max_plate_nesting=max_plate_nesting,
            vectorize_particles=vectorize_particles,
            **kwargs,
        )

    def differentiable_loss(self, model, guide, *args, **kwargs) -> torch.Tensor:
        """-(1/K) sum_k ELBO_k, the surrogate of ``TraceMeanField_ELBO``, returned as it is.

        Pyro's ``_differentiable_loss_particle`` gives (-float(ELBO_k), -ELBO_k), the same number
        twice, and ``Trace_ELBO.differentiable_loss`` returns loss + (surrogate - float(surrogate)):
        the same value and gradient, with the surrogate read back as a Python float, which a trace
        would keep (``--jit``). As ``JitTraceMeanField_ELBO``, we return the surrogate. (Pyro's
        NaN warning is not called: ``pvae.svi.SVI`` raises on a non-finite loss.)"""
        loss = 0.0
        for model_trace, guide_trace in self._get_traces(model, guide, args, kwargs):
            loss = loss + self._differentiable_loss_particle(model_trace, guide_trace)[1] / self.num_particles
        return loss


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


class IWAE(_LossFromDifferentiable):
    r"""The importance-weighted bound, one logsumexp per datapoint (Burda et al. 2015, eq. 8):

        L_K(x_b) = log (1/K) \sum_k w_kb,   w_kb = p(x_b, z_kb) / q(z_kb | x_b),   z_kb ~ q(z | x_b)

    and the loss is  -\sum_b c_b L_K(x_b), where c_b is the data plate's subsampling scale (1 when
    the model sees the whole batch). ``log w`` sums every model and guide site of datapoint b, so
    every sample site must sit inside the data plate: a site outside it would couple datapoints
    and turn the bound into one joint bound over the batch (Pyro's ``RenyiELBO`` does that with
    subsampling scales, pyro issues 2220 and 3104). Any further ``poutine.scale`` on a site (a KL
    weight) multiplies that site's term inside ``log w``.

    K = 1 gives the ELBO estimate; the bound tightens as K grows. Gradients use the
    reparameterisation trick, so every guide site must have ``rsample``.

    :param num_particles: K, vectorised in a plate at dim ``-(max_plate_nesting + 1)``.
    :param max_plate_nesting: plates the model uses (1: the data plate alone).
    """

    name = "iwae"
    traceable = True
    requires_density = True
    path_derivative = False  # True: guide terms log q with detached parameters (STL)

    def __init__(self, num_particles: int = 5, max_plate_nesting: int = 1) -> None:
        super().__init__(num_particles=num_particles, max_plate_nesting=max_plate_nesting)
        self.vectorize_particles = True  # always, K = 1 included, so log w is always (K, B)
        self.max_plate_nesting = max_plate_nesting + 1

    def _get_trace(self, model, guide, args, kwargs):
        traces = contract_traces(model, guide, args, kwargs, self.num_particles, -self.max_plate_nesting)
        if traces is not None:
            return traces
        particles = pyro.plate("num_particles_vectorized", self.num_particles, dim=-self.max_plate_nesting)
        return get_importance_trace("flat", self.max_plate_nesting, particles(model), particles(guide), args, kwargs)

    def log_weights(self, model, guide, *args, **kwargs) -> tuple[torch.Tensor, torch.Tensor | float]:
        """``log w`` of shape ``(K, B)`` and the per-datapoint scale ``c`` (broadcasts to ``(B,)``)."""
        return self._weights(*self._get_trace(model, guide, args, kwargs))

    def weighted_samples(self, model, guide, *args, site: str = "z", **kwargs) -> tuple[torch.Tensor, torch.Tensor]:
        """The K guide samples of ``site`` per datapoint, ``(K, B, ...)``, and their ``log w`` ``(K, B)``."""
        model_trace, guide_trace = self._get_trace(model, guide, args, kwargs)
        return guide_trace.nodes[site]["value"], self._weights(model_trace, guide_trace)[0]

    def _weights(self, model_trace, guide_trace) -> tuple[torch.Tensor, torch.Tensor | float]:
        log_w: torch.Tensor | float = 0.0
        outer: torch.Tensor | float | None = None
        for trace, is_guide in ((model_trace, False), (guide_trace, True)):
            for name, site in trace.nodes.items():
                if site["type"] != "sample" or site_is_subsample(site):
                    continue
                if is_guide and not site["fn"].has_rsample:
                    raise NotImplementedError(
                        f"{self.name}: guide site {name!r} cannot be reparameterised (no rsample); "
                        "the IWAE gradient here needs reparameterised guide sites"
                    )
                frames = site["cond_indep_stack"]
                if not any(f.dim == -1 for f in frames):
                    raise ValueError(
                        f"{self.name}: sample site {name!r} is outside the data plate (pyro.plate at dim -1); "
                        "the per-datapoint bound needs every sample site inside it"
                    )
                plate_scale = _site_plate_scale(site)
                if outer is None:
                    outer = plate_scale
                elif outer != plate_scale:
                    raise ValueError(f"{self.name}: site {name!r} is subsampled differently from the other sites")
                # Subsampling scales the whole bound (outside the logsumexp); any other scale
                # (a KL weight from poutine.scale) scales this site's term inside log w.
                log_density = self._log_density(name, site, is_guide)
                term = scale_and_mask(log_density, site["scale"] / plate_scale, site["mask"])
                log_w = log_w - term if is_guide else log_w + term
        if not isinstance(log_w, torch.Tensor):
            raise ValueError(f"{self.name}: the model and guide have no sample sites")
        self._reweight(model_trace, guide_trace, log_w, outer)
        return log_w, (1.0 if outer is None else outer)

    def _log_density(self, name: str, site: dict, is_guide: bool) -> torch.Tensor:
        """The unscaled log p (model site) or log q (guide site) of ``site`` inside log w: the
        trace's own, or log q with detached parameters (``path_derivative``)."""
        if is_guide and self.path_derivative:
            return self._path_log_prob(name, site, site["value"])
        return site["unscaled_log_prob"]

    def _path_log_prob(self, name: str, site: dict, value: torch.Tensor) -> torch.Tensor:
        """log q(z) with q's parameters detached, at z = ``value`` (the reparameterised sample):
        the value of ``site``'s log q, the gradient of the path through z alone."""
        if not torch.is_grad_enabled():  # a value alone: the same number, without the detached copy
            return site["unscaled_log_prob"]
        try:
            frozen = detach_parameters(site["fn"]).log_prob(value)
        except NotImplementedError as e:
            raise NotImplementedError(f"{self.name}: guide site {name!r}: {e}") from None
        return site["unscaled_log_prob"].detach() + (frozen - frozen.detach())

    def _reweight(self, model_trace, guide_trace, log_w: torch.Tensor, outer) -> None:
        """A hook for estimators that reweight path gradients once log w is known (DReG)."""

    def bound(self, model, guide, *args, **kwargs) -> torch.Tensor:
        """L_K(x_b) per datapoint, shape ``(B,)`` (unscaled)."""
        log_w, _ = self.log_weights(model, guide, *args, **kwargs)
        return torch.logsumexp(log_w, dim=0) - math.log(self.num_particles)

    def differentiable_loss(self, model, guide, *args, **kwargs) -> torch.Tensor:
        """-sum_b c_b L_K(x_b), differentiable in model and guide parameters."""
        log_w, outer = self.log_weights(model, guide, *args, **kwargs)
        bound = torch.logsumexp(log_w, dim=0) - math.log(self.num_particles)
        return -(bound * outer).sum()


def detach_parameters(d: dist.Distribution) -> dist.Distribution:
    """``d`` with every parameter cut from the graph, so ``log_prob(z)`` has gradients through z
    alone. Normal, MultivariateNormal and LowRankMultivariateNormal (alone, ``Independent`` or
    expanded) are rebuilt from detached tensors; any other distribution needs a
    ``detach_parameters()`` method (``guides.flows.FlowPosterior`` has one)."""
    own = getattr(d, "detach_parameters", None)
    if callable(own):
        return own()
    if isinstance(d, torch.distributions.Independent):
        return dist.Independent(detach_parameters(d.base_dist), d.reinterpreted_batch_ndims)
    if isinstance(d, dist.ExpandedDistribution):
        return dist.ExpandedDistribution(detach_parameters(d.base_dist), d.batch_shape)
    if isinstance(d, torch.distributions.Normal):
        return type(d)(d.loc.detach(), d.scale.detach())
    if isinstance(d, torch.distributions.MultivariateNormal):
        return type(d)(d.loc.detach(), scale_tril=d.scale_tril.detach())
    if isinstance(d, torch.distributions.LowRankMultivariateNormal):
        return type(d)(d.loc.detach(), d.cov_factor.detach(), d.cov_diag.detach())
    raise NotImplementedError(
        f"cannot evaluate a {type(d).__name__} with detached parameters (give it a detach_parameters() method)"
    )


class ELBOSTL(IWAE):
    r"""The ELBO with the sticking-the-landing gradient (Roeder et al. 2017):

        loss = -\sum_b c_b (1/K) \sum_k [log p(x_b, z_kb) - log q_{\bar\phi}(z_kb | x_b)],
        z_kb = z(eps_kb, \phi)

    with \bar\phi the guide's parameters detached: the value is the ELBO estimate of ``elbo``, the
    gradient drops the score term -grad_phi log q_phi(z)|_z, whose expectation is zero, so the
    estimator stays unbiased and its guide gradient vanishes where q is the exact posterior (log w
    is then constant in z). Built on the per-datapoint log weights of ``IWAE`` (every sample site
    in the data plate); a KL weight scales the latent terms inside log w as for the ELBO.
    """

    name = "elbo-stl"
    path_derivative = True

    def bound(self, model, guide, *args, **kwargs) -> torch.Tensor:
        """The ELBO estimate per datapoint, shape ``(B,)`` (unscaled)."""
        log_w, _ = self.log_weights(model, guide, *args, **kwargs)
        return log_w.mean(0)

    def differentiable_loss(self, model, guide, *args, **kwargs) -> torch.Tensor:
        log_w, outer = self.log_weights(model, guide, *args, **kwargs)
        return -(log_w.mean(0) * outer).sum()


class IWAESTL(IWAE):
    r"""The IWAE bound with log q evaluated at detached guide parameters (STL applied to IWAE).

    Same value as ``IWAE``; the guide gradient is \sum_k w~_k d log w_k / dz_k dz_k / d\phi. The
    dropped score term \sum_k w~_k grad_phi log q(z_k) has expectation zero only for K = 1 (or an
    exact posterior), so for K > 1 this estimator is biased (Tucker et al. 2018); ``IWAEDReG``
    is the unbiased version.
    """

    name = "iwae-stl"
    path_derivative = True


def _site_plate_scale(site) -> float:
    return math.prod(f.full_size / f.size for f in site["cond_indep_stack"] if f.full_size)


class _GradientFactor:
    """A tensor hook: the incoming gradient times ``factor`` (1 until set)."""

    def __init__(self) -> None:
        self.factor: torch.Tensor | float = 1.0

    def __call__(self, grad: torch.Tensor) -> torch.Tensor:
        return grad * self.factor


class _HookLatents(Messenger):
    """Around the model, inside ``get_importance_trace``'s replay: each replayed latent value z
    that requires grad is handed to the model program as a clone whose incoming gradient passes a
    ``_GradientFactor``. ``_postprocess_message`` runs outermost first, so the importance trace has
    recorded the site (with the guide's z) before the swap; ``clones`` keeps name -> (clone, hook)."""

    def __init__(self) -> None:
        super().__init__()
        self.clones: dict[str, tuple[torch.Tensor, _GradientFactor]] = {}

    def _postprocess_message(self, msg) -> None:
        value = msg["value"]
        if not _is_latent(msg) or not isinstance(value, torch.Tensor) or not value.requires_grad:
            return
        hook, clone = _GradientFactor(), value.clone()
        clone.register_hook(hook)
        msg["value"] = clone
        self.clones[msg["name"]] = (clone, hook)


class IWAEDReG(IWAESTL):
    r"""The IWAE bound with the doubly reparameterised gradient (Tucker et al. 2018, eq. 7):

        model:  grad_theta L_K = \sum_k w~_k grad_theta log w_k                    (as IWAE)
        guide:  grad_phi   L_K = \sum_k w~_k^2 d log w_k / dz_k  dz_k / d\phi      (through z only)

    with w~ = softmax_k(log w) and log w_k = log p(x, z_k) - log q_{\bar\phi}(z_k). Every term of
    log w that depends on z reads a copy of z whose incoming gradient is multiplied by w~_k (a
    tensor hook set once log w is known): the model program runs on it (``_HookLatents`` around
    the model), and log p(z) and the detached-parameter log q(z) are evaluated at it. So one
    backward pass gives both: the IWAE-STL path gradient times w~_k is DReG's, and the model's
    parameters, reached directly rather than through z, keep IWAE's gradient.

    With a KL weight beta (``KLControl``) the log weights are log p(x|z) + beta (log p(z) - log q),
    and the same derivation (the score term beta w~_k grad_phi log q, reparameterised) gives the
    factor (1 - beta) + beta w~_k in place of w~_k: unbiased for the weighted bound too. The guide
    must have one latent site (the contract's "z"); the KL floor's penalty reads the guide's own z
    and keeps its ordinary gradient.
    """

    name = "iwae-dreg"
    traceable = False  # its guide gradients are reweighted by tensor hooks, which a trace does not record

    def _get_trace(self, model, guide, args, kwargs):
        hooks = _HookLatents()
        model_trace, guide_trace = super()._get_trace(hooks(model), guide, args, kwargs)
        latent = [name for name, site in guide_trace.nodes.items() if _is_latent(site)]
        if len(latent) > 1:
            raise NotImplementedError(f"{self.name}: one latent site per datapoint, not {', '.join(latent)}")
        for name, (clone, hook) in hooks.clones.items():
            for trace in (model_trace, guide_trace):
                if name in trace.nodes:
                    trace.nodes[name]["dreg"] = (clone, hook)
        return model_trace, guide_trace

    def _log_density(self, name: str, site: dict, is_guide: bool) -> torch.Tensor:
        if "dreg" not in site:
            return super()._log_density(name, site, is_guide)
        clone = site["dreg"][0]
        return self._path_log_prob(name, site, clone) if is_guide else site["fn"].log_prob(clone)

    def _reweight(self, model_trace, guide_trace, log_w: torch.Tensor, outer) -> None:
        normalised = None
        for name, site in guide_trace.nodes.items():
            if "dreg" not in site:
                continue
            if normalised is None:
                normalised = torch.softmax(log_w.detach(), dim=0)  # w~ (K, B)
            clone, hook = site["dreg"]
            beta = site["scale"] / _site_plate_scale(site)
            factor = (1 - beta) + beta * normalised
            hook.factor = factor.reshape(factor.shape + (1,) * (clone.dim() - factor.dim()))


@dataclass
class KLControl:
    """A KL weight and a KL floor for every objective (Pyro has neither).

    :param weight: w, multiplying the latent sites' terms: w KL in the ELBO, w (log p(z) - log q)
        inside each log weight of the IWAE bound. The trainer may change it every step (annealing).
    :param floor: nats per latent dimension under which the KL is not penalised: sketch-rnn's
        ``kl_tolerance`` (the batch-mean KL divided by Z), or with ``per_dim`` free bits (each
        dimension's batch-mean KL, Kingma et al. 2016, which needs factorised q and p).
    """

    weight: float = 1.0
    floor: float = 0.0
    per_dim: bool = False


class _ScaleLatents(Messenger):
    """Multiplies the scale of every latent (non-observed, non-subsample) sample site by ``weight``."""

    def __init__(self, control: KLControl) -> None:
        super().__init__()
        self.control = control

    def _process_message(self, msg) -> None:
        if msg["type"] == "sample" and not msg["is_observed"] and not site_is_subsample(msg):
            msg["scale"] = msg["scale"] * self.control.weight


class KLControlled(_LossFromDifferentiable):
    r"""An objective with a KL weight and a KL floor (``KLControl``).

    With the latent sites' terms scaled by w, each objective keeps its own meaning (the ELBO becomes
    E[log p(x|z)] - w KL, the IWAE log weights log p(x|z) + w (log p(z) - log q(z|x))). The floor
    adds, for a batch of B datapoints with Z latent dimensions in all,

        w relu(B Z floor - sum_b KL_b)                 (per batch: sketch-rnn's max(KL / Z, floor))
        w B sum_j relu(floor - mean_b KL_bj)           (per dimension: free bits)

    with KL_b the estimate from the same draws: closed form for ``meanfield``, log q - log p for
    the others (averaged over particles). For the ELBO, w KL + w relu(floor - KL) = w max(KL, floor),
    sketch-rnn's loss exactly; for the IWAE bound it removes the KL's push in the same way.
    """

    def __init__(self, base: ELBO, control: KLControl) -> None:
        super().__init__(num_particles=base.num_particles, max_plate_nesting=base.max_plate_nesting)
        self.base, self.control = base, control
        self.closed_form_kl = isinstance(base, Objective) and base.closed_form_kl  # the base's
        self.requires_density = isinstance(base, Objective) and base.requires_density
        self.traceable = isinstance(base, Objective) and base.traceable
        self.lr_ratio = base.lr_ratio if isinstance(base, Objective) else 1.0

    def networks(self) -> list[nn.Module]:
        return self.base.networks() if isinstance(self.base, Objective) else []

    def differentiable_loss(self, model, guide, *args, **kwargs) -> torch.Tensor:
        scale = _ScaleLatents(self.control)
        if self.control.floor <= 0:
            return self.base.differentiable_loss(scale(model), scale(guide), *args, **kwargs)
        model_tracer, guide_tracer = poutine.trace(scale(model)), poutine.trace(scale(guide))
        loss = self.base.differentiable_loss(model_tracer, guide_tracer, *args, **kwargs)
        return loss + self.control.weight * self._floor_penalty(model_tracer.trace, guide_tracer.trace)

    def _floor_penalty(self, model_trace, guide_trace) -> torch.Tensor:
        per_dim = self.control.per_dim
        kls, dims = [], 0
        for name, q_site in guide_trace.nodes.items():
            if q_site["type"] != "sample" or site_is_subsample(q_site):
                continue
            q, p, z = q_site["fn"], model_trace.nodes[name]["fn"], q_site["value"]
            if per_dim:
                if not (isinstance(q, dist.Independent) and isinstance(p, dist.Independent)):
                    raise ValueError(f"per-dimension KL floor (free bits) needs factorised q and p at site {name!r}")
                q, p = q.base_dist, p.base_dist
            kl = None
            if self.closed_form_kl:
                try:
                    kl = kl_divergence(q, p)
                except NotImplementedError:
                    pass
            if kl is None:
                kl = q.log_prob(z) - p.log_prob(z)
            if per_dim:
                kl = kl.reshape(-1, *kl.shape[-2:]).mean(0)  # (B, Z): particles averaged
            else:
                kl = kl.reshape(-1, kl.shape[-1]).mean(0)  # (B,)
                dims += z.shape[-1]
            kls.append(kl)
        if per_dim:
            kl = torch.cat(kls, -1)  # (B, Z)
            return kl.shape[0] * torch.relu(self.control.floor - kl.mean(0)).sum()
        kl = sum(kls)
        return torch.relu(kl.shape[0] * dims * self.control.floor - kl.sum())


class Discriminator(nn.Module):
    """D(z) or D(z, onehot(y)): the logit that z was drawn from the prior rather than from the guide,
    an MLP with leaky ReLUs (Makhzani et al. 2015 use two hidden layers of 1000 units).

    :param num_classes: C > 0: D also reads the class label y (the label-regularised AAE).
    """

    def __init__(self, latent_dim: int, hidden: Sequence[int] = (256, 256), num_classes: int = 0) -> None:
        super().__init__()
        self.num_classes = num_classes
        layers: list[nn.Module] = []
        inputs = latent_dim + num_classes
        for n_in, n_out in zip((inputs, *hidden), hidden):
            layers += [nn.Linear(n_in, n_out), nn.LeakyReLU(0.2)]
        self.net = nn.Sequential(*layers, nn.Linear(hidden[-1] if hidden else inputs, 1))

    def forward(self, z: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        """Logits ``(...)`` of z ``(..., Z)`` (with labels y ``(B,)`` broadcasting against its batch)."""
        if self.num_classes:
            if y is None:
                raise UserError("the discriminator of a class-conditional model reads labels: give y")
            code = F.one_hot(y.long(), self.num_classes).to(z)
            z = torch.cat([z, code.expand(*z.shape[:-1], self.num_classes)], -1)
        return self.net(z).squeeze(-1)


class _Adversarial(_LossFromDifferentiable):
    """What the adversarial objectives share: a discriminator (``networks``) at its own learning
    rate, K particles vectorised in a plate left of the data plate, and no KL term."""

    uses_kl = False
    trains_prior = False

    def __init__(
        self, num_particles: int, max_plate_nesting: int, discriminator: nn.Module, disc_lr_ratio: float
    ) -> None:
        if not disc_lr_ratio > 0:
            raise ValueError(f"disc_lr_ratio must be positive, not {disc_lr_ratio}")
        super().__init__(num_particles=num_particles, max_plate_nesting=max_plate_nesting)
        self.vectorize_particles = True
        self.max_plate_nesting = max_plate_nesting + 1
        self.discriminator, self.lr_ratio = discriminator, disc_lr_ratio

    def networks(self) -> list[nn.Module]:
        return [self.discriminator]

    def _particles(self) -> pyro.plate:
        return pyro.plate("num_particles_vectorized", self.num_particles, dim=-self.max_plate_nesting)


class AAE(_Adversarial):
    r"""The adversarial autoencoder (Makhzani et al. 2015): the reconstruction term of the ELBO,
    with the KL to the prior replaced by a discriminator that tells prior samples from guide samples.
    Any prior one can sample works, with or without a density, and any guide, a point estimate too.

    One loss, so one ``loss_and_grads`` and one optimiser step train both players: for each
    datapoint b (averaged over K particles), with z_b ~ q(z | x_b), z'_b ~ p(z) and w the
    adversarial weight,

        loss_b = -log p(x_b | z_b)
                 + w softplus(-D_{\bar\psi}(z_b))                          (the guide: fool D)
                 + w [softplus(-D_\psi(z'_b)) + softplus(D_\psi(\bar z_b))]    (D: prior 1, guide 0)

    where a bar stops the gradient: the guide's term reads D with detached parameters, and D's term
    reads z detached. So the guide descends the non-saturating generator loss -log D(z) (Goodfellow
    et al. 2014: strong gradients while D wins, unlike the minimax log(1 - D(z)) that a gradient
    reversal would give) and D descends its own cross-entropy, without either term's gradient
    reaching the other player. Pyro's ``SVI`` finds D's parameters through ``pyro.module``; its
    learning rate over the autoencoder's is ``lr_ratio`` in ``pvae train`` (with plain SVI, give
    ``pyro.optim.Adam`` a per-parameter callable).

    With class labels (a class-conditional model, ``num_classes`` > 0) D also reads y, and the
    prior samples z' come from the model's p(z | y): with ``label_regularised`` the y-th Gaussian of
    the mog10 prior (the paper's figure 4), with the class-conditional decoder N(0, I) (figure 7).

    :param latent_dim: Z, the size of D's input.
    :param num_classes: C: D reads onehot(y) too (given the labels as the loss's second argument).
    :param adversarial_weight: w >= 0.
    :param disc_hidden: D's hidden sizes.
    :param disc_lr_ratio: D's learning rate over the model's and guide's (read by the trainer).
    """

    name = "aae"
    traceable = False  # the discriminator's detached copy is a torch.func.functional_call, which torch.jit refuses

    def __init__(
        self,
        num_particles: int = 1,
        max_plate_nesting: int = 1,
        latent_dim: int = 2,
        num_classes: int = 0,
        adversarial_weight: float = 30.0,
        disc_hidden: Sequence[int] = (256, 256),
        disc_lr_ratio: float = 1.0,
    ) -> None:
        if not adversarial_weight >= 0:
            raise ValueError(f"adversarial_weight must not be negative, not {adversarial_weight}")
        discriminator = Discriminator(latent_dim, disc_hidden, num_classes)
        super().__init__(num_particles, max_plate_nesting, discriminator, disc_lr_ratio)
        self.adversarial_weight = adversarial_weight

    def differentiable_loss(self, model, guide, *args, **kwargs) -> torch.Tensor:
        d = pyro.module("aae_discriminator", self.discriminator)
        particles = self._particles()
        guide_trace = poutine.trace(particles(guide)).get_trace(*args, **kwargs)
        model_trace = poutine.trace(poutine.replay(particles(model), trace=guide_trace)).get_trace(*args, **kwargs)
        site = model_trace.nodes.get("z")
        if site is None or site["type"] != "sample" or site["is_observed"] or "z" not in guide_trace.nodes:
            raise UserError("--objective aae needs a model with a latent site 'z' whose prior it can sample")
        recon = 0.0
        for node in model_trace.nodes.values():
            if node["type"] == "sample" and node["is_observed"]:
                recon = recon + scale_and_mask(node["fn"].log_prob(node["value"]), node["scale"], node["mask"])
        z = guide_trace.nodes["z"]["value"]  # (K, B, Z)
        with torch.no_grad():
            prior_z = site["fn"].sample()  # the prior at the site, expanded over the particles: (K, B, Z)
        y = args[1] if len(args) > 1 else kwargs.get("y")
        frozen = {name: p.detach() for name, p in d.named_parameters()}
        fool = F.softplus(-torch.func.functional_call(d, frozen, (z, y)))
        judge = F.softplus(-d(prior_z, y)) + F.softplus(d(z.detach(), y))
        return (-recon + self.adversarial_weight * (fool + judge)).mean(0).sum()


class ALI(_Adversarial):
    r"""Likelihood-free inference by a discriminator over (x, z) pairs: ALI / BiGAN (Dumoulin et al.
    2017, Donahue et al. 2017), the vectorisation talk's third approach. D(x, z) is the logit that a
    pair came from the generative model p(z) p(x | z) rather than from the inference model
    p_data(x) q(z | x); the model and the guide are trained to make the two joints agree,

        min_{theta, phi} max_psi  E_p[log D(x, z)] + E_q[log(1 - D(x, z))],

    without evaluating log p(x | z) or log q(z | x) anywhere. As in ``AAE``, one loss trains all
    three, each term reading the other player's side detached; per datapoint b, with
    z_b ~ q(z | x_b), z'_b ~ p(z), x'_b the decoder's draw from p(x | z'_b),

        loss_b = softplus(-D_{\bar\psi}(x_b, z_b)) + softplus(D_{\bar\psi}(x'_b, z'_b))     (model and guide)
                 + softplus(-D_\psi(\bar x'_b, \bar z'_b)) + softplus(D_\psi(x_b, \bar z_b))   (D)

    (the non-saturating losses). x'_b carries the decoder's gradient through ``rsample`` where its
    distribution has one (Gaussian pixels) and through its mean otherwise (Bernoulli pixels: the
    pixel probabilities, as ALI's continuous outputs). D reads flattened images.

    :param data_dim: D, pixels per image.
    :param latent_dim: Z.
    :param num_classes: C: D reads onehot(y) too.
    :param disc_hidden: D's hidden sizes.
    :param disc_lr_ratio: D's learning rate over the model's and guide's (read by the trainer).
    """

    name = "ali"
    traceable = False  # the discriminator's detached copy is a torch.func.functional_call, which torch.jit refuses
    data_kinds = ("image",)

    def __init__(
        self,
        num_particles: int = 1,
        max_plate_nesting: int = 1,
        data_dim: int = 784,
        latent_dim: int = 2,
        num_classes: int = 0,
        disc_hidden: Sequence[int] = (256, 256),
        disc_lr_ratio: float = 1.0,
    ) -> None:
        discriminator = Discriminator(data_dim + latent_dim, disc_hidden, num_classes)
        super().__init__(num_particles, max_plate_nesting, discriminator, disc_lr_ratio)

    def differentiable_loss(self, model, guide, x, y=None, **kwargs) -> torch.Tensor:
        d = pyro.module("ali_discriminator", self.discriminator)
        particles = self._particles()
        guide_trace = poutine.trace(particles(guide)).get_trace(x, y, **kwargs)
        generated = poutine.trace(particles(model)).get_trace(None, y, batch_size=x.shape[0])
        if "z" not in guide_trace.nodes or "z" not in generated.nodes or "x" not in generated.nodes:
            raise UserError("--objective ali needs a model with a latent site 'z' and an observation site 'x'")
        z = guide_trace.nodes["z"]["value"]  # (K, B, Z)
        prior_z = generated.nodes["z"]["value"]
        fn = generated.nodes["x"]["fn"]
        fake_x = fn.rsample() if fn.has_rsample else fn.mean  # (K, B, D): the decoder's gradient flows
        real = torch.cat([x.reshape(x.shape[0], -1).expand(*z.shape[:-1], -1), z], -1)
        fake = torch.cat([fake_x.reshape(*prior_z.shape[:-1], -1), prior_z], -1)
        frozen = {name: p.detach() for name, p in d.named_parameters()}
        fool = F.softplus(-torch.func.functional_call(d, frozen, (real, y)))
        fool = fool + F.softplus(torch.func.functional_call(d, frozen, (fake, y)))
        judge = F.softplus(-d(fake.detach(), y)) + F.softplus(d(real.detach(), y))
        return (fool + judge).mean(0).sum()


OBJECTIVES: dict[str, type[ELBO]] = {
    cls.name: cls for cls in (TraceELBO, MeanFieldELBO, IWAE, ELBOSTL, IWAESTL, IWAEDReG, AAE, ALI)
}
"""Every objective by name; the classes declare their capabilities (``Objective``)."""


def make_objective(
    name: str, num_particles: int = 1, max_plate_nesting: int = 1, kl: KLControl | None = None, **options
) -> ELBO:
    """The objective called ``name`` (a key of ``OBJECTIVES``) with K = ``num_particles``, wrapped
    in ``KLControlled`` when a ``KLControl`` is given; ``options`` (e.g. ``latent_dim``,
    ``adversarial_weight``) reach its constructor where it has a parameter of that name."""
    if not isinstance(num_particles, int) or num_particles < 1:
        raise ValueError(f"num_particles must be a positive integer, not {num_particles!r}")
    if name not in OBJECTIVES:
        raise ValueError(f"unknown objective {name!r}; choose one of {', '.join(OBJECTIVES)}")
    cls = OBJECTIVES[name]
    accepted = inspect.signature(cls.__init__).parameters
    options = {k: v for k, v in options.items() if k in accepted}
    objective = cls(num_particles=num_particles, max_plate_nesting=max_plate_nesting, **options)
    return objective if kl is None else KLControlled(objective, kl)
