"""The ELBO as Pyro computes it, over the contract traces where they apply:

- ``elbo``: ``TraceELBO``, Pyro's ``Trace_ELBO`` (the Monte Carlo ELBO E_q[log p(x, z) - log q(z | x)])
  with a shorter gradient path for reparameterised guides.
- ``meanfield`` (the default): ``MeanFieldELBO``, Pyro's ``TraceMeanField_ELBO``: the same bound
  with KL(q || p) in closed form wherever torch has it, by Monte Carlo elsewhere.

With a point-estimate guide (``delta``) both train the regularised autoencoder log p(x | z) + log p(z).
"""

from __future__ import annotations

import math

import torch
from pyro.infer import Trace_ELBO, TraceMeanField_ELBO
from pyro.infer.util import torch_item
from pyro.util import warn_if_nan
from torch.distributions import kl_divergence

from pvae.objectives.base import (
    Objective,
    _ContractTraced,
    _reparameterised,
    broadcast_to,
    contract_call,
    contract_plates,
    contract_traces,
)


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
        direct = self._contract_loss(model, guide, args, kwargs)
        if direct is not None:
            return direct
        loss = 0.0
        for model_trace, guide_trace in self._get_traces(model, guide, args, kwargs):
            loss = loss + self._differentiable_loss_particle(model_trace, guide_trace)[1] / self.num_particles
        return loss

    def _contract_loss(self, model, guide, args, kwargs) -> torch.Tensor | None:
        r"""For a contract pair (``contract_call``), the loss that ``_differentiable_loss_particle``
        computes from its traces, without writing the traces down or scoring sites it does not read:

            loss = -(1/K) [sum_{k,b} log p(x_b | z_kb) - sum_{k,b} KL(q(z | x_b, y_b) || p(z | y_b))]

        the same operations in the same order on the same draws (z from q broadcast to the plates,
        as ``contract_traces``), so the same value and gradients; where torch has no KL for the pair
        (an IAF guide, a mixture prior), the contract traces of the q already built. ``None`` where
        the pair or the call is not a contract one: the caller traces the programs as Pyro does.
        0.1-0.2 ms a step less at batch 20 (docs/results.md, Speed)."""
        call = contract_call(model, guide, args, kwargs)
        if call is None or not (self.vectorize_particles or self.num_particles == 1):
            return None
        particles = self.num_particles if self.num_particles > 1 else None
        if particles is not None and not math.isfinite(self.max_plate_nesting):
            return None
        contract_model, contract_guide, x, y = call
        n = x.shape[0]
        _, batch = contract_plates(n, particles, -self.max_plate_nesting)
        q = contract_guide.posterior(x, y)
        fn = broadcast_to(q, batch)
        if not fn.has_rsample:
            return self._traced_loss(model, guide, args, kwargs, particles, fn)
        z = fn.rsample()
        try:
            kl = kl_divergence(fn, broadcast_to(contract_model.prior(n, y), batch))
        except NotImplementedError:
            return self._traced_loss(model, guide, args, kwargs, particles, fn, z)
        log_px = broadcast_to(contract_model.likelihood(z, y), batch).log_prob(x)
        elbo = 0 - kl.sum()  # the latent site first, then the observed one, as the model trace holds them
        elbo = elbo + log_px.sum()
        return 0.0 + -elbo / self.num_particles

    def _traced_loss(self, model, guide, args, kwargs, particles, q, z=None) -> torch.Tensor:
        """The particle loss over the contract traces of the guide's ``q`` broadcast to the plates (and
        its draw ``z``, if made): the traces Pyro's path would write."""
        dim = -self.max_plate_nesting
        model_trace, guide_trace = contract_traces(model, guide, args, kwargs, particles, dim, q, z)
        return 0.0 + self._differentiable_loss_particle(model_trace, guide_trace)[1] / self.num_particles
