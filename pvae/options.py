"""Every training option, declared once by the part that reads it (``docs/architecture.md``, "Options").

An ``Option`` (``pvae.contracts``) is the one declaration of a hyperparameter: its name, default,
type, range or choices, help text and group. Each part lists the options it reads in its
``options``: a model or guide those of its constructor, an objective those of its own, a data kind
those that shape its data; the trainer's own (``RUN_OPTIONS``, below), the optimiser's
(``pvae.svi.OPTIMISER_OPTIONS``) and the KL controls' (``pvae.objectives.kl.KL_OPTIONS``) are the
core's. ``OPTIONS`` gathers them all from the registries, so this module names no model, guide,
objective or kind. From ``OPTIONS`` follow

- the ``pvae train`` flags (``add_arguments``): ``--name-with-dashes``, with ``choices`` from the
  registries and each model's own defaults (its ``train_defaults``) shown in the help;
- ``TrainConfig``, the values of one run (saved as ``config.json["train"]``), and its validation
  (``TrainConfig.check``: ranges and choices, one line naming the flag);
- the constructor arguments of models and guides: an option reaches every constructor with a
  parameter called ``arg`` (``runs.make_spec``);
- which options a combination of model, guide, objective and data kind uses
  (``unused_options``): a value that differs from its default and that nothing in the chosen
  combination reads is refused in one line, never dropped silently.

Adding a hyperparameter is one ``Option`` beside the part that reads it, in that part's
``options`` (plus the constructor parameter that takes it).
"""

from __future__ import annotations

import argparse
import copy
import warnings
from collections.abc import Callable
from typing import Any

from guides import GUIDES
from models import MODELS
from pvae.contracts import Option
from pvae.errors import UserError
from pvae.kinds.base import KINDS
from pvae.objectives import OBJECTIVES
from pvae.objectives.kl import KL_OPTIONS
from pvae.registry import PluginWarning
from pvae.svi import OPTIMISER_OPTIONS

GROUPS = ("run", "networks", "drawing", "melody", "conditioning", "data", "optimiser", "KL controls", "adversarial")
"""The ``--help`` sections, in order; a plug-in's option may bring a group of its own (shown after these)."""
CONSTRUCTOR_SCOPES = ("model", "guide", "networks")  # options passed to model and guide constructors (SCOPES)
REGISTRIES = (MODELS, GUIDES, OBJECTIVES, KINDS)  # the parts whose options are gathered

RUN_OPTIONS = (
    Option("model", "gaussian", "generative model p(x, z)", choices=lambda: tuple(MODELS)),
    Option("guide", "mlp", "guide q(z | x)", choices=lambda: tuple(GUIDES)),
    Option("objective", "meanfield", "training objective", choices=lambda: tuple(OBJECTIVES)),
    Option("particles", 1, "samples per datapoint, K", type=int, low=1, metavar="K"),
    Option("data", "digits", "dataset spec (see the list above)"),
    Option("epochs", 15, "epochs to train in all", type=int, low=1, optional=True, on_resume="limit"),
    Option("steps", None, "optimiser steps to train in all (alone, the only limit)", type=int, low=1,
           optional=True, on_resume="limit"),
    Option("batch_size", 128, "datapoints per step", type=int, low=1),
    Option("seed", 0, "random seed", type=int),
    Option("checkpoint_every", 10.0, "minutes between checkpoints inside an epoch (0: after every step)",
           type=float, low=0.0, metavar="MINUTES", on_resume="change"),
    Option("jit", False, "record the loss once per batch shape with torch.jit.trace and replay it, as Pyro's "
           "JitTrace_ELBO: less Python per step; a combination that could not be traced exactly is refused",
           type=bool, on_resume="change"),
    Option("tensorboard", False, "also log the scalars of every step and epoch and the finished run's figures "
           "for TensorBoard, under RUN/tb/ (needs the tensorboard extra)", type=bool, on_resume="change"),
    Option("skip_nonfinite", 0, "steps with a NaN/inf loss or gradient to skip before stopping", type=int,
           low=0, metavar="N", on_resume="change"),
    Option("train_limit", None, "train on the first N training examples only", "data", int, low=1,
           optional=True, metavar="N", default_text="all"),
)  # fmt: skip
"""The trainer's own options (scope "run")."""


