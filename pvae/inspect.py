"""Posterior inspection for image models: encodings, reconstructions, prior samples, latent plots.

Everything here works for any Model/Guide pair that follows the contracts in ARCHITECTURE.md:
it only calls ``guide.posterior(x)``, ``model.prior(n)`` and ``model.likelihood(z)``.
"""

from __future__ import annotations

import os
from pathlib import Path

import pyro.distributions as dist
import torch
from torch import nn

from pvae import render
from pvae.data.images import ImageSplit


def point_estimate(q: dist.Distribution) -> torch.Tensor:
    """The mean of ``q`` where it has one in closed form, else one sample."""
    try:
        return q.mean
    except NotImplementedError:
        return q.sample()


@torch.no_grad()
def posterior_means(guide: nn.Module, images: torch.Tensor, batch_size: int = 1000) -> torch.Tensor:
    """E_q[z | x] for each image, ``(N, Z)``."""
    device = next(guide.parameters()).device
    means = [point_estimate(guide.posterior(x.to(device))).cpu() for x in images.split(batch_size)]
    return torch.cat(means)


@torch.no_grad()
def decode_mean(model: nn.Module, z: torch.Tensor) -> torch.Tensor:
    """The mean of p(x | z) for each z (pixel probabilities for a Bernoulli likelihood)."""
    return model.likelihood(z).mean


def training_figures(
    folder: str | os.PathLike,
    model: nn.Module,
    guide: nn.Module,
    split: ImageSplit,
    shape: tuple[int, int],
    seed: int = 0,
) -> list[Path]:
    """Reconstructions, prior samples and a latent scatter of ``split`` into ``folder``."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    device = next(model.parameters()).device
    written = []
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        originals = split.images[:50]
        z = posterior_means(guide, originals).to(device)
        recon = decode_mean(model, z).cpu()
        rows = [t for pair in zip(originals.split(10), recon.split(10)) for t in pair]
        path = folder / "reconstructions.png"
        render.image_grid(torch.cat(rows).reshape(-1, *shape), path, title="test images (odd rows) and reconstructions")
        written.append(path)

        z = model.prior(100).sample().to(device)
        path = folder / "prior_samples.png"
        render.image_grid(decode_mean(model, z).cpu().reshape(-1, *shape), path, title="decoded prior samples (means)")
        written.append(path)

        n = min(len(split), 5000)
        means = posterior_means(guide, split.images[:n]).numpy()
        labels = None if split.labels is None else split.labels[:n].numpy()
        projected = render.principal_components(means)
        axis = "z" if means.shape[1] <= 2 else "PC"
        path = folder / "latent_scatter.png"
        render.latent_scatter(projected, labels, path, title=f"posterior means of {n} test images", axis=axis)
        written.append(path)
    return written
