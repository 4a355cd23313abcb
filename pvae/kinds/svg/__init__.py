"""The svg kind: font glyphs as a 64 x 64 raster and a sequence of SVG drawing commands (SVG-VAE,
Lopes et al. 2019), one float row each (``data``: ``split_glyph``), read from fonts with fontTools
(``outlines``); its generation commands (``generate``: style sheets, interpolation, reconstruction).

It is a kind of its own, not a variant of the strokes kind: its datapoints are (pixels, commands
with continuous arguments) pairs of fixed size, read by image encoders, where a stroke-5 sketch is a
padded sequence of pen offsets read by sequence encoders; no model or guide of one reads the other.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from torch import nn

from pvae import runs
from pvae.errors import DataError
from pvae.kinds.base import DataKind, option_value, require_font
from pvae.kinds.svg import generate
from pvae.kinds.svg.data import IMAGE_SIZE, MAX_COMMANDS, load_svg


class SVGKind(DataKind):
    """Glyph rows ``(N, D + T * 7)``: pixels in {0, 1}, then standardised relative commands (the
    train split's moments kept in the run config, so later loads standardise alike)."""

    name = "svg"
    schemes = {"svg": "svg[:FONT_FILE|DIR]"}
    path_schemes = ("svg",)
    options = (MAX_COMMANDS,)

    def load(
        self,
        spec: str,
        options: Mapping[str, Any] | None = None,
        saved: dict | None = None,
        splits: tuple | None = None,
    ):
        _, sep, rest = spec.partition(":")
        if sep and not rest:
            raise DataError(f"--data {spec}: give a font file or folder, e.g. svg:FONTS_DIR (or plain svg)")
        max_commands = (
            saved["max_commands"] if saved and "max_commands" in saved else option_value(options, MAX_COMMANDS)
        )
        return load_svg(rest or None, max_commands, saved)

    def model_kwargs(self, data) -> dict[str, Any]:
        return {"data_dim": IMAGE_SIZE * IMAGE_SIZE, "max_commands": data.max_commands}

    def describe(self, data, model: nn.Module) -> dict[str, Any]:
        return {"max_commands": data.max_commands, "mean": data.mean.tolist(), "std": data.std.tolist()}

    def training_split(self, data, config: dict[str, Any]):
        return data.split("train").head(config["train"]["train_limit"])

    def prepare_model(self, model: nn.Module, train) -> None:
        model.init_output_bias(train.images[:, : IMAGE_SIZE * IMAGE_SIZE].mean(0))

    def training_figures(self, out: Path, model, guide, test, config: dict[str, Any], seed: int) -> None:
        generate.training_figures(out / runs.FIGURES, model, guide, test, config, seed)

    def add_arguments(self, command: str, parser: argparse.ArgumentParser) -> None:
        if command == "sample":
            parser.add_argument(
                "--style-from",
                metavar="FONT[:CHAR]",
                help="svg runs: decode the style of a font (its glyphs' mean code, or one character's) into every "
                "character",
            )

    def commands(self) -> dict[str, Callable[[argparse.Namespace], list[Path]]]:
        def style(a: argparse.Namespace) -> list[Path]:
            font = require_font(a.font)  # every svg run qualifies (``require_command``)
            if a.to is None:
                return generate.style_run(a.run, f"{font}:{a.glyph}", a.temperature, a.seed)
            return generate.interpolate_fonts(a.run, str(font), str(a.to), a.steps, a.temperature, a.seed)

        return {
            "sample": lambda a: generate.sample_run(a.run, a.style_from, a.n, a.temperature, a.seed),
            "reconstruct": lambda a: generate.reconstruct_run(a.run, a.n, a.seed),
            "interpolate": lambda a: generate.interpolate_run(a.run, *a.pair, a.steps, a.temperature, a.seed),
            "style": style,
        }