def _gather() -> dict[str, Option]:
    """Every option by name: the core's, then each registered part's, by group (``GROUPS`` first).
    Parts that share an option list the same ``Option``. Two different ones of one name are refused,
    and so is an ``options`` that is not a tuple of ``Option``s: for pvae's own parts as an error,
    for a plug-in's or a part registered by assignment by leaving the part out (a ``PluginWarning``)."""
    core = (*RUN_OPTIONS, *OPTIMISER_OPTIONS, *KL_OPTIONS)
    found: dict[str, tuple[Option, str]] = {o.name: (o, "pvae") for o in core}
    for registry in REGISTRIES:
        for name in list(registry):
            origin, part = registry.origin(name), registry[name]
            where = f"{registry.sort} {name} ({origin})"
            complaint = _clash(part.options, found, where)
            if complaint is None:
                found.update({o.name: (o, where) for o in part.options})
            elif origin == "pvae":
                raise TypeError(complaint)
            else:
                warnings.warn(f"{complaint}; {registry.sort} {name} left out", PluginWarning, stacklevel=2)
                del registry[name]
    groups = _groups(o for o, _ in found.values())
    return {o.name: o for o, _ in sorted(found.values(), key=lambda pair: groups.index(pair[0].group))}


def _clash(options: Any, found: dict[str, tuple[Option, str]], where: str) -> str | None:
    """What keeps a part's ``options`` from joining those ``found``, in one line, or ``None``."""
    if not (isinstance(options, tuple) and all(isinstance(o, Option) for o in options)):
        return f"{where}: its options are not a tuple of pvae.contracts.Option"
    for option in options:
        first, by = found.get(option.name, (option, where))
        if first is not option:
            return f"{option.flag}: declared twice, by {by} and by {where}; share one Option"
    return None


def _groups(options) -> list[str]:
    """The ``--help`` sections of ``options``: ``GROUPS``, then any group a plug-in brings."""
    return [*GROUPS, *dict.fromkeys(o.group for o in options if o.group not in GROUPS)]


_OPTIONS: dict[str, Option] = {}  # one dict for the whole process: ``OPTIONS`` is always this object
_GATHERED: dict[str, Any] = {"versions": None, "names": set()}


def all_options() -> dict[str, Option]:
    """Every option by name, gathered on first use (the registries import every part, and the parts'
    modules may import the core, so the gathering waits until everything is importable) and again,
    in place, after a part is registered or removed by assignment (``MODELS["mine"] = MyVAE``). An
    option set in the dict by hand (a test's, a notebook's) is kept across a new gathering."""
    versions = tuple(registry.version for registry in REGISTRIES)
    if versions != _GATHERED["versions"]:
        by_hand = {name: o for name, o in _OPTIONS.items() if name not in _GATHERED["names"]}
        gathered = _gather()
        _OPTIONS.clear()
        _OPTIONS.update({**gathered, **by_hand})
        _GATHERED.update(versions=tuple(registry.version for registry in REGISTRIES), names=set(gathered))
    return _OPTIONS


def __getattr__(name: str) -> Any:
    """``OPTIONS``: ``all_options()`` (PEP 562), the name the rest of pvae imports."""
    if name == "OPTIONS":
        return all_options()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def model_defaults(model: str) -> dict[str, Any]:
    """The ``train_defaults`` the model called ``model`` declares (empty for an unknown name)."""
    return dict(MODELS[model].train_defaults) if model in MODELS else {}


