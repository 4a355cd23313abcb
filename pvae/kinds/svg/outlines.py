"""Glyph outlines as SVG drawing commands, read with fontTools, and back: to absolute points, to
pixels and to SVG path text.

A font draws each glyph as closed contours of lines and Bezier curves: cubic in CFF (.otf) fonts,
quadratic in TrueType (.ttf) ones. ``CommandPen`` records them as moveTo / lineTo / cubic curveTo,
turning each quadratic segment into the cubic that traces the same curve (``quad_to_cubic``). The
outline is then put in SVG-VAE's normal form (Lopes et al. 2019):

- a 24 x 24 viewbox, y down, the em box (ascender to descender) filling its height and the glyph
  centred on its advance width;
- every contour turned clockwise (on screen) and started at its point nearest the top left;
- arguments relative to the pen's position before each command (``to_relative``).

Rows are ``(c, c1x, c1y, c2x, c2y, x, y)`` as in ``pvae.distributions.svg``; a command's unused
arguments are 0. Pixels come from the same commands (``rasterise``, even-odd filling), so the image
and the command sequence of a glyph are one outline.
"""

from __future__ import annotations

import io
import logging
import os
from pathlib import Path

import numpy as np
from fontTools.pens.basePen import BasePen
from fontTools.ttLib import TTFont
from matplotlib.path import Path as MplPath

from pvae.distributions.svg import ARGS, COMMANDS, CURVE, EOS, LINE, MOVE, ROW
from pvae.errors import DataError

VIEWBOX = 24.0
MAX_FONT_BYTES = 64 << 20  # a font file larger than this is not read
CURVE_POINTS = 12  # points per cubic segment when a glyph is flattened for filling
logging.getLogger("fontTools").setLevel(logging.ERROR)  # its notes on odd tables are not the user's business


