"""Every training option declared once (``docs/architecture.md``, "Options").

An ``Option`` is the one declaration of a hyperparameter: its name, default, type, range or
choices, help text and group. From ``OPTIONS`` follow

- the ``pvae train`` flags (``add_arguments``): ``--name-with-dashes``, with ``choices`` from the
  registries and each model's own defaults (its ``train_defaults``) shown in the help;
- ``TrainConfig``, the values of one run (saved as ``config.json["train"]``), and its validation
  (``TrainConfig.check``: ranges and choices, one line naming the flag);
- the constructor arguments of models and guides: an option reaches every constructor with a
  parameter called ``arg`` (``runs.make_spec``);
- which options a combination of model, guide, objective and data kind uses
  (``unused_options``): a value that differs from its default and that nothing in the chosen
  combination reads is refused in one line, never dropped silently.

Adding a hyperparameter is one entry in ``OPTIONS`` (plus the parameter of the constructor that
reads it).
"""

from __future__ import annotations

import argparse
import copy
import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from pvae.errors import UserError

GROUPS = ("run", "networks", "drawing", "melody", "conditioning", "data", "optimiser", "KL controls", "adversarial")
# Who reads an option: the trainer itself ("run"), the model's or the guide's constructor
# ("model", "guide", "networks": either), the data kind ("data"), or the KL controls of a model
# with a latent code ("latent"), or the objective's constructor ("objective").
SCOPES = ("run", "model", "guide", "networks", "data", "latent", "objective")
CONSTRUCTOR_SCOPES = ("model", "guide", "networks")  # options passed to model and guide constructors


@dataclass(frozen=True)
class Option:
    """One hyperparameter.

    :param name: the config field (``--name-with-dashes`` on the command line).
    :param default: the value when neither the user nor the model's ``train_defaults`` gives one.
    :param help: one line for ``--help``.
    :param group: one of ``GROUPS`` (the ``--help`` section).
    :param type: ``int``, ``float`` or ``str``; ``bool`` for an on/off flag.
    :param choices: the allowed values, or a function returning them (a registry's names).
    :param low: smallest allowed value (each element for a list); ``low_open``: strictly above it.
    :param high: largest allowed value; ``high_open``: strictly below it.
    :param nargs: argparse ``nargs`` for list values (``"+"``, 2).
    :param optional: ``None`` is allowed (and means "not set").
    :param scope: who reads it (``SCOPES``): decides whether a combination uses it.
    :param arg: the constructor parameter it reaches (default ``name``).
    :param needs: ``(test, text)``: the option is read only when ``test(config)`` holds; ``text``
        says when, for the refusal ("with --lr-schedule sketch").
    :param metavar: argparse metavar.
    :param default_text: how ``--help`` describes a ``None`` default ("learned").
    :param on_resume: what a resumed run does with a value given for it: ``"keep"`` (refuse one that
        differs from the run's), ``"limit"`` (the limits given replace the run's own) or
        ``"change"`` (take it: it changes how the run is kept, not what it is).
    """

    name: str
    default: Any
    help: str
    group: str = "run"
    type: type = str
    choices: tuple | Callable[[], Iterable] | None = None
    low: float | None = None
    low_open: bool = False
    high: float | None = None
    high_open: bool = False
    nargs: int | str | None = None
    optional: bool = False
    scope: str = "run"
    arg: str | None = None
    needs: tuple[Callable[[Any], bool], str] | None = None
    metavar: str | None = None
    default_text: str = "none"
    on_resume: str = "keep"

    @property
    def flag(self) -> str:
        return "--" + self.name.replace("_", "-")

    @property
    def argument(self) -> str:
        """The constructor parameter this option reaches."""
        return self.arg or self.name

    def allowed(self) -> tuple | None:
        return tuple(self.choices()) if callable(self.choices) else self.choices

    def shown(self, value: Any) -> str:
        """``value`` as the user would type it after the flag."""
        return " ".join(map(str, value)) if isinstance(value, list | tuple) else str(value)

    def check(self, value: Any) -> None:
        """Raise ``UserError`` naming the flag when ``value`` is out of range or not a choice."""
        if value is None:
            if not self.optional:
                raise UserError(f"{self.flag}: a value is required")
            return
        values = value if self.nargs is not None else [value]
        if self.nargs is not None and isinstance(self.nargs, int) and len(values) != self.nargs:
            raise UserError(f"{self.flag} {self.shown(value)}: give {self.nargs} values")
        allowed = self.allowed()
        for v in values:
            if allowed is not None and v not in allowed:
                raise UserError(f"{self.flag} {v}: unknown; choose one of {', '.join(map(str, allowed))}")
            if self.type in (int, float):
                if self.type is float and not math.isfinite(v):
                    raise UserError(f"{self.flag} {self.shown(value)}: must be a finite number")
                if self.low is not None and (v < self.low or (self.low_open and v == self.low)):
                    raise UserError(f"{self.flag} {self.shown(value)}: must be {self._range()}")
                if self.high is not None and (v > self.high or (self.high_open and v == self.high)):
                    raise UserError(f"{self.flag} {self.shown(value)}: must be {self._range()}")

    def _range(self) -> str:
        if self.high is None:
            if self.low_open:
                return "positive" if self.low == 0 else f"above {self.low:g}"
            return f"at least {self.low:g}"
        if self.low is None:
            return f"{'below' if self.high_open else 'at most'} {self.high:g}"
        return f"in {'(' if self.low_open else '['}{self.low:g}, {self.high:g}{')' if self.high_open else ']'}"


