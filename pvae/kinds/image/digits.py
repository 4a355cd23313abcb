"""The built-in ``digits`` dataset: MNIST-like 28x28 grey digits rendered from matplotlib's fonts.

Nothing is downloaded. Each font whose '0'-'9' are real digit glyphs (``fonts.has_real_digits``)
is rasterised once at high resolution; every example then draws a font, a stroke width
(erosion or dilation of the glyph) and an affine jitter (rotation, scale, shear, shift) from a
seeded generator, and is resampled to 28x28 from a mask that was box-filtered to about one
output pixel first (anti-aliasing). The same seed gives the same
images on every machine.
"""

from __future__ import annotations

import math
from functools import lru_cache

import numpy as np
import torch
import torch.nn.functional as F
from matplotlib.path import Path as MplPath

from pvae.data.fonts import glyph_contours, has_real_digits, matplotlib_font_files
from pvae.kinds.image.data import ImageData, ImageSplit

SIZE = 28  # output side in pixels
BOX = 20.0  # the glyph's longer side spans about BOX pixels, as in MNIST's 20x20 box
MASK = 96  # side of the high-resolution glyph masks
EXTENT = 0.75  # the masks cover [-EXTENT, EXTENT]^2 glyph units; the glyph fits [-0.5, 0.5]^2
WIDTHS = (-1, 0, 1, 2, 3)  # stroke width changes, in mask pixels (negative: erosion)


def rasterize(contours: list[np.ndarray], size: int = MASK, extent: float = EXTENT) -> np.ndarray:
    """Fill closed contours with the even-odd rule on a ``size`` x ``size`` grid.

    The contours are first centred and scaled so their bounding box's longer side is 1. Row 0 is
    the top of the glyph. Returns float32 in {0, 1}.
    """
    points = np.concatenate(contours)
    low, high = points.min(0), points.max(0)
    centre, scale = (low + high) / 2, 1.0 / float(np.max(high - low))
    axis = (np.arange(size) + 0.5) / size * 2 * extent - extent
    gx, gy = np.meshgrid(axis, -axis)  # y up in glyph units, row 0 at the top
    grid = np.stack([gx.ravel(), gy.ravel()], axis=1)
    inside = np.zeros(len(grid), dtype=bool)
    for contour in contours:
        inside ^= MplPath((contour - centre) * scale).contains_points(grid)
    return inside.reshape(size, size).astype(np.float32)


@lru_cache(maxsize=1)
def digit_masks() -> torch.Tensor:
    """Box-filtered high-resolution masks, ``(len(WIDTHS), F, 10, MASK, MASK)``: width, font, digit."""
    fonts = [f for f in matplotlib_font_files() if has_real_digits(f)]
    masks = torch.tensor(np.stack([np.stack([rasterize(glyph_contours(f, str(d))) for d in range(10)]) for f in fonts]))
    flat = masks.reshape(-1, 1, MASK, MASK)
    variants = []
    for w in WIDTHS:
        k = 2 * abs(w) + 1
        if w > 0:  # dilation: max over a (2w+1)^2 window
            v = F.max_pool2d(flat, k, stride=1, padding=abs(w))
        elif w < 0:  # erosion: min over the window
            v = -F.max_pool2d(-flat, k, stride=1, padding=abs(w))
        else:
            v = flat
        # One output pixel spans about MASK * BOX / (2 * EXTENT * SIZE) ~ 3 mask pixels.
        variants.append(F.avg_pool2d(v, 3, stride=1, padding=1).reshape(masks.shape))
    return torch.stack(variants)


def num_fonts() -> int:
    return digit_masks().shape[1]


def render_digits(n: int, seed: int, chunk: int = 4096) -> tuple[torch.Tensor, torch.Tensor]:
    """``n`` jittered digits and their labels: float32 ``(n, 28, 28)`` in [0, 1], int64 ``(n,)``."""
    masks = digit_masks()
    g = torch.Generator().manual_seed(seed)
    labels = torch.randint(10, (n,), generator=g)
    font = torch.randint(masks.shape[1], (n,), generator=g)
    width = torch.randint(len(WIDTHS), (n,), generator=g)

    def uniform(low: float, high: float) -> torch.Tensor:
        return low + (high - low) * torch.rand(n, generator=g)

    angle = uniform(-15, 15) * (math.pi / 180)
    shear = uniform(-0.3, 0.3)
    sx, sy = uniform(0.75, 1.1), uniform(0.85, 1.1)
    shift = torch.stack([uniform(-2, 2), uniform(-2, 2)], dim=1) * (2 / SIZE)  # normalised units

    # Forward map from glyph units to the output's normalised coordinates:
    #   u = (2 BOX / SIZE) R(angle) Shear diag(sx, sy) g + shift.
    # grid_sample needs the inverse, into the mask's normalised coordinates g / EXTENT.
    cos, sin = torch.cos(angle), torch.sin(angle)
    rot = torch.stack([torch.stack([cos, -sin], -1), torch.stack([sin, cos], -1)], -2)
    shr = torch.zeros(n, 2, 2)
    shr[:, 0, 0], shr[:, 0, 1], shr[:, 1, 1] = 1.0, shear, 1.0
    stretch = torch.diag_embed(torch.stack([sx, sy], -1))
    forward = (2 * BOX / SIZE) * rot @ shr @ stretch
    inverse = torch.linalg.inv(forward) / EXTENT
    theta = torch.cat([inverse, -(inverse @ shift.unsqueeze(-1))], dim=-1)

    out = torch.empty(n, SIZE, SIZE)
    for start in range(0, n, chunk):
        sl = slice(start, start + chunk)
        src = masks[width[sl], font[sl], labels[sl]].unsqueeze(1)
        grid = F.affine_grid(theta[sl], [src.shape[0], 1, SIZE, SIZE], align_corners=False)
        out[sl] = F.grid_sample(src, grid, mode="bilinear", align_corners=False).squeeze(1)
    return out.clamp_(0, 1), labels


DEFAULT_DIGITS = 50000  # training images of plain --data digits


def load_digits(n_train: int = DEFAULT_DIGITS, seed: int = 0) -> ImageData:
    """The built-in digits: ``n_train`` training and ``n_train // 5`` test images."""
    train = ImageSplit(*render_digits(n_train, seed=2 * seed))
    test = ImageSplit(*render_digits(max(1, n_train // 5), seed=2 * seed + 1))
    for split in (train, test):
        split.images = split.images.reshape(len(split), -1)
    return ImageData(name=f"digits:{n_train}:{seed}", shape=(28, 28), splits={"train": train, "test": test})
