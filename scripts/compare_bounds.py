"""Does training with the IWAE bound beat the ELBO? Burda et al. (2015), Table 1, at a CPU budget.

Trains the paper's 1-stochastic-layer network (784-200-200-50, tanh, Gaussian q with exp scale,
Bernoulli p with output bias at the logit of the training mean; Adam with betas 0.99/0.999 and
eps 1e-4, batch 20, the paper's 3^i-epoch learning-rate stages, cut at --epochs) on the fixed
binarisation of MNIST with three objectives, from the same seed:

- VAE (k=1): the ELBO with one sample;
- VAE (k=K): the ELBO averaged over K samples;
- IWAE (k=K): the importance-weighted bound with K samples.

Then reports, for each: test NLL = -L_5000 (``pvae.bounds``), the test ELBO, and active units
(Cov_x(E_q[z_u]) > 0.01 over the first 500 training images), beside the paper's NLL after 3280
epochs (REFERENCES.md). Each model is a run folder under --out; an interrupted comparison resumes
where it stopped when run again with the same flags.

    python scripts/compare_bounds.py --epochs 20 --particles 5 --test-limit 1000
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch

from pvae import runs
from pvae.bounds import estimate_bounds
from pvae.inspect import ACTIVE_THRESHOLD, posterior_means
from pvae.memory import keep_freed_memory
from pvae.train import TrainConfig, Trainer

DEFAULT_DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "binarized_mnist" / "binarized_mnist.npz"
PAPER_NLL = {("VAE", 1): 86.76, ("VAE", 5): 86.47, ("VAE", 50): 86.35, ("IWAE", 5): 85.54, ("IWAE", 50): 84.78}


def paper_config(objective: str, particles: int, args: argparse.Namespace) -> TrainConfig:
    return TrainConfig(
        model="gaussian",
        guide="mlp",
        objective=objective,
        particles=particles,
        data=f"binarized-mnist:{args.data}",
        epochs=args.epochs,
        batch_size=args.batch_size,
        lr=1e-3,
        latent_dim=50,
        hidden=[200, 200],
        activation="tanh",
        likelihood="bernoulli",
        posterior_scale="exp",
        adam_betas=[0.99, 0.999],
        adam_eps=1e-4,
        lr_schedule="iwae",
        train_limit=args.train_limit,
        seed=args.seed,
    )


def train_or_resume(config: TrainConfig, out: Path) -> float:
    """Train the run in ``out`` (resuming it if a checkpoint is there); returns training seconds."""
    started = time.perf_counter()
    Trainer(config, out, progress=True).train(resume=(out / runs.CHECKPOINT).is_file())
    return time.perf_counter() - started


def evaluate(out: Path, test_limit: int | None, seed: int) -> dict:
    config, model, guide = runs.load_run(out)
    test = runs.load_split(config, "test")
    order = torch.randperm(len(test), generator=torch.Generator().manual_seed(seed))
    images = test.images[order[:test_limit]] if test_limit else test.images  # the test split is sorted by label
    bounds = estimate_bounds(model, guide, images, ks=(1, 5000), seed=seed, progress=True)
    means = posterior_means(guide, runs.load_split(config, "train").images[:500])
    active = int((means.var(0, unbiased=False) > ACTIVE_THRESHOLD).sum())
    return {
        "nll": bounds.nll,
        "nll_stderr": bounds.stderr(5000),
        "elbo": bounds.mean(1),
        "elbo_stderr": bounds.stderr(1),
        "active_units": active,
        "test_images": bounds.n,
    }


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--epochs", type=int, default=20)
    p.add_argument("--particles", type=int, default=5, metavar="K")
    p.add_argument("--batch-size", type=int, default=20)
    p.add_argument("--train-limit", type=int, metavar="N", help="first N training images only")
    p.add_argument("--test-limit", type=int, metavar="N", help="N random test images (seeded) for the bounds")
    p.add_argument("--data", type=Path, default=DEFAULT_DATA, help="binarized_mnist.npz")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", type=Path, default=Path("runs/compare_bounds"))
    args = p.parse_args(argv)
    keep_freed_memory()
    command = f"python {' '.join([Path(sys.argv[0]).as_posix(), *sys.argv[1:]])}"
    print(f"command: {command}", flush=True)
    k = args.particles
    plan = [("VAE", 1, "elbo", 1), ("VAE", k, "elbo", k), ("IWAE", k, "iwae", k)]
    results = []
    started = time.perf_counter()
    for name, train_k, objective, particles in plan:
        out = args.out / f"{name.lower()}-k{train_k}"
        print(f"== {name} (k={train_k}): {out}", flush=True)
        seconds = train_or_resume(paper_config(objective, particles, args), out)
        row = {"model": name, "k": train_k, "train_seconds": round(seconds, 1)}
        row.update(evaluate(out, args.test_limit, args.seed))
        results.append(row)
    wall = time.perf_counter() - started

    lines = [
        f"Command: `{command}` ({wall / 60:.1f} min wall time on {torch.get_num_threads()} CPU threads)",
        "",
        "| model (training k) | test NLL, ours | test NLL, paper | test ELBO, ours | active units, ours |",
        "|---|---|---|---|---|",
    ]
    for r in results:
        paper = PAPER_NLL.get((r["model"], r["k"]))
        lines.append(
            f"| {r['model']} (k={r['k']}) | {r['nll']:.2f} ± {r['nll_stderr']:.2f} | "
            f"{'—' if paper is None else f'{paper:.2f}'} | {r['elbo']:.2f} ± {r['elbo_stderr']:.2f} | "
            f"{r['active_units']} |"
        )
    lines.append("")
    lines.append(
        f"NLL = -L_5000 and ELBO = L_1 on {results[0]['test_images']} test images, ± one standard error; "
        f"{args.epochs} epochs here, 3280 in the paper (which also binarised MNIST dynamically)."
    )
    table = "\n".join(lines)
    print(table)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "table.md").write_text(table + "\n")
    (args.out / "results.json").write_text(json.dumps({"command": command, "results": results}, indent=2))


if __name__ == "__main__":
    main()
