"""Benchmark the stroke-drawing VAE (``StrokesRaster``): training speed and the renderer's share of a step.

For each number of strokes N, primitive (line, quadratic Bézier) and renderer (soft, neural), on a
random binary 28 x 28 batch (``torch.rand > 0.8``, seeded; no data files): ``StrokesRaster`` with
latent_dim 20 and hidden (400,), ``DiagGuide`` with the same, ``make_objective("elbo")`` and
``pvae.svi.SVI`` with ``make_optimizer``, as ``pvae train`` runs them. Two things are timed,
interleaved in this process, and their medians over ``--repeats`` after ``--warmup`` are taken:

- a full SVI step (forward, backward, optimiser step): its inverse is ``steps/s``;
- the renderer alone: ``model.render(strokes).sum().backward()``, with the strokes made by
  ``model.strokes(z)`` from a random z outside the timing and detached into leaves that require
  grad, so the backward stops at the strokes (it covers the renderer, not the decoder MLP).

``renderer share`` = renderer time / step time, both from the same run (the machine is noisy, so
only ratios within one run mean anything). The neural renderer is left untrained: it costs the same.

    OMP_NUM_THREADS=1 python scripts/bench_raster.py [--segments 8 16] [--primitives line bezier]
        [--renderers soft neural] [--batch-size 128] [--threads 1] [--repeats 7] [--warmup 2]

Prints a markdown table | N | primitive | renderer | steps/s | renderer share | and, per row, whether
it meets the aim: the renderer at most half the step at N = 16.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Callable

import pyro
import torch

from guides.amortised import DiagGuide
from models.strokes_raster import StrokesRaster
from pvae.memory import keep_freed_memory
from pvae.objectives import make_objective
from pvae.raster import Strokes
from pvae.svi import SVI, make_optimizer

SIZE, Z, HIDDEN, LR, AIM = 28, 20, (400,), 1e-3, 0.5  # AIM: the renderer's most share of a step at N = 16


def timed(fn: Callable[[], object]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def bench(n: int, primitive: str, renderer: str, x: torch.Tensor, repeats: int, warmup: int) -> tuple[float, float]:
    """(median seconds of an SVI step, median seconds of the renderer's forward + backward)."""
    pyro.clear_param_store()
    torch.manual_seed(0)
    model = StrokesRaster(SIZE * SIZE, Z, HIDDEN, segments=n, primitive=primitive, renderer=renderer)
    guide = DiagGuide(latent_dim=Z, data_dim=SIZE * SIZE, hidden=HIDDEN)
    svi = SVI(model, guide, make_objective("elbo"), make_optimizer([*model.parameters(), *guide.parameters()], LR))

    def render() -> None:
        model.render(strokes).sum().backward()

    steps, renders = [], []
    for i in range(warmup + repeats):
        with torch.no_grad():
            made = model.strokes(torch.randn(len(x), Z))
        strokes = Strokes(*(t.detach().requires_grad_() for t in (made.points, made.width, made.ink)))
        step, rendered = timed(lambda: svi.step(x)), timed(render)
        if i >= warmup:
            steps.append(step)
            renders.append(rendered)
    return statistics.median(steps), statistics.median(renders)


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--segments", type=int, nargs="+", default=[8, 16], help="N, strokes per image")
    p.add_argument("--primitives", nargs="+", default=["line", "bezier"], choices=["line", "bezier"])
    p.add_argument("--renderers", nargs="+", default=["soft", "neural"], choices=["soft", "neural"])
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--threads", type=int, default=1, help="torch.set_num_threads (default 1)")
    p.add_argument("--repeats", type=int, default=7, help="timed repeats of each, medians taken (default 7)")
    p.add_argument("--warmup", type=int, default=2, help="untimed repeats first (default 2)")
    args = p.parse_args(argv)
    keep_freed_memory()  # as the pvae command does
    torch.set_num_threads(args.threads)
    x = (torch.rand(args.batch_size, SIZE * SIZE, generator=torch.Generator().manual_seed(0)) > 0.8).float()
    print(f"command: python {' '.join(sys.argv)}")
    print(
        f"torch {torch.__version__}, pyro {pyro.__version__}, {torch.get_num_threads()} threads; "
        f"batch {args.batch_size} of random {SIZE}x{SIZE} binary images, latent {Z}, hidden {HIDDEN}, DiagGuide, elbo; "
        f"medians of {args.repeats} interleaved repeats after {args.warmup}"
    )
    print(f"aim: renderer share <= {AIM:.0%} of the step at N = 16\n")
    print("| N | primitive | renderer | steps/s | renderer share | meets aim |")
    print("|---:|---|---|---:|---:|---|")
    for n in args.segments:
        for primitive in args.primitives:
            for renderer in args.renderers:
                step, render = bench(n, primitive, renderer, x, args.repeats, args.warmup)
                share = render / step
                meets = "yes" if share <= AIM else "no"
                print(f"| {n} | {primitive} | {renderer} | {1 / step:.1f} | {share:.0%} | {meets} |", flush=True)


if __name__ == "__main__":
    main()
