"""Readers on files the tests write (corrupt ones too), the built-in digits, batching, and the
shared MNIST files when ../shared/data is present."""

from __future__ import annotations

import gzip
import struct

import numpy as np
import pytest
import torch

from pvae.data.fonts import has_real_digits, matplotlib_font_files
from pvae.errors import DataError
from pvae.kinds.base import load_dataset
from pvae.kinds.image.data import ImageData, ImageSplit, binarize
from pvae.kinds.image.digits import num_fonts, render_digits
from pvae.kinds.image.mnist import load_binarized_mnist, load_mnist, read_idx


def write_idx(path, array: np.ndarray, magic: int | None = None, gz: bool = False, cut: int = 0) -> None:
    """An idx file of a uint8 array; ``magic`` overrides the header, ``cut`` drops trailing bytes."""
    header = struct.pack(">I", magic if magic is not None else 0x0800 | array.ndim)
    header += b"".join(struct.pack(">I", n) for n in array.shape)
    data = header + array.astype(np.uint8).tobytes()
    data = data[: len(data) - cut]
    path.write_bytes(gzip.compress(data) if gz else data)


def _random_idx_bytes() -> bytes:
    body = np.random.default_rng(0).integers(0, 256, 2 * 28 * 28, dtype=np.uint8).tobytes()
    return struct.pack(">IIII", 2051, 2, 28, 28) + body


@pytest.fixture
def mnist_dir(tmp_path):
    rng = np.random.default_rng(0)
    for prefix, n in (("train", 30), ("t10k", 20)):
        write_idx(tmp_path / f"{prefix}-images-idx3-ubyte.gz", rng.integers(0, 256, (n, 28, 28)), gz=True)
        write_idx(tmp_path / f"{prefix}-labels-idx1-ubyte", rng.integers(0, 10, n))
    return tmp_path


@pytest.mark.parametrize("gz", [False, True])
def test_read_idx_round_trips(tmp_path, gz):
    array = np.arange(2 * 3 * 4, dtype=np.uint8).reshape(2, 3, 4)
    write_idx(tmp_path / "a.idx", array, gz=gz)
    np.testing.assert_array_equal(read_idx(tmp_path / "a.idx", magic=2051), array)


@pytest.mark.parametrize(
    "make, problem",
    [
        (lambda p: write_idx(p, np.zeros((2, 28, 28)), magic=2049), "wrong magic number 2049"),
        (lambda p: write_idx(p, np.zeros((2, 28, 28)), cut=5), "wrong size"),
        (lambda p: p.write_bytes(gzip.compress(_random_idx_bytes())[:-100]), "truncated or corrupt gzip"),
        (lambda p: p.write_bytes(b"\x00\x00"), "too short"),
        (lambda p: p.write_bytes(b"GIF89a" + b"\x00" * 50), "wrong magic number"),
    ],
    ids=["magic", "size", "gzip", "short", "not-idx"],
)
def test_read_idx_names_the_file_and_the_problem(tmp_path, make, problem):
    path = tmp_path / "bad-images-idx3-ubyte"
    make(path)
    with pytest.raises(DataError, match=problem) as info:
        read_idx(path, magic=2051)
    assert str(path) in str(info.value)


def test_load_mnist_scales_pixels_and_keeps_labels(mnist_dir):
    data = load_mnist(mnist_dir)
    train, test = data.split("train"), data.split("test")
    assert train.images.shape == (30, 784) and test.images.shape == (20, 784)
    assert train.images.dtype == torch.float32 and 0 <= train.images.min() and train.images.max() <= 1
    raw = read_idx(mnist_dir / "train-images-idx3-ubyte.gz")
    torch.testing.assert_close(train.images[3], torch.from_numpy(raw[3].reshape(-1) / 255.0).float())
    assert train.labels.dtype == torch.int64 and int(train.labels.max()) <= 9


