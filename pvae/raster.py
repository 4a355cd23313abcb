"""Renderers: a fixed number of strokes -> a grey ink image, for decoders that draw (``--renderer``).

A stroke is a primitive, a line (two control points) or a quadratic Bézier curve (three), with a
width w and an ink intensity a in (0, 1). Coordinates are in pixels on an S x S canvas, x to the
right and y down, pixel (row i, column j) centred at (j + 1/2, i + 1/2): the coordinates of an
SVG ``viewBox="0 0 S S"``, so a stroke is written to SVG unchanged (``pvae.render.strokes_svg``).

Every renderer gives each stroke's ink at each pixel, ink_n(p) in [0, a_n], and combines the
strokes by the soft OR

    ink(p) = 1 - prod_n (1 - ink_n(p)),

which is exactly how black strokes of opacity ink_n composite on white paper in SVG, so the image
of a drawing and the image of its SVG agree.

- ``hard_render`` (numpy, no gradient): the SVG's own picture. A round-capped stroke of width w
  covers the points within w / 2 of its curve; ink_n(p) = a_n x the fraction of pixel p covered,
  measured on a ``supersample`` x ``supersample`` grid inside the pixel (anti-aliasing).
- ``soft_render`` (torch, differentiable; Mihai & Hare 2021's soft line rasteriser, with a width):
  with d_n(p) the distance from the pixel centre to the curve,

      ink_n(p) = a_n exp(-relu(d_n(p) - w_n / 2)^2 / sigma^2),

  full ink inside the stroke and a Gaussian falloff of width sigma outside it: as sigma -> 0 it
  tends to the hard render at the pixel centres, and at a wide sigma a stroke far from any ink
  still gets a gradient (it scales like d exp(-d^2 / sigma^2)), hence sigma annealed from wide to
  narrow while training. By default each stroke is computed only within w/2 + k sigma of its curve
  (``soft_render_windowed``: tiles of the canvas near it, within ``INK_BOUND`` of the dense render
  at every pixel, in values and gradients); ``windowed=False`` is the dense reference.
- ``NeuralRenderer``: a network trained to imitate ``hard_render`` of one stroke (the talk's
  second approach; Learning to Paint's neural renderer), then frozen: a differentiable stand-in
  for a renderer that has no gradient.

The distance to a line a -> b (Mihai & Hare's ``line_edt2``): t = <p - a, b - a> / |b - a|^2 clamped
to [0, 1], d^2 = |p - a - t (b - a)|^2. A Bézier is flattened into ``BEZIER_PIECES`` lines and its
distance is the least over the pieces.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F
from tqdm import tqdm

CONTROL_POINTS = {"line": 2, "bezier": 3}  # primitive -> control points per stroke
BEZIER_PIECES = 8  # lines a quadratic Bézier is flattened into by the soft renderer
HARD_PIECES = 16  # ... and by the hard renderer (it strays at most |P0 - 2 P1 + P2| / 1024 from the curve)
EPS = 1e-6  # keeps |b - a|^2 and d^2 away from zero under division and square root


@dataclass
class Strokes:
    """N strokes per drawing. ``points`` ``(..., N, K, 2)`` in pixels (K = 2 for lines, 3 for
    quadratic Béziers: start, control, end); ``width`` and ``ink`` ``(..., N)``."""

    points: torch.Tensor
    width: torch.Tensor
    ink: torch.Tensor

    @property
    def primitive(self) -> str:
        return "line" if self.points.shape[-2] == 2 else "bezier"

    def __getitem__(self, index) -> Strokes:
        return Strokes(self.points[index], self.width[index], self.ink[index])

    def numpy(self) -> Strokes:
        """The same strokes as float64 numpy arrays (for the hard renderer and SVG)."""
        return Strokes(*(_float64(v) for v in (self.points, self.width, self.ink)))


def _float64(values) -> np.ndarray:
    if isinstance(values, torch.Tensor):
        return values.detach().cpu().double().numpy()
    return np.asarray(values, dtype=np.float64)


def bezier_lines(points, pieces: int):
    """A quadratic Bézier ``(..., 3, 2)`` as ``pieces`` lines: their ends ``(..., pieces + 1, 2)``.

    B(t) = (1 - t)^2 P0 + 2 t (1 - t) P1 + t^2 P2 at t = 0, 1/pieces, ..., 1 (torch or numpy)."""
    lib = torch if isinstance(points, torch.Tensor) else np
    t = lib.linspace(0, 1, pieces + 1)
    if lib is torch:
        t = t.to(points)
    basis = lib.stack([(1 - t) ** 2, 2 * t * (1 - t), t**2], -1)  # (pieces + 1, 3)
    return basis @ points  # (..., pieces + 1, 2)


def pixel_centres(size: int, like: torch.Tensor) -> torch.Tensor:
    """Centres of the pixels of an ``size`` x ``size`` image in row-major order, ``(size^2, 2)`` as (x, y)."""
    axis = torch.arange(size, dtype=like.dtype, device=like.device) + 0.5
    y, x = torch.meshgrid(axis, axis, indexing="ij")
    return torch.stack([x.reshape(-1), y.reshape(-1)], -1)


def segment_distance2(p: torch.Tensor, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Squared distance from points ``p`` ``(P, 2)`` to segments a -> b ``(..., 2)``: ``(..., P)``.

    With u = <p - a, b - a> and L = |b - a|^2, t = clamp(u / L, 0, 1) and
    d^2 = |p - a|^2 - 2 t u + t^2 L; u and |p - a|^2 are matrix products over the 2 coordinates,
    so the only tensors of size segments x pixels are the few elementwise ones.
    """
    ab = b - a
    length2 = (ab * ab).sum(-1, keepdim=True) + EPS  # (..., 1)
    u = ab @ p.T - (ab * a).sum(-1, keepdim=True)  # <p - a, b - a>  (..., P)
    ap2 = (p * p).sum(-1) - 2 * (a @ p.T) + (a * a).sum(-1, keepdim=True)  # |p - a|^2
    t = (u / length2).clamp(0, 1)
    return (ap2 - t * (2 * u - t * length2)).clamp(min=0)


