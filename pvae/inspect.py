"""Posterior inspection for image models: what the posterior learned, in figures and numbers.

Everything here works for any Model/Guide pair that follows the contracts in ARCHITECTURE.md: it
calls only ``guide.posterior(x)``, ``model.prior(n)``, ``model.likelihood(z)`` and the Pyro
programs ``model.model`` / ``guide.guide``.

- Active units (Burda et al. 2015): unit u is active when Cov_x(E_q[z_u | x]) > 0.01.
- KL per latent dimension: KL(q(z_u | x) || p(z_u)) averaged over x, from the marginal means and
  variances of q and p (exact for Gaussian guides and priors, a moment-matched Gaussian otherwise).
- Importance-resampled reconstructions: q_IW draws K samples z_k ~ q(z | x) and keeps one with
  probability proportional to w_k = p(x, z_k) / q(z_k | x), a better posterior sample than one
  draw from q (Cremer et al. 2017's view of the IWAE bound).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pyro
import pyro.distributions as dist
import torch
from pyro import poutine
from pyro.infer import Predictive
from torch import nn

from pvae import render, runs
from pvae.data.images import ImageSplit
from pvae.data.kinds import kind_of
from pvae.errors import UserError
from pvae.nn import batched
from pvae.objectives import IWAE

ACTIVE_THRESHOLD = 0.01


def point_estimate(q: dist.Distribution) -> torch.Tensor:
    """The mean of ``q`` where it has one in closed form, else one sample."""
    try:
        return q.mean
    except NotImplementedError:
        return q.sample()


def _device(module: nn.Module) -> torch.device:
    return next(module.parameters()).device


@torch.no_grad()
def posterior_means(
    guide: nn.Module, images: torch.Tensor, y: torch.Tensor | None = None, batch_size: int = 1000
) -> torch.Tensor:
    """E_q[z | x] (given the conditions ``y``, if any) for each image, ``(N, Z)``."""
    device = _device(guide)
    return torch.cat(
        [
            point_estimate(guide.posterior(x.to(device), _to(yb, device))).cpu()
            for x, yb in batched(images, y, batch_size)
        ]
    )


def _to(y: torch.Tensor | None, device: torch.device) -> torch.Tensor | None:
    return None if y is None else y.to(device)


@torch.no_grad()
def decode_mean(model: nn.Module, z: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
    """The mean of p(x | z, y) for each z (pixel probabilities for a Bernoulli likelihood)."""
    device = _device(model)
    return model.likelihood(z.to(device), _to(y, device)).mean.cpu()


def marginal_moments(d: dist.Distribution, samples: int = 512) -> tuple[torch.Tensor, torch.Tensor, bool]:
    """Per-dimension mean and variance of ``d`` (batch ``(B,)``, event ``(Z,)``), and whether exact."""
    base = d.base_dist if isinstance(d, dist.Independent) else d
    if isinstance(base, dist.Normal):
        return base.loc.expand(d.shape()), base.scale.pow(2).expand(d.shape()), True
    if isinstance(d, (dist.MultivariateNormal, dist.LowRankMultivariateNormal)):
        return d.loc, d.variance, True
    draws = d.sample((samples,))
    return draws.mean(0), draws.var(0), False


@torch.no_grad()
def kl_per_dimension(
    model: nn.Module, guide: nn.Module, images: torch.Tensor, y: torch.Tensor | None = None, batch_size: int = 500
):
    """Mean over ``images`` of KL(q(z_u | x) || p(z_u)) for each latent dimension u, ``(Z,)``,
    and whether it is exact (Gaussian marginals) rather than moment-matched."""
    device = _device(guide)
    total, exact = 0.0, True
    for x, yb in batched(images, y, batch_size):
        yb = _to(yb, device)
        mq, vq, ok_q = marginal_moments(guide.posterior(x.to(device), yb))
        mp, vp, ok_p = marginal_moments(model.prior(x.shape[0], yb))
        # KL(N(mq, vq) || N(mp, vp)) = 1/2 [log(vp / vq) + (vq + (mq - mp)^2) / vp - 1]
        kl = 0.5 * (torch.log(vp / vq) + (vq + (mq - mp.to(mq)) ** 2) / vp - 1)
        total = total + kl.sum(0).cpu()
        exact = exact and ok_q and ok_p
    return total / len(images), exact


@torch.no_grad()
def importance_resampled(
    model: nn.Module, guide: nn.Module, x: torch.Tensor, k: int = 50, y: torch.Tensor | None = None
) -> torch.Tensor:
    """One z per datapoint from q_IW: K draws from q(z | x), one kept with probability ~ w_k."""
    device = _device(model)
    with pyro.validation_enabled(False):
        z, log_w = IWAE(num_particles=k).weighted_samples(model.model, guide.guide, x.to(device), _to(y, device))
    chosen = dist.Categorical(logits=log_w.T).sample()  # (B,)
    return z[chosen, torch.arange(x.shape[0])]


@torch.no_grad()
def posterior_predictive(
    model: nn.Module, guide: nn.Module, x: torch.Tensor, num_samples: int, y: torch.Tensor | None = None
) -> torch.Tensor:
    """Draws x' ~ p(x | z), z ~ q(z | x) with ``pyro.infer.Predictive``: ``(num_samples, B, D)``."""
    predictive = Predictive(
        poutine.uncondition(model.model), guide=guide.guide, num_samples=num_samples, return_sites=["x"], parallel=True
    )
    with pyro.validation_enabled(False):
        device = _device(model)
        return predictive(x.to(device), _to(y, device))["x"].cpu()


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
        originals, y50 = split.images[:50], _head(y, 50)
        recon = decode_mean(model, posterior_means(guide, originals, y50), y50)
        rows = [t for pair in zip(originals.split(10), recon.split(10)) for t in pair]
        render.image_grid(
            torch.cat(rows).reshape(-1, *shape),
            folder / "reconstructions.png",
            title="test images (odd rows) and reconstructions",
        )
        paths = [folder / n for n in ("reconstructions.png", "prior_samples.png", "latent_scatter.png")]
        _prior_samples(model, shape, paths[1], _head(y, 100))
        means = posterior_means(guide, split.images[:5000], _head(y, 5000))
        _latent_scatter(means.numpy(), split, paths[2])
        if model.num_classes:
            paths.append(style_grid(model, shape, folder / "style_content.png"))
    return paths


