"""Crafted ``.npz`` files: nothing in them runs, and each gives one line naming the file."""

from __future__ import annotations

import io
import os
import pickle
import zipfile

import numpy as np
import pytest

from pvae.data.npz import NpzFile
from pvae.errors import DataError
from pvae.kinds.image.mnist import load_binarized_mnist
from pvae.kinds.strokes.data import read_stroke_file


class _Payload:
    """Unpickling this calls ``os.system`` (the classic pickle exploit)."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


def _npy_bytes(header: dict, body: bytes) -> bytes:
    out = io.BytesIO()
    np.lib.format.write_array_header_1_0(out, header)
    return out.getvalue() + body


def _zip(path, members: dict[str, bytes]):
    with zipfile.ZipFile(path, "w") as z:
        for name, data in members.items():
            z.writestr(name, data)
    return path


def _one_line(error: DataError) -> str:
    message = str(error)
    assert "\n" not in message
    return message


def test_a_bare_pickle_named_npz_runs_nothing(tmp_path):
    marker = tmp_path / "pwned"
    (tmp_path / "evil.npz").write_bytes(pickle.dumps(_Payload(marker)))
    with pytest.raises(DataError, match="evil.npz: not an .npz archive") as e:
        read_stroke_file(tmp_path / "evil.npz")
    _one_line(e.value)
    assert not marker.exists()


@pytest.mark.parametrize("protocol", [2, 3, 5])
def test_an_object_array_with_a_malicious_element_runs_nothing(tmp_path, protocol):
    marker = tmp_path / "pwned"
    array = np.empty(2, dtype=object)
    array[0], array[1] = np.zeros((3, 3), np.int16), _Payload(marker)
    body = pickle.dumps(array, protocol=protocol)
    header = {"descr": "|O", "fortran_order": False, "shape": (2,)}
    path = _zip(tmp_path / "evil.npz", {"train.npy": _npy_bytes(header, body)})
    with pytest.raises(DataError, match=r"evil.npz: key 'train': refused to unpickle (posix|nt)\.system") as e:
        read_stroke_file(path)
    _one_line(e.value)
    assert not marker.exists()


def test_reconstruct_with_a_huge_shape_is_refused_before_allocating(tmp_path):
    # numpy's _reconstruct(ndarray, shape, dtype) allocates shape; real pickles always pass (0,)
    body = (
        b"\x80\x02cnumpy.core.multiarray\n_reconstruct\ncnumpy\nndarray\n"
        b"J\x00\x00\x00\x40\x85U\x01b\x87R."  # _reconstruct(ndarray, (2**30,), b'b')
    )
    header = {"descr": "|O", "fortran_order": False, "shape": (1,)}
    path = _zip(tmp_path / "huge.npz", {"train.npy": _npy_bytes(header, body)})
    with pytest.raises(DataError, match=r"refused to unpickle _reconstruct\(ndarray, \(1073741824,\)\)"):
        read_stroke_file(path)


def test_sketchrnn_object_arrays_of_every_protocol_still_read(tmp_path):
    sketches = [np.array([[1, 2, 0], [3, -4, 1]], np.int16), np.array([[0, 5, 1]], np.int16)]
    array = np.empty(2, dtype=object)
    array[:] = sketches
    for protocol in (2, 3, 4, 5):
        header = {"descr": "|O", "fortran_order": False, "shape": (2,)}
        body = pickle.dumps(array, protocol=protocol)
        path = _zip(tmp_path / f"p{protocol}.npz", {"train.npy": _npy_bytes(header, body)})
        read = read_stroke_file(path)
        assert [s.tolist() for s in read["train"]] == [s.tolist() for s in sketches]


@pytest.mark.parametrize(
    "content, problem",
    [
        (b"garbage\n", "not an .npz archive"),
        (b"", "not an .npz archive"),
        (b"PK\x03\x04 truncated zip", "not an .npz archive"),
    ],
)
def test_non_zip_files_give_one_line(tmp_path, content, problem):
    (tmp_path / "g.npz").write_bytes(content)
    for reader in (read_stroke_file, load_binarized_mnist):
        with pytest.raises(DataError, match=f"g.npz: {problem}") as e:
            reader(tmp_path / "g.npz")
        _one_line(e.value)


def test_a_header_claiming_more_than_the_member_holds_is_refused(tmp_path):
    header = {"descr": "|u1", "fortran_order": False, "shape": (10**12, 784)}
    path = _zip(tmp_path / "lie.npz", {"train.npy": _npy_bytes(header, b"\x00" * 784)})
    with pytest.raises(DataError, match=r"lie.npz: key 'train' declares shape \(1000000000000, 784\)"):
        load_binarized_mnist(path)


def test_a_header_nested_too_deeply_to_parse_is_refused(tmp_path):
    """Thousands of unary minuses overflow the parser of ``ast.literal_eval`` (a MemoryError, found by
    hypothesis in ``test_stroke_cache_fuzzed``): one line, as any bad header."""
    text = b"-" * 6000 + b"{'descr': '<i8', 'fortran_order': False, 'shape': (3,), }"
    text += b" " * (-(len(text) + 11) % 64) + b"\n"
    member = b"\x93NUMPY\x01\x00" + len(text).to_bytes(2, "little") + text + b"\x00" * 24
    path = _zip(tmp_path / "deep.npz", {"train_points.npy": member})
    with NpzFile(path) as archive, pytest.raises(DataError, match="key 'train_points' has no valid .npy header"):
        archive.array("train_points")


def test_numeric_reads_match_numpy(tmp_path):
    arrays = {"a": np.arange(12, dtype=">i4").reshape(3, 4), "b": np.asfortranarray(np.eye(3)), "c": np.bool_([1, 0])}
    np.savez_compressed(tmp_path / "ok.npz", **arrays)
    with NpzFile(tmp_path / "ok.npz") as archive:
        assert sorted(archive.files) == ["a", "b", "c"]
        for key, value in arrays.items():
            np.testing.assert_array_equal(archive.array(key), value)
        with pytest.raises(DataError, match="key 'a' has dtype >i4, expected an object array"):
            archive.objects("a")
        with pytest.raises(DataError, match="missing key 'z'"):
            archive.array("z")
