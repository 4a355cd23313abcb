"""Glyph outlines from TrueType/OpenType fonts, flattened to polygons.

Fonts give each glyph as closed contours of straight lines and Bezier curves. We flatten each
curve into a polyline whose distance from the curve is at most ``tolerance`` (in glyph units, where
the font size is 1), so the same outlines serve the raster digits and, later, stroke data.
"""

from __future__ import annotations

import math
import os
from functools import lru_cache
from pathlib import Path

import numpy as np

DIGIT_NAMES = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")


def matplotlib_font_files() -> list[Path]:
    """The TrueType files that matplotlib ships (sorted, so dataset seeds mean the same fonts)."""
    import matplotlib

    folder = Path(matplotlib.get_data_path()) / "fonts" / "ttf"
    return sorted(folder.glob("*.ttf"))


def has_real_digits(font_file: str | os.PathLike) -> bool:
    """True when the font maps '0'-'9' to ten distinct glyphs that are named as digits.

    Symbol fonts (cmex10, cmsy10) map the digit code points to other symbols, and fallback fonts
    (LastResort) map every code point to one placeholder; glyph names tell both apart from real
    digits ('zero', 'zerooldstyle', 'uni0030').
    """
    from matplotlib.ft2font import FT2Font

    font = FT2Font(str(font_file))
    cmap = font.get_charmap()
    glyphs = [cmap.get(ord(str(d))) for d in range(10)]
    if any(g is None or g == 0 for g in glyphs) or len(set(glyphs)) != 10:
        return False
    for digit, glyph in enumerate(glyphs):
        name = font.get_glyph_name(glyph).lower()
        if not (name.startswith(DIGIT_NAMES[digit]) or name == f"uni{0x30 + digit:04x}"):
            return False
    return True


def _bezier_steps(control: np.ndarray, tolerance: float) -> int:
    """Segments needed so a uniform polyline stays within ``tolerance`` of a Bezier curve.

    A uniform polyline with n segments deviates from a curve B(t) by at most
    max|B''| / (8 n^2); for degree d, |B''| <= d (d - 1) max_i |P_i - 2 P_{i+1} + P_{i+2}|.
    """
    degree = len(control) - 1
    if degree < 2:
        return 1
    second = control[:-2] - 2 * control[1:-1] + control[2:]
    bound = degree * (degree - 1) * float(np.max(np.linalg.norm(second, axis=1)))
    return max(1, math.ceil(math.sqrt(bound / (8 * tolerance))))


def glyph_contours(font_file: str | os.PathLike, char: str, tolerance: float = 0.002) -> list[np.ndarray]:
    """Closed contours of one glyph as float arrays ``(n_i, 2)`` in glyph units (font size 1).

    The y axis points up, as in the font. Each contour's last point equals its first.
    Returns an empty list for a glyph with no outline (a space, or a missing glyph).
    """
    return [c.copy() for c in _glyph_contours(str(font_file), char, tolerance)]


@lru_cache(maxsize=4096)
def _glyph_contours(font_file: str, char: str, tolerance: float) -> tuple[np.ndarray, ...]:
    from matplotlib.font_manager import FontProperties
    from matplotlib.path import Path as MplPath
    from matplotlib.textpath import TextPath

    path = TextPath((0, 0), char, size=1, prop=FontProperties(fname=font_file))
    contours: list[np.ndarray] = []
    points: list[np.ndarray] = []
    for segment, code in path.iter_bezier():
        control = np.asarray(segment.control_points, dtype=np.float64)
        if code == MplPath.MOVETO:
            if len(points) > 1:
                contours.append(_close(np.concatenate(points)))
            points = [control[:1]]
            continue
        steps = _bezier_steps(control, tolerance)
        t = np.linspace(0.0, 1.0, steps + 1)[1:]
        points.append(segment(t))
    if len(points) > 1:
        contours.append(_close(np.concatenate(points)))
    return tuple(contours)


def _close(points: np.ndarray) -> np.ndarray:
    if not np.allclose(points[0], points[-1]):
        points = np.concatenate([points, points[:1]])
    return points


GLYPH_CHARS = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"


def has_glyphs(font_file: str | os.PathLike, chars: str) -> bool:
    """True when every character of ``chars`` maps to a glyph of its own (not .notdef)."""
    from matplotlib.ft2font import FT2Font

    cmap = FT2Font(str(font_file)).get_charmap()
    glyphs = [cmap.get(ord(c)) for c in chars]
    return all(glyphs) and len(set(glyphs)) == len(chars)


def glyph_polylines(
    font_file: str | os.PathLike, char: str, size: float = 255.0, epsilon: float = 2.0
) -> list[np.ndarray]:
    """A glyph's outline contours as polylines in image coordinates (y down), scaled so the
    longer side of the glyph is ``size`` and simplified by Ramer-Douglas-Peucker (``epsilon``).

    Each closed contour becomes one pen-down polyline, the way a person would trace the outline.
    """
    from pvae.data.strokes import rdp

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
