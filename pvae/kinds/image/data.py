"""Image datasets in memory: splits of flattened pixels in [0, 1], labels, and epoch batching.

Every image dataset becomes an ``ImageData``: named splits of ``(N, H*W)`` float32 pixels in
[0, 1] with optional int64 labels. Bernoulli likelihoods need binary pixels: grey data are
binarised dynamically (each pixel resampled as Bernoulli(grey value) every epoch, so the model
never sees the same binary image twice) for training, and once with a fixed seed for evaluation,
so test numbers are comparable across epochs and runs.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from pvae.data.splits import ImageSplit, NamedSplits

__all__ = ["ImageData", "ImageSplit", "binarize"]


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
