"""Data kinds as objects (``docs/architecture.md``, "Data kinds").

A data kind is everything the spine needs to know about one sort of data, behind one small
protocol (``DataKind``): the ``--data`` schemes it reads, the options it uses, what models and
guides get from it (``model_kwargs``), what goes into the run config, the split trained on (with
its per-epoch randomness) and the splits evaluated on, the terms it reports beside the ELBO, the
training figures, and the generation commands that apply. The rest of the package asks the kind
of a dataset or run (``kind_of``) and never compares a kind's name.

Kinds: ``image`` (flattened grey or binary pixels), ``strokes`` (stroke-5 sketches) and
``events`` (melodies as MusicVAE's event tokens).
"""

from __future__ import annotations

import argparse
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, ClassVar

from torch import nn

from pvae.errors import DataError, UserError


def option_value(options: Mapping[str, Any] | None, name: str) -> Any:
    """Option ``name`` from ``options`` (a run's ``config[\"train\"]``), or its declared default."""
    from pvae.options import OPTIONS

    return OPTIONS[name].default if options is None or name not in options else options[name]


class DataKind:
    """The protocol of a data kind; subclasses fill in every part.

    :cvar name: the kind's name, saved as ``config.json["data"]["kind"]``.
    :cvar schemes: ``--data`` schemes -> their spec form for help and errors (``"digits[:N[:SEED]]"``).
    :cvar options: the names of the options (``pvae.options``) this kind reads.
    :cvar report_terms: the names of the terms ``report`` adds (columns of ``metrics.csv``).
    """

    name: ClassVar[str]
    schemes: ClassVar[dict[str, str]]
    options: ClassVar[tuple[str, ...]] = ()
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

    def commands(self) -> dict[str, Callable[[argparse.Namespace], list[Path]]]:
        """The generation commands (``pvae sample``, ...) that apply to runs of this kind, each a
        function of the command's parsed arguments."""
        return {}


class ImageKind(DataKind):
    """Flattened images ``(N, H*W)`` in [0, 1]. A Bernoulli model on grey images trains on
    images binarised afresh every epoch and evaluates on one fixed binarisation (seed + 1)."""

    name = "image"
    schemes = {"digits": "digits[:N[:SEED]]", "mnist": "mnist:DIR", "binarized-mnist": "binarized-mnist:FILE"}

    def load(
        self,
        spec: str,
        options: Mapping[str, Any] | None = None,
        saved: dict | None = None,
        splits: tuple | None = None,
    ):
        from pvae.data import load_digits
        from pvae.data.mnist import load_binarized_mnist, load_mnist

        scheme, _, rest = spec.partition(":")
        if scheme == "digits":
            parts = rest.split(":") if rest else []
            try:
                values = [int(p) for p in parts]
            except ValueError:
                values = []
            if len(parts) > 2 or len(values) != len(parts) or any(v < 0 for v in values) or (values and values[0] < 1):
                raise DataError(f"--data {spec}: expected digits, digits:N or digits:N:SEED with whole numbers N >= 1")
            return load_digits(*values)
        if not rest:
            raise DataError(f"--data {spec}: give a path, e.g. {self.schemes[scheme]}")
        return load_mnist(rest) if scheme == "mnist" else load_binarized_mnist(rest)

    def model_kwargs(self, data) -> dict[str, Any]:
        return {"data_dim": data.data_dim}

    def describe(self, data, model: nn.Module) -> dict[str, Any]:
        binarize = model.binary and not data.binary
        return {"shape": list(data.shape), "binarize": "dynamic" if binarize else "none"}

    def training_split(self, data, config: dict[str, Any]):
        from dataclasses import replace

        train = data.split("train").head(config["train"]["train_limit"])
        return replace(train, dynamic_binarization=config["data"]["binarize"] == "dynamic")

    def evaluation_split(self, data, split: str, config: dict[str, Any]):
        from pvae.data.images import ImageSplit, binarize

        chosen = data.split(split)
        if config["data"].get("binarize") == "dynamic":  # one fixed binarisation, from the run's seed + 1
            return ImageSplit(binarize(chosen.images, seed=config["train"]["seed"] + 1), chosen.labels)
        return chosen

    def prepare_model(self, model: nn.Module, train) -> None:
        model.init_output_bias(train.images.mean(0))

    def training_figures(self, out: Path, model, guide, test, config: dict[str, Any], seed: int) -> None:
        from pvae import runs
        from pvae.inspect import training_figures

        training_figures(out / runs.FIGURES, model, guide, test, tuple(config["data"]["shape"]), seed=seed)

    def inspection_figures(self, folder: Path, model, guide, split, config: dict[str, Any], seed: int, **posterior):
        from pvae.inspect import image_figures

        shape = tuple(config["data"]["shape"])
        p = posterior
        image_figures(model, guide, split.tensor(), p["y"], p["means"], p["variances"], shape, folder, p["iw_samples"])

    def commands(self) -> dict[str, Callable[[argparse.Namespace], list[Path]]]:
        from pvae import imaging

        return {
            "sample": lambda a: imaging.sample_run(a.run, a.n or 100, a.label, a.seed),
            "complete": lambda a: imaging.complete_run(a.run, a.n or 8, a.samples, a.seed),
            "vectorise": lambda a: imaging.vectorise_run(a.run, a.data, a.n or 16),
        }


