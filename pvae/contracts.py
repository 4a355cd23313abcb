"""The contracts every part follows (docs/architecture.md, "Contracts" and "Capabilities"):
``Model`` and ``Guide``, the base classes whose class attributes declare what each part can do,
and ``Option``, the one declaration of a hyperparameter that a part reads.

Models and guides never import each other; they meet only here. A part lists the options it reads
in ``options`` (each ``Option`` declared once, here when models and guides share it, else beside
the part), and ``pvae.options`` gathers them from the registries.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, ClassVar

import pyro
import pyro.distributions as dist
import torch
from torch import nn

from pvae.distributions.priors import PRIORS
from pvae.errors import UserError

SCOPES = ("run", "model", "guide", "networks", "data", "latent", "objective")
"""Who reads an option: the trainer itself ("run"), the model's or the guide's constructor ("model",
"guide", "networks": either), the data kind ("data"), the KL controls of a model with a latent code
("latent"), or the objective's constructor ("objective")."""


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
    :param check_with: ``check_with(config)``: the line that says what is wrong with the value given
        the other options (naming the flags), or ``None``; ``TrainConfig.check`` asks it.
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
    check_with: Callable[[Any], str | None] | None = None
    default_text: str = "none"
    on_resume: str = "keep"

    def __post_init__(self) -> None:
        if self.scope not in SCOPES:
            raise ValueError(f"option {self.name!r}: scope {self.scope!r} is not one of {', '.join(SCOPES)}")
        if self.on_resume not in ("keep", "limit", "change"):
            raise ValueError(f"option {self.name!r}: on_resume {self.on_resume!r} is not keep, limit or change")

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


LATENT_DIM = Option("latent_dim", 20, "latent dimensions", "networks", int, low=1, scope="networks", metavar="Z")
CONDITIONAL = Option(
    "conditional",
    False,
    "class labels as the condition y of model and guide",
    "conditioning",
    bool,
    scope="model",
    arg="num_classes",
)
PRIOR = Option(
    "prior",
    "normal",
    "p(z): standard normal, or the AAE paper's mixture of 10 Gaussians",
    "networks",
    choices=tuple(PRIORS),
    scope="model",
)


def batch_size_of(x: torch.Tensor | None, y: torch.Tensor | None, batch_size: int | None) -> int:
    """B of a call ``model(x, y, batch_size)``: from x, else from y, else ``batch_size``, else 1."""
    if x is not None:
        return x.shape[0]
    if y is not None:
        return y.shape[0]
    return 1 if batch_size is None else batch_size


