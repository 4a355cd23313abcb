"""Image vectorisation at one equal budget: strokes, primitive, renderer and guide against the
accuracy of a classifier on the vectorised images (Mihai & Hare 2021's measure) and, where the guide
has a density, the test NLL.

For each dataset, objective (--objectives: ``elbo``, the renderer inside the likelihood, the talk's
approaches 1 and 2; ``lfvi``, likelihood-free variational inference with the hard rasteriser as a
simulator that is only sampled, approach 3, where --renderers names the renderer that carries the
decoder's gradient) and each N in --segments, primitive, renderer and guide, trains
``pvae train --model strokes-raster`` for --steps steps of --batch-size images (its own run folder
under --out; a finished run is reused), then on the test split:

- ``log p(x, z)`` (delta guide: the joint at the point estimate, what it trains on) or the ELBO
  (diag), nats per image, on the evaluation images;
- NLL = -L_k (k = --k, 5000 by default) on the first --nll-images test images, diag guide only (a
  point estimate has no density);
- accuracy: a small classifier (784-256-10 MLP, trained here on labelled original images) on the
  SVG files of the vectorised images rendered back to pixels (``pvae.kinds.image.generate.svg_images``), beside
  its accuracy on the original images.

Datasets: ``digits`` (built-in; the classifier trains on its train split) and, given
``--binarized-mnist FILE`` (train/valid/test with test labels), MNIST: the VAE trains on its
train split; the classifier on 8000 test images drawn at random (the split is sorted by class),
and both are evaluated on the other 2000.

    python scripts/vectorise_table.py [--binarized-mnist binarized_mnist.npz] [--no-digits] [--steps 600]
"""

from __future__ import annotations

import argparse
import itertools
import json
import time
from pathlib import Path

import torch
from torch import nn

from pvae import runs
from pvae.bounds import elbo_sums, estimate_bounds
from pvae.kinds.base import KINDS
from pvae.kinds.image import generate as imaging
from pvae.kinds.image.data import binarize
from pvae.layers import batched
from pvae.posterior import point_estimate
from pvae.raster import BEZIER_PIECES
from pvae.train import TrainConfig, Trainer

from tables import markdown, start_script, write_table

MNIST_CLASSIFIER_TRAIN = 8000  # binarized MNIST: test images the classifier trains on; the rest evaluate


def classifier(x: torch.Tensor, labels: torch.Tensor, seed: int, epochs: int = 8) -> nn.Module:
    """A 784-256-10 MLP trained on images ``x`` ``(N, 784)`` in [0, 1] and their labels."""
    torch.manual_seed(seed)
    net = nn.Sequential(nn.Linear(x.shape[1], 256), nn.ReLU(), nn.Linear(256, 10))
    optimiser = torch.optim.Adam(net.parameters(), lr=1e-3)
    for _ in range(epochs):
        for index in torch.randperm(len(x)).split(128):
            loss = nn.functional.cross_entropy(net(x[index]), labels[index])
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
    return net.eval()


@torch.no_grad()
def accuracy(net: nn.Module, x: torch.Tensor, labels: torch.Tensor) -> float:
    return float((net(x).argmax(-1) == labels).float().mean())


def datasets(args: argparse.Namespace) -> dict[str, dict]:
    """Per dataset: its --data spec, the classifier, and the evaluation images (originals) with labels."""
    out = {}
    if not args.no_digits:
        digits = KINDS["image"].load("digits")
        train, test = digits.split("train"), digits.split("test")
        out["digits"] = dict(
            spec="digits",
            net=classifier(train.images, train.labels, args.seed),
            originals=test.images[: args.eval_images],
            labels=test.labels[: args.eval_images],
        )
    if args.binarized_mnist is not None:
        spec = f"binarized-mnist:{args.binarized_mnist.resolve()}"
        test = KINDS["image"].load(spec).split("test")
        order = torch.randperm(len(test), generator=torch.Generator().manual_seed(args.seed))  # sorted by class
        fit, rest = order[:MNIST_CLASSIFIER_TRAIN], order[MNIST_CLASSIFIER_TRAIN:]
        out["binarized MNIST"] = dict(
            spec=spec,
            net=classifier(test.images[fit], test.labels[fit], args.seed),
            originals=test.images[rest][: args.eval_images],
            labels=test.labels[rest][: args.eval_images],
        )
    return out


