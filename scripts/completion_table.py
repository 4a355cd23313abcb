"""Image completion (Sohn et al. 2015) at a CPU budget, in the layout of Pyro's CVAE example table.

For 1, 2 and 3 visible quadrants of 28x28 binary images, trains ``pvae train --model completion``
(the baseline network with masked BCE first, then the CVAE whose prior network reads the visible
pixels filled in by the baseline) in its own run folder under --out (an interrupted table resumes
when run again), then reports on the test split, in nats per image over the hidden pixels:

- baseline: the masked binary cross-entropy of the baseline's prediction;
- CVAE -ELBO: -E_q[log p(h | z, v)] + KL(q(z | x) || p(z | v)), averaged over 10 draws of z from
  the guide (Pyro's metric: Trace_ELBO with 10 particles);
- CVAE -L_100: the importance-weighted estimate -log 1/K sum_k p(h, z_k | v) / q(z_k | x) with
  K = 100 draws, an upper bound on -log p(h | v) that is tighter than the -ELBO.

Pyro's published numbers (grey MNIST, 60k training images, early stopping) stand beside ours.

    python scripts/completion_table.py --data binarized-mnist:binarized_mnist.npz
"""

from __future__ import annotations

import argparse
import json
import math
import time
from pathlib import Path

import torch

from pvae import runs
from pvae.bounds import log_weights
from pvae.kinds.image import generate as imaging
from pvae.layers import batched
from pvae.train import TrainConfig, Trainer

from tables import markdown, start_script, write_table

PYRO = {1: (100.4, 71.8), 2: (61.9, 51.0), 3: (25.4, 24.2)}  # baseline, CVAE -ELBO: pyro.ai/examples/cvae.html
ELBO_PARTICLES, IW_PARTICLES = 10, 100


def config(args: argparse.Namespace, quadrants: int) -> TrainConfig:
    return TrainConfig.for_model(
        model="completion",
        data=args.data,
        visible_quadrants=quadrants,
        epochs=args.epochs,
        baseline_epochs=args.baseline_epochs,
        train_limit=args.train_limit,
        seed=args.seed,
    )


@torch.no_grad()
def evaluate(run: Path, limit: int | None, seed: int) -> dict[str, float]:
    """Baseline masked BCE, CVAE -ELBO (10 draws) and -L_100 per test image, with standard errors."""
    cfg, model, guide = runs.load_run(run)
    x = runs.load_split(cfg, "test").head(limit).tensor()
    y = model.condition(x, None)
    bce, elbo, iw = [], [], []
    torch.manual_seed(seed)
    for xb, yb in batched(x, y, 200):
        bce.append(model.masked_bce(yb, xb))
        log_w = log_weights(model, guide, xb, IW_PARTICLES, IW_PARTICLES, yb)  # (K, B) float64
        elbo.append(-log_w[:ELBO_PARTICLES].mean(0))
        iw.append(-(torch.logsumexp(log_w, 0) - math.log(IW_PARTICLES)))
    out = {}
    for name, values in (("baseline", bce), ("elbo", elbo), ("iw", iw)):
        v = torch.cat(values).double()
        out[name], out[f"{name}_se"] = float(v.mean()), float(v.std() / math.sqrt(len(v)))
    out["n"] = len(x)
    return out


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", default="digits", help="a --data spec of 28x28 images (default digits)")
    p.add_argument("--epochs", type=int, default=10, help="CVAE epochs (default 10)")
    p.add_argument("--baseline-epochs", type=int, default=10, help="baseline epochs before the CVAE (default 10)")
    p.add_argument("--train-limit", type=int, help="train on the first N images only")
    p.add_argument("--test-limit", type=int, help="evaluate on the first N test images only")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", type=Path, default=Path("runs/completion_table"))
    args = p.parse_args(argv)
    start_script()
    started = time.perf_counter()
    results = {}
    for q in (1, 2, 3):
        out = args.out / f"q{q}"
        cfg = config(args, q)
        finished = (out / runs.CHECKPOINT).is_file() and runs.load_checkpoint(out)["position"]["epoch"] >= cfg.epochs
        if not finished:
            Trainer(cfg, out, progress=False, log=print).train(resume=(out / runs.CHECKPOINT).is_file())
        results[q] = evaluate(out, args.test_limit, args.seed)
        imaging.complete_run(out, n=8, samples=5, seed=args.seed)
        print(f"{q} quadrant(s): {json.dumps(results[q])}", flush=True)
    minutes = (time.perf_counter() - started) / 60
    columns = [
        "visible quadrants",
        "baseline masked BCE",
        "CVAE -ELBO (10 particles)",
        "CVAE -L_100",
        "Pyro baseline",
        "Pyro CVAE -ELBO",
    ]
    rows = [
        (q, *(f"{r[name]:.1f} ± {r[f'{name}_se']:.1f}" for name in ("baseline", "elbo", "iw")), *PYRO[q])
        for q, r in results.items()
    ]
    lines = [
        f"{args.data}, {results[1]['n']} test images, {args.epochs} CVAE epochs after {args.baseline_epochs} "
        f"baseline epochs, seed {args.seed}; {minutes:.1f} min",
        "",
        *markdown(columns, rows),
    ]
    write_table(args.out, lines, {str(q): r for q, r in results.items()})


if __name__ == "__main__":
    main()
