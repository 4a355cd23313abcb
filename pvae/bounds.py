"""Per-datapoint estimates of the ELBO and of the importance-weighted bounds L_k (Burda et al. 2015).

For each datapoint x we draw S = max(k) samples z_s ~ q(z | x) once, in chunks of particles
vectorised by ``IWAE.log_weights`` (for a contract pair, the same numbers without its traces) so
memory stays bounded, and keep the log weights

    log w_s = log p(x, z_s) - log q(z_s | x)        (float64 from here on)

For each k, the S samples are split into floor(S / k) disjoint groups, and L_k(x) is estimated by
the mean over groups of  logsumexp_{s in group} log w_s - log k : an unbiased estimate of
E[L_k(x)] that uses every sample. k = 1 gives the ELBO; L_S estimates log p(x) from below, so
-L_S is the usual NLL estimate (Burda et al. report L_5000).
"""

from __future__ import annotations

import json
import math
import os
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import pyro
import torch
from pyro import poutine
from pyro.poutine.util import site_is_subsample
from torch import nn
from torch.distributions import kl_divergence
from tqdm.auto import tqdm

from pvae import render, runs
from pvae.contracts import Guide, Model
from pvae.errors import UserError
from pvae.layers import batched, particle_products
from pvae.objectives import IWAE
from pvae.objectives.base import contract_call

DEFAULT_KS = (1, 5, 50, 500, 5000)
# Particles x datapoints evaluated at once (memory ~ this x activations). Small enough that one
# chunk's activations (2^12 x 784 logits: 12.8 MB) stay close to the CPU: with 2^15 every
# elementwise pass over the logits, and the decoder's matrix products, wait on memory; much smaller,
# and the fixed cost of a chunk (Pyro's traces, the centring of ``particle_products``) dominates.
# One thread, 100 binarized-MNIST images: 2^11 53.6, 2^12 56.4, 2^13 46.7 images/s (bench_bounds).
POINTS_PER_CHUNK = 2**12


def _empty_guide(*args, **kwargs) -> None:
    """The guide of a model without latent sites."""


class _FixedPosterior(Guide):
    """A guide whose q(z | x) for one batch was computed once: every chunk of particles of that
    batch draws from it, instead of running the guide's network again for each chunk. Internal
    to ``log_weights`` (so it states no ``data_kinds``); it relies on ``posterior`` being a
    deterministic function of (x, y) with no Pyro sites, as the Guide contract has it.
    """

    def __init__(self, q: torch.distributions.Distribution) -> None:
        super().__init__()
        self.q = q

    def posterior(self, x: torch.Tensor, y: torch.Tensor | None = None) -> torch.distributions.Distribution:
        return self.q


@torch.no_grad()
def log_weights(
    model: nn.Module,
    guide: nn.Module | None,
    x: torch.Tensor,
    num_samples: int,
    chunk: int,
    y: torch.Tensor | None = None,
    matmul_dtype: torch.dtype | None = None,
) -> torch.Tensor:
    """log w for ``num_samples`` samples per datapoint of ``x`` (condition ``y``): float64 ``(num_samples, B)``.
    With ``matmul_dtype`` the networks' products over particles run in it (``pvae.layers.particle_products``)."""
    args = (x,) if y is None else (x, y)
    out = []
    with pyro.validation_enabled(False), particle_products(matmul_dtype):
        if guide is not None and contract_call(model.model, guide.guide, args, {}) is not None:
            q, prior = guide.posterior(x, y), model.prior(x.shape[0], y)
            for start in range(0, num_samples, chunk):
                out.append(_contract_log_weights(model, q, prior, x, y, min(chunk, num_samples - start)).double())
            return torch.cat(out)
        objectives: dict[int, IWAE] = {}
        if guide is None:
            guide_fn = _empty_guide
        elif isinstance(guide, Guide) and type(guide).guide is Guide.guide:
            guide_fn = _FixedPosterior(guide.posterior(x, y)).guide
        else:
            guide_fn = guide.guide
        for start in range(0, num_samples, chunk):
            k = min(chunk, num_samples - start)
            objective = objectives.setdefault(k, IWAE(num_particles=k))
            log_w, _ = objective.log_weights(model.model, guide_fn, *args)
            out.append(log_w.double())
    return torch.cat(out)