def stroke_distance2(strokes: Strokes, p: torch.Tensor) -> torch.Tensor:
    """Squared distance from pixel centres ``p`` ``(P, 2)`` to each stroke's curve, ``(..., N, P)``."""
    points = strokes.points
    if points.shape[-2] == 2:
        return segment_distance2(p, points[..., 0, :], points[..., 1, :])
    ends = bezier_lines(points, BEZIER_PIECES)  # (..., N, L + 1, 2)
    return segment_distance2(p, ends[..., :-1, :], ends[..., 1:, :]).amin(-2)


def soft_or(log_blank: torch.Tensor) -> torch.Tensor:
    """ink = 1 - prod_n (1 - ink_n) from log_blank = sum_n log(1 - ink_n)."""
    return -torch.expm1(log_blank)


def _log_blank(d2: torch.Tensor, width: torch.Tensor, ink: torch.Tensor, sigma) -> torch.Tensor:
    """log(1 - ink_n) from squared distances: ink_n = a_n exp(-relu(d_n - w_n/2)^2 / sigma^2)."""
    outside = F.relu(torch.sqrt(d2 + EPS) - width / 2)
    return torch.log1p(-ink * torch.exp(-((outside / sigma) ** 2)))


def soft_render(strokes: Strokes, sigma: float | torch.Tensor, size: int, windowed: bool = True) -> torch.Tensor:
    """Differentiable ink image ``(..., size^2)`` in [0, 1): ink_n = a_n exp(-relu(d_n - w_n/2)^2 / sigma^2),
    combined by the soft OR; sigma in pixels.

    ``windowed`` (the default) computes each stroke only near itself (``soft_render_windowed``:
    within ``INK_BOUND`` of this dense render at every pixel); ``windowed=False`` is the reference,
    every stroke at every pixel."""
    if windowed:
        return soft_render_windowed(strokes, sigma, size)
    d2 = stroke_distance2(strokes, pixel_centres(size, strokes.points))  # (..., N, P)
    return soft_or(_log_blank(d2, strokes.width.unsqueeze(-1), strokes.ink.unsqueeze(-1), sigma).sum(-2))


