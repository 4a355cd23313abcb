"""Datasets by spec string (the ``--data`` flag):

- ``digits[:N[:SEED]]``: built-in 28x28 digits rendered from matplotlib's fonts (nothing to
  download); N training images (default 50000) and N/5 test images, from SEED (default 0).
- ``mnist:DIR``: MNIST's four idx files (``train-images-idx3-ubyte[.gz]`` and friends) in DIR.
- ``binarized-mnist:FILE``: the fixed binarisation in one ``.npz`` (keys train/valid/test).
"""

from __future__ import annotations

from pathlib import Path

from pvae.data.images import ImageData, ImageSplit, binarize, epoch_batches
from pvae.errors import DataError

SPECS = ("digits[:N[:SEED]]", "mnist:DIR", "binarized-mnist:FILE")
DEFAULT_DIGITS = 50000


def load_digits(n_train: int = DEFAULT_DIGITS, seed: int = 0) -> ImageData:
    """The built-in digits: ``n_train`` training and ``n_train // 5`` test images."""
    from pvae.data.digits import render_digits

    train = ImageSplit(*render_digits(n_train, seed=2 * seed))
    test = ImageSplit(*render_digits(max(1, n_train // 5), seed=2 * seed + 1))
    for split in (train, test):
        split.images = split.images.reshape(len(split), -1)
    return ImageData(name=f"digits:{n_train}:{seed}", shape=(28, 28), splits={"train": train, "test": test})


def absolute_spec(spec: str) -> str:
    """``spec`` with its path made absolute, so a run folder's config works from any directory."""
    kind, sep, rest = spec.partition(":")
    if kind in ("mnist", "binarized-mnist") and rest:
        return f"{kind}:{Path(rest).expanduser().resolve()}"
    return spec


def load_dataset(spec: str) -> ImageData:
    """The dataset a ``--data`` spec names; a bad spec or file raises ``DataError``."""
    kind, _, rest = spec.partition(":")
    if kind == "digits":
        parts = rest.split(":") if rest else []
        try:
            values = [int(p) for p in parts]
        except ValueError:
            values = []
        if len(parts) > 2 or len(values) != len(parts) or any(v < 0 for v in values) or (values and values[0] < 1):
            raise DataError(f"--data {spec}: expected digits, digits:N or digits:N:SEED with whole numbers N >= 1")
        return load_digits(*values)
    if kind in ("mnist", "binarized-mnist"):
        if not rest:
            raise DataError(f"--data {spec}: give a path, e.g. {kind}:{'DIR' if kind == 'mnist' else 'FILE'}")
        from pvae.data.mnist import load_binarized_mnist, load_mnist

        return load_mnist(rest) if kind == "mnist" else load_binarized_mnist(rest)
    raise DataError(f"--data {spec}: unknown dataset; use one of {', '.join(SPECS)}")


__all__ = [
    "ImageData",
    "ImageSplit",
    "SPECS",
    "absolute_spec",
    "binarize",
    "epoch_batches",
    "load_dataset",
    "load_digits",
]
