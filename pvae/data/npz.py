"""Reading ``.npz`` archives from untrusted files: nothing in a file can run code or make us
allocate more memory than the file holds.

An ``.npz`` is a zip of ``.npy`` members. A ``.npy`` member is a header (magic, version, a Python
literal ``{'descr', 'fortran_order', 'shape'}``) followed by either the raw array bytes or, for
object arrays, a pickle. ``np.load`` with pickles allowed unpickles that pickle with the full
``pickle`` module: any global it names is imported and called, which is how a downloaded file runs
``os.system``. sketch-rnn's stroke files are object arrays (one ``(n, 3)`` array per sketch,
Python 2 pickles), so we unpickle them with ``NumericUnpickler``, which admits only the few numpy
functions that rebuild plain numeric arrays and refuses every other global by name.

Size checks come before allocation: a numeric member must hold exactly ``prod(shape) * itemsize``
bytes after its header (the zip directory gives the uncompressed size), so a header that claims
10^12 items is refused without reading the data; a zip directory that claims more compressed bytes
than the file holds is refused too (reading them would allocate that much at once). The arrays of
an object array may hold no more bytes than their member: a pickle's memo can repeat one array (or
one text to encode) any number of times at a few bytes each.
"""

from __future__ import annotations

import io
import lzma
import math
import os
import pickle
import reprlib
import tempfile
import tokenize
import zipfile
import zlib
from pathlib import Path

import numpy as np

from pvae.errors import DataError

NUMERIC_KINDS = "biuf"  # bool, signed and unsigned integers, floats
MAX_MEMBER_BYTES = 4 << 30  # one member's uncompressed size; a zip bomb is refused before it inflates
# what zipfile, its decompressors (zlib, bz2, lzma) and numpy's .npy header parser raise on corrupt input
CORRUPT = (
    OSError,
    EOFError,
    ValueError,
    TypeError,
    SyntaxError,
    RuntimeError,
    NotImplementedError,
    tokenize.TokenError,
    zlib.error,
    lzma.LZMAError,
    zipfile.BadZipFile,
)


def one_line(error: BaseException, limit: int = 200) -> str:
    """An exception's message on one line (whitespace runs, newlines too, become one space), cut
    to ``limit`` characters: messages may quote what a file holds."""
    text = str(error)
    return " ".join(text[:limit].split()) + ("..." if len(text) > limit else "") or type(error).__name__


def _ndarray(*args):
    """What a pickle's ``numpy.ndarray`` stands for: ``_reconstruct``'s first argument. Calling it,
    ``ndarray(shape)``, would allocate any shape from a few bytes, so a call is refused."""
    raise _Refused(f"numpy.ndarray{reprlib.repr(args)}")


def _reconstruct(subtype, shape, dtype):
    """numpy's ``_reconstruct``: the empty array that ``ndarray.__setstate__`` then fills.

    Pickles of arrays always call it with a shape of ints holding a 0; any other shape would
    allocate before the state (whose size is bounded by the file) arrives, so it is refused.
    """
    if subtype is not _ndarray:
        raise _Refused(f"_reconstruct({reprlib.repr(subtype)}, ...)")
    if not isinstance(shape, tuple) or not all(isinstance(n, int) for n in shape) or 0 not in shape:
        raise _Refused(f"_reconstruct(ndarray, {reprlib.repr(shape)})")
    return np.ndarray(shape, dtype=np.dtype(dtype))


def _frombuffer(buffer, dtype, shape, order):
    """numpy's ``_frombuffer`` (pickle protocol 5): a view of bytes the pickle itself holds."""
    return np.frombuffer(buffer, dtype=dtype).reshape(shape, order=order)


class _Refused(Exception):
    """A pickle named a global outside the numeric-array allowlist, or asked for an allocation
    that the file's size does not bound."""


_ALLOWED = {
    **{(module, "_reconstruct"): _reconstruct for module in ("numpy.core.multiarray", "numpy._core.multiarray")},
    **{(module, "_frombuffer"): _frombuffer for module in ("numpy.core.numeric", "numpy._core.numeric")},
    ("numpy", "ndarray"): _ndarray,
    ("numpy", "dtype"): np.dtype,
}


