"""The events kind: melodies as MusicVAE's event tokens ``(B, T)``, from music21's folk corpora,
ABC or MIDI files (``readers``, ``encoding``, ``data``); piano rolls, MIDI files and the generation
commands (``generate``: sample, reconstruct, interpolate)."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from torch import nn

from pvae.contracts import Option
from pvae.kinds.base import DataKind, option_value
from pvae.kinds.events import generate
from pvae.kinds.events.data import load_melodies
from pvae.objectives.kl import KL_WEIGHT_UNITS


def _to_stderr(line: str) -> None:
    """A report beside what was written: standard output keeps the one ``written: ...`` line."""
    print(line, file=sys.stderr)


BARS = Option("bars", 16, "bars per melody window (16 steps each)", "melody", int, low=1, scope="data")
TRANSPOSE = Option(
    "transpose",
    0,
    "random transposition of training melodies by up to this many semitones, kept within the training pitch range",
    "melody",
    int,
    low=0,
    scope="data",
)


class EventKind(DataKind):
    """Melodies as MusicVAE's event tokens ``(N, T)``, T = 16 steps x ``--bars``, in windows cut
    from tunes split by tune (``pvae.kinds.events.data``). The pitch range is the train split's, kept in
    the run config (so later loads encode alike); ``--transpose`` shifts training windows within it."""

    name = "events"
    schemes = {"folk": "folk:essen|oneills", "abc": "abc:FILE|DIR", "midi": "midi:FILE|DIR"}
    path_schemes = ("abc", "midi")
    options = (BARS, TRANSPOSE, KL_WEIGHT_UNITS)

    def load(
        self,
        spec: str,
        options: Mapping[str, Any] | None = None,
        saved: dict | None = None,
        splits: tuple | None = None,
    ):
        bars = saved["bars"] if saved else option_value(options, BARS)
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
        if guide is not None:
            generate.training_figures(out, model, guide, test, config, seed=seed)

    def commands(self) -> dict[str, Callable[[argparse.Namespace], list[Path]]]:
        return {
            "sample": lambda a: generate.sample_run(a.run, a.n or 8, a.temperature, a.seed, a.label, say=_to_stderr),
            "reconstruct": lambda a: generate.reconstruct_run(a.run, a.n, a.seed),
            "interpolate": lambda a: generate.interpolate_run(a.run, *a.pair, a.steps, a.temperature, a.seed),
        }
