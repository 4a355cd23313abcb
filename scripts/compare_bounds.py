"""Does training with the IWAE bound beat the ELBO? Burda et al. (2015), Table 1, at a CPU budget.

Trains the paper's 1-stochastic-layer network (784-200-200-50, tanh, Gaussian q with exp scale,
Bernoulli p with output bias at the logit of the training mean, batch 20) on the fixed
binarisation of MNIST with three objectives, from the same seed:

- VAE (k=1): the ELBO with one sample (``meanfield``: the KL in closed form);
- VAE (k=K): the ELBO averaged over K samples;
- IWAE (k=K): the importance-weighted bound with K samples.

The optimiser is the paper's (Adam 1e-3, betas 0.99/0.999, eps 1e-4, the 3^i-epoch learning-rate
stages), which trained every row better at 20 epochs than ``pvae train``'s (betas 0.9/0.999, eps
1e-8, constant lr; ``--pvae-optimiser``), though the latter is better at 3 (scripts/elbo_gap.py).

Then reports, for each: test NLL = -L_5000 (``pvae.bounds``), the test ELBO, and active units
(Cov_x(E_q[z_u]) > 0.01 over the first 500 training images), beside the paper's NLL after 3280
epochs (Burda, Grosse and Salakhutdinov 2015, "Importance Weighted Autoencoders", Table 1). Each
model is a run folder under --out; an interrupted comparison resumes where it stopped when run
again with the same flags, and a finished run's bounds are kept in its folder
(``evaluation.json``), so several invocations on one --out (say, one per CPU core, each with its
own --objectives/--guides) can be gathered into one table by a last run with them all.
Training times are the runs' own (the ``seconds`` column of metrics.csv).

--objectives and --guides compare other estimators and guides at the same budget, every objective
with every guide, in one table: NAME or NAME:K (K defaults to --particles), e.g. IWAE against
IWAE-DReG with a diagonal and an IAF guide (the guides share the paper's encoder; see ``guides``):

    python scripts/compare_bounds.py --epochs 20 --particles 5 --test-limit 1000
    python scripts/compare_bounds.py --epochs 20 --objectives iwae iwae-dreg --guides mlp iaf
"""

from __future__ import annotations

import argparse
import csv
import json
import time
from pathlib import Path

import torch

from pvae import runs
from pvae.bounds import estimate_bounds
from pvae.objectives import OBJECTIVES
from pvae.posterior import ACTIVE_THRESHOLD, posterior_means
from pvae.train import TrainConfig, Trainer

from tables import markdown, start_script, write_table

PAPER_NLL = {("VAE", 1): 86.76, ("VAE", 5): 86.47, ("VAE", 50): 86.35, ("IWAE", 5): 85.54, ("IWAE", 50): 84.78}
LABELS = {"meanfield": "VAE", "iwae": "IWAE", "elbo": "VAE-MC", "elbo-stl": "VAE-STL"}
DEFAULT_OBJECTIVES = ["meanfield:1", "meanfield", "iwae"]  # VAE k=1, VAE k=K, IWAE k=K: the paper's comparison
PAPER_OPTIMISER = {"adam_betas": [0.99, 0.999], "adam_eps": 1e-4, "lr_schedule": "iwae"}
DEFAULT_GUIDE = "mlp"  # the paper's diagonal Gaussian q


def label(objective: str) -> str:
    """The row name: VAE and IWAE as in the paper, else the estimator's name (IWAE-DReG, ...)."""
    return LABELS.get(objective, objective.upper().replace("DREG", "DReG"))


def parse_objective(spec: str, default_k: int) -> tuple[str, int]:
    """``NAME`` or ``NAME:K`` -> (name, K)."""
    name, _, k = spec.partition(":")
    if name not in OBJECTIVES or (k and not (k.isdigit() and int(k) >= 1)):
        raise argparse.ArgumentTypeError(f"{spec}: give NAME or NAME:K with NAME one of {', '.join(OBJECTIVES)}")
    return name, int(k) if k else default_k


def paper_config(objective: str, particles: int, args: argparse.Namespace, guide: str = DEFAULT_GUIDE) -> TrainConfig:
    return TrainConfig(
        model="gaussian",
        guide=guide,
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
        train_limit=args.train_limit,
        seed=args.seed,
        **({} if args.pvae_optimiser else PAPER_OPTIMISER),
    )


