"""The importance-weighted bound and the gradient estimators beyond Pyro.

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

import math

import pyro
import pyro.distributions as dist
import torch
from pyro.distributions.util import scale_and_mask
from pyro.infer.enum import get_importance_trace
from pyro.poutine.messenger import Messenger
from pyro.poutine.util import site_is_subsample

from pvae.objectives.base import (
    _is_latent,
    _LossFromDifferentiable,
    contract_traces,
)


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
