"""Cost of the path-derivative estimators with the IAF guide: the linearised inverse against the
flow's inverse, and both against plain IWAE.

IWAE-DReG (and STL) evaluate log q with detached parameters at the sample z. For the IAF that is
the flow's inverse at z: Z sequential MADE passes per step, forward and backward. At the sample
just drawn, ``guides.flows`` instead runs the inverse linearised there (one Jacobian and a
triangular solve per step), which has the same value and gradient. This script times one
gradient evaluation (loss and backward, no optimiser) of the network of ``compare_bounds.py``
(784-200-200-50 tanh, 2 IAF steps, batch 20, K = 5) with

- ``iwae``: the plain IWAE gradient (no detached log q): the baseline;
- ``iwae-dreg``: DReG through the linearised inverse (what pvae runs);
- ``iwae-dreg, inverted``: DReG with the linearisation switched off, so the flow is inverted;

interleaved in one process (the machine is noisy: only ratios within a run mean anything), after
checking that both DReG variants give the same gradient on the same draws.

    python scripts/bench_flow.py [--steps 100] [--latent-dim 50] [--flows 2]
"""

from __future__ import annotations

import argparse
import contextlib
import statistics
import time
from collections.abc import Callable, Iterator

import pyro
import torch

from guides import IAFGuide
from guides.flows import FlowPosterior
from models.gaussian_vae import GaussianVAE
from pvae.objectives import make_objective

from tables import int_flags


@contextlib.contextmanager
def inverted() -> Iterator[None]:
    """Switch the linearised inverse off: detached flows then invert at every z."""
    chain = FlowPosterior._sample_chain
    FlowPosterior._sample_chain = lambda self: None
    try:
        yield
    finally:
        FlowPosterior._sample_chain = chain


def gradient(objective, model, guide, x, params) -> list[torch.Tensor]:
    loss = objective.differentiable_loss(model.model, guide.guide, x)
    return list(torch.autograd.grad(loss, params))


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--steps", type=int, default=100, help="timed gradient evaluations per variant")
    int_flags(p, warmup=10, latent_dim=50, flows=2, batch_size=20, particles=5, threads=1)
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    hidden = {"hidden": [200, 200], "activation": "tanh"}
    model = GaussianVAE(data_dim=784, latent_dim=args.latent_dim, **hidden)
    guide = IAFGuide(latent_dim=args.latent_dim, data_dim=784, flows=args.flows, **hidden)
    x = torch.bernoulli(torch.full((args.batch_size, 784), 0.15))
    params = list(model.parameters()) + list(guide.parameters())
    iwae, dreg = make_objective("iwae", args.particles), make_objective("iwae-dreg", args.particles)

    with pyro.validation_enabled(False):
        pyro.set_rng_seed(1)
        fast = gradient(dreg, model, guide, x, params)
        pyro.set_rng_seed(1)
        with inverted():
            slow = gradient(dreg, model, guide, x, params)
        gap = max(float((a - b).abs().max() / b.abs().max().clamp(min=1e-12)) for a, b in zip(fast, slow))
        print(f"largest relative difference of the two DReG gradients on the same draws: {gap:.1e}")

        def timed(run: Callable[[], object]) -> float:
            started = time.perf_counter()
            run()
            return time.perf_counter() - started

        def slow_step() -> None:
            with inverted():
                gradient(dreg, model, guide, x, params)

        variants = {
            "iwae": lambda: gradient(iwae, model, guide, x, params),
            "iwae-dreg": lambda: gradient(dreg, model, guide, x, params),
            "iwae-dreg, inverted": slow_step,
        }
        times: dict[str, list[float]] = {name: [] for name in variants}
        for i in range(args.warmup + args.steps):
            for name, run in variants.items():
                seconds = timed(run)
                if i >= args.warmup:
                    times[name].append(seconds)
    median = {name: statistics.median(t) * 1000 for name, t in times.items()}
    print(
        f"IAF guide, Z = {args.latent_dim}, {args.flows} flows, batch {args.batch_size}, K = {args.particles}; "
        f"median ms of {args.steps} interleaved gradient evaluations:"
    )
    for name, ms in median.items():
        print(f"  {name:<20} {ms:8.2f} ms   {ms / median['iwae']:5.2f} x iwae")
    print(f"  linearised inverse: {median['iwae-dreg, inverted'] / median['iwae-dreg']:.2f} x faster than inverting")


if __name__ == "__main__":
    main()
