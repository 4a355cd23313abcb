"""QuickDraw ``.ndjson`` files (Google Creative Lab), one drawing per line, as stroke-3 sketches.

Two layouts: ``simplified`` drawings are lists of strokes ``[[x...], [y...]]`` in integer pixels,
already aligned to the top-left, scaled to 0-255 and simplified (RDP, epsilon 2.0); ``raw``
drawings add timestamps ``[[x...], [y...], [t...]]`` in float screen pixels. Raw drawings are
brought to the simplified form here: shifted so the minimum is 0, scaled uniformly so the maximum
is 255, every stroke simplified by Ramer-Douglas-Peucker with epsilon 2.0, rounded to integers.
(Google's pipeline also resamples strokes at 1-pixel spacing before simplifying; we do not.)
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import tempfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from pvae.data.npz import NpzFile
from pvae.data.splits import split_seeded
from pvae.errors import DataError
from pvae.kinds.strokes.data import PROBLEMS, StrokeData, StrokeSplit, checked, lines_to_stroke3, rdp, warn_dropped

RDP_EPSILON = 2.0
MAX_LINE_BYTES = 8 << 20  # a drawing takes a few kB; a longer line is refused before it is read whole


def simplify_raw(strokes: list[np.ndarray], epsilon: float = RDP_EPSILON) -> list[np.ndarray]:
    """Raw absolute strokes ``[(n_i, 2), ...]`` -> aligned to 0, scaled to 0-255, RDP-simplified, rounded."""
    points = np.concatenate(strokes)
    low = points.min(0)
    extent = float((points - low).max())
    factor = 255.0 / extent if extent > 0 else 1.0
    return [np.round(rdp((s - low) * factor, epsilon)) for s in strokes]


def drawing_to_stroke3(drawing: list, simplify: bool | None = None) -> np.ndarray:
    """One QuickDraw ``drawing`` -> stroke-3; raw drawings (with timestamps, or non-integer
    coordinates) are simplified first unless ``simplify`` says otherwise."""
    strokes = [
        np.column_stack([np.asarray(s[0], dtype=np.float64), np.asarray(s[1], dtype=np.float64)]) for s in drawing
    ]
    strokes = [s for s in strokes if len(s)]
    if not strokes:
        return np.zeros((0, 3))
    raw = any(len(s) > 2 for s in drawing) or any(not np.all(np.mod(s, 1) == 0) for s in strokes)
    if simplify if simplify is not None else raw:
        strokes = simplify_raw(strokes)
    return lines_to_stroke3(strokes)


def _readline(f: io.BufferedReader, limit: int = MAX_LINE_BYTES + 1) -> bytes:
    """The next line of ``f`` with its end, ``\n``, ``\r`` or ``\r\n`` alike (as Python's text
    files read lines); at most ``limit`` bytes of it before its end; ``b""`` at the end of the file."""
    parts, size = [], 0
    while size < limit:
        chunk = f.peek(1)[: limit - size]
        if not chunk:
            break
        newline = chunk.find(b"\n")
        end = chunk.find(b"\r", 0, newline if newline >= 0 else len(chunk))
        end = newline if end < 0 else end
        if end < 0:
            parts.append(f.read(len(chunk)))
            size += len(chunk)
            continue
        parts.append(f.read(end + 1))
        if chunk[end] == ord("\r") and f.peek(1)[:1] == b"\n":
            parts.append(f.read(1))
        break
    return b"".join(parts)


def _records(path: Path) -> Iterator[tuple[int, int, np.ndarray, str]]:
    """``(line number, byte offset, stroke-3 sketch, word)`` of every drawing of an ``.ndjson``
    file, read line by line (a line longer than ``MAX_LINE_BYTES`` is refused before it is read
    whole); a bad line raises ``DataError`` naming the file and line."""
    if not path.is_file():
        raise DataError(f"{path}: no such file")
    with open(path, "rb") as f:
        offset = 0
        for number, line in enumerate(iter(lambda: _readline(f), b""), 1):
            start, offset = offset, offset + len(line)
            if len(line) > MAX_LINE_BYTES:
                raise DataError(f"{path}, line {number}: longer than {MAX_LINE_BYTES} bytes")
            if line.strip():
                yield number, start, *_parse(f"{path}, line {number}", line)


def _parse(where: str, line: bytes) -> tuple[np.ndarray, str]:
    """One line's drawing as stroke-3, and its word; ``DataError`` naming ``where`` otherwise."""
    try:
        record = json.loads(line.decode("utf-8"))
        drawing = record["drawing"]
        if not isinstance(drawing, list) or not all(isinstance(s, list) and len(s) >= 2 for s in drawing):
            raise ValueError("'drawing' is not a list of [[x...], [y...]] strokes")
        return drawing_to_stroke3(drawing), str(record.get("word", ""))
    except UnicodeDecodeError as e:
        raise DataError(f"{where}: not UTF-8 (byte {e.start})") from None
    except json.JSONDecodeError as e:
        raise DataError(f"{where}: not JSON ({e.msg})") from None
    except RecursionError:
        raise DataError(f"{where}: not JSON we can read (nested too deeply)") from None
    except KeyError:
        raise DataError(f"{where}: no 'drawing' field") from None
    except (ValueError, TypeError, IndexError, OverflowError, AttributeError) as e:
        raise DataError(f"{where}: bad drawing ({e})") from None


