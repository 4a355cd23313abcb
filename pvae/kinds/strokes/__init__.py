"""The strokes kind: sketch-rnn's stroke-5 sketches ``(B, T, 5)``, from font glyphs (``glyphs``),
sketch-rnn's ``.npz`` files or QuickDraw's ``.ndjson`` (``quickdraw``); sketch figures and the
generation commands (``generate``: sample, reconstruct, interpolate, complete, style)."""

from __future__ import annotations

import argparse
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from torch import nn

from pvae import runs
from pvae.contracts import Option
from pvae.data.splits import SPLITS
from pvae.errors import DataError
from pvae.kinds.base import DataKind, option_value
from pvae.kinds.strokes import generate
from pvae.kinds.strokes.data import prepare, read_stroke_file
from pvae.kinds.strokes.glyphs import load_glyphs
from pvae.kinds.strokes.quickdraw import load_quickdraw
from pvae.objectives.kl import KL_WEIGHT_UNITS

MAX_SEQ_LEN = Option("max_seq_len", 250, "drop longer sketches", "data", int, low=1, scope="data")
AUGMENT_SCALE = Option(
    "augment_scale",
    0.0,
    "random x/y stretch of sketches",
    "data",
    scope="data",
    type=float,
    low=0.0,
    high=1.0,
    high_open=True,
)
AUGMENT_DROP = Option(
    "augment_drop",
    0.0,
    "point-drop probability of sketches",
    "data",
    scope="data",
    type=float,
    low=0.0,
    high=1.0,
    high_open=True,
)


class StrokeKind(DataKind):
    """Stroke-5 sketches ``(N, T, 5)``, offsets divided by the train split's scale (kept in the
    run config, so later loads normalise alike); sketch-rnn's augmentations while training."""

    name = "strokes"
    schemes = {
        "glyphs": "glyphs[:PATH]",
        "sketch": "sketch:FILE.npz",
        "quickdraw": "quickdraw:FILE.ndjson|DIR|FILE,FILE",
    }
    path_schemes = ("glyphs", "sketch", "quickdraw")
    options = (MAX_SEQ_LEN, AUGMENT_SCALE, AUGMENT_DROP, KL_WEIGHT_UNITS)
    report_terms = ("L_R", "L_KL")

    def load(
        self,
        spec: str,
        options: Mapping[str, Any] | None = None,
        saved: dict | None = None,
        splits: tuple | None = None,
    ):
        max_seq_len = option_value(options, MAX_SEQ_LEN)
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
        generate.training_figures(out / runs.FIGURES, model, guide, test, seed=seed)

    def inspection_figures(self, folder: Path, model, guide, split, config: dict[str, Any], seed: int, **posterior):
        generate.training_figures(folder, model, guide, split, seed=seed)

    def add_arguments(self, command: str, parser: argparse.ArgumentParser) -> None:
        if command == "complete":
            parser.add_argument(
                "--z",
                choices=generate.COMPLETION_CODES,
                help="sketch runs with a latent code: z of the continuations, the code of the given part or a draw "
                f"from the prior for each (default {generate.COMPLETION_CODES[0]}; the decoder reads the given part "
                "either way)",
            )

    def commands(self) -> dict[str, Callable[[argparse.Namespace], list[Path]]]:
        def style(a: argparse.Namespace) -> list[Path]:
            if a.to is None:
                return generate.style_run(a.run, a.font, a.glyph, a.temperature, a.seed)
            return generate.font_interpolation_run(
                a.run, a.font, a.to, a.steps, a.glyph, temperature=a.temperature, seed=a.seed
            )

        return {
            "sample": lambda a: generate.sample_run(
                a.run, a.n or 20, a.temperature, a.prior, a.seed, a.label, say=print
            ),
            "reconstruct": lambda a: generate.reconstruct_run(a.run, a.n, seed=a.seed),
            "interpolate": lambda a: generate.interpolate_run(a.run, *a.pair, a.steps, a.temperature, a.seed),
            "complete": lambda a: generate.complete_run(
                a.run, a.n or 5, a.samples, a.fraction, a.temperature, a.seed, a.z, say=print
            ),
            "style": style,
        }
