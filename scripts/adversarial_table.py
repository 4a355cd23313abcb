"""VAE, adversarial autoencoders and ALI at one equal budget on binarized MNIST: test NLL, the
Parzen-window log-likelihood of the AAE paper, active units, and the latent codes of test digits.

Trains four runs of the Gaussian VAE (784-400-Z decoder, diagonal Gaussian guide, the same
optimiser, steps and seed), differing in the objective and prior only: ``elbo`` (the VAE), ``aae``
with the normal prior, ``aae`` with the mog10 prior, and ``ali``. Then, on the test split:

Test images are taken in a seeded random order (the split is sorted by class).

- NLL = -L_k (``--k`` 5000) on ``--nll-images`` of them: the same importance-weighted evaluator
  for every run, with each run's own guide q(z | x) as the proposal. L_k is a lower bound on
  log p(x) for any proposal with a density, so it is valid for the adversarial runs too, but
  their guides were never trained to cover the posterior (the AAE's q only has to reconstruct and
  fool D; ALI's only to fool D), so their bound is looser for the same model;
- Parzen: log (1/S) sum_s N(x; x_s, sigma^2 I) for S = ``--parzen-samples`` decoder means of
  prior draws, sigma chosen on the validation split from a grid, averaged over ``--parzen-images``
  test images (the AAE paper's metric; its MNIST figure is 340 +- 2 with an 8-D prior);
- active units: dimensions u with Cov_x(E_q[z_u]) > 0.01 (Burda et al. 2015);
- a figure: the posterior means of test digits coloured by label, one panel per run (the first two
  principal components when Z > 2).

    python scripts/adversarial_table.py --data binarized-mnist:binarized_mnist.npz
"""

from __future__ import annotations

import argparse
import json
import math
import time
from pathlib import Path

import torch
from matplotlib.figure import Figure

from pvae import render, runs
from pvae.bounds import estimate_bounds
from pvae.posterior import ACTIVE_THRESHOLD, decode_mean, posterior_means
from pvae.train import TrainConfig, Trainer

from tables import int_flags, markdown, start_script, write_table
from vectorise_table import MNIST_CLASSIFIER_TRAIN, accuracy, classifier

RUNS = {  # name -> the options that differ
    "VAE (elbo)": dict(objective="elbo"),
    "AAE, normal prior": dict(objective="aae"),
    "AAE, mog10 prior": dict(objective="aae", prior="mog10"),
    "ALI": dict(objective="ali"),
}
PAPER_PARZEN = "340 +- 2"  # Makhzani et al. 2015, MNIST, 8-D Gaussian prior
SIGMAS = (0.05, 0.1, 0.15, 0.2, 0.25, 0.3, 0.4)


@torch.no_grad()
def parzen(samples: torch.Tensor, x: torch.Tensor, sigma: float, chunk: int = 100) -> torch.Tensor:
    """log (1/S) sum_s N(x; x_s, sigma^2 I) for each row of ``x`` ``(N, D)``, samples ``(S, D)``."""
    d = x.shape[1]
    out = []
    for xb in x.split(chunk):
        sq = torch.cdist(xb.double(), samples.double()) ** 2  # (n, S)
        log_k = -sq / (2 * sigma**2) - d * math.log(sigma * math.sqrt(2 * math.pi))
        out.append(torch.logsumexp(log_k, 1) - math.log(len(samples)))
    return torch.cat(out)


def mnist_classifier(config: dict, seed: int) -> tuple[torch.nn.Module, torch.Tensor, torch.Tensor]:
    """The vectorisation table's classifier (784-256-10) trained on 8000 test images drawn at random
    (the only labelled split), and the other 2000 with their labels, to evaluate on."""
    test = runs.load_split(config, "test")
    order = torch.randperm(len(test), generator=torch.Generator().manual_seed(seed))  # sorted by class
    x, labels = test.tensor()[order], test.labels[order]
    fit, rest = slice(0, MNIST_CLASSIFIER_TRAIN), slice(MNIST_CLASSIFIER_TRAIN, None)
    return classifier(x[fit], labels[fit], seed), x[rest], labels[rest]


@torch.no_grad()
def classify_runs(net, model, guide, x: torch.Tensor, labels: torch.Tensor, seed: int, samples: int = 10000) -> dict:
    """The classifier's accuracy on the reconstructions E[x | z = E_q[z | x]] of ``x``, and its
    score of ``samples`` decoded prior draws, exp(E_x KL(p(y | x) || p(y))) (1 to 10; Salimans et
    al. 2016's inception score, with this classifier)."""
    torch.manual_seed(seed)
    recon = decode_mean(model, posterior_means(guide, x))
    probs = torch.softmax(net(decode_mean(model, model.prior(samples).sample())), -1)
    marginal = probs.mean(0, keepdim=True)
    score = float(torch.exp((probs * (probs.clamp_min(1e-12).log() - marginal.log())).sum(-1).mean()))
    return {"recon_accuracy": accuracy(net, recon, labels), "sample_score": score}


