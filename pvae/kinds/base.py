"""Data kinds as objects (``docs/architecture.md``, "Data kinds"): the protocol and the registry.

A data kind is everything the rest of pvae needs to know about one sort of data, behind one small
protocol (``DataKind``): the ``--data`` schemes it reads, the options it uses, what models and
guides get from it (``model_kwargs``), what goes into the run config, the split trained on (with
its per-epoch randomness) and the splits evaluated on, the terms it reports beside the ELBO, the
training and inspection figures, and the generation commands that apply. The rest of the package
asks the kind of a dataset, spec or run (``kind_of``, ``kind_of_spec``) and never compares a kind's
name.

``KINDS`` holds the kinds by name: pvae's own, one subpackage (a wing) each under ``pvae/kinds/``
(``image``, ``strokes``, ``events``), and plug-ins (entry point group ``pvae.kinds``). The core
(runs, options, bounds, inspection) reads kinds through it alone and imports none of them.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, ClassVar

from torch import nn

from pvae.contracts import Option
from pvae.errors import DataError, UserError
from pvae.registry import Registry


def option_value(options: Mapping[str, Any] | None, option: Option) -> Any:
    """The value of ``option`` in ``options`` (a run's ``config["train"]``), or its default."""
    return option.default if options is None or option.name not in options else options[option.name]


class DataKind:
    """The protocol of a data kind; subclasses fill in every part.

    :cvar name: the kind's name, saved as ``config.json["data"]["kind"]`` (``--data`` schemes name
        the kind, so there is no flag of its own); a class without a name is not registered.
    :cvar schemes: ``--data`` schemes -> their spec form for help and errors (``"digits[:N[:SEED]]"``).
    :cvar path_schemes: the schemes whose rest names files or folders (made absolute in a run's config).
    :cvar options: the ``Option`` s this kind reads (declared here when only this kind reads them).
    :cvar report_terms: the names of the terms ``report`` adds (columns of ``metrics.csv``).
    """

    name: ClassVar[str]
    schemes: ClassVar[dict[str, str]]
    path_schemes: ClassVar[tuple[str, ...]] = ()
    options: ClassVar[tuple[Option, ...]] = ()
    report_terms: ClassVar[tuple[str, ...]] = ()

    def load(
        self,
        spec: str,
        options: Mapping[str, Any] | None = None,
        saved: dict | None = None,
        splits: tuple | None = None,
    ):
        """The dataset ``spec`` names (one of this kind's schemes); ``DataError`` for a bad one.

        :param options: training options by name (a run's ``config["train"]``); the kind reads those
            of its ``options`` that shape the data (e.g. ``max_seq_len``), defaults for the rest.
        :param saved: a run's ``config["data"]`` (``describe``): load the data as that run saw them.
        :param splits: the splits needed (default all); a kind may read only those.
        """
        raise NotImplementedError

    def model_kwargs(self, data) -> dict[str, Any]:
        """Constructor arguments that models and guides of this data may take."""
        raise NotImplementedError

    def describe(self, data, model: nn.Module) -> dict[str, Any]:
        """What the run config keeps of the data besides spec, name and kind (to evaluate later)."""
        return {}

    def training_split(self, data, config: dict[str, Any]):
        """The train split as trained on: first ``train_limit`` examples, with this kind's
        per-epoch randomness (dynamic binarisation, augmentation)."""
        raise NotImplementedError

    def evaluation_split(self, data, split: str, config: dict[str, Any]):
        """Split ``split`` as every evaluation of the run sees it."""
        return data.split(split)

    def prepare_model(self, model: nn.Module, train) -> None:
        """Set up a new model from its training data before the first step."""

    def report(self, terms: dict[str, float], config: dict[str, Any], model: nn.Module) -> dict[str, float]:
        """Terms reported beside the ELBO (nats per datapoint), e.g. per-step losses."""
        return {}

    def steps(self, config: dict[str, Any]) -> int:
        """T, the steps of one datapoint, for losses counted per step (sketch-rnn's KL units)."""
        raise UserError(f"{self.name} data have no steps per datapoint")

    def training_figures(self, out: Path, model, guide, test, config: dict[str, Any], seed: int) -> None:
        """The figures a finished training run draws of its model."""

    def inspection_figures(self, folder: Path, model, guide, split, config: dict[str, Any], seed: int, **posterior):
        """``pvae inspect``'s figures of this kind beyond the latent plots; ``posterior`` holds the
        condition ``y``, the posterior ``means`` and their ``variances``, and ``iw_samples``."""
        self.training_figures(folder, model, guide, split, config, seed)

    def add_arguments(self, command: str, parser: argparse.ArgumentParser) -> None:
        """Add the flags of ``pvae COMMAND`` that only this kind's command reads (the others are shared)."""

    def commands(self) -> dict[str, Callable[[argparse.Namespace], list[Path]]]:
        """The generation commands (``pvae sample``, ...) that apply to runs of this kind, each a
        function of the command's parsed arguments."""
        return {}


def _free_schemes(kind: DataKind, kinds: Mapping[str, DataKind]) -> str | None:
    """Why a plug-in kind may not join ``kinds``: a ``--data`` scheme that another kind reads."""
    taken = {scheme: other.name for other in kinds.values() for scheme in other.schemes}
    clash = [scheme for scheme in kind.schemes if scheme in taken]
    return f"--data scheme {clash[0]!r} is read by the {taken[clash[0]]} kind" if clash else None


KINDS: Registry[DataKind] = Registry(
    "data kind", DataKind, "pvae.kinds", "pvae.kinds", instances=True, check=_free_schemes
)
"""Every data kind by name (an instance each)."""


def schemes() -> dict[str, DataKind]:
    """Every ``--data`` scheme with the kind that reads it."""
    return {scheme: kind for kind in KINDS.values() for scheme in kind.schemes}


def spec_forms() -> tuple[str, ...]:
    """The form of every ``--data`` spec, for help and errors (``"digits[:N[:SEED]]"``, ...)."""
    return tuple(form for kind in KINDS.values() for form in kind.schemes.values())


def kind_of_spec(spec: str) -> DataKind:
    """The kind of data a ``--data`` spec names (without loading it)."""
    scheme = spec.partition(":")[0]
    found = schemes()
    if scheme not in found:
        raise DataError(f"--data {spec}: unknown dataset; use one of {', '.join(spec_forms())}")
    return found[scheme]


def kind_of(data_or_config: Any) -> DataKind:
    """The kind of a dataset (its ``kind``) or of a run config (``config["data"]["kind"]``)."""
    name = data_or_config["data"]["kind"] if isinstance(data_or_config, dict) else data_or_config.kind
    if name not in KINDS:
        raise UserError(f"data kind {name!r} is not installed; the kinds are {', '.join(KINDS)}")
    return KINDS[name]


def load_dataset(
    spec: str, options: dict | None = None, saved: dict | None = None, splits: tuple[str, ...] | None = None
):
    """The dataset a ``--data`` spec names, loaded by its kind (``DataKind.load``: options, saved and
    splits as there); a bad spec or file raises ``DataError``."""
    return kind_of_spec(spec).load(spec, options, saved=saved, splits=splits)


def absolute_spec(spec: str) -> str:
    """``spec`` with its paths made absolute (each of a comma-separated list), so a run folder's
    config works from any directory."""
    scheme, _, rest = spec.partition(":")
    kind = schemes().get(scheme)
    if kind is not None and scheme in kind.path_schemes and rest:
        return f"{scheme}:" + ",".join(str(Path(part).expanduser().resolve()) for part in rest.split(","))
    return spec


def require_command(command: str, config: dict[str, Any], run: str | Path) -> DataKind:
    """The run's data kind, if generation command ``command`` applies to it; else ``UserError``."""
    kind = kind_of(config)
    if command not in kind.commands():
        others = [other.name for other in KINDS.values() if command in other.commands()]
        raise UserError(
            f"{run}: pvae {command} applies to runs of {' or '.join(others)} data; this run's data are {kind.name}"
        )
    return kind


def require_font(font: str | os.PathLike | None) -> str | os.PathLike:
    """``pvae style``'s ``--font``, checked after the run is (a run that does not qualify says so
    first): the font, or ``UserError`` when none was given."""
    if font is None:
        raise UserError("--font FILE is required: the .ttf or .otf font whose style to decode")
    return font


def generate(command: str, args: argparse.Namespace, config: dict[str, Any]) -> list[Path]:
    """Run generation ``command`` (``pvae sample``, ...) with its parsed ``args`` on a run."""
    return require_command(command, config, args.run).commands()[command](args)
