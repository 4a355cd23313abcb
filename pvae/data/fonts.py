"""Glyph outlines from TrueType/OpenType fonts, flattened to polygons: what the raster digits
(``pvae.kinds.image.digits``) and the glyph sketches (``pvae.kinds.strokes.glyphs``) are drawn from.

Fonts give each glyph as closed contours of straight lines and Bezier curves. We flatten each
curve into a polyline whose distance from the curve is at most ``tolerance`` (in glyph units, where
the font size is 1), so the same outlines serve every kind of data made from fonts.
"""

from __future__ import annotations

import math
import os
import warnings
from functools import lru_cache
from pathlib import Path

import matplotlib
import numpy as np
from matplotlib.font_manager import FontProperties
from matplotlib.ft2font import FT2Font
from matplotlib.path import Path as MplPath
from matplotlib.textpath import text_to_path

from pvae.errors import DataError

DIGIT_NAMES = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")
GLYPH_CHARS = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"  # class i draws GLYPH_CHARS[i]
FONT_SUFFIXES = (".ttf", ".otf")


def matplotlib_font_files() -> list[Path]:
    """The TrueType files that matplotlib ships (sorted, so dataset seeds mean the same fonts)."""
    folder = Path(matplotlib.get_data_path()) / "fonts" / "ttf"
    return sorted(folder.glob("*.ttf"))


def font_files(path: str | os.PathLike) -> list[Path]:
    """``[path]`` for a font file, or the ``.ttf``/``.otf`` files under a folder (recursively,
    sorted); a missing path or a folder without fonts raises ``DataError``."""
    path = Path(path).expanduser()
    if path.is_dir():
        files = sorted(p for p in path.rglob("*") if p.suffix.lower() in FONT_SUFFIXES and p.is_file())
        if not files:
            raise DataError(f"{path}: no .ttf or .otf font in this folder")
        return files
    if not path.is_file():
        raise DataError(f"{path}: no such font file or folder")
    return [path]


def open_font(font_file: str | os.PathLike):
    """matplotlib's FreeType face (``FT2Font``) of a font file; anything else raises ``DataError``."""
    path = Path(font_file)
    if not path.is_file():
        raise DataError(f"{path}: no such font file")
    try:
        return FT2Font(str(path))
    except (RuntimeError, OSError, ValueError):
        raise DataError(f"{path}: not a TrueType/OpenType font") from None


def has_real_digits(font_file: str | os.PathLike) -> bool:
    """True when the font maps '0'-'9' to ten distinct glyphs that are named as digits.

    Symbol fonts (cmex10, cmsy10) map the digit code points to other symbols, and fallback fonts
    (LastResort) map every code point to one placeholder; glyph names tell both apart from real
    digits ('zero', 'zerooldstyle', 'uni0030').
    """
    font = open_font(font_file)
    cmap = font.get_charmap()
    glyphs = [cmap.get(ord(str(d))) for d in range(10)]
    if any(g is None or g == 0 for g in glyphs) or len(set(glyphs)) != 10:
        return False
    for digit, glyph in enumerate(glyphs):
        name = font.get_glyph_name(glyph).lower()
        if not (name.startswith(DIGIT_NAMES[digit]) or name == f"uni{0x30 + digit:04x}"):
            return False
    return True


def missing_glyphs(font_file: str | os.PathLike, chars: str = GLYPH_CHARS) -> str:
    """The characters of ``chars`` without a glyph of their own: unmapped, mapped to .notdef, or
    sharing a glyph with another of ``chars`` (a fallback font's placeholder)."""
    cmap = open_font(font_file).get_charmap()
    glyphs = [cmap.get(ord(c)) or 0 for c in chars]
    return "".join(c for c, g in zip(chars, glyphs) if not g or glyphs.count(g) > 1)


def has_glyphs(font_file: str | os.PathLike, chars: str) -> bool:
    """True when every character of ``chars`` maps to a glyph of its own (not .notdef)."""
    return not missing_glyphs(font_file, chars)


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
    try:
        vertices, codes = text_to_path.get_text_path(FontProperties(fname=font_file), char)
    except RuntimeError as e:  # FreeType's errors on a corrupt glyph
        raise DataError(f"{font_file}: cannot read the glyph of {char!r} ({e})") from None
    if not len(vertices):  # no outline (matplotlib's TextPath fails on these)
        return ()
    path = MplPath(np.asarray(vertices) * (1 / text_to_path.FONT_SCALE), codes)  # as TextPath(size=1) scales
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


def _listing(chars: str, most: int = 10) -> str:
    shown = ", ".join(repr(c) for c in chars[:most])
    return shown + (f" and {len(chars) - most} more" if len(chars) > most else "")


def usable_fonts(path: str | os.PathLike) -> list[Path]:
    """The fonts of a font file or folder that have all of ``GLYPH_CHARS``.

    Fonts without some of the characters, and in a folder files that are not fonts, are skipped
    with one warning that counts them; a given file that is not a font, or no usable font at all,
    raises ``DataError``.
    """
    files = font_files(path)
    usable, lacking, unreadable = [], {}, []
    for file in files:
        try:
            missing = missing_glyphs(file)
        except DataError:
            if len(files) == 1:
                raise
            unreadable.append(file)
            continue
        if missing:
            lacking[file] = missing
        else:
            usable.append(file)
    reasons = []
    if lacking:
        file, missing = next(iter(lacking.items()))
        reasons.append(
            f"{len(lacking)} without some of the 62 characters 0-9 A-Z a-z (e.g. {file.name}: {_listing(missing, 3)})"
        )
    if unreadable:
        reasons.append(f"{len(unreadable)} not TrueType/OpenType fonts (e.g. {unreadable[0].name})")
    if not usable:
        raise DataError(f"{path}: no usable font among {len(files)} file(s): {'; '.join(reasons)}")
    if reasons:
        warnings.warn(
            f"{path}: skipped {len(files) - len(usable)} of {len(files)} fonts: {'; '.join(reasons)}", stacklevel=2
        )
    return usable
