"""Stroke data: RDP, conversions, augmentation, cleaning, readers (tiny files the tests write, and
../shared/data when present), built-in glyphs."""

from __future__ import annotations

import json
import warnings

import numpy as np
import pytest
import torch

from pvae.distributions.strokes import sketch_lengths
from pvae.errors import DataError
from pvae.kinds.base import load_dataset
from pvae.kinds.strokes.data import (
    augment,
    clean,
    lines_to_stroke3,
    prepare,
    rdp,
    read_stroke_file,
    save_stroke_cache,
    stroke3_to_lines,
    to_stroke3,
    to_stroke5,
)
from pvae.kinds.strokes.quickdraw import drawing_to_stroke3, read_ndjson, simplify_raw


def test_rdp_hand_worked_cases():
    # a nearly straight line: every inner point within 0.2 of the chord -> endpoints only
    line = np.array([[0, 0], [1, 0.1], [2, -0.1], [3, 0.2], [4, 0]])
    np.testing.assert_array_equal(rdp(line, 0.5), [[0, 0], [4, 0]])
    # a right angle: the corner is 2.83 from the chord (0,0)-(4,4)... keep it
    corner = np.array([[0, 0], [2, 0], [4, 0], [4, 2], [4, 4]])
    np.testing.assert_array_equal(rdp(corner, 1.0), [[0, 0], [4, 0], [4, 4]])
    # distance 1.0 exactly is not more than epsilon 1.0 -> dropped; 1.01 -> kept
    np.testing.assert_array_equal(rdp(np.array([[0, 0], [1, 1.0], [2, 0]]), 1.0), [[0, 0], [2, 0]])
    assert len(rdp(np.array([[0, 0], [1, 1.01], [2, 0]]), 1.0)) == 3
    # recursion on both sides of the farthest point
    zigzag = np.array([[0, 0], [1, 3], [2, 0], [3, 3], [4, 0]], dtype=float)
    np.testing.assert_array_equal(rdp(zigzag, 0.5), zigzag)
    assert len(rdp(np.array([[0, 0], [0, 0], [0, 0]]), 1.0)) == 2  # degenerate chord


def test_stroke_conversions_round_trip():
    lines = [np.array([[0.0, 0.0], [3, 4], [5, 5]]), np.array([[10.0, 0], [12, 2]])]
    s3 = lines_to_stroke3(lines)
    assert s3.shape == (5, 3) and s3[:, 2].tolist() == [0, 0, 1, 0, 1]
    back = stroke3_to_lines(s3)
    for a, b in zip(back, lines):
        np.testing.assert_allclose(a, b)
    s5 = to_stroke5(s3, rows=8)
    assert s5.shape == (8, 5)
    np.testing.assert_array_equal(s5[5:], [[0, 0, 0, 0, 1]] * 3)
    np.testing.assert_array_equal(s5[:5, 2] + s5[:5, 3], np.ones(5))
    np.testing.assert_allclose(to_stroke3(s5), s3)
    assert sketch_lengths(torch.from_numpy(s5)).item() == 5
    with pytest.raises(ValueError):
        to_stroke5(s3, rows=5)  # no room for the end-of-sketch row


def test_augment_scales_and_drops_only_interior_points():
    rng = np.random.default_rng(0)
    lines = [np.cumsum(np.ones((30, 2)), axis=0), np.cumsum(np.ones((10, 2)), axis=0) + 100]
    sketch = lines_to_stroke3(lines).astype(np.float32)
    scaled = augment(sketch, np.random.default_rng(1), scale=0.15, drop=0.0)
    ratio = scaled[:, :2].sum(0) / sketch[:, :2].sum(0)
    assert np.all((0.85 <= ratio) & (ratio <= 1.15)) and len(scaled) == len(sketch)
    dropped = augment(sketch, rng, scale=0.0, drop=0.5)
    assert len(dropped) < len(sketch)
    kept = {tuple(p) for p in np.cumsum(dropped[:, :2], axis=0)}
    original = [tuple(p) for p in np.cumsum(sketch[:, :2], axis=0)]
    assert kept <= set(original)  # the remaining points keep their positions
    for i in (0, 1, 2, 29, 30, 31, 32, 39):  # the first three points and the end of each stroke
        assert original[i] in kept
    assert dropped[:, 2].sum() == 2  # both pen lifts survive


