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
  narrow while training.
- ``NeuralRenderer``: a network trained to imitate ``hard_render`` of one stroke (the talk's
  second approach; Learning to Paint's neural renderer), then frozen: a differentiable stand-in
  for a renderer that has no gradient.

The distance to a line a -> b (Mihai & Hare's ``line_edt2``): t = <p - a, b - a> / |b - a|^2 clamped
to [0, 1], d^2 = |p - a - t (b - a)|^2. A Bézier is flattened into ``BEZIER_PIECES`` lines and its
distance is the least over the pieces.
"""

from __future__ import annotations

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


def soft_render(strokes: Strokes, sigma: float | torch.Tensor, size: int) -> torch.Tensor:
    """Differentiable ink image ``(..., size^2)`` in [0, 1): ink_n = a_n exp(-relu(d_n - w_n/2)^2 / sigma^2),
    combined by the soft OR; sigma in pixels."""
    d2 = stroke_distance2(strokes, pixel_centres(size, strokes.points))  # (..., N, P)
    outside = F.relu(torch.sqrt(d2 + EPS) - strokes.width.unsqueeze(-1) / 2)
    ink = strokes.ink.unsqueeze(-1) * torch.exp(-((outside / sigma) ** 2))
    return soft_or(torch.log1p(-ink).sum(-2))


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
