"""Reading ``.npz`` archives from untrusted files: nothing in a file can run code or make us
allocate more memory than the file holds.

An ``.npz`` is a zip of ``.npy`` members. A ``.npy`` member is a header (magic, version, a Python
literal ``{'descr', 'fortran_order', 'shape'}``) followed by either the raw array bytes or, for
object arrays, a pickle. ``np.load(..., allow_pickle=True)`` unpickles that pickle with the full
``pickle`` module: any global it names is imported and called, which is how a downloaded file runs
``os.system``. sketch-rnn's stroke files are object arrays (one ``(n, 3)`` array per sketch,
Python 2 pickles), so we unpickle them with ``NumericUnpickler``, which admits only the few numpy
functions that rebuild plain numeric arrays and refuses every other global by name.

Size checks come before allocation: a numeric member must hold exactly ``prod(shape) * itemsize``
bytes after its header (the zip directory gives the uncompressed size), so a header that claims
10^12 items is refused without reading the data.
"""

from __future__ import annotations

import io
import math
import os
import pickle
import zipfile
import zlib
from pathlib import Path

import numpy as np

from pvae.errors import DataError

NUMERIC_KINDS = "biuf"  # bool, signed and unsigned integers, floats
MAX_MEMBER_BYTES = 4 << 30  # one member's uncompressed size; a zip bomb is refused before it inflates


def _reconstruct(subtype, shape, dtype):
    """numpy's ``_reconstruct``: the empty array that ``ndarray.__setstate__`` then fills.

    Pickles of arrays always call it with shape ``(0,)``; any other shape would allocate before
    the state (whose size is bounded by the file) arrives, so it is refused.
    """
    if subtype is not np.ndarray or math.prod(shape) != 0:
        raise _Refused(f"_reconstruct({getattr(subtype, '__name__', subtype)}, {shape})")
    return np.ndarray(shape, dtype=np.dtype(dtype))


def _frombuffer(buffer, dtype, shape, order):
    """numpy's ``_frombuffer`` (pickle protocol 5): a view of bytes the pickle itself holds."""
    return np.frombuffer(buffer, dtype=dtype).reshape(shape, order=order)


class _Refused(Exception):
    """A pickle named a global outside the numeric-array allowlist."""


_ALLOWED = {
    **{(module, "_reconstruct"): _reconstruct for module in ("numpy.core.multiarray", "numpy._core.multiarray")},
    **{(module, "_frombuffer"): _frombuffer for module in ("numpy.core.numeric", "numpy._core.numeric")},
    ("numpy", "ndarray"): np.ndarray,
    ("numpy", "dtype"): np.dtype,
    ("_codecs", "encode"): lambda text, encoding="utf-8": text.encode(encoding),  # protocol-2 bytes
}


class NumericUnpickler(pickle.Unpickler):
    """An unpickler that rebuilds numpy arrays of numbers (and object arrays of them) and nothing
    else: ``find_class`` answers only the globals in ``_ALLOWED``."""

    def find_class(self, module: str, name: str):
        if (module, name) not in _ALLOWED:
            raise _Refused(f"{module}.{name}")
        return _ALLOWED[(module, name)]


class NpzFile:
    """An ``.npz`` archive opened for safe reading; use as a context manager.

    ``files`` are the array names (member names without ``.npy``); ``array(key)`` reads a numeric
    array, ``objects(key)`` an object array through ``NumericUnpickler``. Every problem raises
    ``DataError`` naming the file (and the key).
    """

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        if not self.path.is_file():
            raise DataError(f"{self.path}: no such file")
        try:
            self._zip = zipfile.ZipFile(self.path)
        except (zipfile.BadZipFile, OSError, EOFError, ValueError) as e:
            raise DataError(f"{self.path}: not an .npz archive (a zip of .npy arrays): {e}") from None
        self.files = [name[: -len(".npy")] for name in self._zip.namelist() if name.endswith(".npy")]

    def __enter__(self) -> NpzFile:
        return self

    def __exit__(self, *exc) -> None:
        self._zip.close()

    def _where(self, key: str) -> str:
        return f"{self.path}: key {key!r}"

    def _open(self, key: str) -> tuple[io.BufferedIOBase, tuple[int, ...], bool, np.dtype, int]:
        """The member's stream positioned after its header, the header's fields and the number of
        bytes that follow the header."""
        if key not in self.files:
            raise DataError(f"{self.path}: missing key {key!r} (has {', '.join(self.files) or 'no keys'})")
        info = self._zip.getinfo(key + ".npy")
        if info.file_size > MAX_MEMBER_BYTES:
            raise DataError(f"{self._where(key)} inflates to {info.file_size} bytes (limit {MAX_MEMBER_BYTES})")
        stream = self._zip.open(info)
        try:
            version = np.lib.format.read_magic(stream)
            reader = {(1, 0): np.lib.format.read_array_header_1_0, (2, 0): np.lib.format.read_array_header_2_0}
            if version not in reader:
                raise ValueError(f"unsupported .npy version {version}")
            shape, fortran, dtype = reader[version](stream)
        except (ValueError, TypeError, SyntaxError, OSError, EOFError, zlib.error, zipfile.BadZipFile) as e:
            stream.close()
            raise DataError(f"{self._where(key)} has no valid .npy header ({e})") from None
        return stream, shape, fortran, dtype, info.file_size - stream.tell()

    def array(self, key: str) -> np.ndarray:
        """A numeric array (bool, integer or float), after checking that the member holds exactly
        the bytes its header declares."""
        stream, shape, fortran, dtype, size = self._open(key)
        with stream:
            if dtype.kind not in NUMERIC_KINDS:
                raise DataError(f"{self._where(key)} has dtype {dtype.str}, expected numbers")
            expected = math.prod(shape) * dtype.itemsize
            if expected != size:
                raise DataError(f"{self._where(key)} declares shape {shape} ({expected} bytes) but holds {size} bytes")
            try:
                data = stream.read(size)
            except (OSError, EOFError, zlib.error, zipfile.BadZipFile) as e:
                raise DataError(f"{self._where(key)} cannot be read ({e})") from None
        if len(data) != size:
            raise DataError(f"{self._where(key)} is truncated ({len(data)} of {size} bytes)")
        return np.frombuffer(data, dtype=dtype).reshape(shape, order="F" if fortran else "C")

    def objects(self, key: str, encoding: str = "latin1") -> np.ndarray:
        """An object array (as sketch-rnn's stroke files hold), unpickled by ``NumericUnpickler``;
        ``encoding`` reads Python 2 pickles. Elements are whatever numeric arrays the pickle built."""
        stream, shape, _, dtype, size = self._open(key)
        with stream:
            if dtype.kind != "O":
                raise DataError(f"{self._where(key)} has dtype {dtype.str}, expected an object array")
            try:
                value = NumericUnpickler(stream, encoding=encoding).load()
            except _Refused as e:
                raise DataError(f"{self._where(key)}: refused to unpickle {e} (only numeric arrays are read)") from None
            except Exception as e:  # the pickle machine raises many types on corrupt input
                raise DataError(f"{self._where(key)} holds a corrupt pickle ({type(e).__name__}: {e})") from None
        if not isinstance(value, np.ndarray) or value.dtype.kind != "O" or value.shape != shape:
            raise DataError(f"{self._where(key)} does not unpickle to an object array of shape {shape}")
        return value