def train_or_resume(config: TrainConfig, out: Path) -> tuple[int, float]:
    """Train the run in ``out`` (resuming it if a checkpoint is there); returns its epochs and
    training seconds, from its timing.csv (so they count a resumed run's earlier sessions too)."""
    Trainer(config, out, progress=True).train(resume=(out / runs.CHECKPOINT).is_file())
    with (out / runs.TIMING).open(newline="") as f:
        rows = list(csv.DictReader(f))
    return int(rows[-1]["epoch"]), sum(float(r["seconds"]) for r in rows)


def evaluate_once(out: Path, epochs: int, test_limit: int | None, seed: int) -> dict:
    """``evaluate``, or its result kept in ``out/evaluation.json`` from the same epochs, limit and seed."""
    path, key = out / "evaluation.json", {"epochs": epochs, "test_limit": test_limit, "seed": seed}
    if path.is_file():
        saved = json.loads(path.read_text())
        if saved.get("key") == key:
            return saved["result"]
    result = evaluate(out, test_limit, seed)
    path.write_text(json.dumps({"key": key, "result": result}, indent=2))
    return result


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
    p.add_argument("--data", type=Path, required=True, help="binarized_mnist.npz, the fixed binarisation")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument(
        "--pvae-optimiser", action="store_true", help="pvae train's Adam (betas 0.9/0.999, eps 1e-8, constant lr)"
    )
    p.add_argument("--out", type=Path, default=Path("runs/compare_bounds"))
    p.add_argument(
        "--objectives",
        nargs="+",
        default=DEFAULT_OBJECTIVES,
        metavar="NAME[:K]",
        help=f"training objectives, K defaulting to --particles (default {' '.join(DEFAULT_OBJECTIVES)})",
    )
    p.add_argument(
        "--guides", nargs="+", default=[DEFAULT_GUIDE], metavar="NAME", help="guides, e.g. mlp iaf (default mlp)"
    )
    args = p.parse_args(argv)
    try:
        objectives = [parse_objective(spec, args.particles) for spec in args.objectives]
    except argparse.ArgumentTypeError as e:
        p.error(f"--objectives {e}")
    command = start_script()
    plan = [(guide, objective, k) for guide in args.guides for objective, k in objectives]
    results = []
    started = time.perf_counter()
    for guide, objective, k in plan:
        name = label(objective)
        out = args.out / (f"{name.lower()}-k{k}" + ("" if guide == DEFAULT_GUIDE else f"-{guide}"))
        print(f"== {name} (k={k}){'' if guide == DEFAULT_GUIDE else f', {guide} guide'}: {out}", flush=True)
        epochs, seconds = train_or_resume(paper_config(objective, k, args, guide), out)
        row = {"model": name, "k": k, "objective": objective, "guide": guide, "train_seconds": round(seconds, 1)}
        row.update(evaluate_once(out, epochs, args.test_limit, args.seed))
        results.append(row)
    wall = time.perf_counter() - started
    show_guide = args.guides != [DEFAULT_GUIDE]

    columns = [
        "model (training k)",
        "test NLL, ours",
        "test NLL, paper",
        "test ELBO, ours",
        "active units, ours",
        "training min",
    ]
    rows = []
    for r in results:
        paper = PAPER_NLL.get((r["model"], r["k"])) if r["guide"] == DEFAULT_GUIDE else None
        guide = f", {r['guide']} guide" if show_guide else ""
        rows.append(
            [
                f"{r['model']} (k={r['k']}){guide}",
                f"{r['nll']:.2f} ± {r['nll_stderr']:.2f}",
                "—" if paper is None else f"{paper:.2f}",
                f"{r['elbo']:.2f} ± {r['elbo_stderr']:.2f}",
                r["active_units"],
                f"{r['train_seconds'] / 60:.1f}",
            ]
        )
    lines = [
        f"Command: `{command}` ({wall / 60:.1f} min wall time for this invocation on "
        f"{torch.get_num_threads()} CPU threads)",
        "",
        *markdown(columns, rows),
        "",
        f"NLL = -L_5000 and ELBO = L_1 on {results[0]['test_images']} test images, ± one standard error; "
        f"{args.epochs} epochs here, 3280 in the paper (which also binarised MNIST dynamically).",
    ]
    write_table(args.out, lines, {"command": command, "results": results})


if __name__ == "__main__":
    main()
