"""Gradient signal-to-noise ratio of IWAE, IWAE-STL and IWAE-DReG as K grows (Rainforth et al. 2018).

For one fixed model and guide and one fixed batch of B datapoints, draws G independent estimates
of the gradient of the batch-mean loss with each estimator at each K, and reports for the guide's
parameters and the model's separately

    SNR = mean over parameter elements i of |mean_g grad_i| / std_g grad_i

(Rainforth et al.'s per-element SNR, averaged; elements whose gradient is zero in every draw, such
as encoder weights of pixels that are off in the whole batch, are left out). Rainforth et al.
show that IWAE's guide SNR falls like 1/sqrt(K) while its model SNR grows like sqrt(K); Tucker et
al. (2018) that DReG's guide SNR grows like sqrt(K) instead. Model gradients of IWAE, IWAE-STL and
IWAE-DReG are the same estimator (only the guide's differ), so their model columns agree up to the
draws. Model and guide are put in eval mode (no dropout noise), so the spread is the Monte Carlo
noise alone.

Both laws are asymptotic: they need K large against the spread of the normalised weights w / p(x)
(the effective sample size ESS = 1 / sum_k w~_k^2 near its limit K / (1 + Var(w / p(x)))). While a
few particles carry the weight (ESS/K of a percent or less) the guide gradient is close to the path
gradient at the heaviest particle, whatever K, and both SNRs change little. The table's ESS/K
column (the mean over the batch at each K) says which regime a run is in.

By default a small VAE (784-200-10, Bernoulli pixels) is first trained on the built-in digits with
IWAE, K = 5, into --out (reused when run again); --run RUN uses any trained run folder instead.
Prints a table, writes a log-log plot of SNR against K (--plot) and the numbers (OUT/snr.json).

    python scripts/gradient_snr.py                      # ~3 min on one busy CPU core
    python scripts/gradient_snr.py --guide iaf --ks 1 10 100 --draws 500
"""

from __future__ import annotations

import argparse
import json
import math
import time
from pathlib import Path

import pyro
import torch
from matplotlib.figure import Figure

from pvae import runs
from pvae.objectives import OBJECTIVES, make_objective
from pvae.train import TrainConfig, Trainer

from tables import markdown, start_script

ESTIMATORS = ("iwae", "iwae-stl", "iwae-dreg")


def train_small(args: argparse.Namespace) -> Path:
    """Train (or finish training) the default small VAE in OUT/model; returns the run folder."""
    out = args.out / "model"
    config = TrainConfig(
        model="gaussian",
        guide=args.guide,
        objective="iwae",
        particles=5,
        data=args.data,
        epochs=10**6,  # --train-steps ends it
        steps=args.train_steps,
        batch_size=64,
        latent_dim=args.latent_dim,
        hidden=[200],
        activation="tanh",
        seed=args.seed,
    )
    lines: list[str] = []
    print(f"training the small VAE ({args.train_steps} IWAE steps) in {out}", flush=True)
    Trainer(config, out, progress=False, log=lines.append).train(resume=(out / runs.CHECKPOINT).is_file())
    print(f"  {lines[-1]}" if lines else "", flush=True)
    return out


def snr(total: torch.Tensor, squares: torch.Tensor, draws: int) -> float:
    """Mean over elements of |mean| / std from running sums of draws (elements never nonzero left out)."""
    mean = total / draws
    variance = ((squares - draws * mean**2) / (draws - 1)).clamp(min=0)
    keep = squares > 0
    return float((mean[keep].abs() / variance[keep].sqrt()).mean())


def measure(model, guide, x, y, estimator: str, k: int, draws: int) -> dict[str, float]:
    """SNR of the guide's and the model's gradients over ``draws`` estimates of ``estimator`` at K = ``k``."""
    objective = make_objective(estimator, k)
    groups = {"guide": list(guide.parameters()), "model": list(model.parameters())}
    params = groups["guide"] + groups["model"]
    sums = {
        name: [torch.zeros(sum(p.numel() for p in group), dtype=torch.float64)] * 2 for name, group in groups.items()
    }
    started = time.perf_counter()
    with pyro.validation_enabled(False):
        for _ in range(draws):
            loss = objective.differentiable_loss(model.model, guide.guide, x, y) / x.shape[0]
            grads = torch.autograd.grad(loss, params, allow_unused=True)
            flat = [torch.zeros_like(p) if g is None else g for p, g in zip(params, grads)]
            split = len(groups["guide"])
            for name, part in (("guide", flat[:split]), ("model", flat[split:])):
                g = torch.cat([t.reshape(-1) for t in part]).double()
                total, squares = sums[name]
                sums[name] = [total + g, squares + g * g]
    out = {name: snr(*sums[name], draws) for name in groups}
    out["seconds"] = time.perf_counter() - started
    with torch.no_grad(), pyro.validation_enabled(False):
        weights = torch.softmax(objective.log_weights(model.model, guide.guide, x, y)[0], dim=0)
    out["ess_fraction"] = float((1 / weights.pow(2).sum(0)).mean() / k)
    return out