def _contract_log_weights(
    model: Model,
    q: torch.distributions.Distribution,
    prior: torch.distributions.Distribution,
    x: torch.Tensor,
    y: torch.Tensor | None,
    k: int,
) -> torch.Tensor:
    """log w = log p(z) + log p(x | z) - log q(z | x) for k particles z ~ q of each datapoint of a
    contract pair, ``(k, B)``: the numbers ``IWAE.log_weights`` takes from ``contract_traces``
    (the same draws, in the same order), without building traces, and with p(x | z) from
    ``Model.log_likelihood``, which a model may compute faster than its ``likelihood``. A q without
    ``rsample`` is sampled (no gradients are taken here), where the traced IWAE refuses it."""
    qk = q.expand((k, *q.batch_shape))
    z = qk.rsample() if qk.has_rsample else qk.sample()
    return prior.log_prob(z) + model.log_likelihood(x, z, y) - qk.log_prob(z)


def bounds_from_log_weights(log_w: torch.Tensor, ks: Sequence[int]) -> dict[int, torch.Tensor]:
    """L_k per datapoint for each k, from log weights ``(S, B)``: each ``(B,)``, float64."""
    samples = log_w.shape[0]
    out = {}
    for k in ks:
        groups = samples // k
        grouped = log_w[: groups * k].reshape(groups, k, -1)
        out[k] = (torch.logsumexp(grouped, dim=1) - math.log(k)).mean(0)
    return out


@dataclass
class Bounds:
    """Per-datapoint bounds: ``values[k]`` is L_k for each datapoint, float64 ``(N,)``."""

    values: dict[int, torch.Tensor]

    @property
    def n(self) -> int:
        return len(next(iter(self.values.values())))

    def mean(self, k: int) -> float:
        return float(self.values[k].mean())

    def stderr(self, k: int) -> float:
        """Standard error of the mean over datapoints."""
        v = self.values[k]
        return float(v.std() / math.sqrt(len(v))) if len(v) > 1 else float("nan")

    @property
    def nll(self) -> float:
        """-L_k for the largest k: the estimate of -log p(x) per datapoint."""
        return -self.mean(max(self.values))

    def summary(self) -> dict:
        return {str(k): {"mean": self.mean(k), "stderr": self.stderr(k)} for k in sorted(self.values)}

    def table(self) -> str:
        lines = [f"{'k':>6} {'mean L_k (nats)':>16} {'stderr':>8}"]
        lines += [f"{k:>6} {self.mean(k):>16.3f} {self.stderr(k):>8.3f}" for k in sorted(self.values)]
        lines.append(f"NLL estimate -L_{max(self.values)} = {self.nll:.3f} nats per datapoint")
        return "\n".join(lines)


