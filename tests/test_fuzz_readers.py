"""Readers under fuzzing: random and mutated bytes give a valid result or a one-line ``DataError``
naming the file, never another exception and never a hang; hostile headers are refused before
memory is allocated (peak memory measured in a subprocess)."""

from __future__ import annotations

import gzip
import io
import itertools
import json
import pickle
import signal
import struct
import subprocess
import sys
import warnings
import zipfile
from contextlib import contextmanager
from functools import cache
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from pvae.data.fonts import GLYPH_CHARS, glyph_contours, matplotlib_font_files
from pvae.errors import DataError
from pvae.kinds.image.mnist import load_binarized_mnist, load_mnist, read_idx
from pvae.kinds.strokes.data import prepare, read_stroke_file, save_stroke_cache
from pvae.kinds.strokes.glyphs import read_glyphs
from pvae.kinds.strokes.quickdraw import read_ndjson

FUZZ = settings(
    max_examples=600,
    deadline=None,
    database=None,  # nothing written to the checkout
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow, HealthCheck.data_too_large],
)
HANG_SECONDS = 20
MB = 1 << 20
_names = itertools.count()


class _Hang(BaseException):
    """Raised in a reader that runs too long; a BaseException, so no ``except Exception`` hides it."""


@contextmanager
def _time_limit(seconds: float):
    def stop(*_):
        raise _Hang(f"still reading after {seconds} s")

    previous = signal.signal(signal.SIGALRM, stop)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def _write(folder: Path, name: str, data: bytes) -> Path:
    """``data`` in a fresh file (caches keyed by file name never see an earlier example)."""
    path = folder / f"{next(_names)}-{name}"
    path.write_bytes(data)
    return path


def _read_or_refuse(read, path: Path):
    """``read(path)``, or ``None`` after a ``DataError`` of one line that names ``path``; any other
    exception, or a reader still running after ``HANG_SECONDS``, fails the test."""
    with _time_limit(HANG_SECONDS), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # readers warn about dropped sketches and missing glyphs
        try:
            return read(path)
        except DataError as e:
            message = str(e)
            assert "\n" not in message and "\r" not in message, repr(message)
            assert str(path) in message, message
            return None


@st.composite
def mutated(draw, base: bytes, tokens: tuple[bytes, ...] = ()) -> bytes:
    """``base`` after a few mutations: bytes flipped, runs (random, or a repeated token of the format)
    inserted, ranges deleted, the tail cut off. Positions favour the first 64 bytes (the headers)."""
    data = bytearray(base)
    for _ in range(draw(st.integers(1, 4))):
        at = draw(st.one_of(st.integers(0, min(len(data), 64)), st.integers(0, len(data))))
        kind = draw(st.sampled_from(("flip", "insert", "repeat", "delete", "cut")))
        if kind == "flip" and at < len(data):
            data[at] ^= draw(st.integers(1, 255))
        elif kind == "insert":
            data[at:at] = draw(st.binary(min_size=1, max_size=32))
        elif kind == "repeat":
            token = draw(st.sampled_from(tokens + (b"\n", b"\x00", b"\xff")))
            data[at:at] = token * draw(st.sampled_from((1, 2, 100, 5000, 50000)))
        elif kind == "delete":
            del data[at : at + draw(st.integers(1, 64))]
        else:
            del data[at:]
    return bytes(data)


def _garbage(*prefixes: bytes):
    """Random bytes, alone or after a format's magic."""
    return st.builds(lambda p, b: p + b, st.sampled_from((b"",) + prefixes), st.binary(max_size=512))


# --- idx (MNIST) -----------------------------------------------------------------------------------


def _idx(array: np.ndarray, magic: int) -> bytes:
    return struct.pack(">I", magic) + b"".join(struct.pack(">I", n) for n in array.shape) + array.tobytes()


_RNG = np.random.default_rng(0)
IMAGES = _idx(_RNG.integers(0, 256, (2, 28, 28), dtype=np.uint8), 2051)
LABELS = _idx(np.array([3, 7], np.uint8), 2049)
IDX_FLOATS = _idx(np.arange(6, dtype=">f4").reshape(2, 3), 0x0D02)
_IDX_TOKENS = (b"\x00\x00\x08\x03", b"\xff\xff\xff\xff")