def noise_floor(draws: int) -> float:
    """The expected estimate of |mean| / std for a gradient element whose mean is zero:
    E|N(0, 1/G)| = sqrt(2 / (pi G)). Estimated SNRs near it are indistinguishable from zero."""
    return math.sqrt(2 / (math.pi * draws))


def plot(results: list[dict], path: Path, title: str, draws: int) -> None:
    fig = Figure(figsize=(9, 3.6))
    axes = fig.subplots(1, 2)
    for ax, group in zip(axes, ("guide", "model")):
        for estimator in dict.fromkeys(r["estimator"] for r in results):
            rows = [r for r in results if r["estimator"] == estimator]
            ax.plot([r["k"] for r in rows], [r[group] for r in rows], marker="o", label=estimator)
        ax.axhline(noise_floor(draws), color="grey", linestyle="--", linewidth=1, label="zero-mean gradient")
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("K (particles)")
        ax.set_ylabel("SNR, mean over elements")
        ax.set_title(f"{group} gradients")
        ax.grid(alpha=0.3, which="both")
        ax.legend()
    fig.suptitle(title, fontsize=9)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110, bbox_inches="tight")


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--run", type=Path, help="a trained run folder to measure (default: train a small VAE)")
    p.add_argument("--ks", type=int, nargs="+", default=[1, 5, 50, 500], metavar="K", help="particle counts")
    p.add_argument("--estimators", nargs="+", default=list(ESTIMATORS), choices=OBJECTIVES, metavar="NAME")
    p.add_argument("--draws", type=int, default=200, metavar="G", help="gradient estimates per estimator and K")
    p.add_argument("--data-size", type=int, default=8, metavar="B", help="datapoints in the fixed batch")
    p.add_argument("--guide", default="diag", help="guide of the small VAE trained here (e.g. diag, iaf)")
    p.add_argument("--data", default="digits:2000", help="data of the small VAE trained here")
    p.add_argument("--latent-dim", type=int, default=10, help="latent size of the small VAE trained here")
    p.add_argument("--train-steps", type=int, default=1500, help="IWAE (K=5) steps of the small VAE")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=1, help="torch threads (small ops: one is fastest)")
    p.add_argument("--out", type=Path, default=Path("runs/gradient_snr"), help="where results (and the VAE) go")
    p.add_argument("--plot", type=Path, help="the log-log figure (default OUT/snr.png)")
    p.add_argument("--replot", action="store_true", help="only redraw the figure from OUT/snr.json")
    args = p.parse_args(argv)
    if args.replot:
        saved_path = args.out / "snr.json"
        if not saved_path.is_file():
            p.error(f"--replot: {saved_path} does not exist (run without --replot first)")
        saved = json.loads(saved_path.read_text())
        path = args.plot or args.out / "snr.png"
        plot(saved["results"], path, saved["title"], saved["draws"])
        print(f"plot: {path}")
        return
    if args.draws < 2 or args.data_size < 1 or min(args.ks) < 1:
        p.error("--draws must be at least 2, --data-size and every K at least 1")
    command = start_script()
    torch.set_num_threads(args.threads)

    run = args.run if args.run is not None else train_small(args)
    config, model, guide = runs.load_run(run)
    if guide is None:
        p.error(f"{run}: a decoder-only model has no guide")
    split = runs.load_split(config, "train")
    x = split.tensor()[: args.data_size] if hasattr(split, "tensor") else split.images[: args.data_size]
    labels = None if getattr(split, "labels", None) is None else split.labels[: args.data_size]
    y = model.condition(x, labels)
    pyro.set_rng_seed(args.seed)

    results = []
    for estimator in args.estimators:
        for k in sorted(args.ks):
            row = {"estimator": estimator, "k": k, **measure(model, guide, x, y, estimator, k, args.draws)}
            results.append(row)
            print(
                f"  {estimator:>10} K={k:<5} guide SNR {row['guide']:.4f}  model SNR {row['model']:.4f}  "
                f"ESS/K {row['ess_fraction']:.4f}",
                flush=True,
            )

    lines = [
        f"Command: `{command}` ({config['model']['name']} model, {config['guide']['name']} guide, run {run}; "
        f"{args.draws} draws on {len(x)} datapoints)",
        "",
        *markdown(
            ["estimator", "K", "guide SNR", "model SNR", "ESS/K", "seconds"],
            [
                (
                    r["estimator"],
                    r["k"],
                    *(f"{r[key]:.4f}" for key in ("guide", "model", "ess_fraction")),
                    f"{r['seconds']:.1f}",
                )
                for r in results
            ],
        ),
    ]
    table = "\n".join(lines)
    print(table)
    path = args.plot or args.out / "snr.png"
    title = f"{config['model']['name']} / {config['guide']['name']}, {args.draws} draws, B = {len(x)}"
    plot(results, path, title, args.draws)
    args.out.mkdir(parents=True, exist_ok=True)
    saved = {"command": command, "run": str(run), "draws": args.draws, "title": title, "results": results}
    (args.out / "snr.json").write_text(json.dumps(saved, indent=2))
    print(f"plot: {path}")
    if any(not math.isfinite(r[g]) for r in results for g in ("guide", "model")):
        print("note: some SNRs are not finite (every gradient element constant over the draws)")


if __name__ == "__main__":
    main()