class NumericUnpickler(pickle._Unpickler):
    """An unpickler that rebuilds numpy arrays of numbers (and object arrays of them) and nothing
    else: ``find_class`` answers only the globals in ``_ALLOWED`` and ``_codecs.encode``, which
    protocol-2 pickles use for bytes and which may make at most ``budget`` bytes in all (the
    pickle's memo could otherwise encode one long text again and again).

    It is pickle's pure-Python unpickler (a few times slower): the C one sizes its memo by the
    largest index a PUT names, so five bytes can make it allocate gigabytes.
    """

    def __init__(self, file: io.BufferedIOBase, *, budget: int, **kwargs):
        super().__init__(file, **kwargs)
        self._budget = budget

    def find_class(self, module: str, name: str):
        if (module, name) == ("_codecs", "encode"):
            return self._encode
        if (module, name) not in _ALLOWED:
            raise _Refused(f"{module}.{name}")
        return _ALLOWED[(module, name)]

    def _encode(self, text: str, encoding: str = "utf-8") -> bytes:
        self._budget -= len(text)
        if self._budget < 0:
            raise _Refused("_codecs.encode past the pickle's size (repeated references)")
        return text.encode(encoding)


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
        self._size = self.path.stat().st_size
        try:
            self._zip = zipfile.ZipFile(self.path)
        except CORRUPT as e:
            raise DataError(f"{self.path}: not an .npz archive (a zip of .npy arrays): {one_line(e)}") from None
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
            raise DataError(f"{self.path}: missing key {key!r} (has {self.listing()})")
        info = self._zip.getinfo(key + ".npy")
        if info.file_size > MAX_MEMBER_BYTES:
            raise DataError(f"{self._where(key)} inflates to {info.file_size} bytes (limit {MAX_MEMBER_BYTES})")
        if info.compress_size > self._size:
            raise DataError(f"{self._where(key)} claims {info.compress_size} bytes, more than the file's {self._size}")
        try:
            stream = self._zip.open(info)
        except CORRUPT as e:
            raise DataError(f"{self._where(key)} cannot be opened ({one_line(e)})") from None
        try:
            version = np.lib.format.read_magic(stream)
            reader = {(1, 0): np.lib.format.read_array_header_1_0, (2, 0): np.lib.format.read_array_header_2_0}
            if version not in reader:
                raise ValueError(f"unsupported .npy version {version}")
            shape, fortran, dtype = reader[version](stream)
        except (*CORRUPT, MemoryError, RecursionError) as e:  # a deeply nested header overflows the parser
            stream.close()
            raise DataError(f"{self._where(key)} has no valid .npy header ({one_line(e)})") from None
        if any(n < 0 for n in shape):
            stream.close()
            raise DataError(f"{self._where(key)} declares a negative shape {shape}")
        return stream, shape, fortran, dtype, info.file_size - stream.tell()

    def listing(self) -> str:
        """The array names, for messages (quoted, so a name holding a newline keeps them one line)."""
        return ", ".join(map(repr, self.files)) or "no keys"

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
            except CORRUPT as e:
                raise DataError(f"{self._where(key)} cannot be read ({one_line(e)})") from None
        if len(data) != size:
            raise DataError(f"{self._where(key)} is truncated ({len(data)} of {size} bytes)")
        return np.frombuffer(data, dtype=dtype).reshape(shape, order="F" if fortran else "C")

    def objects(self, key: str, encoding: str = "latin1") -> np.ndarray:
        """An object array of numeric arrays (as sketch-rnn's stroke files hold), unpickled by
        ``NumericUnpickler``; ``encoding`` reads Python 2 pickles.

        The elements together may hold no more bytes than the member: a pickle's memo can repeat one
        array (or views of one buffer) any number of times at two bytes each, which every copy made
        downstream would multiply.
        """
        stream, shape, _, dtype, size = self._open(key)
        with stream:
            if dtype.kind != "O":
                raise DataError(f"{self._where(key)} has dtype {dtype.str}, expected an object array")
            try:
                value = NumericUnpickler(stream, budget=size, encoding=encoding).load()
            except _Refused as e:
                raise DataError(
                    f"{self._where(key)}: refused to unpickle {one_line(e)} (only numeric arrays are read)"
                ) from None
            except Exception as e:  # the pickle machine raises many types on corrupt input
                problem = f"{type(e).__name__}: {one_line(e)}"
                raise DataError(f"{self._where(key)} holds a corrupt pickle ({problem})") from None
        if not isinstance(value, np.ndarray) or value.dtype.kind != "O" or value.shape != shape:
            raise DataError(f"{self._where(key)} does not unpickle to an object array of shape {shape}")
        if not all(isinstance(a, np.ndarray) and a.dtype.kind in NUMERIC_KINDS for a in value.flat):
            raise DataError(f"{self._where(key)} holds elements other than numeric arrays")
        held = sum(a.nbytes for a in value.flat)
        if held > size:
            raise DataError(f"{self._where(key)} unpickles to {held} bytes of arrays from {size} (repeated references)")
        return value


def cache_dir() -> Path:
    """Where readers keep what they parsed: ``$PVAE_CACHE``, else ``~/.cache/pvae``."""
    return Path(os.environ.get("PVAE_CACHE") or Path.home() / ".cache" / "pvae").expanduser()


def save_npz(path: Path, arrays: dict[str, np.ndarray]) -> None:
    """Write numeric ``arrays`` to ``path`` atomically (several processes may write one cache at once)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, tmp = tempfile.mkstemp(suffix=".npz", dir=path.parent)
    try:
        with os.fdopen(handle, "wb") as f:
            np.savez(f, **arrays)
        os.replace(tmp, path)
    except BaseException:
        os.unlink(tmp)
        raise