def read_ndjson(path: str | os.PathLike, seed: int = 0) -> tuple[dict[str, list[np.ndarray]], dict[str, torch.Tensor]]:
    """Stroke-3 sketches of a QuickDraw ``.ndjson`` file in a seeded 80/10/10 train/valid/test
    split, and per split the index of each drawing's ``word`` among the file's sorted words. All
    in memory: ``load_quickdraw`` reads files of any size lazily."""
    path = Path(path)
    sketches, words = [], []
    for _, _, sketch, word in _records(path):
        sketches.append(sketch)
        words.append(word)
    if not sketches:
        raise DataError(f"{path}: no drawings")
    vocabulary = sorted(set(words))
    labels = torch.tensor([vocabulary.index(w) for w in words])
    parts = split_seeded(sketches, seed)
    return (
        {split: [sketches[i] for i in index] for split, index in parts.items()},
        {split: labels[index] for split, index in parts.items()},
    )


# --- files larger than memory ---------------------------------------------------------------------

INDEX_SUFFIX = ".pvae-index.npz"  # the index of an .ndjson file, written beside it (or in the user cache)


@dataclass
class Index:
    """One row per drawing of one or more ``.ndjson`` files, in file order: where its line starts,
    its length in stroke-3 rows, its problem (0: usable, else 1 + index in ``PROBLEMS``), its word,
    and the sum and sum of squares of its (clamped) offsets, so that the normalising scale of any
    subset follows without reading a drawing again."""

    files: list[Path]
    file: np.ndarray  # (N,) int32: index into files
    offset: np.ndarray  # (N,) int64
    length: np.ndarray  # (N,) int32
    problem: np.ndarray  # (N,) int8
    words: list[str]
    word: np.ndarray  # (N,) int32: index into words
    moments: np.ndarray  # (N, 2) float64: sum and sum of squares of dx and dy together


def _index_file(path: Path) -> dict[str, np.ndarray]:
    """The index of one file, built in one streaming pass (constant memory but for the index)."""
    offset, length, problem, word, moments, words = [], [], [], [], [], {}
    for _, start, sketch, name in _records(path):
        a, reason = checked(sketch)
        offset.append(start)
        length.append(len(sketch))
        problem.append(0 if reason is None else 1 + PROBLEMS.index(reason))
        word.append(words.setdefault(name, len(words)))
        moments.append((a[:, :2].sum(), np.square(a[:, :2]).sum()) if a is not None else (0.0, 0.0))
    return {
        "offset": np.array(offset, dtype=np.int64),
        "length": np.array(length, dtype=np.int32),
        "problem": np.array(problem, dtype=np.int8),
        "word": np.array(word, dtype=np.int32),
        "words": np.frombuffer(json.dumps(list(words)).encode(), dtype=np.uint8),  # numbers only in an .npz
        "moments": np.array(moments, dtype=np.float64).reshape(-1, 2),
    }


def _cached_index(path: Path) -> dict[str, np.ndarray]:
    """``_index_file``, kept beside the file (or in ``~/.cache/pvae`` where that folder is read-only)
    and rebuilt when the file's size or time changes."""
    stat = path.stat()
    stamp = np.array([stat.st_size, stat.st_mtime_ns], dtype=np.int64)
    cache = path.with_name(path.name + INDEX_SUFFIX)
    if not os.access(path.parent, os.W_OK):
        digest = hashlib.sha256(str(path.resolve()).encode()).hexdigest()[:16]
        cache = Path.home() / ".cache" / "pvae" / f"{digest}{INDEX_SUFFIX}"
    if cache.is_file():
        try:
            with NpzFile(cache) as archive:
                if np.array_equal(archive.array("stamp"), stamp):
                    return {k: archive.array(k) for k in archive.files if k != "stamp"}
        except DataError:
            pass  # a damaged cache is rebuilt
    index = _index_file(path)
    if not len(index["offset"]):  # no drawings: no index kept beside the file (nor an old one)
        cache.unlink(missing_ok=True)
        return index
    cache.parent.mkdir(parents=True, exist_ok=True)
    handle, tmp = tempfile.mkstemp(suffix=".npz", dir=cache.parent)  # ranks may build it at once
    with os.fdopen(handle, "wb") as f:
        np.savez(f, stamp=stamp, **index)
    os.replace(tmp, cache)
    return index