def estimate_bounds(
    model: nn.Module,
    guide: nn.Module | None,
    images: torch.Tensor,
    ks: Sequence[int] = DEFAULT_KS,
    batch_size: int = 100,
    points_per_chunk: int = POINTS_PER_CHUNK,
    seed: int = 0,
    progress: bool = False,
    y: torch.Tensor | None = None,
    matmul_dtype: torch.dtype | None = None,
) -> Bounds:
    """L_k for every datapoint of ``images`` ``(N, ...)`` (with conditions ``y``) and each k in ``ks``.

    Memory is bounded by ``points_per_chunk`` (particles x datapoints per model evaluation),
    whatever max(k) is. The draws come from ``seed`` and leave torch's global generator as it was.
    ``matmul_dtype`` (e.g. ``torch.bfloat16``): the model's products over particles in that dtype.
    """
    if not ks or min(ks) < 1:
        raise ValueError(f"every k must be a positive integer, got {list(ks)}")
    num_samples = max(ks)
    device = next(model.parameters()).device
    chunk = max(1, points_per_chunk // batch_size)
    values: dict[int, list[torch.Tensor]] = {k: [] for k in ks}
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        total = math.ceil(len(images) / batch_size)
        for x, yb in tqdm(
            batched(images, y, batch_size), total=total, desc="bounds", disable=not progress, leave=False
        ):
            yb = None if yb is None else yb.to(device)
            log_w = log_weights(model, guide, x.to(device), num_samples, chunk, yb, matmul_dtype)
            for k, v in bounds_from_log_weights(log_w, ks).items():
                values[k].append(v.cpu())
    return Bounds({k: torch.cat(v) for k, v in values.items()})


def bounds_for_run(
    run: str | os.PathLike,
    ks: Sequence[int] = DEFAULT_KS,
    split: str = "test",
    limit: int | None = None,
    batch_size: int = 100,
    seed: int = 0,
    progress: bool = True,
    matmul_dtype: torch.dtype | None = None,
) -> tuple[Bounds, Path]:
    """L_k on a split of a run's data, and the folder ``RUN/bounds/split=...,k=...,limit=...,seed=...``
    (``,matmul=bfloat16`` with that ``matmul_dtype``) where ``bounds.json`` and ``bounds.png`` are
    written (one folder per set of arguments)."""
    run = Path(run)
    config, model, guide = runs.load_run(run)
    if guide is not None and not guide.density:
        raise UserError(
            f"{run}: its guide ({config['train']['guide']}) is a point estimate with no density, and the ELBO and "
            "L_k need one (train with a stochastic guide, e.g. --guide diag)"
        )
    dtype = next(model.parameters()).dtype
    if matmul_dtype == dtype:  # products in the model's own dtype: as without the option
        matmul_dtype = None
    data = runs.load_split(config, split).head(limit)
    images = data.tensor()
    y = model.condition(images, data.labels)
    started = time.perf_counter()
    bounds = estimate_bounds(
        model, guide, images, ks, batch_size=batch_size, seed=seed, progress=progress, y=y, matmul_dtype=matmul_dtype
    )
    result = {
        "split": split,
        "n": bounds.n,
        "bounds": bounds.summary(),
        "nll": bounds.nll,
        "seed": seed,
        "matmul_dtype": str(matmul_dtype or dtype).removeprefix("torch."),
        "seconds": round(time.perf_counter() - started, 2),
    }
    extra = {"matmul": result["matmul_dtype"]} if matmul_dtype is not None else {}
    folder = runs.output_dir(run, "bounds", split=split, k=list(ks), limit=limit, seed=seed, **extra)
    (folder / "bounds.json").write_text(json.dumps(result, indent=2))
    ordered = sorted(bounds.values)
    render.bounds_plot(
        ordered,
        [bounds.mean(k) for k in ordered],
        [bounds.stderr(k) for k in ordered],
        folder / "bounds.png",
        title=f"{split} split, {bounds.n} datapoints",
    )
    return bounds, folder


EVAL_SEED = 12345  # draws of the per-epoch test evaluation: the same every epoch


@torch.no_grad()
def elbo_terms(
    model: nn.Module,
    guide: nn.Module | None,
    x: torch.Tensor,
    y: torch.Tensor | None = None,
    batch_size: int = 500,
    seed: int = EVAL_SEED,
) -> dict[str, float]:
    """Means per datapoint of the ELBO and its two terms, from one z per datapoint (fixed draws):

        recon = E_q[log p(x | z)],   kl = KL(q(z | x) || p(z)),   elbo = recon - kl

    The KL is in closed form where torch has it (e.g. Gaussian guide and prior), else the
    one-sample estimate log q(z|x) - log p(z). Draws come from ``seed``; torch's global generator
    is left as it was.
    """
    recon, kl, n = elbo_sums(model, guide, batched(x, y, batch_size), seed)
    return {"elbo": (recon - kl) / n, "recon": recon / n, "kl": kl / n}


@torch.no_grad()
def elbo_sums(
    model: nn.Module,
    guide: nn.Module | None,
    batches: Iterable[tuple[torch.Tensor, torch.Tensor | None]],
    seed: int = EVAL_SEED,
) -> tuple[float, float, int]:
    """``elbo_terms`` over batches ``(x, y)`` read one at a time (a split need not be in memory):
    the sums of log p(x | z) and of the KL over the datapoints, and their number."""
    device = next(model.parameters()).device
    recon = kl = 0.0
    n = 0
    guide_fn = guide.guide if guide is not None else _empty_guide
    devices = [device.index or 0] if device.type == "cuda" else []  # their generators are restored too
    with torch.random.fork_rng(devices=devices), pyro.validation_enabled(False):
        torch.manual_seed(seed)
        for xb, yb in batches:
            xb, yb = xb.to(device), None if yb is None else yb.to(device)
            n += len(xb)
            guide_trace = poutine.trace(guide_fn).get_trace(xb, yb)
            model_trace = poutine.trace(poutine.replay(model.model, trace=guide_trace)).get_trace(xb, yb)
            for name, site in model_trace.nodes.items():
                if site["type"] != "sample" or site_is_subsample(site):
                    continue
                if site["is_observed"]:
                    recon += float(site["fn"].log_prob(site["value"]).sum())
                    continue
                q, p, z = guide_trace.nodes[name]["fn"], site["fn"], site["value"]
                try:
                    kl += float(kl_divergence(q, p).sum())
                except NotImplementedError:
                    kl += float((q.log_prob(z) - p.log_prob(z)).sum())
    return recon, kl, n
