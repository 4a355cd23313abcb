"""SVG-VAE on fonts never seen in training: the image VAE's bound, the command decoder's likelihood,
and how well one font's style carries into every character once drawn as SVG.

Trains two runs of ``--model svg-vae`` with the model's defaults on one font set (default the
fonts matplotlib ships, split 90/10 by font): the model, and the decoder-only floor
(``--ignore-z``: the command decoder reads the class alone, so its likelihood says what z is worth
to it). Then, on each run's test fonts:

- image ELBO and the importance-weighted bound L_K (K = ``--particles``) of log p(image | y), nats
  per glyph: the VAE half;
- command log-likelihood per glyph, log p(commands | z = the posterior mean, y), teacher-forced
  (nats in the standardised argument units, the same for both runs);
- style propagation: each test font's style z = the mean of its glyphs' posterior means, decoded
  into all 62 characters at ``--temperature``, the commands filled (``rasterise``) and compared with
  the font's own glyphs: pixel IoU (intersection over union of the ink) and L1 (the share of
  pixels that differ); the image decoder's pixel means thresholded at 1/2 beside them;
- commands per glyph of the decoded sequences against the originals (the paper's stroke counts).

    python scripts/svg_vae_table.py
"""

from __future__ import annotations

import argparse
import csv
import json
from pathlib import Path

import numpy as np
import torch
from torch.distributions import kl_divergence

from pvae import runs
from pvae.kinds.svg.data import IMAGE_SIZE, split_glyph
from pvae.kinds.svg.outlines import rasterise
from pvae.posterior import encode
from pvae.train import TrainConfig, Trainer

from tables import markdown, start_script, write_table

RUNS = {"svg-vae": {}, "decoder-only floor (--ignore-z)": dict(ignore_z=True)}
MEASURES = [
    "image ELBO / L_K (nats / glyph)",
    "KL",
    "command log-lik (nats / glyph)",
    "style IoU: commands / image decoder",
    "style L1: commands / image decoder",
    "commands per glyph: decoded / original",
    "test fonts (glyphs)",
]


@torch.no_grad()
def image_bounds(model, guide, x, y, particles: int) -> tuple[float, float, float]:
    """Mean image ELBO (one draw), L_K and KL over the glyphs, nats per glyph."""
    elbo, iw, kl = [], [], []
    for rows, labels in zip(x.split(100), y.split(100)):
        q, p = guide.posterior(rows, labels), model.prior(len(rows), labels)
        z = q.sample((particles,))  # (K, B, Z)
        image = model.likelihood(z, labels).terms(rows)[0]  # (K, B)
        weights = image + p.log_prob(z) - q.log_prob(z)
        elbo.append(image[0] - kl_divergence(q, p))
        iw.append(torch.logsumexp(weights, 0) - np.log(particles))
        kl.append(kl_divergence(q, p))
    return (float(torch.cat(t).mean()) for t in (elbo, iw, kl))


def iou(a: np.ndarray, b: np.ndarray) -> float:
    union = np.logical_or(a > 0.5, b > 0.5).sum()
    return float(np.logical_and(a > 0.5, b > 0.5).sum() / union) if union else 1.0


@torch.no_grad()
def evaluate(run: Path, args: argparse.Namespace) -> dict:
    config, model, guide = runs.load_run(run)
    data = runs.load_data(config, ("test",))
    test = data.split("test")
    x, y = test.images, test.labels
    torch.manual_seed(args.seed)
    elbo, iw, kl = image_bounds(model, guide, x, y, args.particles)
    z = encode(guide, x, y)
    commands = torch.cat(
        [model.likelihood(zs, ys).terms(xs)[1] for zs, ys, xs in zip(z.split(100), y.split(100), x.split(100))]
    )
    scores = {"commands": [], "image": []}
    l1 = {"commands": [], "image": []}
    decoded_counts, original_counts = [], []
    classes = torch.arange(model.num_classes)
    fonts = data.fonts["test"]
    for font in np.unique(fonts):
        mine = torch.from_numpy(fonts == font)
        style = z[mine].mean(0)
        rows = model.generate(style.expand(len(classes), -1), classes, args.temperature)
        drawn = {int(c): rasterise(data.commands_of(r), IMAGE_SIZE) for c, r in zip(classes, rows)}
        pixels = torch.sigmoid(model.image_logits(model.code(style.expand(len(classes), -1), classes))) > 0.5
        truth, own_rows = split_glyph(x[mine])
        for label, image, original in zip(y[mine].tolist(), truth.numpy(), own_rows):
            true = image.reshape(IMAGE_SIZE, IMAGE_SIZE)
            for name, guess in (
                ("commands", drawn[label]),
                ("image", pixels[label].reshape(IMAGE_SIZE, IMAGE_SIZE).numpy()),
            ):
                scores[name].append(iou(guess, true))
                l1[name].append(float(np.abs(guess.astype(np.float32) - true).mean()))
            decoded_counts.append(len(data.commands_of(rows[label])))
            original_counts.append(len(data.commands_of(original)))
    return {
        "image_elbo": elbo,
        "image_iw": iw,
        "kl": kl,
        "commands": float(commands.mean()),
        "iou": [float(np.mean(scores[k])) for k in ("commands", "image")],
        "l1": [float(np.mean(l1[k])) for k in ("commands", "image")],
        "counts": [float(np.mean(decoded_counts)), float(np.mean(original_counts))],
        "fonts": int(len(np.unique(fonts))),
        "glyphs": int(len(x)),
    }