class TrainConfig:
    """The value of every option for one run (``config.json["train"]``): attributes named as the
    options, defaults from ``OPTIONS`` under the model's ``train_defaults`` (``for_model``).

    ``given`` holds the names of the options a user gave (``for_model``: those given on top of the
    model's defaults; none for a config rebuilt from its values): a given option that nothing
    reads is refused even at its default value.
    """

    def __init__(self, **values: Any) -> None:
        unknown = sorted(set(values) - set(all_options()))
        if unknown:
            raise UserError(f"unknown option {unknown[0]!r}; the options are {', '.join(all_options())}")
        for name, option in all_options().items():
            setattr(self, name, copy.deepcopy(values.get(name, option.default)))
        self.given: frozenset[str] = frozenset()

    @classmethod
    def for_model(cls, **given: Any) -> TrainConfig:
        """A config from ``given`` values over the model's ``train_defaults`` over ``OPTIONS``.

        A limit given alone is the only limit: ``steps`` without ``epochs`` trains for that many
        steps whatever the default number of epochs, and ``epochs`` without ``steps`` that many
        epochs whatever a model's default steps. Likewise an annealing speed given alone
        (``kl_anneal_rate`` or ``kl_anneal_fraction``) is the only one.
        """
        defaults = model_defaults(given.get("model", all_options()["model"].default))
        if given.get("steps") is not None and "epochs" not in given:
            defaults["epochs"] = None
        if given.get("epochs") is not None and "steps" not in given:
            defaults["steps"] = None  # a model's own default --steps does not cap --epochs given alone
        for speed, other in (("kl_anneal_rate", "kl_anneal_fraction"), ("kl_anneal_fraction", "kl_anneal_rate")):
            if given.get(speed) is not None and other not in given:
                defaults[other] = None  # an annealing speed given replaces the model's, of either kind
        config = cls(**{**defaults, **given})
        config.given = frozenset(given)
        return config

    def defaults(self) -> dict[str, Any]:
        """What each option would be for this config's model with no value given."""
        return {**{n: o.default for n, o in all_options().items()}, **model_defaults(self.model)}

    def asdict(self) -> dict[str, Any]:
        return {name: copy.deepcopy(getattr(self, name)) for name in all_options()}

    def check(self) -> None:
        """Raise ``UserError`` naming the first option whose value cannot work."""
        for option in all_options().values():
            option.check(getattr(self, option.name))
        if self.epochs is None and self.steps is None:
            raise UserError("give --epochs or --steps: a run needs a limit")
        for option in all_options().values():
            complaint = None if option.check_with is None else option.check_with(self)
            if complaint is not None:
                raise UserError(complaint)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, TrainConfig) and self.asdict() == other.asdict()

    def __repr__(self) -> str:
        return f"TrainConfig({', '.join(f'{k}={v!r}' for k, v in self.asdict().items())})"


def unused_options(config: TrainConfig, readers: dict[str, Callable[[str], bool]]) -> list[str]:
    """One line for each option given (``config.given``) or set away from its default that nothing
    in the combination reads.

    :param readers: for each scope of ``SCOPES`` except "run", ``(reads, who)``: ``reads(name)``
        tells whether the combination reads the option (called with the constructor ``argument``
        for the model, guide and networks scopes, with the option's ``name`` otherwise), and
        ``who`` names that part of the combination for the refusal ("--model linear").
    """
    defaults = config.defaults()
    lines = []
    for option in all_options().values():
        value = getattr(config, option.name)
        if value is None or (value == defaults[option.name] and option.name not in config.given):
            continue  # None is "not set"
        if option.scope != "run":
            read, who = readers[option.scope]
            if not read(option.argument if option.scope in CONSTRUCTOR_SCOPES else option.name):
                lines.append(f"{option.flag} {option.shown(value)}: {who} does not use it")
                continue
        if option.needs is not None and not option.needs[0](config):
            lines.append(f"{option.flag} {option.shown(value)}: used only with {option.needs[1]}")
    return lines


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """One flag per option, in its group; every default is ``None`` so a resumed run can tell which
    flags were given. Help shows the option's default and any model's own."""
    sections = _groups(all_options().values())
    groups = {name: parser if name == "run" else parser.add_argument_group(name) for name in sections}
    per_model = {}
    for name in MODELS:
        for key, value in model_defaults(name).items():
            per_model.setdefault(key, []).append(f"{name}: {all_options()[key].shown(value)}")
    for option in all_options().values():
        default = option.default_text if option.default is None else option.shown(option.default)
        extra = f"; {'; '.join(per_model[option.name])}" if option.name in per_model else ""
        kwargs: dict[str, Any] = dict(help=f"{option.help} (default {default}{extra})", default=None)
        if option.type is bool:
            kwargs["action"] = "store_true"
        else:
            kwargs.update(type=option.type, nargs=option.nargs, metavar=option.metavar)
            allowed = option.allowed()
            if allowed is not None:
                kwargs["choices"] = allowed
        groups[option.group].add_argument(option.flag, **kwargs)


def given_values(args: argparse.Namespace) -> dict[str, Any]:
    """The options given on the command line (flags left out are ``None``)."""
    return {name: getattr(args, name) for name in all_options() if getattr(args, name, None) is not None}