class Model(nn.Module):
    """Base of the Model contract (docs/architecture.md): subclasses give ``likelihood`` (and
    ``prior``, which defaults to N(0, I)); this class gives the Pyro program over B datapoints.

        with pyro.plate("data", B):  z ~ prior(B, y);  x ~ likelihood(z, y)

    Capabilities are class attributes, read by the trainer and the commands instead of probing
    (an instance may refine one that depends on its constructor arguments, as ``binary`` does):

    - ``name``: the name it is registered under (``--model NAME``, saved in ``config.json``); a class
      without a name of its own is a base for others and is not registered.
    - ``options``: the ``Option`` s its constructor reads (``pvae.options`` gathers every part's).
    - ``data_kind``: ``"image"`` (flattened pixels ``(B, D)``; the constructor takes ``data_dim``)
      or ``"strokes"`` (padded stroke-5 sketches ``(B, T, 5)``; the constructor takes ``max_len``).
      No default: every model states it.
    - ``binary``: p(x | z) needs pixels in {0, 1} (grey images are binarised for it).
    - ``supports_completion``: the model has ``complete(y, num_samples)`` (image completion).
    - ``supports_vectorise``: the model draws its images as strokes: ``strokes(z)`` gives them
      (``pvae.raster.Strokes``) and ``render(strokes)`` their ink (``pvae vectorise``).
    - ``train_defaults``: training-config values that suit the model (over the trainer's defaults,
      under the user's flags).
    - ``num_classes``: C > 0 conditions p(x, z | y) on class labels y in 0..C-1.
    - ``guide_reads_labels``, ``labels_reach_decoder``: a class-conditional model's labels reach
      the guide too (its ``num_classes``) and the decoder; both False where only the prior reads
      them (the label-regularised AAE).
    - ``prior_has_parameters``: p(z | y) is learned (objectives that only sample the prior refuse it).
    - ``prior_name``: the p(z) of ``prior`` (``pvae.distributions.priors.PRIORS``); models with a
      ``prior`` constructor argument (the ``--prior`` option) set it.
    - ``traceable``: the program's Python (its branches and the numbers it computes outside tensors)
      depends on the shapes of its inputs alone, so a trace recorded once per batch shape computes
      it exactly (``pvae train --jit``, ``pvae.svi.TracedLoss``); False for data-dependent loops
      and for schedules (``set_progress``). A trace does not record ``torch.no_grad()``, so no
      trainable parameter may be read inside one where its gradient would count.

    ``log_likelihood(x, z, y)`` is ``likelihood(z, y).log_prob(x)`` unless a subclass computes it
    faster (exactly); ``pvae.bounds`` scores every particle with it.

    Hooks the trainer calls, no-ops here: before the first epoch ``init_output_bias(data_mean)``
    (image data) and ``pretrain(batches, log)``; before every step ``set_progress(step, steps)``
    (a schedule of the model's own over the run's planned steps).
    """

    name: ClassVar[str]
    options: ClassVar[tuple[Option, ...]] = ()
    data_kind: ClassVar[str]
    binary: bool = False
    supports_completion: ClassVar[bool] = False
    supports_vectorise: ClassVar[bool] = False
    train_defaults: ClassVar[dict[str, Any]] = {}
    num_classes: int = 0
    guide_reads_labels: bool = True
    labels_reach_decoder: bool = True
    prior_has_parameters: bool = False
    prior_name: str = "normal"
    traceable: bool = False
    latent_dim: int

    def __init__(self) -> None:
        super().__init__()
        self.register_buffer("_zero", torch.zeros(()), persistent=False)  # dtype and device of the prior

    def condition(self, x: torch.Tensor, labels: torch.Tensor | None) -> torch.Tensor | None:
        """The condition y of a batch (docs/architecture.md: an argument, never a latent): ``None`` for
        an unconditional model, the class labels for a class-conditional one; a model that
        conditions on part of x (image completion) derives y from x here."""
        if not self.num_classes:
            return None
        if labels is None:
            raise UserError("this model is class-conditional, and the data have no labels")
        if int(labels.max()) >= self.num_classes or int(labels.min()) < 0:
            raise UserError(f"labels must be in 0-{self.num_classes - 1}")
        return labels

    def prior(self, batch_size: int, y: torch.Tensor | None = None) -> dist.Distribution:
        """p(z | y), here the prior called ``prior_name`` (N(0, I) by default): batch ``(batch_size,)``,
        event ``(Z,)``."""
        return PRIORS[self.prior_name](batch_size, self.latent_dim, self._zero)

    def likelihood(self, z: torch.Tensor, y: torch.Tensor | None = None) -> dist.Distribution:
        raise NotImplementedError

    def log_likelihood(self, x: torch.Tensor, z: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        """log p(x | z, y), shape ``z.shape[:-1]``: ``likelihood(z, y).log_prob(x)``, which a model may
        compute faster where it knows more (``pvae.bounds`` scores every particle with it)."""
        return self.likelihood(z, y).log_prob(x)

    def model(
        self, x: torch.Tensor | None = None, y: torch.Tensor | None = None, batch_size: int | None = None
    ) -> None:
        """The Pyro model: ``z ~ p(z | y)``, ``x ~ p(x | z, y)`` for each of the B datapoints, x observed
        when given. B comes from x, else y, else ``batch_size``, else 1, so that with no data it
        draws from the prior, as Pyro's examples do: ``pyro.infer.Predictive(model.model, num_samples=8)()``.
        """
        n = batch_size_of(x, y, batch_size)
        pyro.module("model", self)
        with pyro.plate("data", n):
            z = pyro.sample("z", self.prior(n, y))
            pyro.sample("x", self.likelihood(z, y), obs=x)

    def init_output_bias(self, data_mean: torch.Tensor) -> None:
        """Start the decoder's output at the data mean ``(D,)`` (image data); here nothing."""

    def pretrain(self, batches: Callable[[], Iterable[tuple[torch.Tensor, Any]]], log: Callable[[str], None]) -> None:
        """Train parts of the model before SVI starts; ``batches()`` is one pass over the training
        split as ``(x, labels)`` batches, ``log`` writes a line; here nothing."""

    def set_progress(self, step: int, steps: int) -> None:
        """Called before optimiser step ``step`` (from 0) of a run planned for ``steps``; here nothing."""


class Guide(nn.Module):
    """Base of the Guide contract: subclasses give ``posterior``; this class gives the Pyro guide.

    Capabilities are class attributes (an instance may refine one that depends on its constructor
    arguments, as ``LinearGuide.factorised`` does):

    - ``name``, ``options``: as ``Model``'s (``--guide NAME``).
    - ``analytic_kl``: KL(q || p) is in closed form (torch's ``kl_divergence``) against a diagonal
      Normal prior, N(0, I) or any other: ``--objective meanfield`` then has no Monte Carlo term.
    - ``factorised``: q is a product over the latent dimensions, ``Independent`` over a
      per-dimension distribution (needed by free bits, ``--kl-floor-mode per-dim``).
    - ``density``: q(z | x) is a density (not a point estimate): importance weights, bounds on
      log p(x) and KL(q || p) exist.
    - ``data_kinds``: the data kinds it reads (``Model.data_kind``). No default: every guide states it.
    - ``traceable``: as ``Model.traceable``, for q(z | x).
    """

    name: ClassVar[str]
    options: ClassVar[tuple[Option, ...]] = ()
    analytic_kl: bool = False
    density: bool = True
    factorised: bool = False
    traceable: bool = False
    data_kinds: ClassVar[tuple[str, ...]]
    latent_dim: int

    def posterior(self, x: torch.Tensor, y: torch.Tensor | None = None) -> dist.Distribution:
        raise NotImplementedError

    def guide(self, x: torch.Tensor, y: torch.Tensor | None = None, batch_size: int | None = None) -> None:
        """The Pyro guide: ``z ~ q(z | x)`` for each of the B datapoints (``batch_size`` is the model's
        argument, accepted so ``pyro.infer.Predictive`` can call both alike, and ignored)."""
        pyro.module("guide", self)
        with pyro.plate("data", x.shape[0]):
            pyro.sample("z", self.posterior(x, y))