def _models() -> tuple[str, ...]:
    from models import MODELS

    return tuple(MODELS)


def _primitives() -> tuple[str, ...]:
    from pvae.raster import CONTROL_POINTS

    return tuple(CONTROL_POINTS)


def _renderers() -> tuple[str, ...]:
    from models.strokes_raster import RENDERERS

    return RENDERERS


def _decoders() -> tuple[str, ...]:
    from models.melody_vae import DECODERS

    return DECODERS


def _priors() -> tuple[str, ...]:
    from pvae.distributions.priors import PRIORS

    return tuple(PRIORS)


def _guides() -> tuple[str, ...]:
    from guides import GUIDES

    return tuple(GUIDES)


def _objectives() -> tuple[str, ...]:
    from pvae.objectives import OBJECTIVES

    return tuple(OBJECTIVES)


def _schedules() -> tuple[str, ...]:
    from pvae.train import LR_SCHEDULES

    return tuple(LR_SCHEDULES)


def _activations() -> tuple[str, ...]:
    from pvae.nn import ACTIVATIONS

    return tuple(ACTIVATIONS)


ANNEAL_LEFT = 0.01  # --kl-anneal-fraction F: the part of w - w_start still to go after F x the planned steps


def annealing(config) -> bool:
    """Whether the KL weight is annealed: the start weight is set, and a rate or a fraction of the run."""
    return config.kl_weight_start is not None and (
        config.kl_anneal_rate is not None or config.kl_anneal_fraction is not None
    )


_unit = dict(type=float, low=0.0, high=1.0, high_open=True)  # a probability or fraction in [0, 1)
_positive = dict(type=float, low=0.0, low_open=True)

