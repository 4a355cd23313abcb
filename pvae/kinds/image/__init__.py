"""The image kind: flattened grey or binary pixels ``(B, H*W)``, from the built-in digits, MNIST's
idx files or binarized MNIST; their figures (``figures``) and generation commands (``generate``:
class samples, completion, vectorisation)."""

from __future__ import annotations

import argparse
from collections.abc import Callable, Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any

from torch import nn

from pvae import runs
from pvae.errors import DataError
from pvae.kinds.base import DataKind
from pvae.kinds.image import figures, generate
from pvae.kinds.image.data import ImageSplit, binarize
from pvae.kinds.image.digits import load_digits
from pvae.kinds.image.mnist import load_binarized_mnist, load_mnist


class ImageKind(DataKind):
    """Flattened images ``(N, H*W)`` in [0, 1]. A Bernoulli model on grey images trains on
    images binarised afresh every epoch and evaluates on one fixed binarisation (seed + 1)."""

    name = "image"
    schemes = {"digits": "digits[:N[:SEED]]", "mnist": "mnist:DIR", "binarized-mnist": "binarized-mnist:FILE"}
    path_schemes = ("mnist", "binarized-mnist")

    def load(
        self,
        spec: str,
        options: Mapping[str, Any] | None = None,
        saved: dict | None = None,
        splits: tuple | None = None,
    ):
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
        dynamic = model.binary and not data.binary
        return {"shape": list(data.shape), "binarize": "dynamic" if dynamic else "none"}

    def training_split(self, data, config: dict[str, Any]):
        train = data.split("train").head(config["train"]["train_limit"])
        return replace(train, dynamic_binarization=config["data"]["binarize"] == "dynamic")

    def evaluation_split(self, data, split: str, config: dict[str, Any]):
        chosen = data.split(split)
        if config["data"].get("binarize") == "dynamic":  # one fixed binarisation, from the run's seed + 1
            return ImageSplit(binarize(chosen.images, seed=config["train"]["seed"] + 1), chosen.labels)
        return chosen

    def prepare_model(self, model: nn.Module, train) -> None:
        model.init_output_bias(train.images.mean(0))

    def training_figures(self, out: Path, model, guide, test, config: dict[str, Any], seed: int) -> None:
        figures.training_figures(out / runs.FIGURES, model, guide, test, tuple(config["data"]["shape"]), seed=seed)

    def inspection_figures(self, folder: Path, model, guide, split, config: dict[str, Any], seed: int, **posterior):
        shape = tuple(config["data"]["shape"])
        p = posterior
        figures.image_figures(
            model, guide, split.tensor(), p["y"], p["means"], p["variances"], shape, folder, p["iw_samples"]
        )

    def commands(self) -> dict[str, Callable[[argparse.Namespace], list[Path]]]:
        return {
            "sample": lambda a: generate.sample_run(a.run, a.n or 100, a.label, a.seed),
            "complete": lambda a: generate.complete_run(a.run, a.n or 8, a.samples, a.seed),
            "vectorise": lambda a: generate.vectorise_run(a.run, a.data, a.n or 16),
        }