@st.composite
def idx_headers(draw) -> bytes:
    """A header with any dtype byte, 0-4 dims of awkward sizes (0, 2^32 - 1, ...) and some data."""
    dtype = draw(st.sampled_from((0x08, 0x09, 0x0B, 0x0C, 0x0D, 0x0E, 0x07)))
    dims = draw(st.lists(st.sampled_from((0, 1, 2, 3, 28, 65536, 2**31, 2**32 - 1)), max_size=4))
    body = draw(st.binary(max_size=64))
    return bytes([0, 0, dtype, len(dims)]) + b"".join(struct.pack(">I", n) for n in dims) + body


def _idx_bytes():
    plain = st.one_of(
        *(mutated(base, _IDX_TOKENS) for base in (IMAGES, LABELS, IDX_FLOATS)), idx_headers(), _garbage(b"\x1f\x8b")
    )
    gzipped = st.one_of(plain.map(gzip.compress), mutated(gzip.compress(IMAGES)))
    return st.one_of(plain, gzipped)


@FUZZ
@given(data=_idx_bytes(), magic=st.sampled_from((None, 2051, 2049)))
@example(data=struct.pack(">IIII", 0x0803, 2**32 - 1, 2**32 - 1, 0), magic=None)  # no items, sizes past int64
def test_read_idx_fuzzed(tmp_path, data, magic):
    array = _read_or_refuse(lambda p: read_idx(p, magic), _write(tmp_path, "idx", data))
    assert array is None or isinstance(array, np.ndarray)


_NO_IMAGES, _NO_LABELS = _idx(np.zeros((0, 28, 28), np.uint8), 2051), _idx(np.zeros(0, np.uint8), 2049)


def _mnist_file(images: bool):
    """One of the four files: valid, valid and empty, absent (None) or fuzzed."""
    valid = (IMAGES, _NO_IMAGES) if images else (LABELS, _NO_LABELS)
    return st.one_of(st.sampled_from(valid + (None,)), _idx_bytes())


@FUZZ
@given(files=st.tuples(*(_mnist_file(i % 2 == 0) for i in range(4))), gz=st.booleans())
@example(files=(_NO_IMAGES, _NO_LABELS, IMAGES, LABELS), gz=False)  # an empty split
def test_load_mnist_fuzzed(tmp_path, files, gz):
    folder = tmp_path / str(next(_names))
    folder.mkdir()
    names = ["train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"]
    for name, content in zip(names, files):
        if content is not None:
            (folder / (name + ".gz" if gz else name)).write_bytes(gzip.compress(content) if gz else content)
    _read_or_refuse(load_mnist, folder)  # an error names a file in the folder


# --- npz: binarized MNIST, sketch-rnn object arrays, our stroke cache ------------------------------


def _npz(arrays: dict[str, np.ndarray], compressed: bool) -> bytes:
    out = io.BytesIO()
    (np.savez_compressed if compressed else np.savez)(out, **arrays)
    return out.getvalue()


def _zip(members: dict[str, bytes], method: int = zipfile.ZIP_STORED) -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", method) as z:
        for name, data in members.items():
            z.writestr(name, data)
    return out.getvalue()


def _npy(header: dict, body: bytes) -> bytes:
    out = io.BytesIO()
    np.lib.format.write_array_header_1_0(out, header)
    return out.getvalue() + body


def _members(npz: bytes) -> dict[str, bytes]:
    with zipfile.ZipFile(io.BytesIO(npz)) as z:
        return {name: z.read(name) for name in z.namelist()}


_NPZ_TOKENS = (b"PK\x03\x04", b"PK\x01\x02", b"PK\x05\x06", b"(", b"-", b"\x93NUMPY", b"'shape': (")