def test_clean_drops_bad_sketches_with_one_counting_warning():
    good = np.array([[1, 2, 0], [3, 4, 1]])
    sketches = [good, np.zeros((0, 3)), np.array([[np.nan, 0, 1]]), np.array([[1, 1, 2]]), np.ones((9, 3)), "junk"]
    with pytest.warns(UserWarning, match=r"dropped 5 of 6 sketches \(1 no points, 1 NaN or inf, 1 pen values"):
        kept, index = clean(sketches, max_seq_len=5, source="test")
    assert index == [0] and np.array_equal(kept[0], good)


def test_prepare_normalises_by_the_train_scale_and_pads():
    raw = {"train": [np.array([[2.0, 0, 0], [0, 2, 1]]), np.array([[-2.0, 0, 1]])], "test": [np.array([[4.0, 4, 1]])]}
    data = prepare(raw, "toy")
    scale = np.std([2, 0, 0, 2, -2, 0])
    assert data.scale == pytest.approx(scale) and data.rows == 3
    np.testing.assert_allclose(data.split("test").sketches[0][:, :2], [[4 / scale, 4 / scale]], rtol=1e-6)
    assert data.split("test").tensor().shape == (1, 3, 5)
    same = prepare(raw, "toy", scale=10.0)
    np.testing.assert_allclose(same.split("train").sketches[1][:, 0], [-0.2])


def _write_sketchrnn_npz(path, splits):
    arrays = {}
    for split, sketches in splits.items():
        a = np.empty(len(sketches), dtype=object)
        a[:] = sketches
        arrays[split] = a
    np.savez(path, **arrays)


def test_sketchrnn_npz_and_cache_round_trip(tmp_path):
    rng = np.random.default_rng(0)
    splits = {
        s: [
            np.column_stack([rng.integers(-50, 50, (n, 2)), np.r_[np.zeros(n - 1), 1]]).astype(np.int16)
            for n in (4, 7, 3)
        ]
        for s in ("train", "valid", "test")
    }
    _write_sketchrnn_npz(tmp_path / "orig.npz", splits)
    read = read_stroke_file(tmp_path / "orig.npz")
    save_stroke_cache(tmp_path / "cache.npz", read)
    with np.load(tmp_path / "cache.npz", allow_pickle=False) as archive:  # no pickle in our format
        assert archive["train_points"].dtype == np.int16
    cached = read_stroke_file(tmp_path / "cache.npz")
    for split in splits:
        for a, b, c in zip(splits[split], read[split], cached[split]):
            np.testing.assert_array_equal(a, b)
            np.testing.assert_array_equal(a, c)


def test_stroke_file_errors(tmp_path):
    (tmp_path / "corrupt.npz").write_bytes(b"PK\x03\x04 this is not a zip")
    with pytest.raises(DataError, match="corrupt.npz: not an .npz archive"):
        read_stroke_file(tmp_path / "corrupt.npz")
    _write_sketchrnn_npz(tmp_path / "nokey.npz", {"valid": [np.ones((2, 3))]})
    with pytest.raises(DataError, match="missing key 'train'"):
        read_stroke_file(tmp_path / "nokey.npz")
    _write_sketchrnn_npz(tmp_path / "empty.npz", {"train": [np.zeros((0, 3)), np.zeros((0, 3))]})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with pytest.raises(DataError, match="no usable sketch in split 'train'"):
            load_dataset(f"sketch:{tmp_path / 'empty.npz'}")
    with pytest.raises(DataError, match="no such file"):
        read_stroke_file(tmp_path / "absent.npz")