def evaluate(run: Path, args: argparse.Namespace) -> dict:
    config, model, guide = runs.load_run(run)
    test = runs.load_split(config, "test")
    valid = runs.load_split(config, "valid")
    torch.manual_seed(args.seed)
    order = torch.randperm(len(test), generator=torch.Generator().manual_seed(args.seed))  # sorted by class
    x, labels = test.tensor()[order], test.labels[order]
    means = posterior_means(guide, x)
    active = int((means.var(0, unbiased=False) > ACTIVE_THRESHOLD).sum())
    bounds = estimate_bounds(model, guide, x[: args.nll_images], [args.k], batch_size=20, seed=args.seed)
    samples = decode_mean(model, model.prior(args.parzen_samples).sample())
    chosen = max(SIGMAS, key=lambda s: float(parzen(samples, valid.tensor()[: args.parzen_images], s).mean()))
    scores = parzen(samples, x[: args.parzen_images], chosen)
    return {
        "nll": bounds.nll,
        "parzen": float(scores.mean()),
        "parzen_se": float(scores.std() / math.sqrt(len(scores))),
        "sigma": chosen,
        "active": active,
        "means": means[:2000].numpy(),
        "labels": labels[:2000].numpy(),
    }


def scatter(results: dict[str, dict], path: Path) -> None:
    fig = Figure(figsize=(4 * len(results), 4))
    for ax, (name, r) in zip(fig.subplots(1, len(results)), results.items()):
        points = render.principal_components(r["means"])
        for label in range(10):
            chosen = r["labels"] == label
            ax.scatter(points[chosen, 0], points[chosen, 1], s=2, label=str(label))
        ax.set_title(name, fontsize=9)
    fig.axes[0].legend(markerscale=4, fontsize=6, ncol=2)
    fig.savefig(path, dpi=110, bbox_inches="tight")


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", required=True, help="binarized-mnist:FILE (train, valid and test with test labels)")
    int_flags(p, latent_dim=8, epochs=10, k=5000, nll_images=200, parzen_samples=10000, parzen_images=1000, seed=0)
    p.add_argument("--out", type=Path, default=Path("runs/adversarial_table"))
    p.add_argument("--figure", type=Path, help="also save the latent scatter here")
    args = p.parse_args(argv)
    command = start_script()
    started = time.perf_counter()
    results = {}
    for name, options in RUNS.items():
        out = args.out / (name.replace(",", "").replace(" ", "-").replace("(", "").replace(")", "").lower())
        config = TrainConfig.for_model(
            data=args.data, guide="diag", latent_dim=args.latent_dim, epochs=args.epochs, seed=args.seed, **options
        )
        done = (out / runs.CHECKPOINT).is_file() and runs.load_checkpoint(out)["position"]["epoch"] >= args.epochs
        if not done:
            Trainer(config, out, progress=False, log=lambda line: None).train(resume=(out / runs.CHECKPOINT).is_file())
        results[name] = evaluate(out, args)
        shown = {k: v for k, v in results[name].items() if k not in ("means", "labels")}
        print(f"{name}: {json.dumps(shown)}", flush=True)
    figure = args.out / "latent_scatter.png"
    scatter(results, figure)
    if args.figure is not None:
        scatter(results, args.figure)
    minutes = (time.perf_counter() - started) / 60
    columns = [
        "run",
        f"NLL (-L_{args.k}, {args.nll_images} images)",
        f"Parzen log-likelihood ({args.parzen_samples} samples, {args.parzen_images} images)",
        "sigma",
        "active units",
    ]
    rows = [
        (
            name,
            f"{r['nll']:.1f}",
            f"{r['parzen']:.0f} +- {r['parzen_se']:.0f}",
            r["sigma"],
            f"{r['active']} of {args.latent_dim}",
        )
        for name, r in results.items()
    ]
    lines = [
        f"`{command}`: Z = {args.latent_dim}, {args.epochs} epochs, seed {args.seed}; {minutes:.0f} min in all",
        "",
        *markdown(columns, rows),
        f"| AAE paper (Makhzani et al. 2015) | | {PAPER_PARZEN} | | |",  # markdown() would widen its empty cells
    ]
    write_table(args.out, lines)


if __name__ == "__main__":
    main()