def _npz_bytes(base: bytes):
    """Mutated archives, and archives of mutated members (to get past the zip's CRC to the .npy)."""
    members = _members(base)

    @st.composite
    def remade(draw) -> bytes:
        name = draw(st.sampled_from(sorted(members)))
        method = draw(st.sampled_from((zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED, zipfile.ZIP_BZIP2, zipfile.ZIP_LZMA)))
        return _zip({**members, name: draw(mutated(members[name], _NPZ_TOKENS))}, method)

    return st.one_of(mutated(base, _NPZ_TOKENS), remade(), _garbage(b"PK\x03\x04", b"PK\x05\x06"))


BINARIZED = {
    "train": _RNG.integers(0, 2, (3, 784), dtype=np.uint8),
    "valid": _RNG.integers(0, 2, (2, 784), dtype=np.uint8),
    "test": _RNG.integers(0, 2, (2, 784), dtype=np.uint8),
    "test_labels": np.array([4, 2]),
}


_NEGATIVE_SHAPE = _npy({"descr": "|u1", "fortran_order": False, "shape": (-2, -784)}, bytes(2 * 784))
_NEWLINE_NAME = _zip({"tr\nain.npy": _npy({"descr": "|u1", "fortran_order": False, "shape": (0,)}, b"")})


@FUZZ
@given(data=st.one_of(_npz_bytes(_npz(BINARIZED, False)), _npz_bytes(_npz(BINARIZED, True))))
@example(data=_zip({**_members(_npz(BINARIZED, False)), "train.npy": _NEGATIVE_SHAPE}))
@example(data=_NEWLINE_NAME)
def test_load_binarized_mnist_fuzzed(tmp_path, data):
    _read_or_refuse(load_binarized_mnist, _write(tmp_path, "binarized.npz", data))


SKETCHES = [np.array([[0, 0, 0], [5, -3, 0], [2, 2, 1]], np.int16), np.array([[1, 1, 0], [-4, 0, 1]], np.int16)]


def _objects(
    elements: list, shape: tuple[int, ...] | None = None, protocol: int = 2, method: int = zipfile.ZIP_STORED
) -> bytes:
    """sketch-rnn's layout: ``train`` and ``valid`` object arrays of ``elements``, pickled."""
    array = np.empty(len(elements), dtype=object)
    array[:] = elements
    array = array.reshape(shape if shape is not None else array.shape)
    header = {"descr": "|O", "fortran_order": False, "shape": array.shape}
    member = _npy(header, pickle.dumps(array, protocol=protocol))
    return _zip({"train.npy": member, "valid.npy": member}, method)


def _sketch_rnn(protocol: int) -> bytes:
    return _objects(SKETCHES, protocol=protocol)


# protocol 4 STACK_GLOBAL takes a global's name from the stack, where it may hold a newline
_NEWLINE_GLOBAL = _npy(
    {"descr": "|O", "fortran_order": False, "shape": (1,)}, b"\x80\x04\x8c\x05posix\x8c\x07sys\ntem\x93."
)


def _cache(compressed: bool) -> bytes:
    out = io.BytesIO()
    save_stroke_cache(out, {"train": SKETCHES, "valid": SKETCHES[:1]})
    return out.getvalue() if compressed else _zip(_members(out.getvalue()))


def _read_strokes(path: Path):
    """Read and prepare, as ``--data sketch:FILE`` does."""
    return prepare(read_stroke_file(path), str(path))


@FUZZ
@given(data=st.one_of(*(_npz_bytes(_sketch_rnn(p)) for p in (2, 5))))
@example(data=_objects([SKETCHES[0]], shape=()))  # a 0-d object array
@example(data=_objects([[[1, 2, 0]]] * 3))  # elements that are lists, not arrays
@example(data=_zip({"train.npy": _NEWLINE_GLOBAL}))
@example(data=_NEWLINE_NAME)
def test_sketch_rnn_npz_fuzzed(tmp_path, data):
    _read_or_refuse(_read_strokes, _write(tmp_path, "sketch.npz", data))


@FUZZ
@given(data=st.one_of(_npz_bytes(_cache(False)), _npz_bytes(_cache(True))))
def test_stroke_cache_fuzzed(tmp_path, data):
    _read_or_refuse(_read_strokes, _write(tmp_path, "cache.npz", data))


