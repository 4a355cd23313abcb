"""ALI's settings one at a time: train one run of the Gaussian VAE's networks (784-400-Z decoder,
diagonal Gaussian guide unless ``--set guide=...``) with ``--objective ali`` (unless ``--set objective=...``)
and the options given, then measure what ALI is
for on binarized MNIST: the class a classifier gives reconstructions x -> E_q[z | x] -> E[x | z]
against the true label, and the classifier score of prior samples.

    python scripts/ali_study.py --data binarized-mnist:binarized_mnist.npz --set lr=1e-4 --set fake_pixels=mean

``--set NAME=VALUE`` is any option of ``pvae train`` (a JSON value, else a string: ``disc_hidden=[1024,1024]``).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from adversarial_table import classify_runs, mnist_classifier

from pvae import runs
from pvae.train import TrainConfig, Trainer

from tables import int_flags, start_script


def value(text: str) -> object:
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", required=True, help="binarized-mnist:FILE (with test labels)")
    p.add_argument("--set", action="append", default=[], metavar="NAME=VALUE", help="an option of pvae train")
    p.add_argument("--out", type=Path, default=Path("runs/ali_study"))
    int_flags(p, latent_dim=8, epochs=10, seed=0)
    args = p.parse_args(argv)
    command = start_script()
    given = dict(item.split("=", 1) for item in args.set)
    options = {"objective": "ali", "guide": "diag", **{k: value(v) for k, v in given.items()}}
    name = ",".join(f"{k}={v}" for k, v in sorted(given.items())) or "defaults"
    out = args.out / f"{name},epochs={args.epochs},seed={args.seed}"
    config = TrainConfig.for_model(
        data=args.data, latent_dim=args.latent_dim, epochs=args.epochs, seed=args.seed, **options
    )
    started = time.perf_counter()
    if not (out / runs.CHECKPOINT).is_file():
        Trainer(config, out, progress=False, log=lambda line: None).train()
    seconds = time.perf_counter() - started
    config, model, guide = runs.load_run(out)
    net, x, labels = mnist_classifier(config, args.seed)
    result = classify_runs(net, model, guide, x, labels, args.seed)
    print(json.dumps({"command": command, "run": name, "train_s": round(seconds), **result}), flush=True)


if __name__ == "__main__":
    main()
