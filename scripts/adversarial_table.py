"""VAE, adversarial autoencoders and ALI at one equal budget on binarized MNIST: test NLL (own and
refitted proposal), the Parzen-window log-likelihood of the AAE paper, the class of reconstructions,
active units, and the latent codes of test digits.

Trains four runs of the Gaussian VAE (784-400-Z decoder, diagonal Gaussian guide, the same steps and
seed), differing in the objective and prior only: ``elbo`` (the VAE), ``aae`` with the normal prior,
``aae`` with the mog10 prior, and ``ali`` (with ALI's optimiser and discriminator, ``ALI_OPTIONS``).
Then, on binary test images in a seeded random order (the split is sorted by class):

- NLL = -L_k (``--k`` 5000) on ``--nll-images`` of them, twice: with each run's own guide q(z | x)
  as the proposal (a valid bound for any proposal with a density, but the adversarial guides were
  never trained to cover the posterior), and with a proposal refitted to the frozen decoder (a fresh
  diagonal Gaussian guide trained by the ELBO for ``--refit-epochs``; the same for every run);
- Parzen (the AAE paper's protocol): log (1/S) sum_s N(x; x_s, sigma^2 I) for S = ``--parzen-samples``
  decoder means of prior draws, sigma chosen from a grid on a validation set, averaged over the
  scored images: with ``--mnist FOLDER``, real-valued MNIST test images (t10k / 255), the first
  ``--parzen-validation`` of a seeded order choosing sigma and the rest (up to ``--parzen-images``)
  scored; without it, binary images (sigma on the validation split). The paper: 340 +- 2, 8-D prior;
- reconstruction class accuracy: the vectorisation table's classifier (784-256-10 on 8000 labelled
  test images) on E[x | z = E_q[z | x]] of the other 2000, and its score of 10000 prior samples;
- active units: dimensions u with Cov_x(E_q[z_u]) > 0.01 (Burda et al. 2015);
- a figure: the posterior means of test digits coloured by label, one panel per run (the first two
  principal components when Z > 2).

    python scripts/adversarial_table.py --data binarized-mnist:binarized_mnist.npz --mnist MNIST_FOLDER
"""

from __future__ import annotations

import argparse
import json
import math
import time
from pathlib import Path

import torch
from matplotlib.figure import Figure
from vectorise_table import MNIST_CLASSIFIER_TRAIN, accuracy, classifier

from guides import DiagGuide
from pvae import render, runs
from pvae.bounds import estimate_bounds
from pvae.kinds.image.mnist import read_idx
from pvae.posterior import ACTIVE_THRESHOLD, decode_mean, posterior_means
from pvae.train import TrainConfig, Trainer

from tables import int_flags, markdown, start_script, write_table