def test_cache_offsets_that_go_back_are_refused(tmp_path):
    # unsigned offsets 0, 3, 2, 5: their differences wrap around to 3, 255, 3, none negative
    points, offsets = np.zeros((5, 3), np.int16), np.array([0, 3, 2, 5], np.uint8)
    path = _write(tmp_path, "cache.npz", _npz({"train_points": points, "train_offsets": offsets}, False))
    with pytest.raises(DataError, match="'train_points' .* and 'train_offsets' do not match"):
        read_stroke_file(path)


# --- QuickDraw .ndjson -----------------------------------------------------------------------------

_LEAF = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-300, 300),
    st.sampled_from((10**400, -(10**400), 2**63)),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=4),
)
_JSON = st.recursive(_LEAF, lambda inner: st.lists(inner, max_size=4), max_leaves=24)
_STROKE = st.lists(st.lists(_LEAF, max_size=5), min_size=2, max_size=3)
_RECORD = st.fixed_dictionaries({"drawing": st.one_of(_JSON, st.lists(_STROKE, max_size=3))}, optional={"word": _JSON})
_NDJSON_LINES = [
    {"word": "cat", "drawing": [[[10, 20, 30], [5, 5, 10]], [[0, 4], [0, 3]]]},
    {"word": "dog", "drawing": [[[0.0, 50.5, 101.0], [0.0, 0.2, 50.0], [0, 10, 20]]]},
]
NDJSON = "\n".join(json.dumps(r) for r in _NDJSON_LINES).encode() + b"\n"
_JSON_TOKENS = (b"[", b"{", b'"', b"1e999", b"-", b"9" * 30, b"\\u", b"\xc3")


@FUZZ
@given(
    data=st.one_of(
        mutated(NDJSON, _JSON_TOKENS),
        st.lists(_RECORD, min_size=1, max_size=4).map(lambda rs: "\n".join(map(json.dumps, rs)).encode()),
        _garbage(b'{"drawing": '),
    )
)
@example(data=b"\xff\n")  # not UTF-8
@example(data=b"[" * 100_000)  # nested past the JSON parser's recursion limit
@example(data=b'{"drawing": [[[1' + b"0" * 400 + b"], [1]]]}")  # an int past float64
def test_read_ndjson_fuzzed(tmp_path, data):
    _read_or_refuse(lambda p: prepare(read_ndjson(p)[0], str(p)), _write(tmp_path, "d.ndjson", data))


# --- fonts -----------------------------------------------------------------------------------------


def _subset_font(empty: str = "") -> bytes:
    """DejaVu Sans cut down to the 62 glyph characters (a few kB, so mutations hit its tables), with
    the glyphs of ``empty`` made outlines without points."""
    from fontTools import subset
    from fontTools.ttLib import TTFont
    from fontTools.ttLib.tables._g_l_y_f import Glyph

    font = TTFont(next(f for f in matplotlib_font_files() if f.name == "DejaVuSans.ttf"))
    options = subset.Options()
    options.layout_features, options.hinting, options.drop_tables = [], False, ["GPOS", "GSUB", "kern", "GDEF", "FFTM"]
    subsetter = subset.Subsetter(options)
    subsetter.populate(text=GLYPH_CHARS)
    subsetter.subset(font)
    for char in empty:
        font["glyf"][font.getBestCmap()[ord(char)]] = Glyph()
    out = io.BytesIO()
    font.save(out)
    return out.getvalue()


small_font = cache(_subset_font)


@settings(FUZZ, max_examples=200)
@given(data=st.one_of(st.deferred(lambda: mutated(small_font())), _garbage(b"\x00\x01\x00\x00", b"OTTO")))
def test_font_glyphs_fuzzed(tmp_path, data):
    glyphs = _read_or_refuse(read_glyphs, _write(tmp_path, "font.ttf", data))
    assert glyphs is None or all(np.isfinite(s).all() for s in glyphs.sketches)


def test_a_glyph_without_outline_is_left_out(tmp_path):
    assert len(read_glyphs(_write(tmp_path, "font.ttf", small_font())).sketches) == 62
    font = _write(tmp_path, "font.ttf", small_font("4"))
    assert glyph_contours(font, "4") == [] and len(read_glyphs(font).sketches) == 61


