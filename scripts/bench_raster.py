"""Benchmark the stroke-drawing VAE (``StrokesRaster``): training speed and the renderer's share of a step,
with the soft renderer's dense path (every stroke at every pixel) beside its windowed one (each stroke near
itself only, ``pvae.raster.soft_render_windowed``, the default).

For each number of strokes N, primitive (line, quadratic Bézier) and renderer (soft, at each ``--sigmas``;
neural), on a random binary 28 x 28 batch (``torch.rand > 0.8``, seeded; no data files): ``StrokesRaster``
with latent_dim 20 and hidden (400,), ``DiagGuide`` with the same, ``make_objective("elbo")`` and
``pvae.svi.SVI`` with ``make_optimizer``, as ``pvae train`` runs them. Two things are timed for each path,
the paths interleaved repeat by repeat on the same model (``model.windowed`` switched), and their medians
over ``--repeats`` after ``--warmup`` are taken:

- a full SVI step (forward, backward, optimiser step): its inverse is ``steps/s``;
- the renderer alone: ``model.render(strokes).sum().backward()``, with the strokes made by
  ``model.strokes(z)`` from z drawn from the guide's q(z | x) outside the timing (the strokes a step
  draws: the windowed path's cost depends on them) and detached into leaves that require grad, so
  the backward stops at the strokes (it covers the renderer, not the decoder MLP).

``share`` = renderer time / step time, both of the same path in the same run (the machine is noisy, so
only ratios within one run mean anything); ``speed-up`` = windowed steps/s / dense steps/s. ``max diff``:
the largest |windowed - dense| over the first repeat's rendered batch, in float64 (the windowed render's
bound is ``INK_BOUND`` per pixel; in float32 both paths round at about 1e-4). The neural renderer is a
network over each stroke's features (control points, width) that outputs all S^2 pixels: it has no
distance to cut off, so it has one path (in the dense columns). It is left untrained: it costs the same.

    OMP_NUM_THREADS=1 python scripts/bench_raster.py [--segments 8 16] [--primitives line bezier]
        [--renderers soft neural] [--sigmas 2.0 0.5] [--batch-size 128] [--threads 1] [--repeats 7]
        [--warmup 2]

Prints a markdown table, a row per N, primitive, renderer and sigma, and whether the default path meets
the aim: the renderer at most half the step at N = 16.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

import pyro
import torch

from guides.amortised import DiagGuide
from models.strokes_raster import StrokesRaster
from pvae.objectives import make_objective
from pvae.raster import INK_BOUND, Strokes, soft_render
from pvae.svi import SVI, make_optimizer

from tables import start_script

SIZE, Z, HIDDEN, LR, AIM = 28, 20, (400,), 1e-3, 0.5  # AIM: the renderer's most share of a step at N = 16
PATHS = {"dense": False, "windowed": True}  # path -> StrokesRaster.windowed


def timed(fn: Callable[[], object]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def bench(
    n: int, primitive: str, renderer: str, sigma: float, x: torch.Tensor, repeats: int, warmup: int
) -> tuple[dict[str, tuple[float, float]], float]:
    """Per path, (median seconds of an SVI step, median seconds of the renderer's forward + backward); and the
    largest |windowed - dense| of the first strokes' images in float64 (NaN for the neural renderer)."""
    pyro.clear_param_store()
    torch.manual_seed(0)
    model = StrokesRaster(SIZE * SIZE, Z, HIDDEN, segments=n, primitive=primitive, renderer=renderer, sigma=sigma)
    guide = DiagGuide(latent_dim=Z, data_dim=SIZE * SIZE, hidden=HIDDEN)
    svi = SVI(model, guide, make_objective("elbo"), make_optimizer([*model.parameters(), *guide.parameters()], LR))
    paths = PATHS if renderer == "soft" else {"dense": False}
    times: dict[str, tuple[list[float], list[float]]] = {path: ([], []) for path in paths}
    diff = float("nan")
    for i in range(warmup + repeats):
        with torch.no_grad():  # the strokes a step draws: z from q(z | x) (the windowed cost depends on them)
            made = model.strokes(guide.posterior(x).sample())
        if i == 0 and renderer == "soft":
            exact = Strokes(*(t.double() for t in (made.points, made.width, made.ink)))
            dense, windowed = (soft_render(exact, sigma, SIZE, windowed=w) for w in (False, True))
            diff = float((dense - windowed).abs().max())
        for path, flag in paths.items():
            model.windowed = flag
            strokes = Strokes(*(t.detach().requires_grad_() for t in (made.points, made.width, made.ink)))
            step = timed(lambda: svi.step(x))
            rendered = timed(lambda: model.render(strokes).sum().backward())
            if i >= warmup:
                times[path][0].append(step)
                times[path][1].append(rendered)
    medians = {path: (statistics.median(steps), statistics.median(renders)) for path, (steps, renders) in times.items()}
    return medians, diff


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--segments", type=int, nargs="+", default=[8, 16], help="N, strokes per image")
    p.add_argument("--primitives", nargs="+", default=["line", "bezier"], choices=["line", "bezier"])
    p.add_argument("--renderers", nargs="+", default=["soft", "neural"], choices=["soft", "neural"])
    p.add_argument("--sigmas", type=float, nargs="+", default=[2.0, 0.5], help="soft renderer's sigma (pixels)")
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--threads", type=int, default=1, help="torch.set_num_threads (default 1)")
    p.add_argument("--repeats", type=int, default=7, help="timed repeats of each, medians taken (default 7)")
    p.add_argument("--warmup", type=int, default=2, help="untimed repeats first (default 2)")
    args = p.parse_args(argv)
    start_script()  # frees memory as the pvae command does
    torch.set_num_threads(args.threads)
    x = (torch.rand(args.batch_size, SIZE * SIZE, generator=torch.Generator().manual_seed(0)) > 0.8).float()
    print(
        f"torch {torch.__version__}, pyro {pyro.__version__}, {torch.get_num_threads()} threads; "
        f"batch {args.batch_size} of random {SIZE}x{SIZE} binary images, latent {Z}, hidden {HIDDEN}, DiagGuide, elbo; "
        f"medians of {args.repeats} interleaved repeats after {args.warmup}"
    )
    print(
        f"aim: renderer share <= {AIM:.0%} of the step at N = 16 (default path: windowed soft, neural); "
        f"windowed bound {INK_BOUND:g} per pixel\n"
    )
    print(
        "| N | primitive | renderer | sigma | steps/s dense | steps/s windowed | speed-up | share dense "
        "| share windowed | max diff (float64) | meets aim |"
    )
    print("|---:|---|---|---:|---:|---:|---:|---:|---:|---:|---|")
    for n in args.segments:
        for primitive in args.primitives:
            for renderer in args.renderers:
                for sigma in args.sigmas if renderer == "soft" else [None]:
                    medians, diff = bench(n, primitive, renderer, sigma or 1.0, x, args.repeats, args.warmup)
                    (step, render), windowed = medians["dense"], medians.get("windowed")
                    cells = [f"{1 / step:.1f}", "-", "-", f"{render / step:.0%}", "-", "-"]
                    share = render / step
                    if windowed is not None:
                        share = windowed[1] / windowed[0]
                        cells[1:3] = f"{1 / windowed[0]:.1f}", f"{step / windowed[0]:.1f}x"
                        cells[4:6] = f"{share:.0%}", f"{diff:.1e}"
                    meets = "yes" if share <= AIM else "no"
                    label = "-" if sigma is None else f"{sigma:g}"
                    print(f"| {n} | {primitive} | {renderer} | {label} | {' | '.join(cells)} | {meets} |", flush=True)


if __name__ == "__main__":
    main()
