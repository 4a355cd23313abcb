"""Posterior inspection: what the posterior learned, in figures and numbers, for any data kind.

Everything here works for any Model/Guide pair that follows the contracts (docs/architecture.md): it
calls only ``guide.posterior(x)``, ``model.prior(n)``, ``model.likelihood(z)`` and the Pyro
programs ``model.model`` / ``guide.guide``.

- Active units (Burda et al. 2015): unit u is active when Cov_x(E_q[z_u | x]) > 0.01.
- KL per latent dimension: KL(q(z_u | x) || p(z_u)) averaged over x, from the marginal means and
  variances of q and p (exact for Gaussian guides and priors, a moment-matched Gaussian otherwise).
- Importance-resampled reconstructions: q_IW draws K samples z_k ~ q(z | x) and keeps one with
  probability proportional to w_k = p(x, z_k) / q(z_k | x), a better posterior sample than one
  draw from q (Cremer et al. 2017's view of the IWAE bound).
- Latent helpers the generation commands of every kind share: ``encode``, ``slerp``.

``inspect_run`` draws the figures every kind has (active units, the latent scatter) and asks the
run's data kind for its own (``DataKind.inspection_figures``: image traversals, sketches, ...).
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
from pvae.errors import UserError
from pvae.kinds.base import kind_of
from pvae.layers import batched
from pvae.objectives import IWAE

ACTIVE_THRESHOLD = 0.01


def point_estimate(q: dist.Distribution) -> torch.Tensor:
    """The mean of ``q`` where it has one in closed form, else one sample."""
    try:
        return q.mean
    except NotImplementedError:
        return q.sample()


def device_of(module: nn.Module) -> torch.device:
    """The device of a module's parameters."""
    return next(module.parameters()).device


@torch.no_grad()
def posterior_means(
    guide: nn.Module, images: torch.Tensor, y: torch.Tensor | None = None, batch_size: int = 1000
) -> torch.Tensor:
    """E_q[z | x] (given the conditions ``y``, if any) for each image, ``(N, Z)``."""
    device = device_of(guide)
    return torch.cat(
        [
            point_estimate(guide.posterior(x.to(device), on_device(yb, device))).cpu()
            for x, yb in batched(images, y, batch_size)
        ]
    )


def on_device(y: torch.Tensor | None, device: torch.device) -> torch.Tensor | None:
    """A condition (or ``None``) on ``device``."""
    return None if y is None else y.to(device)


@torch.no_grad()
def decode_mean(model: nn.Module, z: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
    """The mean of p(x | z, y) for each z (pixel probabilities for a Bernoulli likelihood)."""
    device = device_of(model)
    return model.likelihood(z.to(device), on_device(y, device)).mean.cpu()


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
    device = device_of(guide)
    total, exact = 0.0, True
    for x, yb in batched(images, y, batch_size):
        yb = on_device(yb, device)
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
    device = device_of(model)
    with pyro.validation_enabled(False):
        z, log_w = IWAE(num_particles=k).weighted_samples(model.model, guide.guide, x.to(device), on_device(y, device))
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
        device = device_of(model)
        return predictive(x.to(device), on_device(y, device))["x"].cpu()


def head(y: torch.Tensor | None, n: int) -> torch.Tensor | None:
    """The first ``n`` conditions (or ``None``)."""
    return None if y is None else y[:n]


@torch.no_grad()
def encode(guide: nn.Module, x: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
    """The posterior means E_q[z | x] (or E_q[z | x, y], labels ``(N,)``) of a batch ``x``: ``(N, Z)``."""
    return guide.posterior(x, y).mean


def slerp(z0: torch.Tensor, z1: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """Spherical interpolation: sin((1-t) w) / sin w z0 + sin(t w) / sin w z1, w = angle(z0, z1)."""
    cos = torch.dot(z0, z1) / (z0.norm() * z1.norm())
    omega = torch.arccos(cos.clamp(-1 + 1e-7, 1 - 1e-7))
    if omega.abs() < 1e-6:
        return torch.lerp(z0, z1, t[:, None])
    return (torch.sin((1 - t) * omega)[:, None] * z0 + torch.sin(t * omega)[:, None] * z1) / torch.sin(omega)


def latent_scatter(means: np.ndarray, split, path: Path) -> None:
    """The posterior means ``(N, Z)`` of a split's first N datapoints, coloured by their labels if any."""
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
        latent_scatter(means[:5000].numpy(), data, folder / "latent_scatter.png")
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
