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

from pvae.objectives.base import Objective, _ContractTraced, _reparameterised


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