OPTIONS: dict[str, Option] = {
    o.name: o
    for o in [
        # run
        Option("model", "gaussian", "generative model p(x, z)", choices=_models),
        Option("guide", "mlp", "guide q(z | x)", choices=_guides),
        Option("objective", "meanfield", "training objective", choices=_objectives),
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
        Option("skip_nonfinite", 0, "steps with a NaN/inf loss or gradient to skip before stopping", type=int,
               low=0, metavar="N", on_resume="change"),
        # networks
        Option("latent_dim", 20, "latent dimensions", "networks", int, low=1, scope="networks", metavar="Z"),
        Option("hidden", [400], "MLP hidden sizes", "networks", int, low=1, nargs="+", scope="networks", metavar="H"),
        Option("activation", "relu", "MLP hidden activation", "networks", scope="networks", choices=_activations),
        Option("prior", "normal", "p(z): standard normal, or the AAE paper's mixture of 10 Gaussians", "networks",
               choices=_priors, scope="model"),
        Option("likelihood", "bernoulli", "pixel likelihood", "networks", choices=("bernoulli", "gaussian"),
               scope="model"),
        Option("obs_scale", None, "fixed pixel std of a gaussian likelihood", "networks", optional=True,
               scope="model", default_text="learned per pixel", **_positive),
        Option("posterior_scale", "softplus", "how the guide makes sigma", "networks", scope="guide",
               choices=("softplus", "exp", "logvar"), arg="scale"),
        Option("covariance", "diag", "linear guide: diagonal or full covariance", "networks",
               choices=("diag", "full"), scope="guide"),
        Option("rank", 2, "lowrank guide: columns of the covariance factor", "networks", int, low=1, scope="guide"),
        Option("flows", 2, "iaf guide: IAF steps", "networks", int, low=1, scope="guide"),
        Option("flow_hidden", None, "iaf guide: MADE hidden units", "networks", int, low=1, optional=True,
               scope="guide", metavar="H", default_text="2 Z, at least 16"),
        Option("enc_hidden", 256, "encoder LSTM size (stroke and melody guides)", "networks", int, low=1,
               scope="guide"),
        Option("dec_hidden", 512, "decoder LSTM size (sketch, melody)", "networks", int, low=1, scope="model"),
        Option("mixtures", 20, "sketch mixture components", "networks", int, low=1, scope="model", metavar="M"),
        Option("layer_norm", False, "layer-normalised decoder LSTM (slower)", "networks", bool, scope="model"),
        Option("recurrent_dropout", 0.0, "decoder recurrent dropout probability (slower)", "networks",
               scope="model", **_unit),
        Option("unconditional", False, "decoder-only sketch model (no z, no guide)", "networks", bool,
               scope="model"),
        Option("mask_pen", False, "pen loss only up to each sketch's end", "networks", bool, scope="model"),
        # drawing (--model strokes-raster)
        Option("segments", 8, "strokes per image, N", "drawing", int, low=1, scope="model", metavar="N"),
        Option("primitive", "line", "stroke shape: a line or a quadratic Bezier", "drawing",
               choices=_primitives, scope="model"),
        Option("renderer", "soft", "soft (analytic, differentiable) or neural (imitates a hard rasteriser)",
               "drawing", choices=_renderers, scope="model"),
        Option("sigma", 2.0, "soft renderer: ink falloff width in pixels at the start", "drawing", scope="model",
               needs=(lambda c: c.renderer == "soft", "--renderer soft"), **_positive),
        Option("sigma_final", 0.5, "soft renderer: the width annealed to (at most --sigma)", "drawing",
               scope="model", needs=(lambda c: c.renderer == "soft", "--renderer soft"), **_positive),
        Option("renderer_steps", 2000, "neural renderer: its training steps before SVI", "drawing", int, low=1,
               scope="model", needs=(lambda c: c.renderer == "neural", "--renderer neural")),
        # melody (--model melody)
        Option("decoder", "hierarchical", "a flat LSTM over all steps, or MusicVAE's conductor over segments and "
               "a bottom LSTM per segment", "melody", choices=_decoders, scope="model"),
        Option("dec_layers", 2, "layers of the melody decoder LSTMs", "melody", int, low=1, scope="model"),
        Option("conductor_hidden", 128, "conductor LSTM size", "melody", int, low=1, scope="model",
               needs=(lambda c: c.decoder == "hierarchical", "--decoder hierarchical")),
        Option("segment_bars", 1, "bars per conductor step (dividing --bars)", "melody", int, low=1, scope="model",
               needs=(lambda c: c.decoder == "hierarchical", "--decoder hierarchical")),
        Option("bars", 16, "bars per melody window (16 steps each)", "melody", int, low=1, scope="data"),
        Option("transpose", 0, "random transposition of training melodies by up to this many semitones, "
               "kept within the training pitch range", "melody", int, low=0, scope="data"),
        # conditioning
        Option("conditional", False, "class labels as the condition y of model and guide", "conditioning", bool,
               scope="model", arg="num_classes"),
        Option("learned_prior", False, "p(z | y) learned per class", "conditioning", bool, scope="model"),
        Option("label_regularised", False, "labels pick a mog10 component of p(z | y) and reach no network "
               "(label-regularised AAE)", "conditioning", bool, scope="model"),
        Option("visible_quadrants", 1, "completion: quadrants given", "conditioning", int, choices=(1, 2, 3),
               scope="model", metavar="Q"),
        Option("baseline_epochs", 10, "completion: baseline network epochs first", "conditioning", int, low=0,
               scope="model"),
        # data
        Option("train_limit", None, "train on the first N training examples only", "data", int, low=1,
               optional=True, metavar="N", default_text="all"),
        Option("max_seq_len", 250, "drop longer sketches", "data", int, low=1, scope="data"),
        Option("augment_scale", 0.0, "random x/y stretch of sketches", "data", scope="data", **_unit),
        Option("augment_drop", 0.0, "point-drop probability of sketches", "data", scope="data", **_unit),
        # optimiser
        Option("lr", 1e-3, "Adam learning rate", "optimiser", **_positive),
        Option("adam_betas", [0.9, 0.999], "Adam betas", "optimiser", nargs=2, metavar="B", **_unit),
        Option("adam_eps", 1e-8, "Adam epsilon", "optimiser", **_positive),
        Option("lr_schedule", "constant", "constant; iwae (Burda et al.); sketch (decay to --min-lr)", "optimiser",
               choices=_schedules),
        Option("lr_decay", 0.9999, "sketch schedule: lr decay per step", "optimiser", float, low=0.0,
               low_open=True, high=1.0, needs=(lambda c: c.lr_schedule == "sketch", "--lr-schedule sketch")),
        Option("min_lr", 1e-5, "sketch schedule: the lr it decays to", "optimiser",
               needs=(lambda c: c.lr_schedule == "sketch", "--lr-schedule sketch"), **_positive),
        Option("clip_value", None, "clip every gradient element to +-this", "optimiser", optional=True,
               default_text="no clipping", **_positive),
        # KL controls
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
               needs=(annealing, "--kl-weight-start (annealing needs both)")),
        Option("kl_floor", 0.0, "nats per latent dimension not penalised", "KL controls", float, low=0.0,
               scope="latent"),
        Option("kl_floor_mode", "total", "floor the mean KL per dimension (sketch-rnn) or each dimension (free bits)",
               "KL controls", choices=("total", "per-dim"), scope="latent",
               needs=(lambda c: c.kl_floor > 0, "--kl-floor > 0")),
        # adversarial
        Option("adversarial_weight", 30.0, "aae: weight w of the adversarial terms (the reconstruction is in nats "
               "over all pixels)", "adversarial", float, low=0.0, scope="objective"),
        Option("disc_hidden", [256, 256], "aae, ali: discriminator hidden sizes", "adversarial", int, low=1, nargs="+",
               scope="objective", metavar="H"),
        Option("disc_lr_ratio", 1.0, "aae, ali: discriminator learning rate over the model's", "adversarial",
               scope="objective", **_positive),
    ]
}  # fmt: skip