# --- hostile headers: refused before allocating, peak memory measured -------------------------------

_MEASURE = """
import json, os, resource, sys, tracemalloc
from pvae.kinds.image.mnist import load_binarized_mnist, read_idx
from pvae.kinds.strokes.quickdraw import read_ndjson
from pvae.kinds.strokes.data import prepare, read_stroke_file
from pvae.errors import DataError

READERS = {
    "idx": read_idx,
    "binarized": load_binarized_mnist,
    "strokes": lambda p: prepare(read_stroke_file(p), p),
    "ndjson": read_ndjson,
}
RSS_UNIT = 1 if sys.platform == "darwin" else 1024  # ru_maxrss is in bytes on macOS, KiB on Linux


def measure(reader, path):
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    tracemalloc.start()
    try:
        READERS[reader](path)
        error = None
    except DataError as e:
        error = str(e)
    traced = tracemalloc.get_traced_memory()[1]
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before
    return {"error": error, "rss_mb": rss * RSS_UNIT / 2**20, "traced_mb": traced / 2**20}


results = {}
for kind, reader, path in json.loads(sys.argv[1]):
    read_end, write_end = os.pipe()
    if os.fork() == 0:  # a child per file: its peak RSS starts from its RSS now
        try:
            result = measure(reader, path)
        except BaseException as e:
            result = {"crash": f"{type(e).__name__}: {e}"}
        os.write(write_end, json.dumps(result).encode())
        os._exit(0)
    os.close(write_end)
    with os.fdopen(read_end) as f:
        results[kind] = json.loads(f.read() or '{"crash": "no result"}')
    os.wait()
print(json.dumps(results))
"""