def test_load_mnist_errors(mnist_dir, tmp_path):
    with pytest.raises(DataError, match="no such directory"):
        load_mnist(tmp_path / "missing")
    write_idx(mnist_dir / "train-labels-idx1-ubyte", np.zeros(7))
    with pytest.raises(DataError, match="7 labels for 30 images"):
        load_mnist(mnist_dir)
    (mnist_dir / "train-images-idx3-ubyte.gz").unlink()
    with pytest.raises(DataError, match="no train-images-idx3-ubyte"):
        load_mnist(mnist_dir)


def _npz(path, **arrays):
    np.savez(path, **arrays)
    return path


def test_binarized_mnist_reader(tmp_path):
    rng = np.random.default_rng(0)
    splits = {k: rng.integers(0, 2, (n, 784), dtype=np.uint8) for k, n in (("train", 5), ("valid", 3), ("test", 4))}
    data = load_binarized_mnist(_npz(tmp_path / "b.npz", **splits, test_labels=np.arange(4)))
    assert data.binary and data.split("valid").images.shape == (3, 784)
    assert data.split("test").labels.tolist() == [0, 1, 2, 3] and data.split("train").labels is None


@pytest.mark.parametrize(
    "arrays, problem",
    [
        ({"train": np.zeros((2, 784)), "test": np.zeros((2, 784))}, "missing key 'valid'"),
        ({"train": np.zeros((2, 700)), "valid": np.zeros((2, 784)), "test": np.zeros((2, 784))}, r"shape \(2, 700\)"),
        (
            {"train": np.full((2, 784), 3), "valid": np.zeros((2, 784)), "test": np.zeros((2, 784))},
            "other than 0 and 1",
        ),
    ],
)
def test_binarized_mnist_errors(tmp_path, arrays, problem):
    path = _npz(tmp_path / "bad.npz", **arrays)
    with pytest.raises(DataError, match=problem) as info:
        load_binarized_mnist(path)
    assert str(path) in str(info.value)


def test_nan_pixels_are_refused_where_they_are_read(tmp_path):
    """A NaN pixel would fail only later, inside torch.bernoulli (binarisation): it is refused where
    the data are read, in one line naming the file (the data) and the first such pixel."""
    train = np.zeros((2, 784), dtype=np.float32)
    train[1, 3] = np.nan
    path = _npz(tmp_path / "nan.npz", train=train, valid=np.zeros((2, 784)), test=np.zeros((2, 784)))
    with pytest.raises(DataError) as info:
        load_dataset(f"binarized-mnist:{path}")
    assert str(info.value) == f"{path}: key 'train' has values other than 0 and 1 (nan at index [1, 3])"
    grey = torch.full((3, 4), 0.5)
    grey[2, 1] = float("nan")
    with pytest.raises(DataError) as info:
        ImageData("grey:faces.npz", (2, 2), {"train": ImageSplit(grey)})
    assert str(info.value) == (
        "grey:faces.npz: split 'train' has pixel nan at index [2, 1] (image, pixel); pixels must be in [0, 1]"
    )
    ImageData("grey", (2, 2), {"train": ImageSplit(torch.rand(3, 4)), "test": ImageSplit(torch.zeros(0, 4))})


def test_binarized_mnist_rejects_non_npz(tmp_path):
    path = tmp_path / "fake.npz"
    path.write_bytes(b"not a zip file at all")
    with pytest.raises(DataError, match="fake.npz: not an .npz archive"):
        load_binarized_mnist(path)


@pytest.mark.parametrize(
    "spec", ["digits:x", "digits:0", "digits:5:6:7", "mnist:", "cifar:/tmp", "binarized-mnist:/no/file.npz"]
)
def test_bad_data_specs(spec):
    with pytest.raises(DataError, match="--data|no such file"):
        load_dataset(spec)


def test_font_filter_keeps_digit_fonts_only():
    names = {f.name: has_real_digits(f) for f in matplotlib_font_files()}
    assert names["DejaVuSans.ttf"] and names["cmr10.ttf"] and names["STIXGeneral.ttf"]
    assert not names["cmex10.ttf"] and not names["cmsy10.ttf"] and not names["LastResortHE-Regular.ttf"]
    assert num_fonts() == sum(names.values()) >= 10


