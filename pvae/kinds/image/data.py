"""Image datasets in memory: splits of flattened pixels in [0, 1], labels, and epoch batching.

Every image dataset becomes an ``ImageData``: named splits of ``(N, H*W)`` float32 pixels in
[0, 1] with optional int64 labels. Bernoulli likelihoods need binary pixels: grey data are
binarised dynamically (each pixel resampled as Bernoulli(grey value) every epoch, so the model
never sees the same binary image twice) for training, and once with a fixed seed for evaluation,
so test numbers are comparable across epochs and runs.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch

from pvae.data.splits import ImageSplit, NamedSplits
from pvae.errors import DataError

__all__ = ["ImageData", "ImageSplit", "binarize", "first_bad"]


@dataclass
class ImageData(NamedSplits):
    """A dataset of same-sized grey images: ``splits`` maps names ("train", "test", ...) to data.
    A pixel outside [0, 1] (NaN too) is refused here, where the data are read, in one line naming
    the data and the first such pixel, not later inside ``torch.bernoulli`` (binarisation draws
    Bernoulli(pixel), which takes probabilities in [0, 1] alone)."""

    name: str
    shape: tuple[int, int]
    splits: dict[str, ImageSplit] = field(default_factory=dict)
    kind: str = "image"

    def __post_init__(self) -> None:
        for split, data in self.splits.items():
            low, high = torch.aminmax(data.images) if data.images.numel() else (0, 0)
            if low >= 0 and high <= 1:  # one pass; a NaN makes both NaN, which compares False
                continue
            pixels = np.asarray(data.images.detach().cpu())
            bad = first_bad(~((pixels >= 0) & (pixels <= 1)), pixels)
            raise DataError(f"{self.name}: split {split!r} has pixel {bad} (image, pixel); pixels must be in [0, 1]")

    @property
    def binary(self) -> bool:
        """True when every pixel of every split is exactly 0 or 1."""
        return all(bool(((s.images == 0) | (s.images == 1)).all()) for s in self.splits.values())

    @property
    def data_dim(self) -> int:
        return self.shape[0] * self.shape[1]


def first_bad(bad: np.ndarray, array: np.ndarray) -> str | None:
    """The first value (row-major) of ``array`` where ``bad`` holds, with its index, as "nan at
    index [3, 5]"; None where none is: a refusal names one value, not a flood of them."""
    if not bad.any():
        return None
    index = np.unravel_index(int(np.argmax(bad)), bad.shape)
    value = array[index].item()
    return f"{f'{value:g}' if isinstance(value, float) else value} at index {[int(i) for i in index]}"


def binarize(images: torch.Tensor, seed: int) -> torch.Tensor:
    """A fixed stochastic binarisation: pixel ~ Bernoulli(grey value), drawn from ``seed``."""
    return torch.bernoulli(images, generator=torch.Generator().manual_seed(seed))