def _gzip_bomb(head: bytes, inflated: int) -> bytes:
    """``head`` then ``inflated`` zero bytes, gzipped as repeated members of 8 MiB of zeros."""
    zeros = gzip.compress(bytes(8 * MB), compresslevel=9)
    return gzip.compress(head) + zeros * (inflated // (8 * MB))


_HUGE_IDX_HEADER = struct.pack(">IIII", 2051, 10**12 // 784, 28, 28)  # 10^12 bytes of pixels


class _Allocation:
    """Pickles as a call ``numpy.ndarray((10**7, 3))``: 240 MB of float64 asked for by a few bytes."""

    def __reduce__(self):
        return np.ndarray, ((10**7, 3),)


def _pickled(body: bytes) -> bytes:
    """An npz whose ``train`` member is the pickle ``body`` (deflated: repeats cost nothing)."""
    header = {"descr": "|O", "fortran_order": False, "shape": (1,)}
    return _zip({"train.npy": _npy(header, body)}, zipfile.ZIP_DEFLATED)


# protocol 2: _codecs.encode of one memoised 1 MiB text, 300 times, into a list
_ENCODE_BOMB = (
    b"\x80\x02c_codecs\nencode\nq\x00X"
    + struct.pack("<I", MB)
    + b"a" * MB
    + b"X\x06\x00\x00\x00latin1\x86q\x01]("
    + b"h\x00h\x01R" * 300
    + b"e."
)
# _reconstruct(ndarray, ([0], 10**7), "b"): math.prod of that shape is a list of 10**7 zeros
_SHAPE_OF_LISTS = (
    b"\x80\x02cnumpy.core.multiarray\n_reconstruct\ncnumpy\nndarray\n]K\x00aJ"
    + struct.pack("<i", 10**7)
    + b"\x86U\x01b\x87R."
)


# protocol 2: None, stored in the memo at index 2**24 (C's unpickler grows its memo to twice that)
_MEMO_INDEX = b"\x80\x02Nr" + struct.pack("<I", 2**24) + b"."


def _lying_zip_directory() -> bytes:
    """An npz whose zip directory claims a 1 GB member (and the header a 1 GB array); 64 bytes are there."""
    npy = _npy({"descr": "<f8", "fortran_order": False, "shape": (125_000_000,)}, bytes(64))
    data = bytearray(_zip({"train.npy": npy}))
    claim = 10**9 + len(npy) - 64
    struct.pack_into("<II", data, data.rfind(b"PK\x01\x02") + 20, claim, claim)  # compressed and full size
    return bytes(data)


def _hostile(kind: str) -> tuple[str, str, bytes]:
    """The reader, the file name and the content of each hostile file."""
    huge = _npy({"descr": "|u1", "fortran_order": False, "shape": (10**6, 10**6)}, bytes(784))
    return {
        "idx-10^12": ("idx", "images-idx3-ubyte", _HUGE_IDX_HEADER + bytes(784)),
        "idx-10^12.gz": ("idx", "images-idx3-ubyte.gz", gzip.compress(_HUGE_IDX_HEADER + bytes(784))),
        "gzip-bomb": ("idx", "images-idx3-ubyte.gz", _gzip_bomb(struct.pack(">IIII", 2051, 10, 28, 28), 256 * MB)),
        "gzip-bomb-10^12": ("idx", "images-idx3-ubyte.gz", _gzip_bomb(_HUGE_IDX_HEADER, 256 * MB)),
        "npz-huge-shape": ("binarized", "huge.npz", _zip({"train.npy": huge, "valid.npy": huge})),
        "npz-zip-directory-lies": ("binarized", "lies.npz", _lying_zip_directory()),
        "pickle-allocates": ("strokes", "alloc.npz", _objects([_Allocation()])),
        "pickle-encode-bomb": ("strokes", "encode.npz", _pickled(_ENCODE_BOMB)),
        "pickle-shape-of-lists": ("strokes", "shape.npz", _pickled(_SHAPE_OF_LISTS)),
        "pickle-memo-index": ("strokes", "index.npz", _pickled(_MEMO_INDEX)),
        # one (250, 3) sketch referenced 100000 times by the pickle's memo: a 1 kB file
        "pickle-memo-bomb": (
            "strokes",
            "memo.npz",
            _objects([np.ones((250, 3), np.int16)] * 100_000, method=zipfile.ZIP_DEFLATED),
        ),
    }[kind]


HOSTILE = (
    "idx-10^12",
    "idx-10^12.gz",
    "gzip-bomb",
    "gzip-bomb-10^12",
    "npz-huge-shape",
    "npz-zip-directory-lies",
    "pickle-allocates",
    "pickle-encode-bomb",
    "pickle-shape-of-lists",
    "pickle-memo-index",
    "pickle-memo-bomb",
    "ndjson-100MB-line",
)


@pytest.fixture(scope="module")
def hostile_reads(tmp_path_factory) -> dict[str, tuple[Path, dict]]:
    """Each hostile file and what reading it did (the error, the growth of peak RSS and the peak of
    traced allocations in MiB), measured in one fresh interpreter, a forked child per file."""
    folder = tmp_path_factory.mktemp("hostile")
    files = {}
    for kind in HOSTILE:
        if kind == "ndjson-100MB-line":
            files[kind] = ("ndjson", folder / "long.ndjson")
            with open(files[kind][1], "wb") as f:  # one 100 MB line, written 1 MB at a time
                f.write(b'{"word": "x", "drawing": [[[')
                for _ in range(100):
                    f.write(b"1," * (MB // 2))
                f.write(b"1], [1]]]}\n")
        else:
            reader, name, content = _hostile(kind)
            files[kind] = (reader, _write(folder, name, content))
    jobs = json.dumps([(kind, reader, str(path)) for kind, (reader, path) in files.items()])
    done = subprocess.run([sys.executable, "-c", _MEASURE, jobs], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    results = json.loads(done.stdout.strip().splitlines()[-1])
    return {kind: (path, results[kind]) for kind, (_, path) in files.items()}


@pytest.mark.parametrize("kind", HOSTILE)
def test_hostile_headers_are_refused_with_bounded_memory(hostile_reads, kind):
    path, result = hostile_reads[kind]
    print(f"{kind} ({path.stat().st_size} bytes): {result}")
    assert "crash" not in result, result["crash"]
    assert result["error"] is not None and str(path) in result["error"] and "\n" not in result["error"]
    assert result["rss_mb"] < 50 and result["traced_mb"] < 50, result
