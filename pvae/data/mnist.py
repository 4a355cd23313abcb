"""Readers for MNIST's idx files and for the fixed binarisation of MNIST in one ``.npz``.

idx layout (LeCun et al.): a big-endian header ``0x00 0x00 <dtype> <ndim>``, then ``ndim``
big-endian uint32 sizes, then the data in row-major order. MNIST images have magic 2051
(ubyte, 3 dims: N, 28, 28); labels have magic 2049 (ubyte, 1 dim: N). Files may be gzipped.

Every problem with a file raises ``DataError`` naming the file and what is wrong with it.
"""

from __future__ import annotations

import gzip
import os
import zlib
from pathlib import Path

import numpy as np
import torch

from pvae.data.images import ImageData, ImageSplit
from pvae.data.npz import NpzFile
from pvae.errors import DataError

IMAGES_MAGIC, LABELS_MAGIC = 2051, 2049
_IDX_DTYPES = {0x08: np.uint8, 0x09: np.int8, 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}
_MNIST_FILES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}


def _read_bytes(path: Path) -> bytes:
    """The file's bytes, gunzipped when it starts with the gzip magic (whatever its name)."""
    try:
        raw = path.read_bytes()
    except OSError as e:
        raise DataError(f"{path}: cannot read ({e.strerror or e})") from None
    if raw[:2] != b"\x1f\x8b":
        return raw
    try:
        return gzip.decompress(raw)
    except (EOFError, OSError, zlib.error) as e:
        raise DataError(f"{path}: truncated or corrupt gzip data ({e})") from None


def read_idx(path: str | os.PathLike, magic: int | None = None) -> np.ndarray:
    """The array stored in an idx file (plain or gzipped), checking the header against the size.

    :param magic: the expected magic number (2051 for images, 2049 for labels), if any.
    """
    path = Path(path)
    data = _read_bytes(path)
    if len(data) < 4:
        raise DataError(f"{path}: too short for an idx header ({len(data)} bytes)")
    found = int.from_bytes(data[:4], "big")
    if magic is not None and found != magic:
        raise DataError(f"{path}: wrong magic number {found} (expected {magic}); not an idx file of this kind")
    if data[0] != 0 or data[1] != 0 or data[2] not in _IDX_DTYPES:
        raise DataError(f"{path}: bad idx header {data[:4].hex()}; not an idx file")
    ndim, dtype = data[3], np.dtype(_IDX_DTYPES[data[2]])
    header = 4 + 4 * ndim
    if len(data) < header:
        raise DataError(f"{path}: header promises {ndim} dimensions but the file ends after {len(data)} bytes")
    dims = [int.from_bytes(data[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim)]
    expected = header + int(np.prod(dims)) * dtype.itemsize
    if len(data) != expected:
        raise DataError(
            f"{path}: wrong size: header says {'x'.join(map(str, dims))} ({expected} bytes), file has {len(data)} bytes"
        )
    return np.frombuffer(data, dtype=dtype, offset=header).reshape(dims).astype(dtype.newbyteorder("="))


def _find(folder: Path, stem: str) -> Path | None:
    for name in (stem, stem + ".gz"):
        if (folder / name).is_file():
            return folder / name
    return None


def read_mnist_split(folder: str | os.PathLike, split: str) -> ImageSplit:
    """One MNIST split ("train" or "test") from the standard idx file names in ``folder``."""
    folder = Path(folder)
    image_stem, label_stem = _MNIST_FILES[split]
    image_file, label_file = _find(folder, image_stem), _find(folder, label_stem)
    if image_file is None:
        raise DataError(f"{folder}: no {image_stem}[.gz] (MNIST {split} images)")
    images = read_idx(image_file, IMAGES_MAGIC)
    if images.shape[1:] != (28, 28):
        raise DataError(f"{image_file}: images are {images.shape[1]}x{images.shape[2]}, expected 28x28")
    labels = None
    if label_file is not None:
        labels = read_idx(label_file, LABELS_MAGIC)
        if len(labels) != len(images):
            raise DataError(f"{label_file}: {len(labels)} labels for {len(images)} images in {image_file.name}")
        if labels.size and labels.max() > 9:
            raise DataError(f"{label_file}: label {labels.max()} outside 0-9")
    pixels = torch.from_numpy(images.reshape(len(images), -1).astype(np.float32) / 255.0)
    return ImageSplit(pixels, None if labels is None else torch.from_numpy(labels.astype(np.int64)))


def load_mnist(folder: str | os.PathLike) -> ImageData:
    """MNIST from a folder holding the four idx files (gzipped or not)."""
    folder = Path(folder)
    if not folder.is_dir():
        raise DataError(f"{folder}: no such directory (expected the MNIST idx files there)")
    splits = {name: read_mnist_split(folder, name) for name in ("train", "test")}
    return ImageData(name=f"mnist:{folder}", shape=(28, 28), splits=splits)


def load_binarized_mnist(file: str | os.PathLike) -> ImageData:
    """The fixed binarisation of MNIST (Salakhutdinov & Murray 2008) from one ``.npz``.

    Keys ``train``, ``valid``, ``test``: uint8 ``(N, 784)`` in {0, 1}; an optional
    ``test_labels`` (N,) gives the test split labels (the other splits have none).
    """
    with NpzFile(file) as archive:
        splits = {}
        for key in ("train", "valid", "test"):
            array = archive.array(key)
            if array.ndim != 2 or array.shape[1] != 784:
                raise DataError(f"{file}: key {key!r} has shape {array.shape}, expected (N, 784)")
            if not np.isin(array, (0, 1)).all():
                raise DataError(f"{file}: key {key!r} has values other than 0 and 1")
            splits[key] = ImageSplit(torch.from_numpy(array.astype(np.float32)))
        if "test_labels" in archive.files:
            labels = archive.array("test_labels")
            if labels.shape != (len(splits["test"]),):
                raise DataError(f"{file}: test_labels has shape {labels.shape}, expected ({len(splits['test'])},)")
            if labels.size and (labels.min() < 0 or labels.max() > 9):
                raise DataError(f"{file}: test_labels outside 0-9")
            splits["test"].labels = torch.from_numpy(labels.astype(np.int64))
    return ImageData(name=f"binarized-mnist:{file}", shape=(28, 28), splits=splits)