# ----- the soft renderer, only where the ink is ------------------------------------------------------

INK_BOUND = 1e-6  # the windowed soft render's most departure from the dense one, per pixel
TILE = 4  # the windowed soft renderer's tiles: TILE x TILE pixels
_SLACK = 0.05  # pixels added to a tile's reach, against rounding in the distances at tile centres
_CHUNK = 8192  # candidates per block in the search for a Bézier's nearest pieces
_FLOOR = 60.0  # (d - w/2)^2 / sigma^2 is cut at this (its ink, exp(-60) < 1e-26, is far below the bound)


def window_k(segments: int, bound: float = INK_BOUND) -> float:
    """k such that the ink of ``segments`` strokes beyond w/2 + k sigma of each adds up to at most
    ``bound`` at any pixel: k = sqrt(log(1 + N / bound)) (4.07 at N = 16, 3.99 at N = 8).

    Beyond it, a stroke's ink is a exp(-(d - w/2)^2 / sigma^2) < exp(-k^2) = delta (a < 1, and the
    renderer's sqrt(d^2 + EPS) >= d only lowers it). Dropping it raises a pixel's
    log_blank = sum_n log(1 - ink_n) by -log(1 - ink_n) < delta / (1 - delta); N strokes, by less than
    N delta / (1 - delta) = bound for delta = bound / (N + bound); and ink = 1 - exp(log_blank) moves
    by no more than log_blank does (log_blank <= 0). The gradient of a dropped ink: d ink / d a < delta
    and |d ink / d d| = 2 a (o / sigma^2) exp(-o^2 / sigma^2) < 2 k delta / sigma (o = d - w/2 >= k sigma,
    where x exp(-x^2) decreases), and |d d / d point| <= 1."""
    return math.sqrt(math.log1p(segments / bound))


