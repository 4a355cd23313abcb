"""Splits shared by every kind of data: the split names, seeded train/valid/test splits,
``NamedSplits``, the dataset's one way to hand out a split by name, and ``ImageSplit``, rows in memory."""

from __future__ import annotations

from collections.abc import Iterator, Sized
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import torch

from pvae.errors import UserError

SPLITS = ("train", "valid", "test")


def split_seeded(items: Sized, seed: int = 0, valid: float = 0.1, test: float = 0.1) -> dict[str, np.ndarray]:
    """Sorted indices (int64 arrays) of a seeded train/valid/test split of ``len(items)`` items
    (each of valid and test non-empty when possible)."""
    order = np.random.default_rng(seed).permutation(len(items))
    n_valid = max(1, round(valid * len(items))) if len(items) >= 3 else 0
    n_test = max(1, round(test * len(items))) if len(items) >= 3 else 0
    return {
        "train": np.sort(order[n_valid + n_test :]),
        "valid": np.sort(order[:n_valid]),
        "test": np.sort(order[n_valid : n_valid + n_test]),
    }


class NamedSplits:
    """A dataset of ``splits`` by name (the datasets of every kind subclass it, as dataclasses with
    the fields ``name`` and ``splits``)."""

    name: str
    splits: dict[str, Any]

    def split(self, name: str) -> Any:
        """The split called ``name``; ``UserError`` naming the ones there are when it has none."""
        if name not in self.splits:
            raise UserError(f"dataset {self.name!r} has no split {name!r}; it has {', '.join(self.splits)}")
        return self.splits[name]


def class_count(data: NamedSplits) -> int:
    """C, the number of classes of a dataset's labelled train split (labels 0..C-1); 0 without labels."""
    labels = data.split("train").labels
    return 0 if labels is None or not len(labels) else int(labels.max()) + 1


@dataclass
class ImageSplit:
    """One split of rows in memory: ``images`` float32 ``(N, D)``, an image kind's flattened pixels in
    [0, 1] (or the svg kind's glyphs: each row a glyph's pixels, then its commands); ``labels`` int64
    ``(N,)`` or ``None``. Kept here, not in the image wing, because two kinds share it.

    With ``dynamic_binarization``, ``batches`` draws every pixel as Bernoulli(grey value) afresh.
    """

    images: torch.Tensor
    labels: torch.Tensor | None = None
    dynamic_binarization: bool = False

    def __len__(self) -> int:
        return self.images.shape[0]

    def head(self, n: int | None) -> ImageSplit:
        """The first ``n`` examples (all of them for ``None``)."""
        if n is None:
            return self
        return replace(self, images=self.images[:n], labels=None if self.labels is None else self.labels[:n])

    def tensor(self) -> torch.Tensor:
        """The model inputs of the whole split, ``(N, H*W)``."""
        return self.images

    def chunks(self, size: int, part: tuple[int, int] = (0, 1)) -> Iterator[tuple[torch.Tensor, torch.Tensor | None]]:
        """The split in order, in chunks of ``size``; with ``part`` (r, N), only the r-th of N
        contiguous parts (a rank's share of an evaluation)."""
        index = torch.tensor_split(torch.arange(len(self)), part[1])[part[0]]
        for chunk in index.split(size):
            yield self.images[chunk], None if self.labels is None else self.labels[chunk]

    def batches(
        self, batch_size: int, generator: torch.Generator, skip: int = 0, part: tuple[int, int] = (0, 1)
    ) -> Iterator[tuple[torch.Tensor, torch.Tensor | None]]:
        """One shuffled pass in batches of ``batch_size`` (the last may be smaller).

        The order and the binarisation are drawn from ``generator`` at the start of the epoch, so
        saving the generator's state before the call is enough to replay the epoch exactly;
        ``skip`` leaves out the first batches (resuming an epoch that was interrupted). With
        ``part`` (r, N), each batch is only the r-th of its N contiguous slices.
        """
        order = torch.randperm(len(self), generator=generator)
        images = self.images[order]
        if self.dynamic_binarization:
            images = torch.bernoulli(images, generator=generator)
        labels = None if self.labels is None else self.labels[order]
        for start in range(skip * batch_size, len(self), batch_size):
            end = start + batch_size
            x = torch.tensor_split(images[start:end], part[1])[part[0]]
            yield x, None if labels is None else torch.tensor_split(labels[start:end], part[1])[part[0]]