ALI_OPTIONS = dict(lr=2e-4, adam_betas=[0.5, 0.999], disc_hidden=[1024, 1024], disc_dropout=0.2)
"""ALI's optimiser (Dumoulin et al. 2017: Adam 1e-4, beta_1 0.5; 2e-4 measured better at 10 epochs), a
discriminator of 1024 units with dropout 0.2 (docs/results.md, the ALI study)."""
RUNS = {  # name -> the options that differ
    "VAE (elbo)": dict(objective="elbo"),
    "AAE, normal prior": dict(objective="aae"),
    "AAE, mog10 prior": dict(objective="aae", prior="mog10"),
    "ALI": dict(objective="ali", **ALI_OPTIONS),
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


def grey_mnist(folder: Path, seed: int, validation: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The real-valued MNIST test images (t10k, pixels / 255) in a seeded order, split into
    (``validation`` images to choose sigma on, the rest to score): the AAE paper's protocol, with a
    held-out part of the test images for its validation split (MNIST's training images are absent)."""
    images = torch.as_tensor(read_idx(folder / "t10k-images-idx3-ubyte.gz", 2051), dtype=torch.float32) / 255
    images = images.reshape(len(images), -1)[torch.randperm(len(images), generator=torch.Generator().manual_seed(seed))]
    return images[:validation], images[validation:]


def refit_guide(model, config: dict, epochs: int, seed: int) -> DiagGuide:
    """A fresh diagonal Gaussian q(z | x) fitted by the ELBO to the frozen decoder: the proposal of the
    "fairer NLL", the same for every run whatever its own guide was trained for."""
    torch.manual_seed(seed)
    train = runs.load_split(config, "train").tensor()
    guide = DiagGuide(model.latent_dim, data_dim=train.shape[1], hidden=[400])
    optimiser = torch.optim.Adam(guide.parameters(), lr=1e-3)
    model.requires_grad_(False)
    for _ in range(epochs):
        for index in torch.randperm(len(train)).split(128):
            x = train[index]
            q = guide.posterior(x)
            z = q.rsample()
            loss = -(model.likelihood(z).log_prob(x) + model.prior(len(x)).log_prob(z) - q.log_prob(z)).mean()
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
    return guide.eval()


def evaluate(run: Path, args: argparse.Namespace, grey: tuple[torch.Tensor, torch.Tensor] | None) -> dict:
    config, model, guide = runs.load_run(run)
    test = runs.load_split(config, "test")
    torch.manual_seed(args.seed)
    order = torch.randperm(len(test), generator=torch.Generator().manual_seed(args.seed))  # sorted by class
    x, labels = test.tensor()[order], test.labels[order]
    means = posterior_means(guide, x)
    active = int((means.var(0, unbiased=False) > ACTIVE_THRESHOLD).sum())
    bounds = estimate_bounds(model, guide, x[: args.nll_images], [args.k], batch_size=20, seed=args.seed)
    refitted = refit_guide(model, config, args.refit_epochs, args.seed)
    fair = estimate_bounds(model, refitted, x[: args.nll_images], [args.k], batch_size=20, seed=args.seed)
    torch.manual_seed(args.seed)
    samples = decode_mean(model, model.prior(args.parzen_samples).sample())
    if grey is None:  # the binary substitute: validation split for sigma, binary test images scored
        valid, scored = runs.load_split(config, "valid").tensor()[: args.parzen_images], x[: args.parzen_images]
    else:
        valid, scored = grey[0], grey[1][: args.parzen_images]
    chosen = max(SIGMAS, key=lambda s: float(parzen(samples, valid, s).mean()))
    scores = parzen(samples, scored, chosen)
    net, held_x, held_labels = mnist_classifier(config, args.seed)
    return {
        **classify_runs(net, model, guide, held_x, held_labels, args.seed),
        "nll": bounds.nll,
        "fair_nll": fair.nll,
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
    p.add_argument("--mnist", type=Path, help="folder with MNIST's t10k-images-idx3-ubyte.gz: Parzen on grey images")
    int_flags(p, latent_dim=8, epochs=10, k=5000, nll_images=200, parzen_samples=10000, parzen_images=9000, seed=0)
    int_flags(p, parzen_validation=1000, refit_epochs=5)
    p.add_argument("--out", type=Path, default=Path("runs/adversarial_table"))
    p.add_argument("--figure", type=Path, help="also save the latent scatter here")
    args = p.parse_args(argv)
    command = start_script()
    started = time.perf_counter()
    grey = None if args.mnist is None else grey_mnist(args.mnist, args.seed, args.parzen_validation)
    results = {}
    for name, options in RUNS.items():
        out = args.out / (name.replace(",", "").replace(" ", "-").replace("(", "").replace(")", "").lower())
        config = TrainConfig.for_model(
            data=args.data, guide="diag", latent_dim=args.latent_dim, epochs=args.epochs, seed=args.seed, **options
        )
        done = (out / runs.CHECKPOINT).is_file() and runs.load_checkpoint(out)["position"]["epoch"] >= args.epochs
        if not done:
            Trainer(config, out, progress=False, log=lambda line: None).train(resume=(out / runs.CHECKPOINT).is_file())
        results[name] = evaluate(out, args, grey)
        shown = {k: v for k, v in results[name].items() if k not in ("means", "labels")}
        print(f"{name}: {json.dumps(shown)}", flush=True)
    figure = args.out / "latent_scatter.png"
    scatter(results, figure)
    if args.figure is not None:
        scatter(results, args.figure)
    minutes = (time.perf_counter() - started) / 60
    columns = [
        "run",
        f"NLL (-L_{args.k}, {args.nll_images} images, own guide)",
        "NLL (refitted proposal)",
        f"Parzen log-likelihood ({args.parzen_samples} samples, {'grey' if grey else 'binary'} test images)",
        "sigma",
        "reconstruction class accuracy",
        "sample score",
        "active units",
    ]
    rows = [
        (
            name,
            f"{r['nll']:.1f}",
            f"{r['fair_nll']:.1f}",
            f"{r['parzen']:.0f} +- {r['parzen_se']:.0f}",
            r["sigma"],
            f"{r['recon_accuracy']:.3f}",
            f"{r['sample_score']:.2f}",
            f"{r['active']} of {args.latent_dim}",
        )
        for name, r in results.items()
    ]
    lines = [
        f"`{command}`: Z = {args.latent_dim}, {args.epochs} epochs, seed {args.seed}; {minutes:.0f} min in all",
        "",
        *markdown(columns, rows),
        f"| AAE paper (Makhzani et al. 2015) | | | {PAPER_PARZEN} | | | | |",  # markdown() would widen its empty cells
    ]
    write_table(args.out, lines)


if __name__ == "__main__":
    main()
