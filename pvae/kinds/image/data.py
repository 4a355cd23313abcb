"""Image datasets in memory: splits of flattened pixels in [0, 1], labels, and epoch batching.

Every image dataset becomes an ``ImageData``: named splits of ``(N, H*W)`` float32 pixels in
[0, 1] with optional int64 labels. Bernoulli likelihoods need binary pixels: grey data are
binarised dynamically (each pixel resampled as Bernoulli(grey value) every epoch, so the model
never sees the same binary image twice) for training, and once with a fixed seed for evaluation,
so test numbers are comparable across epochs and runs.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field, replace

import torch

from pvae.data.splits import NamedSplits


@dataclass
class ImageSplit:
    """One split: ``images`` float32 ``(N, H*W)`` in [0, 1]; ``labels`` int64 ``(N,)`` or ``None``.

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


@dataclass
class ImageData(NamedSplits):
    """A dataset of same-sized grey images: ``splits`` maps names ("train", "test", ...) to data."""

    name: str
    shape: tuple[int, int]
    splits: dict[str, ImageSplit] = field(default_factory=dict)
    kind: str = "image"

    @property
    def binary(self) -> bool:
        """True when every pixel of every split is exactly 0 or 1."""
        return all(bool(((s.images == 0) | (s.images == 1)).all()) for s in self.splits.values())

    @property
    def data_dim(self) -> int:
        return self.shape[0] * self.shape[1]


def binarize(images: torch.Tensor, seed: int) -> torch.Tensor:
    """A fixed stochastic binarisation: pixel ~ Bernoulli(grey value), drawn from ``seed``."""
    return torch.bernoulli(images, generator=torch.Generator().manual_seed(seed))
