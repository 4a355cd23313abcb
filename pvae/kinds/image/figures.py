"""Figures of image runs: reconstructions, decoded prior samples, class samples and the style grid,
traversals and importance-resampled reconstructions (``pvae train``'s and ``pvae inspect``'s)."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch
from torch import nn

from pvae import render
from pvae.kinds.image.data import ImageSplit
from pvae.posterior import (
    decode_mean,
    device_of,
    head,
    importance_resampled,
    latent_scatter,
    on_device,
    posterior_means,
    posterior_predictive,
)


def training_figures(
    folder: str | os.PathLike,
    model: nn.Module,
    guide: nn.Module,
    split: ImageSplit,
    shape: tuple[int, int],
    seed: int = 0,
) -> list[Path]:
    """Reconstructions, decoded prior samples and a latent scatter of ``split``, into ``folder``."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        y = model.condition(split.images, split.labels)
        originals, y50 = split.images[:50], head(y, 50)
        recon = decode_mean(model, posterior_means(guide, originals, y50), y50)
        rows = [t for pair in zip(originals.split(10), recon.split(10)) for t in pair]
        render.image_grid(
            torch.cat(rows).reshape(-1, *shape),
            folder / "reconstructions.png",
            title="test images (odd rows) and reconstructions",
        )
        paths = [folder / n for n in ("reconstructions.png", "prior_samples.png", "latent_scatter.png")]
        _prior_samples(model, shape, paths[1], head(y, 100))
        means = posterior_means(guide, split.images[:5000], head(y, 5000))
        latent_scatter(means.numpy(), split, paths[2])
        if model.num_classes:
            paths.append(style_grid(model, shape, folder / "style_content.png"))
    return paths


def _prior_samples(model: nn.Module, shape: tuple[int, int], path: Path, y: torch.Tensor | None = None) -> None:
    n = 100 if y is None else len(y)
    z = model.prior(n, on_device(y, device_of(model))).sample()
    given = "" if y is None else f", given the first {n} conditions of the split"
    render.image_grid(decode_mean(model, z, y).reshape(-1, *shape), path, title=f"decoded prior samples (means){given}")


@torch.no_grad()
def class_samples(model: nn.Module, labels: torch.Tensor, z: torch.Tensor | None = None) -> torch.Tensor:
    """Decoded means of p(x | z, y) for class labels ``(N,)``, z ~ p(z | y) unless given: ``(N, D)``."""
    device = device_of(model)
    labels = labels.to(device)
    if z is None:
        z = model.prior(len(labels), labels).sample()
    return decode_mean(model, z, labels)


def style_grid(model: nn.Module, shape: tuple[int, int], path: Path, rows: int = 8) -> Path:
    """Style vs content: one z per row (drawn from the prior of class 0), one class per column; for
    a model whose labels reach only its prior, one draw of p(z | y) per cell instead."""
    classes = model.num_classes
    labels = torch.arange(classes).repeat(rows)
    if not model.labels_reach_decoder:
        images = class_samples(model, labels)
        title = "one draw of z ~ p(z | y) per image, one class label y per column"
    else:
        z = model.prior(rows, torch.zeros(rows, dtype=torch.long, device=device_of(model))).sample()
        images = class_samples(model, labels, z.repeat_interleave(classes, 0))
        title = "one z per row, one class label per column"
    render.image_grid(images.reshape(-1, *shape), path, ncol=classes, title=title)
    return path


def image_figures(model, guide, inputs, y, means, variances, shape, folder: Path, iw_samples: int) -> None:
    """``pvae inspect``'s figures of an image run: traversals, importance-resampled reconstructions,
    posterior predictive and prior samples (and the style-vs-content grid of a class-conditional one;
    a conditional model decodes with each image's own condition)."""
    _traversals(model, means, variances, shape, folder / "traversals.png", head(y, 1))
    x, y10 = inputs[:10], head(y, 10)
    from_q = decode_mean(model, posterior_means(guide, x, y10), y10)
    from_iw = decode_mean(model, importance_resampled(model, guide, x, iw_samples, y10), y10)
    render.image_grid(
        torch.cat([x, from_q, from_iw]).reshape(-1, *shape),
        folder / "reconstructions_iw.png",
        title=f"rows: images; from the mean of q(z|x); from q_IW (K={iw_samples})",
    )
    draws = posterior_predictive(model, guide, x, num_samples=5, y=y10)  # (5, 10, D)
    render.image_grid(
        torch.cat([x, draws.reshape(-1, x.shape[1])]).reshape(-1, *shape),
        folder / "posterior_predictive.png",
        title="first row: images; below: draws of x' ~ p(x'|z), z ~ q(z|x) (pyro.infer.Predictive)",
    )
    _prior_samples(model, shape, folder / "prior_samples.png", head(y, 100))
    if model.num_classes:
        style_grid(model, shape, folder / "style_content.png")


def _traversals(
    model: nn.Module,
    means: torch.Tensor,
    variances: np.ndarray,
    shape: tuple[int, int],
    path: Path,
    y: torch.Tensor | None = None,
    rows: int = 8,
) -> None:
    """Decode sweeps of the highest-variance dimensions over +-3 sd, the others at one image's z
    (and with that image's condition ``y`` ``(1, ...)``, if any)."""
    dims = np.argsort(variances)[::-1][: min(rows, len(variances))].copy()
    steps = torch.linspace(-3, 3, 11)
    centre, sd = means.mean(0), means.std(0, unbiased=False)
    z = means[0].repeat(len(dims), len(steps), 1)
    for row, u in enumerate(dims):
        z[row, :, u] = centre[u] + steps * sd[u]
    z = z.reshape(-1, z.shape[-1])
    images = decode_mean(model, z, None if y is None else y.expand(len(z), *y.shape[1:]))
    render.image_grid(
        images.reshape(-1, *shape),
        path,
        ncol=len(steps),
        title=f"rows: dimensions {', '.join(map(str, dims))} swept over -3..3 sd",
    )