def model_defaults(model: str) -> dict[str, Any]:
    """The ``train_defaults`` the model called ``model`` declares (empty for an unknown name)."""
    from models import MODELS

    return dict(MODELS[model].train_defaults) if model in MODELS else {}


class TrainConfig:
    """The value of every option for one run (``config.json["train"]``): attributes named as the
    options, defaults from ``OPTIONS`` under the model's ``train_defaults`` (``for_model``).

    ``given`` holds the names of the options a user gave (``for_model``: those given on top of the
    model's defaults; none for a config rebuilt from its values): a given option that nothing
    reads is refused even at its default value.
    """

    def __init__(self, **values: Any) -> None:
        unknown = sorted(set(values) - set(OPTIONS))
        if unknown:
            raise UserError(f"unknown option {unknown[0]!r}; the options are {', '.join(OPTIONS)}")
        for name, option in OPTIONS.items():
            setattr(self, name, copy.deepcopy(values.get(name, option.default)))
        self.given: frozenset[str] = frozenset()

    @classmethod
    def for_model(cls, **given: Any) -> TrainConfig:
        """A config from ``given`` values over the model's ``train_defaults`` over ``OPTIONS``.

        A limit given alone is the only limit: ``steps`` without ``epochs`` trains for that many
        steps whatever the default number of epochs. Likewise an annealing speed given alone
        (``kl_anneal_rate`` or ``kl_anneal_fraction``) is the only one.
        """
        defaults = model_defaults(given.get("model", OPTIONS["model"].default))
        if given.get("steps") is not None and "epochs" not in given:
            defaults["epochs"] = None
        for speed, other in (("kl_anneal_rate", "kl_anneal_fraction"), ("kl_anneal_fraction", "kl_anneal_rate")):
            if given.get(speed) is not None and other not in given:
                defaults[other] = None  # an annealing speed given replaces the model's, of either kind
        config = cls(**{**defaults, **given})
        config.given = frozenset(given)
        return config

    def defaults(self) -> dict[str, Any]:
        """What each option would be for this config's model with no value given."""
        return {**{n: o.default for n, o in OPTIONS.items()}, **model_defaults(self.model)}

    def asdict(self) -> dict[str, Any]:
        return {name: copy.deepcopy(getattr(self, name)) for name in OPTIONS}

    def check(self) -> None:
        """Raise ``UserError`` naming the first option whose value cannot work."""
        for option in OPTIONS.values():
            option.check(getattr(self, option.name))
        if self.epochs is None and self.steps is None:
            raise UserError("give --epochs or --steps: a run needs a limit")
        if self.kl_anneal_rate is not None and self.kl_anneal_fraction is not None:
            raise UserError(
                f"--kl-anneal-fraction {self.kl_anneal_fraction} and --kl-anneal-rate {self.kl_anneal_rate}: give one "
                "(the fraction sets the rate from the run's planned steps)"
            )
        if self.sigma_final > self.sigma:
            raise UserError(f"--sigma-final {self.sigma_final}: must be at most --sigma {self.sigma}")

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
    for option in OPTIONS.values():
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
    groups = {name: parser if name == "run" else parser.add_argument_group(name) for name in GROUPS}
    per_model = {}
    for name in _models():
        for key, value in model_defaults(name).items():
            per_model.setdefault(key, []).append(f"{name}: {OPTIONS[key].shown(value)}")
    for option in OPTIONS.values():
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
    return {name: getattr(args, name) for name in OPTIONS if getattr(args, name, None) is not None}
