"""Splits shared by every kind of data: the split names, seeded train/valid/test splits, and
``NamedSplits``, the dataset's one way to hand out a split by name."""

from __future__ import annotations

from collections.abc import Sized
from typing import Any

import numpy as np

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