LFVI_OPTIONS = dict(simulator="hard", lr=2e-4, adam_betas=[0.5, 0.999], disc_dropout=0.2)
"""The third approach: the hard rasteriser sampled, the renderer for the decoder's gradient; ALI's optimiser."""


def train(
    args: argparse.Namespace,
    spec: str,
    segments: int,
    primitive: str,
    renderer: str,
    guide: str,
    objective: str,
    path: str = "windowed",
) -> Path:
    """Train one run of the grid (or finish it); ``path``: the soft renderer's windowed path or its
    dense reference (``StrokeRasterVAE.windowed``), the same model and numbers to 1e-6 a pixel."""
    suffix = ("" if objective == "elbo" else f"-{objective}") + ("" if path == "windowed" else f"-{path}")
    out = args.out / f"{spec.split(':')[0]}-{segments}-{primitive}-{renderer}-{guide}{suffix}"
    config = TrainConfig.for_model(
        objective=objective,
        **(LFVI_OPTIONS if objective == "lfvi" else {}),
        model="strokes-raster",
        guide=guide,
        data=spec,
        segments=segments,
        primitive=primitive,
        renderer=renderer,
        steps=args.steps,
        batch_size=args.batch_size,
        seed=args.seed,
    )
    if not (out / runs.CHECKPOINT).is_file() or runs.load_checkpoint(out)["position"]["step"] < args.steps:
        started = time.perf_counter()
        trainer = Trainer(config, out, progress=False, log=lambda line: None)
        trainer.model.windowed = path == "windowed"
        trainer.train(resume=(out / runs.CHECKPOINT).is_file())
        (out / "train_seconds.txt").write_text(f"{time.perf_counter() - started:.1f}\n")
    return out


@torch.no_grad()
def evaluate(run: Path, data: dict, args: argparse.Namespace) -> dict[str, float]:
    config, model, guide = runs.load_run(run)
    x = data["originals"]
    if config["data"]["binarize"] == "dynamic":  # as the run's evaluations see grey images
        x = binarize(x, seed=args.seed + 1)
    torch.manual_seed(args.seed)
    recon, kl, n = elbo_sums(model, guide, batched(x, None, 250), seed=args.seed)
    result = {"joint_or_elbo": (recon - kl) / n, "train_s": float((run / "train_seconds.txt").read_text())}
    if guide.density:  # a rendered point holds N x pieces x pixels numbers: about 1 GB of them at once
        pieces = model.segments * (BEZIER_PIECES if model.primitive == "bezier" else 1)
        bounds = estimate_bounds(
            model, guide, x[: args.nll_images], [args.k], 10, points_per_chunk=50_000 // pieces, seed=args.seed
        )
        result["nll"] = bounds.nll
    folder = runs.output_dir(run, "vectorise_table", n=len(x), seed=args.seed)
    paths = []
    for start, (xb, _) in zip(itertools.count(0, 250), batched(x, None, 250)):
        z = point_estimate(guide.posterior(xb))
        paths += imaging.write_svgs(model, z, folder, first=start)
    vectorised = imaging.svg_images(paths, model.size)
    result["accuracy"] = accuracy(data["net"], vectorised, data["labels"])
    return result