def test_quickdraw_ndjson_simplified_raw_and_errors(tmp_path):
    simplified = {"word": "cat", "drawing": [[[10, 20, 30], [5, 5, 10]], [[0, 4], [0, 3]]]}
    raw = {"word": "dog", "drawing": [[[0.0, 50.5, 101.0, 101.0], [0.0, 0.2, 0.0, 50.0], [0, 10, 20, 30]]]}
    path = tmp_path / "d.ndjson"
    path.write_text("\n".join(json.dumps(r) for r in [simplified, raw, simplified]) + "\n")
    s3 = drawing_to_stroke3(simplified["drawing"])
    assert s3.tolist() == [[0, 0, 0], [10, 0, 0], [10, 5, 1], [-30, -10, 0], [4, 3, 1]]
    r3 = drawing_to_stroke3(raw["drawing"])  # scaled so the maximum is 255, the near-colinear point dropped
    np.testing.assert_allclose(np.cumsum(r3[:, :2], 0), [[0, 0], [255, 0], [255, 126]])
    splits, labels = read_ndjson(path)
    assert sum(len(v) for v in splits.values()) == 3 and sorted(torch.cat(list(labels.values())).tolist()) == [0, 0, 1]
    path.write_text(json.dumps(simplified) + "\n{not json\n")
    with pytest.raises(DataError, match="d.ndjson, line 2: not JSON"):
        read_ndjson(path)
    path.write_text(json.dumps({"word": "x"}) + "\n")
    with pytest.raises(DataError, match="line 1: no 'drawing' field"):
        read_ndjson(path)


def test_simplify_raw_aligns_and_scales():
    strokes = simplify_raw([np.array([[100.0, 50], [300, 50]]), np.array([[100.0, 150], [100, 60]])])
    points = np.concatenate(strokes)
    assert points.min() == 0 and points.max() == 255


def test_batches_replay_with_skip_and_augment():
    raw = {"train": [lines_to_stroke3([np.cumsum(np.ones((n, 2)), 0)]) for n in range(5, 15)]}
    split = prepare(raw, "toy").split("train").with_augmentation(0.15, 0.1)
    g = torch.Generator().manual_seed(0)
    state = g.get_state()
    first = [x for x, _ in split.batches(4, g)]
    g.set_state(state)
    resumed = [x for x, _ in split.batches(4, g, skip=1)]
    assert len(first) == 3 and all(torch.equal(a, b) for a, b in zip(first[1:], resumed))
    assert not torch.equal(torch.cat(first)[:, :, :2].abs().sum(), split.tensor()[:, :, :2].abs().sum())


def test_glyph_dataset():
    data = load_dataset("glyphs")
    train = data.split("train")
    assert len(train) > 500 and data.rows < 200
    assert int(train.labels.max()) <= 61 and int(train.labels.min()) >= 0
    assert all(s[-1, 2] == 1 for s in train.sketches[:50])  # every sketch ends with a pen lift


def test_shared_sketchrnn_and_quickdraw(shared_file):
    sheep = load_dataset(f"sketch:{shared_file('sketchrnn', 'aaron_sheep.npz')}")
    assert [len(sheep.split(s)) for s in ("train", "valid", "test")] == [7400, 300, 300]
    assert sheep.rows == 251 and sheep.scale == pytest.approx(18.52, abs=0.01)
    simplified = load_dataset(f"quickdraw:{shared_file('quickdraw', 'simplified', 'cat.ndjson')}")
    raw = load_dataset(f"quickdraw:{shared_file('quickdraw', 'raw', 'cat.ndjson')}")
    lengths = lambda d: np.mean([len(s) for s in d.split("train").sketches])  # noqa: E731
    assert abs(lengths(raw) - lengths(simplified)) < 0.15 * lengths(simplified)  # our RDP ~ Google's