def ndjson_files(spec: str) -> list[Path]:
    """The ``.ndjson`` files a ``quickdraw:`` spec names: a file, a folder (its ``*.ndjson``) or a
    comma-separated list of them."""
    files = []
    for part in spec.split(","):
        path = Path(part).expanduser()
        if path.is_dir():
            found = sorted(path.glob("*.ndjson"))
            if not found:
                raise DataError(f"{path}: no .ndjson files in this folder")
            files += found
        elif path.is_file():
            files.append(path)
        else:
            raise DataError(f"{path}: no such file or folder")
    return files


def index_files(files: list[Path]) -> Index:
    """The ``Index`` of several files: their rows one after the other, words over all of them."""
    parts = [_cached_index(f) for f in files]
    for part in parts:
        part["words"] = np.array(json.loads(part["words"].tobytes().decode()), dtype=str)
    words = sorted({w for part in parts for w in part["words"].tolist()})
    return Index(
        files=files,
        file=np.concatenate([np.full(len(p["offset"]), i, dtype=np.int32) for i, p in enumerate(parts)]),
        offset=np.concatenate([p["offset"] for p in parts]),
        length=np.concatenate([p["length"] for p in parts]),
        problem=np.concatenate([p["problem"] for p in parts]),
        words=words,
        word=np.concatenate([np.searchsorted(words, p["words"])[p["word"]] for p in parts]).astype(np.int32),
        moments=np.concatenate([p["moments"] for p in parts]),
    )


class LazySketches(Sequence):
    """Normalised stroke-3 sketches read from their ``.ndjson`` lines when indexed: a sequence of
    ``(n, 3)`` float32 arrays whose memory is a few bytes per drawing, whatever the file's size."""

    def __init__(self, files: list[Path], file: np.ndarray, offset: np.ndarray, scale: float) -> None:
        self.files, self.file, self.offset, self.scale = files, file, offset, scale

    def __len__(self) -> int:
        return len(self.offset)

    def __getitem__(self, i):
        if isinstance(i, slice):
            return LazySketches(self.files, self.file[i], self.offset[i], self.scale)
        path, start = self.files[int(self.file[i])], int(self.offset[i])
        with open(path, "rb") as f:
            f.seek(start)
            sketch, _ = _parse(f"{path}, byte {start}", _readline(f))
        a, _ = checked(sketch)
        return np.column_stack([a[:, :2] / self.scale, a[:, 2]]).astype(np.float32)


def load_quickdraw(
    spec: str,
    max_seq_len: int = 250,
    saved: dict | None = None,
    splits: tuple[str, ...] | None = None,
    seed: int = 0,
) -> StrokeData:
    """A ``quickdraw:`` dataset read lazily: the drawings of ``ndjson_files(spec)`` in the seeded
    80/10/10 split of ``read_ndjson`` (the same sketches, scale and rows as it gives), labelled by
    word, decoded from their lines when a batch reads them. ``saved`` (a run's data description)
    gives the scale and rows; ``splits`` the splits to keep."""
    index = index_files(ndjson_files(spec))
    if not len(index.offset):
        raise DataError(f"{spec}: no drawings")
    saved, out, kept = saved or {}, {}, {}
    for split, rows in split_seeded(range(len(index.offset)), seed).items():
        if splits is not None and split not in splits or not len(rows):
            continue
        too_long = (index.problem[rows] == 0) & (index.length[rows] > max_seq_len)
        dropped = {PROBLEMS[k - 1]: int((index.problem[rows] == k).sum()) for k in range(1, len(PROBLEMS) + 1)}
        dropped[f"longer than max_seq_len {max_seq_len}"] = int(too_long.sum())
        warn_dropped(f"quickdraw:{spec} [{split}]", {k: n for k, n in dropped.items() if n}, len(rows))
        kept[split] = rows[(index.problem[rows] == 0) & ~too_long]
        if not len(kept[split]):
            raise DataError(f"quickdraw:{spec}: no usable sketch in split {split!r} ({len(rows)} read)")
    if "train" not in kept and "scale" not in saved:
        raise DataError(f"quickdraw:{spec}: no sketches in the train split")
    scale = saved.get("scale")
    if scale is None:  # sketch-rnn's normaliser: the std of all train offsets, from the moments
        train = kept["train"]
        count = 2 * index.length[train].sum()
        mean = index.moments[train, 0].sum() / count
        scale = float(np.sqrt(max(index.moments[train, 1].sum() / count - mean**2, 0.0))) or 1.0
    rows = saved.get("rows") or 1 + int(max(index.length[k].max() for k in kept.values()))
    for split, k in kept.items():
        sketches = LazySketches(index.files, index.file[k], index.offset[k], scale)
        out[split] = StrokeSplit(sketches, rows, torch.from_numpy(index.word[k].astype(np.int64)))
    return StrokeData(name=f"quickdraw:{spec}", splits=out, scale=scale, rows=rows)