def _tiles(size: int, like: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The canvas, padded to whole tiles of TILE x TILE pixels, row-major: the tiles' top-left corners
    ``(T, 2)`` (x, y) and the pixel centres' offsets from a corner ``(TILE^2, 2)``, row-major too."""
    axis = torch.arange(0, size, TILE, dtype=like.dtype, device=like.device)
    step = torch.arange(TILE, dtype=like.dtype, device=like.device)
    corner, offsets = (torch.stack(torch.meshgrid(v, v, indexing="xy"), -1).reshape(-1, 2) for v in (axis, step))
    return corner, offsets + 0.5


def _expansion(sx, sy, abx, aby, ox, oy) -> tuple[torch.Tensor, ...]:
    """``segment_distance2``'s expansion at the pixels of tiles, without autograd (in place), pixel-major:
    with corner - a as ``sx``, ``sy`` and b - a as ``abx``, ``aby`` ``(1 or Q, M)`` and the pixels' offsets
    from the corner ``ox``, ``oy`` ``(Q, 1)``, p - a as ex, ey, then t and d^2, each ``(Q, M)``: the dense
    render's numbers up to rounding."""
    ex, ey = sx + ox, sy + oy  # p - a
    length2 = (abx * abx).addcmul_(aby, aby).add_(EPS)
    u = (ex * abx).addcmul_(ey, aby)
    t = (u * length2.reciprocal()).clamp_(0, 1)
    d2 = (ex * ex).addcmul_(ey, ey).addcmul_(t, u.addcmul_(t, length2, value=-0.5), value=-2)
    return ex, ey, t, d2.clamp_(min=0)  # |p - a|^2 - t (2 u - t |b - a|^2)


class _WindowTerms(torch.autograd.Function):
    """log(1 - ink_n) of M (stroke, tile) pairs at the tile's Q pixels, ``(Q, M)``: ``_log_blank`` of
    ``_expansion``, with the backward written out, so that no autograd graph of size Q x M is kept.

    Inputs: corner - a and b - a of each pair's L pieces ``(2, L, M)``, ``width`` and ``ink`` ``(1, M)``,
    the pixels' ``offsets`` from the corner ``(Q, 2)``, ``sigma``, and ``nearest`` ``(Q, M)``, each pixel's
    piece (``None`` for a line, L = 1). With r = p - a - t (b - a) (t clamped), d(d^2)/d(p - a) = 2 r
    and d(d^2)/d(b - a) = -2 t r (t's own derivative multiplies d(d^2)/dt = 0, or t is clamped); a
    line's sums of them over the pixels are matrix products with the offsets, a Bézier's pixels add
    theirs to their nearest piece. Pixel-major, so that every elementwise pass runs along M."""

    @staticmethod
    def forward(ctx, start, ab, width, ink, offsets, sigma, nearest):
        parts = start[0], start[1], ab[0], ab[1]  # (L, M)
        if nearest is not None:
            parts = tuple(v.gather(0, nearest) for v in parts)  # (Q, M): each pixel's piece
        ex, ey, t, d2 = _expansion(*parts, offsets[:, :1], offsets[:, 1:])
        root = d2.add_(EPS).sqrt_()
        outside = (root - width / 2).clamp_(min=0)
        falloff = (outside * outside).mul_(-1 / sigma**2).clamp_(min=-_FLOOR).exp_()  # exp's fast range
        faded = falloff * ink  # ink_n
        rx = ry = None
        if nearest is not None:
            rx, ry = ex.addcmul_(t, parts[2], value=-1), ey.addcmul_(t, parts[3], value=-1)
        ctx.pieces = start.shape[1:]
        saved = start, ab, offsets, t, root, outside, falloff, faded, torch.as_tensor(sigma)
        ctx.save_for_backward(*saved, nearest, rx, ry)
        return torch.log1p(-faded)

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad):
        start, ab, offsets, t, root, outside, falloff, faded, sigma, nearest, rx, ry = ctx.saved_tensors
        q = grad / (1 - faded)  # -d terms / d ink_n
        grad_ink = -(q * falloff).sum(0, keepdim=True)
        h = q.mul_(faded).mul_(outside).mul_(2 / sigma**2)  # d terms / d outside
        grad_sigma = -(h * outside).sum() / sigma if ctx.needs_input_grad[5] else None
        grad_width = -0.5 * h.sum(0, keepdim=True)
        dd = h.div_(root)  # 2 d terms / d(d^2): d terms / d(p - a) = dd r, d terms / d(b - a) = -dd t r
        if nearest is None:  # a line: r = (corner - a) + offset - t (b - a), summed as matrix products
            basis = torch.cat([torch.ones_like(offsets[:, :1]), offsets], 1).T  # (3, Q)
            ddt = dd * t
            s0, s1, s2 = basis @ dd  # sums over the pixels of dd, dd ox, dd oy: (M,) each
            t0, t1, t2 = basis @ ddt
            tt = (ddt * t).sum(0)
            (sx, sy), (abx, aby) = start[:, 0], ab[:, 0]
            grad_start = torch.stack([sx * s0 + s1 - abx * t0, sy * s0 + s2 - aby * t0]).unsqueeze(1)
            grad_ab = torch.stack([abx * tt - sx * t0 - t1, aby * tt - sy * t0 - t2]).unsqueeze(1)
        else:  # a Bézier: each pixel's to its nearest piece

            def add(g: torch.Tensor) -> torch.Tensor:
                return g.new_zeros(ctx.pieces).scatter_add_(0, nearest, g)

            gx, gy = dd * rx, dd * ry
            grad_start = torch.stack([add(gx), add(gy)])
            grad_ab = torch.stack([add(gx.mul_(t)), add(gy.mul_(t))]).neg_()
        return grad_start, grad_ab, grad_width, grad_ink, None, grad_sigma, None


