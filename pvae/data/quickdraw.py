"""QuickDraw ``.ndjson`` files (Google Creative Lab), one drawing per line, as stroke-3 sketches.

Two layouts: ``simplified`` drawings are lists of strokes ``[[x...], [y...]]`` in integer pixels,
already aligned to the top-left, scaled to 0-255 and simplified (RDP, epsilon 2.0); ``raw``
drawings add timestamps ``[[x...], [y...], [t...]]`` in float screen pixels. Raw drawings are
brought to the simplified form here: shifted so the minimum is 0, scaled uniformly so the maximum
is 255, every stroke simplified by Ramer-Douglas-Peucker with epsilon 2.0, rounded to integers.
(Google's pipeline also resamples strokes at 1-pixel spacing before simplifying; we do not.)
"""

from __future__ import annotations

import json
import os
from functools import partial
from pathlib import Path

import numpy as np
import torch

from pvae.data.strokes import lines_to_stroke3, rdp, split_seeded
from pvae.errors import DataError

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


def read_ndjson(path: str | os.PathLike, seed: int = 0) -> tuple[dict[str, list[np.ndarray]], dict[str, torch.Tensor]]:
    """Stroke-3 sketches of a QuickDraw ``.ndjson`` file in a seeded 80/10/10 train/valid/test
    split, and per split the index of each drawing's ``word`` among the file's sorted words."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: no such file")
    sketches, words = [], []
    with open(path, "rb") as f:
        for number, line in enumerate(iter(partial(f.readline, MAX_LINE_BYTES + 1), b""), 1):
            if len(line) > MAX_LINE_BYTES:
                raise DataError(f"{path}, line {number}: longer than {MAX_LINE_BYTES} bytes")
            if not line.strip():
                continue
            try:
                record = json.loads(line.decode("utf-8"))
                drawing = record["drawing"]
                if not isinstance(drawing, list) or not all(isinstance(s, list) and len(s) >= 2 for s in drawing):
                    raise ValueError("'drawing' is not a list of [[x...], [y...]] strokes")
                sketches.append(drawing_to_stroke3(drawing))
            except UnicodeDecodeError as e:
                raise DataError(f"{path}, line {number}: not UTF-8 (byte {e.start})") from None
            except json.JSONDecodeError as e:
                raise DataError(f"{path}, line {number}: not JSON ({e.msg})") from None
            except RecursionError:
                raise DataError(f"{path}, line {number}: not JSON we can read (nested too deeply)") from None
            except KeyError:
                raise DataError(f"{path}, line {number}: no 'drawing' field") from None
            except (ValueError, TypeError, IndexError, OverflowError) as e:
                raise DataError(f"{path}, line {number}: bad drawing ({e})") from None
            words.append(str(record.get("word", "")))
    if not sketches:
        raise DataError(f"{path}: no drawings")
    vocabulary = sorted(set(words))
    labels = torch.tensor([vocabulary.index(w) for w in words])
    parts = split_seeded(sketches, seed)
    return (
        {split: [sketches[i] for i in index] for split, index in parts.items()},
        {split: labels[index] for split, index in parts.items()},
    )