def speed_ups(rows: list[dict]) -> list[str]:
    """Lines saying, for each run trained with both soft paths, dense train s / windowed train s."""
    key = ("data", "objective", "N", "primitive", "renderer", "guide")
    dense = {tuple(r[k] for k in key): r["train_s"] for r in rows if r["path"] == "dense"}
    pairs = [
        (r, dense[tuple(r[k] for k in key)] / r["train_s"])
        for r in rows
        if r["path"] == "windowed" and tuple(r[k] for k in key) in dense
    ]
    if not pairs:
        return []
    lines = ["", "End-to-end training speed-up of the windowed soft renderer (dense train s / windowed train s):", ""]
    lines += [f"- {r['data']}, N = {r['N']}, {r['primitive']}, {r['guide']}: {ratio:.2f}x" for r, ratio in pairs]
    return lines


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--binarized-mnist", type=Path, metavar="FILE", help="binarized MNIST .npz with test labels")
    p.add_argument("--no-digits", action="store_true", help="leave out the built-in digits")
    p.add_argument("--segments", type=int, nargs="+", default=[4, 8, 16])
    p.add_argument("--primitives", nargs="+", default=["line", "bezier"])
    p.add_argument("--renderers", nargs="+", default=["soft", "neural"])
    p.add_argument("--guides", nargs="+", default=["delta", "diag"])
    p.add_argument(
        "--objectives",
        nargs="+",
        default=["elbo"],
        choices=["elbo", "lfvi"],
        help="elbo (approaches 1 and 2: the renderer in the likelihood), lfvi (3: the hard renderer sampled)",
    )
    p.add_argument(
        "--soft-paths",
        nargs="+",
        default=["windowed"],
        choices=["windowed", "dense"],
        help="the soft renderer's paths to train with, one after the other in this process (default windowed; "
        "windowed dense: the end-to-end speed-up of the window, as a ratio of train s)",
    )
    p.add_argument("--steps", type=int, default=600, help="training steps of every run (default 600)")
    p.add_argument("--batch-size", type=int, default=64, help="images per step (default 64)")
    p.add_argument("--eval-images", type=int, default=500, help="test images vectorised and classified (500)")
    p.add_argument("--nll-images", type=int, default=20, help="test images of the NLL estimate (default 20)")
    p.add_argument("--k", type=int, default=5000, help="importance samples of the NLL estimate (default 5000)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", type=Path, default=Path("runs/vectorise_table"))
    args = p.parse_args(argv)
    command = start_script()
    started = time.perf_counter()
    rows = []
    for name, data in datasets(args).items():
        originals = accuracy(data["net"], data["originals"], data["labels"])
        print(f"{name}: classifier accuracy on {len(data['labels'])} original test images {originals:.3f}", flush=True)
        grid = itertools.product(args.objectives, args.segments, args.primitives, args.renderers, args.guides)
        for objective, segments, primitive, renderer, guide in grid:
            for path in args.soft_paths if renderer == "soft" else ["windowed"]:
                run = train(args, data["spec"], segments, primitive, renderer, guide, objective, path)
                result = evaluate(run, data, args)
                row = dict(data=name, objective=objective, N=segments, primitive=primitive, renderer=renderer)
                row.update(guide=guide, path=path if renderer == "soft" else "-")
                row.update(result)
                row["original_accuracy"] = originals
                print(json.dumps(row), flush=True)
                rows.append(row)
    minutes = (time.perf_counter() - started) / 60
    columns = [
        "data",
        "objective",
        "N",
        "primitive",
        "renderer",
        "guide",
        "soft path",
        "log p(x, z) / ELBO",
        f"NLL (L_{args.k}, {args.nll_images} images)",
        "accuracy: vectorised",
        "originals",
        "train s",
    ]
    cells = [
        (
            *(r[key] for key in ("data", "objective", "N", "primitive", "renderer", "guide", "path")),
            f"{r['joint_or_elbo']:.1f}",
            f"{r['nll']:.1f}" if "nll" in r else "no density",
            f"{r['accuracy']:.3f}",
            f"{r['original_accuracy']:.3f}",
            f"{r['train_s']:.0f}",
        )
        for r in rows
    ]
    lines = [
        f"`{command}`: {args.steps} steps of {args.batch_size} images per run, seed {args.seed}; "
        f"{minutes:.0f} min in all",
        "",
        *markdown(columns, cells),
        *speed_ups(rows),
    ]
    write_table(args.out, lines, rows)


if __name__ == "__main__":
    main()