def _head(y: torch.Tensor | None, n: int) -> torch.Tensor | None:
    return None if y is None else y[:n]


def _prior_samples(model: nn.Module, shape: tuple[int, int], path: Path, y: torch.Tensor | None = None) -> None:
    n = 100 if y is None else len(y)
    z = model.prior(n, _to(y, _device(model))).sample()
    given = "" if y is None else f", given the first {n} conditions of the split"
    render.image_grid(decode_mean(model, z, y).reshape(-1, *shape), path, title=f"decoded prior samples (means){given}")


@torch.no_grad()
def class_samples(model: nn.Module, labels: torch.Tensor, z: torch.Tensor | None = None) -> torch.Tensor:
    """Decoded means of p(x | z, y) for class labels ``(N,)``, z ~ p(z | y) unless given: ``(N, D)``."""
    device = _device(model)
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
        z = model.prior(rows, torch.zeros(rows, dtype=torch.long, device=_device(model))).sample()
        images = class_samples(model, labels, z.repeat_interleave(classes, 0))
        title = "one z per row, one class label per column"
    render.image_grid(images.reshape(-1, *shape), path, ncol=classes, title=title)
    return path


def _latent_scatter(means: np.ndarray, split: ImageSplit, path: Path) -> None:
    labels = None if split.labels is None else split.labels[: len(means)].numpy()
    axis = "z" if means.shape[1] <= 2 else "PC"
    title = f"posterior means of {len(means)} datapoints" + (
        " (first two principal components)" if axis == "PC" else ""
    )
    render.latent_scatter(render.principal_components(means), labels, path, title=title, axis=axis)


def inspect_run(
    run: str | os.PathLike, split: str = "test", limit: int | None = None, seed: int = 0, iw_samples: int = 50
) -> dict:
    """All inspection figures and the numbers (``inspect.json``) of a run, into
    ``RUN/inspect/split=...,limit=...,seed=...`` (the result's ``"folder"``): one folder per set of
    arguments, so training's figures and other inspections stay as they were."""
    run = Path(run)
    config, model, guide = runs.load_run(run)
    if guide is None:
        raise UserError(f"{run}: a decoder-only model has no posterior to inspect")
    data = runs.load_split(config, split).head(limit)
    inputs = data.tensor()
    folder = runs.output_dir(run, "inspect", split=split, limit=limit, seed=seed)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        y = model.condition(inputs, data.labels)
        means = posterior_means(guide, inputs, y)
        variances = means.var(0, unbiased=False).numpy()  # Cov_x(E_q[z_u]), Burda et al.
        kl, kl_exact = kl_per_dimension(model, guide, inputs, y) if guide.density else (None, False)
        active = int((variances > ACTIVE_THRESHOLD).sum())
        render.unit_bars(
            variances,
            None if kl is None else kl.numpy(),
            ACTIVE_THRESHOLD,
            folder / "active_units.png",
            title=f"{active} of {len(variances)} units active on {len(data)} {split} datapoints",
        )
        _latent_scatter(means[:5000].numpy(), data, folder / "latent_scatter.png")
        kind_of(config).inspection_figures(
            folder, model, guide, data, config, seed=seed, y=y, means=means, variances=variances, iw_samples=iw_samples
        )
    result = {
        "split": split,
        "n": len(data),
        "latent_dim": int(means.shape[1]),
        "active_threshold": ACTIVE_THRESHOLD,
        "active_units": active,
        "posterior_mean_variance": [float(v) for v in variances],
        "kl_per_dim": None if kl is None else [float(v) for v in kl],
        "kl_total": None if kl is None else float(kl.sum()),
        "kl_method": "none: a point-estimate guide"
        if kl is None
        else "closed form"
        if kl_exact
        else "moment-matched Gaussian marginals",
    }
    (folder / "inspect.json").write_text(json.dumps(result, indent=2))
    return {**result, "folder": str(folder)}


def image_figures(model, guide, inputs, y, means, variances, shape, folder: Path, iw_samples: int) -> None:
    """``pvae inspect``'s figures of an image run: traversals, importance-resampled reconstructions,
    posterior predictive and prior samples (and the style-vs-content grid of a class-conditional one;
    a conditional model decodes with each image's own condition)."""
    _traversals(model, means, variances, shape, folder / "traversals.png", _head(y, 1))
    x, y10 = inputs[:10], _head(y, 10)
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
    _prior_samples(model, shape, folder / "prior_samples.png", _head(y, 100))
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
