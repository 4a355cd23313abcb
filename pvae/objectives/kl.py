"""KL controls for every objective (Pyro has neither): a weight on the latent sites' terms, its
annealing schedule, and a floor (sketch-rnn's KL tolerance, or free bits per dimension).

The weight's schedule (sketch-rnn's annealing), per optimiser step s: w_s = w - (w - w_start) rate^s,
with ``--kl-anneal-rate``, or with ``--kl-anneal-fraction F`` rate = 0.01^(1 / (F P)) over the run's
P planned steps, so that w - w_s is 1% of w - w_start at s = F P.
"""

from __future__ import annotations

from dataclasses import dataclass

import pyro.distributions as dist
import torch
from pyro import poutine
from pyro.infer import ELBO
from pyro.poutine.messenger import Messenger
from pyro.poutine.util import site_is_subsample
from torch import nn
from torch.distributions import kl_divergence

from pvae.contracts import Model, Option
from pvae.objectives.base import Objective, _LossFromDifferentiable


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

    def refusal(self, model: Model) -> str | None:
        return self.base.refusal(model) if isinstance(self.base, Objective) else None

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


ANNEAL_LEFT = 0.01  # --kl-anneal-fraction F: the part of w - w_start still to go after F x the planned steps


def annealing(config) -> bool:
    """Whether the KL weight is annealed: the start weight is set, and a rate or a fraction of the run."""
    return config.kl_weight_start is not None and (
        config.kl_anneal_rate is not None or config.kl_anneal_fraction is not None
    )


def kl_anneal_rate(config, planned: int) -> float | None:
    """The annealing rate: ``--kl-anneal-rate``, or from ``--kl-anneal-fraction`` F of the run's
    ``planned`` steps P, rate = 0.01^(1 / (F P)), so that rate^(F P) = 0.01 (``ANNEAL_LEFT``);
    ``None`` when neither is set."""
    if config.kl_anneal_fraction is None:
        return config.kl_anneal_rate
    return ANNEAL_LEFT ** (1 / (config.kl_anneal_fraction * planned))


def kl_weight(config, step: int, planned: int) -> float:
    """sketch-rnn's annealing w - (w - w_start) rate^step (``kl_anneal_rate`` of a run of ``planned``
    steps); constant w without annealing."""
    if not annealing(config):
        return config.kl_weight
    return config.kl_weight - (config.kl_weight - config.kl_weight_start) * kl_anneal_rate(config, planned) ** step


def _one_speed(config) -> str | None:
    if config.kl_anneal_rate is not None and config.kl_anneal_fraction is not None:
        return (
            f"--kl-anneal-fraction {config.kl_anneal_fraction} and --kl-anneal-rate {config.kl_anneal_rate}: give one "
            "(the fraction sets the rate from the run's planned steps)"
        )
    return None


KL_OPTIONS = (
    Option("kl_weight", 1.0, "weight w of the KL term", "KL controls", float, low=0.0, scope="latent"),
    Option("kl_weight_units", "nats", "w on KL in nats, or sketch-rnn's w on KL/Z against recon/T",
           "KL controls", choices=("nats", "sketch-rnn"), scope="data"),
    Option("kl_weight_start", None, "annealing: the weight at step 0", "KL controls", float, low=0.0,
           optional=True, default_text="no annealing", scope="latent",
           needs=(annealing, "--kl-anneal-fraction or --kl-anneal-rate (annealing needs a start and a speed)")),
    Option("kl_anneal_rate", None, "annealing: w - (w - start) rate^step", "KL controls", float, low=0.0,
           low_open=True, high=1.0, optional=True, default_text="no annealing", scope="latent",
           needs=(annealing, "--kl-weight-start (annealing needs both)")),
    Option("kl_anneal_fraction", None, f"annealing: the weight has gone {100 * (1 - ANNEAL_LEFT):g} percent of "
           f"the way from start to w after this fraction F of the run's planned steps P "
           f"(rate {ANNEAL_LEFT:g}^(1 / (F P)))",
           "KL controls", float, low=0.0, low_open=True, high=1.0, optional=True, metavar="F",
           default_text="no annealing", scope="latent",
           needs=(annealing, "--kl-weight-start (annealing needs both)"), check_with=_one_speed),
    Option("kl_floor", 0.0, "nats per latent dimension not penalised", "KL controls", float, low=0.0,
           scope="latent"),
    Option("kl_floor_mode", "total", "floor the mean KL per dimension (sketch-rnn) or each dimension (free bits)",
           "KL controls", choices=("total", "per-dim"), scope="latent",
           needs=(lambda c: c.kl_floor > 0, "--kl-floor > 0")),
)  # fmt: skip
"""The options of the KL controls, read wherever the model has a latent code and the objective a KL
term (scope "latent"); ``kl_weight_units`` is read by the data kinds whose datapoints have steps."""
KL_WEIGHT_UNITS = KL_OPTIONS[1]