def _nearest_pieces(ends, corner, offsets, candidates, pair, pairs: int) -> torch.Tensor:
    """The nearest of a Bézier's pieces at each pixel of each (stroke, tile) pair, ``(Q, M)``, among the
    ``candidates`` ``(B N, L, T)``; no gradient. ``ends`` (x, y) ``(B N (L + 1),)`` each are the pieces'
    ends, ``corner`` (x, y) ``(T,)`` the tiles', ``pair`` ``(B N, T)`` the index of each of the ``pairs`` (stroke,
    tile) pairs. One ``scatter_reduce`` amin over keys: d^2 as an integer (order-preserving for
    d^2 >= 0) with its low 4 bits replaced by the piece (ties within 2^-19 of d^2 in float32, 2^-48
    in float64, go to the first)."""
    s, piece, t = candidates.nonzero(as_tuple=True)
    at = s * (candidates.shape[1] + 1) + piece
    (ax, bx), (ay, by) = ((v.index_select(0, at), v.index_select(0, at + 1)) for v in ends)  # (C,) each
    sx, sy = corner[0].index_select(0, t) - ax, corner[1].index_select(0, t) - ay
    index = pair.reshape(-1).index_select(0, s * pair.shape[1] + t)
    bits = {torch.float32: torch.int32, torch.float64: torch.int64}[sx.dtype]
    least = torch.full((len(offsets), pairs), torch.iinfo(bits).max, dtype=bits, device=sx.device)
    for c in range(0, len(s), _CHUNK):  # blocks of candidates that stay in the cache, not a loop over strokes
        part = slice(c, c + _CHUNK)
        *_, d2 = _expansion(sx[part], sy[part], bx[part] - ax[part], by[part] - ay[part], *offsets.T.unsqueeze(-1))
        key = d2.view(bits).clamp_(min=0).bitwise_and_(-16).bitwise_or_(piece[part].to(bits))  # clamp: -0.0 -> 0
        least.scatter_reduce_(1, index[part].expand_as(key), key, "amin")
    return least.bitwise_and_(15).long()