def measured(r: dict) -> list[str]:
    """The cells of ``MEASURES`` for one run's ``evaluate`` result."""
    return [
        f"{r['image_elbo']:.1f} / {r['image_iw']:.1f}",
        f"{r['kl']:.1f}",
        f"{r['commands']:.1f}",
        f"{r['iou'][0]:.3f} / {r['iou'][1]:.3f}",
        f"{r['l1'][0]:.3f} / {r['l1'][1]:.3f}",
        f"{r['counts'][0]:.1f} / {r['counts'][1]:.1f}",
        f"{r['fonts']} ({r['glyphs']})",
    ]


def train_minutes(run: Path) -> float:
    """The run's own training time (``timing.csv``), however many invocations made it."""
    with open(run / runs.TIMING) as f:
        return sum(float(row["seconds"]) for row in csv.DictReader(f)) / 60


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", default="svg", help="svg spec (default svg: matplotlib's fonts)")
    p.add_argument("--steps", type=int, help="optimiser steps of each run (default: the model's)")
    p.add_argument("--particles", type=int, default=50, help="K of the image bound L_K")
    p.add_argument("--temperature", type=float, default=0.1, help="the command decoder's tau")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--only", choices=list(RUNS), action="append", help="train and measure only these rows")
    p.add_argument("--out", type=Path, default=Path("runs/svg_vae_table"))
    args = p.parse_args(argv)
    command = start_script()
    results, minutes, configs = {}, {}, {}
    for name, options in RUNS.items():
        if args.only and name not in args.only:
            continue
        out = args.out / ("svg-vae" if not options else "ignore-z")
        steps = {"steps": args.steps} if args.steps else {}
        config = TrainConfig.for_model(model="svg-vae", data=args.data, seed=args.seed, **steps, **options)
        started = runs.has_checkpoint(out)
        if started:
            saved = runs.load_config(out)["train"]
            differ = [k for k, v in config.asdict().items() if k not in ("steps", "epochs") and saved.get(k) != v]
            if differ:
                raise SystemExit(
                    f"{out} holds a run with another --{differ[0].replace('_', '-')}: remove it or use --out"
                )
        if not started or runs.load_checkpoint(out)["position"]["step"] < config.steps:
            Trainer(config, out, progress=False, log=lambda line: None).train(resume=started)
        configs[name] = config
        minutes[name] = train_minutes(out)
        results[name] = evaluate(out, args)
        print(f"{name}: {json.dumps(results[name])} ({minutes[name]:.1f} min)", flush=True)
    columns = ["run", *MEASURES, "steps", "train min"]
    rows = [(name, *measured(r), configs[name].steps, f"{minutes[name]:.0f}") for name, r in results.items()]
    c = next(iter(configs.values()))
    lines = [
        f"`{command}`: the svg-vae defaults (z {c.latent_dim}, MLP encoder {c.hidden}, command LSTM {c.dec_hidden}, "
        f"{c.mixtures} mixture components per argument, KL weight {c.kl_weight:g}, batch {c.batch_size}, lr {c.lr:g}, "
        f"the VAE alone for the "
        f"first {c.vae_first:g} of the steps), seed {args.seed}, fonts {args.data}; test fonts never trained on; "
        f"L_K with K = {args.particles}; commands decoded at tau {args.temperature:g}; "
        f"{sum(minutes.values()):.0f} min of training in all",
        "",
        *markdown(columns, rows),
    ]
    write_table(args.out, lines)


if __name__ == "__main__":
    main()