class StrokeKind(DataKind):
    """Stroke-5 sketches ``(N, T, 5)``, offsets divided by the train split's scale (kept in the
    run config, so later loads normalise alike); sketch-rnn's augmentations while training."""

    name = "strokes"
    schemes = {
        "glyphs": "glyphs[:PATH]",
        "sketch": "sketch:FILE.npz",
        "quickdraw": "quickdraw:FILE.ndjson|DIR|FILE,FILE",
    }
    options = ("max_seq_len", "augment_scale", "augment_drop", "kl_weight_units")
    report_terms = ("L_R", "L_KL")

    def load(
        self,
        spec: str,
        options: Mapping[str, Any] | None = None,
        saved: dict | None = None,
        splits: tuple | None = None,
    ):
        from pvae.data import load_glyphs
        from pvae.data.strokes import SPLITS, prepare, read_stroke_file

        max_seq_len = option_value(options, "max_seq_len")
        scheme, sep, rest = spec.partition(":")
        if scheme == "glyphs":
            if sep and not rest:
                raise DataError(f"--data {spec}: give a font file or folder, e.g. glyphs:FONTS_DIR (or plain glyphs)")
            raw, labels = load_glyphs(rest or None)
        elif not rest:
            raise DataError(f"--data {spec}: give a file, e.g. {self.schemes[scheme]}")
        elif scheme == "sketch":
            raw, labels = read_stroke_file(rest, splits or SPLITS), None
        else:  # read lazily: files of any size
            from pvae.data.quickdraw import load_quickdraw

            return load_quickdraw(rest, max_seq_len, saved, splits)
        if splits is not None:  # only these are cleaned (and warned about)
            raw = {name: sketches for name, sketches in raw.items() if name in splits}
        saved = saved or {}
        return prepare(raw, spec, max_seq_len, saved.get("scale"), labels, saved.get("rows"))

    def model_kwargs(self, data) -> dict[str, Any]:
        return {"max_len": data.rows}

    def describe(self, data, model: nn.Module) -> dict[str, Any]:
        return {"scale": data.scale, "rows": data.rows}

    def training_split(self, data, config: dict[str, Any]):
        options = config["train"]
        train = data.split("train").head(options["train_limit"])
        return train.with_augmentation(options["augment_scale"], options["augment_drop"])

    def report(self, terms: dict[str, float], config: dict[str, Any], model: nn.Module) -> dict[str, float]:
        """sketch-rnn's L_R = -log p(x|z) / T and L_KL = KL / Z."""
        return {"L_R": -terms["recon"] / config["data"]["rows"], "L_KL": terms["kl"] / max(model.latent_dim, 1)}

    def steps(self, config: dict[str, Any]) -> int:
        return config["data"]["rows"]

    def training_figures(self, out: Path, model, guide, test, config: dict[str, Any], seed: int) -> None:
        from pvae.sketching import training_figures

        training_figures(out, model, guide, test, seed=seed)

    def inspection_figures(self, folder: Path, model, guide, split, config: dict[str, Any], seed: int, **posterior):
        from pvae.sketching import training_figures

        training_figures(folder, model, guide, split, seed=seed)

    def commands(self) -> dict[str, Callable[[argparse.Namespace], list[Path]]]:
        from pvae import sketching

        def style(a: argparse.Namespace) -> list[Path]:
            if a.to is None:
                return sketching.style_run(a.run, a.font, a.glyph, a.temperature, a.seed)
            return sketching.font_interpolation_run(
                a.run, a.font, a.to, a.steps, a.glyph, temperature=a.temperature, seed=a.seed
            )

        return {
            "sample": lambda a: sketching.sample_run(
                a.run, a.n or 20, a.temperature, a.prior, a.seed, a.label, say=print
            ),
            "reconstruct": lambda a: sketching.reconstruct_run(a.run, a.n, seed=a.seed),
            "interpolate": lambda a: sketching.interpolate_run(a.run, *a.pair, a.steps, a.temperature, a.seed),
            "complete": lambda a: sketching.complete_run(
                a.run, a.n or 5, a.samples, a.fraction, a.temperature, a.seed, a.z, say=print
            ),
            "style": style,
        }