def soft_render_windowed(strokes: Strokes, sigma: float | torch.Tensor, size: int) -> torch.Tensor:
    """``soft_render`` computing each stroke only within w/2 + k sigma of its curve (k = ``window_k(N)``),
    where all but at most ``INK_BOUND`` of every pixel's ink is; differentiable, no Python loop over
    strokes; float32 or float64.

    The canvas is cut into tiles of TILE x TILE pixels. A pixel centre p of a tile lies within
    h = (TILE - 1) / sqrt(2) of the tile's centre c, so d(p) >= d(c) - h: a tile whose centre is farther
    than reach = w/2 + k sigma + h from a stroke has no pixel within w/2 + k sigma of it. The distances
    from the T tile centres to the strokes (no gradient; 1 / TILE^2 of the pixels) give the M (stroke,
    tile) pairs within reach; each pair's log(1 - ink_n) at its TILE^2 pixels, by the dense formula
    with gradient (``_WindowTerms``), is added (``index_add``) to its image's
    log_blank = sum_n log(1 - ink_n) (tile by tile, on the canvas padded to whole tiles, then cut back),
    and the soft OR is taken. The work is the strokes' neighbourhoods, not N x S^2. Inside a kept tile every pixel
    is computed exactly, but for the exponent, cut at -``_FLOOR`` (ink below 1e-26, not the 0 that
    exp underflows to far away: the cut keeps exp in its fast range).

    A Bézier's distance is the least over its ``BEZIER_PIECES`` lines. At a pixel p of a tile, the
    nearest piece l has d_l(c) <= d_l(p) + h <= d(p) + h <= d(c) + 2h, so only the pieces within 2h of
    the least distance at the tile's centre are candidates; of those, the ones beyond reach are dropped
    too (more than w/2 + k sigma from every pixel of the tile: where such a piece is the nearest, the
    ink is below exp(-k^2) either way, within the bound). The nearest candidate at each pixel is found
    without gradient (``_nearest_pieces``), and the distance to it alone is computed with gradient: the
    gradient of the least (the dense render's amin shares it among exactly tied pieces instead).
    """
    points = strokes.points
    *lead, n, controls, _ = points.shape
    points = points.reshape(-1, n, controls, 2)
    width, ink = strokes.width.reshape(1, -1), strokes.ink.reshape(1, -1)
    batch, pixels = points.shape[0], size * size
    ends = (points if controls == 2 else bezier_lines(points, BEZIER_PIECES)).reshape(batch * n, -1, 2)
    corner, offsets = _tiles(size, points)
    nearest = None
    with torch.no_grad():
        half = (TILE - 1) / math.sqrt(2)  # h
        reach = width.T / 2 + window_k(n) * sigma + half + _SLACK  # (B N, 1)
        flat = ends.detach()  # (B N, L + 1, 2)
        piece_d2 = segment_distance2(corner + TILE / 2, flat[:, :-1], flat[:, 1:])  # (B N, L, T)
        least = piece_d2.amin(1)  # (B N, T)
        near = least <= reach**2
        stroke, tile = near.nonzero(as_tuple=True)  # the (stroke, tile) pairs, M
        if controls == 3:
            bound = torch.minimum(least.sqrt() + 2 * half + _SLACK, reach) ** 2
            pair = torch.cumsum(near.reshape(-1), 0).reshape(near.shape) - 1
            xy = flat.reshape(-1, 2).T.contiguous(), corner.T.contiguous()
            nearest = _nearest_pieces(*xy, offsets, piece_d2 <= bound.unsqueeze(1), pair, len(stroke))
    drawn = ends.index_select(0, stroke).permute(2, 1, 0).contiguous()  # (2, L + 1, M), with gradient
    start, ab = corner.index_select(0, tile).T.unsqueeze(1) - drawn[:, :-1], drawn[:, 1:] - drawn[:, :-1]
    pick = (v.reshape(-1).index_select(0, stroke).unsqueeze(0) for v in (width, ink))
    terms = _WindowTerms.apply(start, ab, *pick, offsets, sigma, nearest)  # (Q, M)
    tiles = len(corner)  # T = per_side^2
    log_blank = terms.new_zeros(len(offsets), batch * tiles).index_add(1, stroke // n * tiles + tile, terms)
    per_side = math.isqrt(tiles)  # (Q, B T) -> (B, S', S'), S' = per_side TILE, then cut to the canvas
    log_blank = log_blank.view(TILE, TILE, batch, per_side, per_side).permute(2, 3, 0, 4, 1)
    log_blank = log_blank.reshape(batch, per_side * TILE, per_side * TILE)[:, :size, :size]
    return soft_or(log_blank).reshape(*lead, pixels)


def _distance2_np(p: np.ndarray, ends: np.ndarray) -> np.ndarray:
    """Squared distance from points ``p`` ``(..., P, 2)`` to polylines ``ends`` ``(..., L + 1, 2)``
    (broadcast over the leading dims): the least over the L segments, ``(..., P)``. The same
    expansion as ``segment_distance2``, in float32."""
    p, ends = p.astype(np.float32), ends.astype(np.float32)
    a, ab = ends[..., :-1, :], np.diff(ends, axis=-2)  # (..., L, 2)
    length2 = (ab * ab).sum(-1)[..., None] + EPS  # (..., L, 1)
    u = ab @ np.swapaxes(p, -1, -2) - (ab * a).sum(-1)[..., None]  # (..., L, P)
    ap2 = (p * p).sum(-1)[..., None, :] - 2 * (a @ np.swapaxes(p, -1, -2)) + (a * a).sum(-1)[..., None]
    t = np.clip(u / length2, 0, 1)
    return (ap2 - t * (2 * u - t * length2)).min(-2)


def hard_render(strokes: Strokes, size: int, supersample: int = 4) -> np.ndarray:
    """The SVG's picture of ``strokes`` (numpy or torch; no gradient), ``(..., size^2)`` float64:
    each pixel's covered fraction on a ``supersample``^2 grid, times the stroke's ink, soft-ORed.

    Only pixels whose centre lies within w / 2 + 1 / sqrt(2) of a stroke can be touched by it;
    the grid is sampled in those alone. They are found on a coarser flattening of a Bézier
    (``BEZIER_PIECES`` lines, which stray at most |P0 - 2 P1 + P2| / (4 L^2) from the curve)."""
    s = strokes.numpy()
    line = s.points.shape[-2] == 2
    ends = s.points if line else bezier_lines(s.points, HARD_PIECES)  # (..., N, L + 1, 2)
    coarse = s.points if line else bezier_lines(s.points, BEZIER_PIECES)
    bend = 0.0 if line else np.linalg.norm(s.points[..., 0, :] - 2 * s.points[..., 1, :] + s.points[..., 2, :], axis=-1)
    slack = bend / (4 * BEZIER_PIECES**2)
    axis = np.arange(size) + 0.5
    gy, gx = np.meshgrid(axis, axis, indexing="ij")
    centres = np.stack([gx.reshape(-1), gy.reshape(-1)], -1)  # (P, 2)
    radius2 = (s.width / 2) ** 2  # (..., N)
    near = _distance2_np(centres, coarse) <= ((s.width / 2 + slack)[..., None] + 0.5**0.5) ** 2  # (..., N, P)
    *stroke, pixel = np.nonzero(near)
    offsets = (np.arange(supersample) + 0.5) / supersample - 0.5
    oy, ox = np.meshgrid(offsets, offsets, indexing="ij")
    samples = centres[pixel][:, None, :] + np.stack([ox.reshape(-1), oy.reshape(-1)], -1)  # (M, s^2, 2)
    inside = _distance2_np(samples, ends[tuple(stroke)]) <= radius2[tuple(stroke)][:, None]
    coverage = np.zeros(near.shape)
    coverage[near] = inside.mean(-1)
    return 1 - np.prod(1 - s.ink[..., None] * coverage, axis=-2)


# ----- the neural renderer ---------------------------------------------------------------------------

WIDTH_RANGE = (0.5, 4.0)  # stroke widths in pixels that decoders draw and the neural renderer learns


def random_strokes(n: int, primitive: str, size: int, generator: np.random.Generator) -> Strokes:
    """``n`` drawings of one stroke each (numpy; ``points`` ``(n, 1, K, 2)``) to train a neural
    renderer on: control points uniform over the canvas less a margin of 2 pixels, widths uniform
    in ``WIDTH_RANGE``, full ink."""
    k = CONTROL_POINTS[primitive]
    points = generator.uniform(2, size - 2, (n, k, 2))
    if primitive == "line":  # half of the lines short, as strokes of digits often are
        short = generator.random(n) < 0.5
        points[short, 1] = np.clip(points[short, 0] + generator.normal(0, size / 8, (short.sum(), 2)), 1, size - 1)
    width = generator.uniform(*WIDTH_RANGE, n)
    return Strokes(points[:, None], width[:, None], np.ones((n, 1)))


class NeuralRenderer(nn.Module):
    """A network imitating ``hard_render`` of one stroke at full ink: coverage logits ``(..., size^2)``
    from its control points (scaled to [-1, 1]) and width. Strokes are combined outside it, by the
    soft OR with their inks, as the hard renderer does.

    :param primitive: ``"line"`` or ``"bezier"``.
    :param size: S.
    :param hidden: hidden sizes of the MLP.
    """

    def __init__(self, primitive: str, size: int, hidden: tuple[int, ...] = (256, 512)) -> None:
        super().__init__()
        self.primitive, self.size = primitive, size
        inputs = 2 * CONTROL_POINTS[primitive] + 1
        layers: list[nn.Module] = []
        for n_in, n_out in zip((inputs, *hidden), hidden):
            layers += [nn.Linear(n_in, n_out), nn.ReLU()]
        self.net = nn.Sequential(*layers, nn.Linear(hidden[-1], size * size))
        self.register_buffer("heldout_bce", torch.tensor(float("nan")))  # per pixel, after ``fit``
        self.register_buffer("heldout_entropy", torch.tensor(float("nan")))  # its floor: the targets' entropy

    def features(self, strokes: Strokes) -> torch.Tensor:
        """Network inputs ``(..., N, 2K + 1)``: control points and width scaled to about [-1, 1]."""
        half = self.size / 2
        points = strokes.points.flatten(-2) / half - 1
        return torch.cat([points, strokes.width.unsqueeze(-1) / WIDTH_RANGE[1]], -1)

    def coverage_logits(self, strokes: Strokes) -> torch.Tensor:
        """Logits of each stroke's covered fraction of each pixel, ``(..., N, size^2)``."""
        return self.net(self.features(strokes))

    def forward(self, strokes: Strokes) -> torch.Tensor:
        """Ink image ``(..., size^2)``: ink_n = a_n sigmoid(net(stroke n)), soft-ORed."""
        ink = strokes.ink.unsqueeze(-1) * torch.sigmoid(self.coverage_logits(strokes))
        return soft_or(torch.log1p(-ink).sum(-2))

    def fit(
        self,
        steps: int = 2000,
        batch_size: int = 256,
        examples: int = 16384,
        lr: float = 2e-3,
        seed: int = 0,
        heldout: int = 1024,
        log: Callable[[str], None] = lambda line: None,
        progress: bool = False,
    ) -> float:
        """Train on ``examples`` random strokes rendered once by ``hard_render`` (binary cross-entropy
        per pixel against the covered fractions), then freeze. Returns the held-out BCE per pixel
        (nats) on ``heldout`` other strokes, also kept in ``heldout_bce`` beside its floor
        ``heldout_entropy`` (the hard renders' own entropy, which a perfect imitation reaches)."""
        like = next(self.parameters())
        generator = np.random.default_rng(seed)

        def rendered(n: int) -> tuple[torch.Tensor, torch.Tensor]:
            s = random_strokes(n, self.primitive, self.size, generator)
            target = np.concatenate([hard_render(s[i : i + 1024], self.size) for i in range(0, n, 1024)])
            points, width, ink, target = (
                torch.as_tensor(v, dtype=like.dtype, device=like.device) for v in (s.points, s.width, s.ink, target)
            )
            return self.features(Strokes(points, width, ink)), target

        train_x, train_y = rendered(examples)
        test_x, test_y = rendered(heldout)
        order = torch.Generator().manual_seed(seed)
        self.requires_grad_(True)
        optimiser = torch.optim.Adam(self.parameters(), lr=lr)
        schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimiser, steps)
        batches = iter(())
        for _ in tqdm(range(steps), desc="neural renderer", disable=not progress, leave=False):
            index = next(batches, None)
            if index is None:
                batches = iter(torch.randperm(examples, generator=order).split(batch_size))
                index = next(batches)
            loss = F.binary_cross_entropy_with_logits(self.net(train_x[index])[:, 0], train_y[index])
            optimiser.zero_grad(set_to_none=True)
            loss.backward()
            optimiser.step()
            schedule.step()
        self.requires_grad_(False)
        with torch.no_grad():
            bce = F.binary_cross_entropy_with_logits(self.net(test_x)[:, 0], test_y)
            entropy = -(torch.xlogy(test_y, test_y) + torch.xlogy(1 - test_y, 1 - test_y)).mean()
        self.heldout_bce.fill_(bce)
        self.heldout_entropy.fill_(entropy)
        log(
            f"neural renderer ({self.primitive}): held-out BCE {bce:.4f} nats per pixel on {heldout} random "
            f"strokes (its floor, the hard renders' own entropy: {entropy:.4f})"
        )
        return float(bce)
