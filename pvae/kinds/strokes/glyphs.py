"""Glyph sketches: the outlines of font glyphs (``pvae.data.fonts``) as stroke-3 drawings.

A glyph sketch draws each closed contour as one pen-down stroke, scaled so the glyph's longer side
is 255 units (per-glyph normalisation) and simplified by Ramer-Douglas-Peucker, in stroke-3.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from pvae.data.fonts import (
    GLYPH_CHARS,
    _listing,
    glyph_contours,
    has_glyphs,
    has_real_digits,
    matplotlib_font_files,
    missing_glyphs,
    usable_fonts,
)
from pvae.data.splits import split_seeded
from pvae.errors import DataError
from pvae.kinds.strokes.data import lines_to_stroke3, rdp


def glyph_polylines(
    font_file: str | os.PathLike, char: str, size: float = 255.0, epsilon: float = 2.0
) -> list[np.ndarray]:
    """A glyph's outline contours as polylines in image coordinates (y down), scaled so the
    longer side of the glyph is ``size`` and simplified by Ramer-Douglas-Peucker (``epsilon``).

    Each closed contour becomes one pen-down polyline, the way a person would trace the outline.
    """
    contours = glyph_contours(font_file, char)
    if not contours:
        return []
    points = np.concatenate(contours)
    low, high = points.min(0), points.max(0)
    factor = size / float(np.max(high - low))
    lines = []
    for contour in contours:
        xy = (contour - low) * factor
        xy[:, 1] = size * (high[1] - low[1]) / np.max(high - low) - xy[:, 1]  # flip: y grows downwards
        lines.append(rdp(xy, epsilon))
    return lines


def glyph_sketch(font_file: str | os.PathLike, char: str) -> np.ndarray:
    """One glyph as a stroke-3 sketch ``(n, 3)`` in whole units (longer side 255), one pen-down
    stroke per contour; ``(0, 3)`` for a glyph without an outline."""
    lines = glyph_polylines(font_file, char)
    return np.round(lines_to_stroke3(lines)) if lines else np.zeros((0, 3))


def font_sketches(font_file: str | os.PathLike, chars: str = GLYPH_CHARS) -> list[np.ndarray]:
    """The stroke-3 sketches of ``chars`` in one font, in order (62 for ``GLYPH_CHARS``); a file
    that is not a font, or a font without some of ``chars``, raises ``DataError``."""
    missing = missing_glyphs(font_file, chars)
    if missing:
        raise DataError(f"{font_file}: no glyph for {_listing(missing)}")
    return [glyph_sketch(font_file, c) for c in chars]


@dataclass
class GlyphSet:
    """Glyph sketches of several fonts: ``sketches[i]`` (stroke-3, whole units) draws the character
    ``GLYPH_CHARS[classes[i]]`` of the font ``files[fonts[i]]``."""

    sketches: list[np.ndarray]
    classes: np.ndarray  # (N,) int64: the character class, an index into GLYPH_CHARS
    fonts: np.ndarray  # (N,) int64: the font id, an index into files
    files: list[Path]


def read_glyphs(path: str | os.PathLike | None = None) -> GlyphSet:
    """The glyph sketches of ``GLYPH_CHARS`` in every usable font of a font file or folder
    (``usable_fonts``); by default in matplotlib's fonts that have real digits and all 62
    characters (the symbol and fallback fonts are left out silently). Glyphs without an outline
    are left out."""
    if path is None:
        files = [f for f in matplotlib_font_files() if has_real_digits(f) and has_glyphs(f, GLYPH_CHARS)]
    else:
        files = usable_fonts(path)
    sketches, classes, fonts = [], [], []
    for font_id, file in enumerate(files):
        for i, char in enumerate(GLYPH_CHARS):
            sketch = glyph_sketch(file, char)
            if len(sketch):
                sketches.append(sketch)
                classes.append(i)
                fonts.append(font_id)
    return GlyphSet(sketches, np.array(classes, dtype=np.int64), np.array(fonts, dtype=np.int64), files)


def load_glyphs(path: str | os.PathLike | None = None, seed: int = 0) -> tuple[dict[str, list], dict]:
    """Raw glyph sketches of every font of ``path`` (a font file or folder; default: matplotlib's
    fonts) with all of ``GLYPH_CHARS``, in a seeded split of the glyphs, and their labels (the index
    of the character in ``GLYPH_CHARS``, int64) per split. ``read_glyphs`` gives the font of each
    glyph too."""
    glyphs = read_glyphs(path)
    parts = split_seeded(glyphs.sketches, seed)
    labels = torch.from_numpy(glyphs.classes)
    raw = {s: [glyphs.sketches[i] for i in idx] for s, idx in parts.items()}
    return raw, {s: labels[idx] for s, idx in parts.items()}
