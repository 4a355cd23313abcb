"""Objectives by name (``OBJECTIVES``): each is a ``pyro.infer.ELBO``, so plain ``pyro.infer.SVI``
accepts it, and each builds its traces with Pyro's public API (``get_importance_trace``, poutine),
or, for a model and guide that follow the contracts, writes the same traces down directly
(``contract_traces``: no effect handlers, 0.26 to 0.64 ms a step less).

- ``elbo``: ``TraceELBO``, Pyro's ``Trace_ELBO`` (the Monte Carlo ELBO E_q[log p(x, z) - log q(z | x)])
  with a shorter gradient path for reparameterised guides.
- ``meanfield`` (the default): ``MeanFieldELBO``, Pyro's ``TraceMeanField_ELBO``: the same bound
  with KL(q || p) in closed form wherever torch has it, by Monte Carlo elsewhere.
- ``iwae``: ``IWAE``, the per-datapoint importance-weighted bound of Burda et al. (2015); ``elbo-stl``,
  ``iwae-stl`` and ``iwae-dreg``, its gradient estimators beyond Pyro (``pvae.objectives.iwae``).
- ``aae``, ``ali``: adversarial objectives with their discriminators (``pvae.objectives.adversarial``).
- ``lfvi``: likelihood-free variational inference (Tran et al. 2017), the ELBO of a model that can
  only be sampled through a discriminator's log density ratio (``pvae.objectives.likelihood_free``).

KL controls (weight, annealing, floor) wrap any of them: ``KLControlled`` (``pvae.objectives.kl``).

Each class declares what it needs before it is built (``Objective``), e.g. ``requires_density``
(the importance-weighted and path-derivative ones), read by the trainer to refuse a guide in one
line. ``OBJECTIVES`` holds every objective by name: each ``Objective`` class of this package's
modules with a ``name`` of its own, and those of installed plug-ins (entry point group
``pvae.objectives``; ``pvae.registry``).
"""

from __future__ import annotations

import inspect

from pyro.infer import ELBO

from guides import GUIDES
from models import MODELS
from pvae.objectives.adversarial import AAE, ALI, Discriminator
from pvae.objectives.base import Objective, contract_traces
from pvae.objectives.elbo import MeanFieldELBO, TraceELBO
from pvae.objectives.iwae import ELBOSTL, IWAE, IWAESTL, IWAEDReG, detach_parameters
from pvae.objectives.kl import KLControl, KLControlled
from pvae.objectives.likelihood_free import LFVI
from pvae.registry import Registry

OBJECTIVES: Registry[type[Objective]] = Registry("objective", Objective, __name__, "pvae.objectives")
"""Every objective by name; the classes declare their capabilities (``Objective``)."""


def make_objective(
    name: str, num_particles: int = 1, max_plate_nesting: int = 1, kl: KLControl | None = None, **options
) -> ELBO:
    """The objective called ``name`` (a key of ``OBJECTIVES``) with K = ``num_particles``, wrapped
    in ``KLControlled`` when a ``KLControl`` is given; ``options`` (e.g. ``latent_dim``,
    ``adversarial_weight``) reach its constructor where it has a parameter of that name.

    The trainer gives every objective the description of its model and data (``latent_dim``,
    ``num_classes``, the data kind's ``model_kwargs``) and every objective's options, which only
    those that take them read; a keyword that no objective, model or guide takes is refused
    (``TypeError``, naming it and the options of this objective)."""
    if not isinstance(num_particles, int) or num_particles < 1:
        raise ValueError(f"num_particles must be a positive integer, not {num_particles!r}")
    if name not in OBJECTIVES:
        raise ValueError(f"unknown objective {name!r}; choose one of {', '.join(OBJECTIVES)}")
    cls = OBJECTIVES[name]
    accepted = _keywords(cls)
    others = options.keys() - accepted
    unknown = sorted(others - _known_keywords()) if others else []
    if unknown:
        own = ", ".join(sorted(accepted - {"num_particles", "max_plate_nesting"})) or "no options"
        raise TypeError(f"make_objective({name!r}): unknown option {unknown[0]!r}; {name} takes {own}")
    options = {k: v for k, v in options.items() if k in accepted}
    objective = cls(num_particles=num_particles, max_plate_nesting=max_plate_nesting, **options)
    return objective if kl is None else KLControlled(objective, kl)


def _parameters(cls: type) -> set[str]:
    """The names of the keyword arguments of ``cls``'s constructor."""
    parameters = inspect.signature(cls.__init__).parameters.values()
    return {p.name for p in parameters if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)} - {"self"}


def _keywords(cls: type) -> set[str]:
    """The keyword arguments objective ``cls`` takes; a constructor with ``**kwargs`` passes them on
    to Pyro's ``ELBO``."""
    parameters = inspect.signature(cls.__init__).parameters.values()
    extra = _parameters(ELBO) if any(p.kind is p.VAR_KEYWORD for p in parameters) else set()
    return _parameters(cls) | extra


def _known_keywords() -> set[str]:
    """Every keyword that some registered objective, model or guide takes."""
    parts = [*MODELS.values(), *GUIDES.values()]
    return set().union(*map(_keywords, OBJECTIVES.values()), *map(_parameters, parts))


__all__ = [  # the objectives in the order OBJECTIVES lists them (``pvae.registry``), then the rest
    "TraceELBO",
    "MeanFieldELBO",
    "IWAE",
    "ELBOSTL",
    "IWAESTL",
    "IWAEDReG",
    "AAE",
    "ALI",
    "LFVI",
    "OBJECTIVES",
    "Discriminator",
    "KLControl",
    "KLControlled",
    "Objective",
    "contract_traces",
    "detach_parameters",
    "make_objective",
]