class EventKind(DataKind):
    """Melodies as MusicVAE's event tokens ``(N, T)``, T = 16 steps x ``--bars``, in windows cut
    from tunes split by tune (``pvae.data.music``). The pitch range is the train split's, kept in
    the run config (so later loads encode alike); ``--transpose`` shifts training windows within it."""

    name = "events"
    schemes = {"folk": "folk:essen|oneills", "abc": "abc:FILE|DIR", "midi": "midi:FILE|DIR"}
    options = ("bars", "transpose", "kl_weight_units")

    def load(
        self,
        spec: str,
        options: Mapping[str, Any] | None = None,
        saved: dict | None = None,
        splits: tuple | None = None,
    ):
        from pvae.data.music import load_melodies

        bars = saved["bars"] if saved else option_value(options, "bars")
        return load_melodies(spec, bars, saved, splits)

    def model_kwargs(self, data) -> dict[str, Any]:
        return {"steps": data.steps, "vocab": data.vocab, "bars": data.bars}

    def describe(self, data, model: nn.Module) -> dict[str, Any]:
        return {"bars": data.bars, "steps": data.steps, "low": data.low, "high": data.high}

    def training_split(self, data, config: dict[str, Any]):
        options = config["train"]
        return data.split("train").head(options["train_limit"]).with_transposition(options["transpose"])

    def steps(self, config: dict[str, Any]) -> int:
        return config["data"]["steps"]

    def training_figures(self, out: Path, model, guide, test, config: dict[str, Any], seed: int) -> None:
        from pvae.music import training_figures

        if guide is not None:
            training_figures(out, model, guide, test, config, seed=seed)

    def commands(self) -> dict[str, Callable[[argparse.Namespace], list[Path]]]:
        from pvae import music

        return {
            "sample": lambda a: music.sample_run(a.run, a.n or 8, a.temperature, a.seed, a.label),
            "reconstruct": lambda a: music.reconstruct_run(a.run, a.n, a.seed),
            "interpolate": lambda a: music.interpolate_run(a.run, *a.pair, a.steps, a.temperature, a.seed),
        }


DATA_KINDS: dict[str, DataKind] = {kind.name: kind for kind in (ImageKind(), StrokeKind(), EventKind())}
SCHEMES: dict[str, DataKind] = {scheme: kind for kind in DATA_KINDS.values() for scheme in kind.schemes}
SPECS = tuple(form for kind in DATA_KINDS.values() for form in kind.schemes.values())


def kind_of_spec(spec: str) -> DataKind:
    """The kind of data a ``--data`` spec names (without loading it)."""
    scheme = spec.partition(":")[0]
    if scheme not in SCHEMES:
        raise DataError(f"--data {spec}: unknown dataset; use one of {', '.join(SPECS)}")
    return SCHEMES[scheme]


def kind_of(data_or_config: Any) -> DataKind:
    """The kind of a dataset (its ``kind``) or of a run config (``config["data"]["kind"]``)."""
    name = data_or_config["data"]["kind"] if isinstance(data_or_config, dict) else data_or_config.kind
    return DATA_KINDS[name]


def require_command(command: str, config: dict[str, Any], run: str | Path) -> DataKind:
    """The run's data kind, if generation command ``command`` applies to it; else ``UserError``."""
    kind = kind_of(config)
    if command not in kind.commands():
        others = [other.name for other in DATA_KINDS.values() if command in other.commands()]
        raise UserError(
            f"{run}: pvae {command} applies to runs of {' or '.join(others)} data; this run's data are {kind.name}"
        )
    return kind


def generate(command: str, args: argparse.Namespace, config: dict[str, Any]) -> list[Path]:
    """Run generation ``command`` (``pvae sample``, ...) with its parsed ``args`` on a run."""
    return require_command(command, config, args.run).commands()[command](args)


__all__ = [
    "DATA_KINDS",
    "SCHEMES",
    "SPECS",
    "DataKind",
    "EventKind",
    "ImageKind",
    "StrokeKind",
    "generate",
    "kind_of",
    "kind_of_spec",
    "require_command",
]