def test_digits_are_deterministic_and_mnist_like():
    x, y = render_digits(300, seed=5)
    x2, y2 = render_digits(300, seed=5)
    assert torch.equal(x, x2) and torch.equal(y, y2)
    assert not torch.equal(render_digits(300, seed=6)[0], x)
    assert x.shape == (300, 28, 28) and 0 <= x.min() and x.max() <= 1
    assert set(y.tolist()) == set(range(10))
    assert 0.08 < float(x.mean()) < 0.3  # MNIST's mean pixel is 0.13
    on = x > 0.3
    height = on.any(2).float().sum(1).mean()
    assert 17 < height < 24  # digits fill a ~20-pixel box, as in MNIST


def test_digit_labels_match_the_drawn_digit():
    """A nearest-class-mean classifier fitted on one seed's digits labels another seed's digits:
    far above the 10% of chance only if every label names the glyph actually drawn."""
    x, y = render_digits(3000, seed=1)
    means = torch.stack([x[y == d].mean(0) for d in range(10)]).reshape(10, -1)
    xt, yt = render_digits(1000, seed=2)
    predicted = torch.cdist(xt.reshape(len(xt), -1), means).argmin(1)
    assert (predicted == yt).float().mean() > 0.5


def test_epoch_batches_cover_the_split_and_replay_from_the_generator_state():
    split = ImageSplit(torch.rand(10, 4), torch.arange(10), dynamic_binarization=True)
    g = torch.Generator().manual_seed(0)
    state = g.get_state()
    batches = list(split.batches(4, g))
    assert [len(b[0]) for b in batches] == [4, 4, 2]
    assert sorted(torch.cat([b[1] for b in batches]).tolist()) == list(range(10))
    assert all(set(b[0].unique().tolist()) <= {0.0, 1.0} for b in batches)
    g.set_state(state)
    resumed = list(split.batches(4, g, skip=1))
    assert len(resumed) == 2
    for (a, la), (b, lb) in zip(batches[1:], resumed):
        assert torch.equal(a, b) and torch.equal(la, lb)


def test_binarize_is_a_fixed_bernoulli_draw():
    grey = torch.full((200, 50), 0.3)
    a, b = binarize(grey, seed=1), binarize(grey, seed=1)
    assert torch.equal(a, b) and set(a.unique().tolist()) == {0.0, 1.0}
    assert abs(float(a.mean()) - 0.3) < 0.02


def test_shared_mnist_test_images(shared_file):
    path = shared_file("mnist", "t10k-images-idx3-ubyte.gz")
    images = read_idx(path, magic=2051)
    assert images.shape == (10000, 28, 28) and images.dtype == np.uint8
    assert images.mean() == pytest.approx(33.79, abs=0.01)  # PROVENANCE.md
    labels = read_idx(path.with_name("t10k-labels-idx1-ubyte.gz"), magic=2049)
    assert labels[:10].tolist() == [7, 2, 1, 0, 4, 1, 4, 9, 5, 9]
    train_labels = read_idx(path.with_name("train-labels-idx1-ubyte.gz"), magic=2049)
    assert np.bincount(train_labels).tolist() == [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949]
    with pytest.raises(DataError, match="no train-images-idx3-ubyte"):
        load_mnist(path.parent)  # the shared folder holds only the test images


def test_shared_binarized_mnist(shared_file):
    data = load_binarized_mnist(shared_file("binarized_mnist", "binarized_mnist.npz"))
    assert [len(data.split(s)) for s in ("train", "valid", "test")] == [50000, 10000, 10000]
    assert float(data.split("train").images.mean()) == pytest.approx(0.13056, abs=1e-4)
    assert data.split("test").labels[:5].tolist() == [0, 0, 0, 0, 0]  # sorted by label
