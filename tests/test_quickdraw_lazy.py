"""QuickDraw files larger than memory: the lazy reader gives the sketches, labels, scale and rows of
the eager one, over a folder or a list of files, from an index cached beside the data."""

from __future__ import annotations

import json
import warnings

import numpy as np
import pytest

from pvae.errors import DataError
from pvae.kinds.base import load_dataset
from pvae.kinds.strokes.data import prepare
from pvae.kinds.strokes.quickdraw import INDEX_SUFFIX, load_quickdraw, read_ndjson


def _write(path, n: int, word: str, seed: int) -> None:
    rng = np.random.default_rng(seed)
    with open(path, "w") as f:
        for i in range(n):
            strokes = [
                [sorted(rng.integers(0, 255, k).tolist()), rng.integers(0, 255, k).tolist()]
                for k in rng.integers(1, 6, rng.integers(1, 4))
            ]
            if i % 17 == 5:
                strokes = []  # no points: dropped with a count
            f.write(json.dumps({"word": word, "drawing": strokes}) + "\n")


def test_the_lazy_reader_gives_the_eager_readers_sketches(tmp_path):
    _write(tmp_path / "cat.ndjson", 120, "cat", 0)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        raw, labels = read_ndjson(tmp_path / "cat.ndjson")
        eager = prepare(raw, "eager", max_seq_len=12, labels=labels)
        lazy = load_quickdraw(str(tmp_path / "cat.ndjson"), max_seq_len=12)
    assert (tmp_path / ("cat.ndjson" + INDEX_SUFFIX)).is_file()
    assert sum("dropped" in str(w.message) for w in caught) >= 2  # each reader counts what it drops
    assert lazy.scale == pytest.approx(eager.scale, rel=1e-12) and lazy.rows == eager.rows  # float64 sums
    for split in ("train", "valid", "test"):
        a, b = eager.split(split), lazy.split(split)
        assert len(a) == len(b) > 0
        assert all(np.allclose(x, y, rtol=1e-6, atol=0) for x, y in zip(a.sketches, b.sketches))
        assert a.labels.tolist() == b.labels.tolist()
        assert np.allclose(a.tensor(), b.tensor(), rtol=1e-6, atol=0)
    # the same run's test split alone, with the run's scale and rows
    alone = load_quickdraw(str(tmp_path / "cat.ndjson"), 12, {"scale": lazy.scale, "rows": lazy.rows}, ("test",))
    assert list(alone.splits) == ["test"] and np.array_equal(alone.split("test").tensor(), lazy.split("test").tensor())


def test_a_folder_or_a_list_of_files_with_words_as_labels(tmp_path):
    _write(tmp_path / "cat.ndjson", 40, "cat", 1)
    _write(tmp_path / "dog.ndjson", 30, "dog", 2)
    folder = load_dataset(f"quickdraw:{tmp_path}")
    listed = load_dataset(f"quickdraw:{tmp_path / 'cat.ndjson'},{tmp_path / 'dog.ndjson'}")
    assert len(folder.split("train")) == len(listed.split("train"))
    labels = np.concatenate([folder.split(s).labels.numpy() for s in ("train", "valid", "test")])
    assert set(labels.tolist()) == {0, 1}  # cat, dog


def test_the_index_is_kept_rebuilt_when_the_file_changes_and_bad_lines_are_one_line(tmp_path, monkeypatch):
    from pvae.kinds.strokes import quickdraw

    path = tmp_path / "cat.ndjson"
    _write(path, 30, "cat", 3)
    before = len(load_quickdraw(str(path)).split("train"))
    built = quickdraw._index_file
    with monkeypatch.context() as m:  # the cached index serves the second load
        m.setattr(quickdraw, "_index_file", lambda path: pytest.fail("the index was built again"))
        assert len(load_quickdraw(str(path)).split("train")) == before
    assert quickdraw._index_file is built
    _write(path, 60, "cat", 3)
    assert len(load_quickdraw(str(path)).split("train")) > before
    with open(path, "a") as f:
        f.write("{not json\n")
    with pytest.raises(DataError, match=r"cat.ndjson, line 61: not JSON") as e:
        load_quickdraw(str(path))
    assert "\n" not in str(e.value)
    with pytest.raises(DataError, match="no .ndjson files in this folder"):
        load_quickdraw(str(tmp_path / "empty")) if (tmp_path / "empty").mkdir() is None else None


@pytest.mark.parametrize("end", [b"\r", b"\n", b"\r\n"])
def test_lines_end_with_cr_lf_or_both_as_in_text_files(tmp_path, end):
    """Records separated by bare ``\\r`` (old Mac files), ``\\n`` or ``\\r\\n`` read alike, eagerly
    and lazily (each sketch read back from its byte offset)."""
    plain = tmp_path / "plain.ndjson"
    _write(plain, 30, "cat", 3)
    other = tmp_path / "other" / "cat.ndjson"
    other.parent.mkdir()
    other.write_bytes(end.join(plain.read_bytes().splitlines()) + end)
    expected, _ = read_ndjson(plain)
    got, _ = read_ndjson(other)
    assert all(np.array_equal(a, b) for s in expected for a, b in zip(expected[s], got[s], strict=True))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the dropped empty drawings, counted
        lazy, reference = load_quickdraw(str(other)), load_quickdraw(str(plain))
    for split in ("train", "valid", "test"):
        a, b = lazy.split(split).sketches, reference.split(split).sketches
        assert len(a) == len(b) and all(np.array_equal(x, y) for x, y in zip(a, b))


def test_an_empty_file_is_refused_and_no_index_is_left_beside_it(tmp_path):
    path = tmp_path / "empty.ndjson"
    for text in ("", "\n\r\n"):
        path.write_text(text)
        with pytest.raises(DataError, match="no drawings"):
            load_quickdraw(str(path))
        assert not path.with_name(path.name + INDEX_SUFFIX).exists()
    _write(path, 20, "cat", 1)  # a file that had drawings and has none now: its old index goes too
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        load_quickdraw(str(path))
    assert path.with_name(path.name + INDEX_SUFFIX).is_file()
    path.write_text("")
    with pytest.raises(DataError, match="no drawings"):
        load_quickdraw(str(path))
    assert list(tmp_path.iterdir()) == [path]
