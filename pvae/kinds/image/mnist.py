"""Readers for MNIST's idx files and for the fixed binarisation of MNIST in one ``.npz``.

idx layout (LeCun et al.): a big-endian header ``0x00 0x00 <dtype> <ndim>``, then ``ndim``
big-endian uint32 sizes, then the data in row-major order. MNIST images have magic 2051
(ubyte, 3 dims: N, 28, 28); labels have magic 2049 (ubyte, 1 dim: N). Files may be gzipped.

Every problem with a file raises ``DataError`` naming the file and what is wrong with it.
"""

from __future__ import annotations

import gzip
import math
import os
import zlib
from pathlib import Path
from typing import BinaryIO

import numpy as np
import torch

from pvae.data.npz import NpzFile
from pvae.errors import DataError
from pvae.kinds.image.data import ImageData, ImageSplit, first_bad

IMAGES_MAGIC, LABELS_MAGIC = 2051, 2049
GZIP_MAGIC = b"\x1f\x8b"
MAX_GZIP_RATIO = 1032  # deflate's largest compression ratio: no .gz inflates to more than this times its size
CHUNK_BYTES = 1 << 20
_IDX_DTYPES = {0x08: np.uint8, 0x09: np.int8, 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}
_MNIST_FILES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}


def read_idx(path: str | os.PathLike, magic: int | None = None) -> np.ndarray:
    """The array stored in an idx file (plain or gzipped, whatever its name), checking the header
    against the size before reading the data.

    A gzipped file is inflated as a stream and never past the size its header declares, which must
    be within what the file can inflate to at all (``MAX_GZIP_RATIO``): a gzip bomb is refused.

    :param magic: the expected magic number (2051 for images, 2049 for labels), if any.
    """
    path = Path(path)
    gzipped = False
    try:
        with open(path, "rb") as file:
            gzipped = file.read(2) == GZIP_MAGIC
            file.seek(0)
            size = os.fstat(file.fileno()).st_size
            if not gzipped:
                return _read_idx(path, file, size, magic)
            with gzip.GzipFile(fileobj=file) as stream:
                return _read_idx(path, stream, size * MAX_GZIP_RATIO, magic)
    except (EOFError, OSError, zlib.error) as e:
        problem = "truncated or corrupt gzip data" if gzipped else "cannot read"
        raise DataError(f"{path}: {problem} ({getattr(e, 'strerror', None) or e})") from None


def _read(stream: BinaryIO, n: int) -> bytearray:
    """Up to ``n`` bytes of ``stream``, read in chunks: memory follows the bytes there are, not ``n``."""
    data = bytearray()
    while len(data) < n and (chunk := stream.read(min(n - len(data), CHUNK_BYTES))):
        data += chunk
    return data


def _read_idx(path: Path, stream: BinaryIO, limit: int, magic: int | None) -> np.ndarray:
    """``read_idx`` on an open stream of at most ``limit`` bytes."""
    head = _read(stream, 4)
    if len(head) < 4:
        raise DataError(f"{path}: too short for an idx header ({len(head)} bytes)")
    found = int.from_bytes(head, "big")
    if magic is not None and found != magic:
        raise DataError(f"{path}: wrong magic number {found} (expected {magic}); not an idx file of this kind")
    if head[0] != 0 or head[1] != 0 or head[2] not in _IDX_DTYPES:
        raise DataError(f"{path}: bad idx header {head.hex()}; not an idx file")
    ndim, dtype = head[3], np.dtype(_IDX_DTYPES[head[2]])
    sizes = _read(stream, 4 * ndim)
    if len(sizes) < 4 * ndim:
        raise DataError(f"{path}: header promises {ndim} dimensions but the file ends after {4 + len(sizes)} bytes")
    dims = [int.from_bytes(sizes[i : i + 4], "big") for i in range(0, 4 * ndim, 4)]
    shape, header, body = "x".join(map(str, dims)), 4 + 4 * ndim, math.prod(dims) * dtype.itemsize
    if header + body > limit:
        raise DataError(f"{path}: wrong size: header says {shape} ({header + body} bytes), more than the file can hold")
    data = _read(stream, body + 1)
    if len(data) != body:
        has = "more" if len(data) > body else header + len(data)
        raise DataError(f"{path}: wrong size: header says {shape} ({header + body} bytes), file has {has} bytes")
    try:
        array = np.frombuffer(data, dtype=dtype).reshape(dims)
    except ValueError:  # numpy refuses shapes whose nonzero sizes multiply past its index range
        raise DataError(f"{path}: header says {shape}, more items than an array can index") from None
    return array.astype(dtype.newbyteorder("="))


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
    pixels = torch.from_numpy(images.reshape(len(images), 28 * 28).astype(np.float32) / 255.0)
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
            bad = first_bad(~np.isin(array, (0, 1)), array)
            if bad is not None:
                raise DataError(f"{file}: key {key!r} has values other than 0 and 1 ({bad})")
            splits[key] = ImageSplit(torch.from_numpy(array.astype(np.float32)))
        if "test_labels" in archive.files:
            labels = archive.array("test_labels")
            if labels.shape != (len(splits["test"]),):
                raise DataError(f"{file}: test_labels has shape {labels.shape}, expected ({len(splits['test'])},)")
            if labels.size and (labels.min() < 0 or labels.max() > 9):
                raise DataError(f"{file}: test_labels outside 0-9")
            splits["test"].labels = torch.from_numpy(labels.astype(np.int64))
    return ImageData(name=f"binarized-mnist:{file}", shape=(28, 28), splits=splits)