def quad_to_cubic(p0: np.ndarray, q: np.ndarray, p2: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The cubic control points (c1, c2) of the quadratic Bezier (p0, q, p2): the same curve, exactly.

    B_q(t) = (1-t)^2 p0 + 2 t (1-t) q + t^2 p2 raised to degree 3 has
    c1 = p0 + 2/3 (q - p0),  c2 = p2 + 2/3 (q - p2).
    """
    return p0 + 2.0 / 3.0 * (q - p0), p2 + 2.0 / 3.0 * (q - p2)


class CommandPen(BasePen):
    """A fontTools pen that records a glyph as contours of ``(command, points)`` in font units:
    ``("M", [p])``, ``("L", [p])``, ``("C", [c1, c2, p])``. Every contour ends at its start (a closing
    line is added where the font closes implicitly); components are drawn through ``glyph_set``."""

    def __init__(self, glyph_set) -> None:
        super().__init__(glyph_set)
        self.contours: list[list[tuple[str, list[np.ndarray]]]] = []

    def _moveTo(self, pt) -> None:
        self.contours.append([("M", [np.asarray(pt, dtype=np.float64)])])

    def _lineTo(self, pt) -> None:
        self.contours[-1].append(("L", [np.asarray(pt, dtype=np.float64)]))

    def _curveToOne(self, pt1, pt2, pt3) -> None:
        self.contours[-1].append(("C", [np.asarray(p, dtype=np.float64) for p in (pt1, pt2, pt3)]))

    def _qCurveToOne(self, pt1, pt2) -> None:
        p0, q, p2 = (np.asarray(p, dtype=np.float64) for p in (self._getCurrentPoint(), pt1, pt2))
        self.contours[-1].append(("C", [*quad_to_cubic(p0, q, p2), p2]))

    def _closePath(self) -> None:
        start, end = self.contours[-1][0][1][-1], self.contours[-1][-1][1][-1]
        if not np.allclose(start, end):
            self._lineTo(start)

    _endPath = _closePath  # an open contour in a glyph outline is filled as if closed


def read_font(path: str | os.PathLike, chars: str) -> dict[str, list]:
    """The outline of each of ``chars`` in a font file, as ``CommandPen`` contours in the viewbox
    (y down, 24 units the em box's height, centred on the advance width). A character without a
    glyph of its own is left out; a file that is not a font raises ``DataError``."""
    path = Path(path)
    if path.stat().st_size > MAX_FONT_BYTES:
        raise DataError(f"{path}: larger than {MAX_FONT_BYTES >> 20} MiB; not read as a font")
    try:
        with TTFont(io.BytesIO(path.read_bytes()), lazy=True) as font:  # no file left open on a bad one
            outlines = _outlines(font, chars)
    except Exception as e:  # fontTools raises many kinds of error on a file that is not a font
        raise DataError(f"{path}: not a readable TrueType/OpenType font ({type(e).__name__})") from None
    return outlines


def _outlines(font: TTFont, chars: str) -> dict[str, list]:
    """``read_font``'s outlines of an open font."""
    cmap = font.getBestCmap() or {}
    glyph_set = font.getGlyphSet()
    upem = font["head"].unitsPerEm
    hhea = font["hhea"] if "hhea" in font else None
    ascent, descent = (hhea.ascent, hhea.descent) if hhea is not None else (0.8 * upem, -0.2 * upem)
    if ascent - descent <= 0:
        ascent, descent = 0.8 * upem, -0.2 * upem
    names = {c: cmap.get(ord(c)) for c in chars}
    outlines = {}
    for char, name in names.items():
        if name is None or name == ".notdef" or list(names.values()).count(name) > 1:
            continue
        pen = CommandPen(glyph_set)
        glyph_set[name].draw(pen)
        advance = font["hmtx"][name][0] if "hmtx" in font else upem
        factor = VIEWBOX / (ascent - descent)
        offset = np.array([VIEWBOX / 2 - advance / 2 * factor, ascent * factor])
        outlines[char] = [
            [(cmd, [offset + p * np.array([factor, -factor]) for p in points]) for cmd, points in contour]
            for contour in pen.contours
        ]
    return outlines


def _nodes(contour: list) -> tuple[np.ndarray, list[tuple[str, list[np.ndarray]]]]:
    """A closed contour as its start point and its segments (each ending at an on-curve point);
    segments of length 0 are dropped."""
    start = contour[0][1][-1]
    segments, pen = [], start
    for cmd, points in contour[1:]:
        if cmd == "L" and np.allclose(points[-1], pen):
            continue
        segments.append((cmd, points))
        pen = points[-1]
    return start, segments


def canonical(contour: list) -> list:
    """A contour turned clockwise on screen (y down: the shoelace area over its points is
    positive) and started at its on-curve point nearest the top left (least x + y)."""
    start, segments = _nodes(contour)
    if not segments:
        return []
    points = np.array([start, *(p for _, pts in segments for p in pts)])
    x, y = points[:, 0], points[:, 1]
    if np.sum(x * np.roll(y, -1) - np.roll(x, -1) * y) < 0:  # counter-clockwise on screen: reverse
        ends = [start] + [pts[-1] for _, pts in segments]
        segments = [(cmd, [*pts[:-1][::-1], ends[i]]) for i, (cmd, pts) in reversed(list(enumerate(segments)))]
    ends = [pts[-1] for _, pts in segments]
    first = int(np.argmin([p[0] + p[1] for p in ends]))
    segments = segments[first + 1 :] + segments[: first + 1]
    return [("M", [ends[first]]), *segments]


def to_rows(contours: list) -> np.ndarray:
    """Contours (absolute points) -> absolute command rows ``(n, 7)``, float64, without an EOS row."""
    rows = []
    for contour in contours:
        for cmd, points in canonical(contour):
            row = np.zeros(ROW)
            row[0] = COMMANDS.index(cmd)
            row[1 + ARGS - 2 * len(points) :] = np.concatenate(points)
            rows.append(row)
    return np.array(rows).reshape(-1, ROW)


def to_relative(rows: np.ndarray) -> np.ndarray:
    """Absolute command rows ``(n, 7)`` -> every point minus the pen's position before its command
    (the pen starts at (0, 0), the viewbox's top left); unused arguments stay 0."""
    out = rows.astype(np.float64, copy=True)
    pen = np.zeros(2)
    for row, original in zip(out, rows):
        c = int(round(original[0]))
        if c == EOS:
            break
        if c == CURVE:
            row[1:5] -= np.tile(pen, 2)
        row[5:7] -= pen
        pen = original[5:7]
    return out


def to_absolute(rows: np.ndarray) -> np.ndarray:
    """The inverse of ``to_relative``: rows up to the first EOS (excluded), absolute points."""
    out = np.zeros((0, ROW))
    pen = np.zeros(2)
    kept = []
    for row in np.asarray(rows, dtype=np.float64):
        c = int(round(row[0]))
        if c == EOS or not 0 <= c < len(COMMANDS):
            break
        new = np.zeros(ROW)
        new[0] = c
        if c == CURVE:
            new[1:5] = row[1:5] + np.tile(pen, 2)
        new[5:7] = row[5:7] + pen
        pen = new[5:7]
        kept.append(new)
    return np.array(kept) if kept else out


def polygons(rows: np.ndarray) -> list[np.ndarray]:
    """Absolute command rows -> one closed polygon per moveTo ``(n_i, 2)`` (cubics flattened to
    ``CURVE_POINTS`` points), for filling; commands before the first moveTo start at (0, 0)."""
    shapes, current, pen = [], [np.zeros((1, 2))], np.zeros(2)
    t = np.linspace(0, 1, CURVE_POINTS + 1)[1:, None]
    for row in rows:
        c = int(round(row[0]))
        end = row[5:7]
        if c == MOVE:
            shapes.append(np.concatenate(current))
            current = [end[None]]
        elif c == LINE:
            current.append(end[None])
        elif c == CURVE:
            c1, c2 = row[1:3], row[3:5]
            current.append((1 - t) ** 3 * pen + 3 * t * (1 - t) ** 2 * c1 + 3 * t**2 * (1 - t) * c2 + t**3 * end)
        pen = end
    shapes.append(np.concatenate(current))
    return [shape for shape in shapes if len(shape) >= 3]


def rasterise(rows: np.ndarray, size: int = 64) -> np.ndarray:
    """Absolute command rows filled even-odd at the centres of ``size`` x ``size`` pixels over the
    viewbox: float32 ``(size, size)`` in {0, 1}, row 0 at the top."""
    centres = (np.arange(size) + 0.5) * (VIEWBOX / size)
    gx, gy = np.meshgrid(centres, centres)
    grid = np.column_stack([gx.ravel(), gy.ravel()])
    inside = np.zeros(len(grid), dtype=bool)
    for shape in polygons(rows):
        inside ^= MplPath(shape, closed=False).contains_points(grid)
    return inside.reshape(size, size).astype(np.float32)


def svg_path(rows: np.ndarray) -> str:
    """Absolute command rows as SVG path data, ``M x y C x1 y1 x2 y2 x y L x y Z ...`` (each contour
    closed with Z; 9 significant digits, which hold a float32 exactly)."""
    parts = []
    for row in rows:
        c = int(round(row[0]))
        if c == MOVE and parts:
            parts.append("Z")
        args = row[1:7] if c == CURVE else row[5:7]
        parts.append(" ".join([COMMANDS[c], *(format(float(np.float32(a)), ".9g") for a in args)]))
    return " ".join(parts + (["Z"] if parts else []))


def parse_svg_path(text: str) -> np.ndarray:
    """The rows that ``svg_path`` wrote (absolute M, L, C; Z closes without a row of its own)."""
    tokens, rows = text.replace(",", " ").split(), []
    i = 0
    while i < len(tokens):
        letter = tokens[i]
        if letter == "Z":
            i += 1
            continue
        if letter not in COMMANDS[1:]:
            raise ValueError(f"unexpected path token {letter!r}")
        c = COMMANDS.index(letter)
        count = 6 if c == CURVE else 2
        row = np.zeros(ROW)
        row[0] = c
        row[1 + ARGS - count :] = [float(v) for v in tokens[i + 1 : i + 1 + count]]
        rows.append(row)
        i += 1 + count
    return np.array(rows).reshape(-1, ROW)


def svg_document(rows: np.ndarray, title: str = "") -> str:
    """A standalone SVG file of one glyph (viewbox 0 0 24 24, filled even-odd)."""
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {VIEWBOX:g} {VIEWBOX:g}" width="192" height="192">'
        f"<title>{title}</title>"
        f'<path d="{svg_path(rows)}" fill="black" fill-rule="evenodd"/></svg>\n'
    )
