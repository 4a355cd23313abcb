"""MusicVAE's Table 1 at a CPU budget: flat vs hierarchical decoders on 2-bar and 16-bar melodies.

Trains four runs of ``--model melody`` on one corpus (default the Essen folk songs) with the model's
defaults, differing only in ``--decoder`` and ``--bars`` (and the steps, one budget per length): the
same guide (BiLSTM, diagonal Gaussian), latent size, LSTM sizes, batch size, optimiser, KL schedule
and seed. Then, on (the first ``--test-windows`` of) each run's test windows, split by tune:

- teacher-forced accuracy: the fraction of steps whose most likely event, given z = the
  posterior mean and the true previous events, is the true event;
- sampled accuracy: the same with the decoder reading its own samples at ``--temperature``
  (MusicVAE's second measure: a decoder that ignores z loses the melody here), with its standard
  error over the windows;
- both again over the note-on steps alone (the right pitch at the right step), and the accuracy
  of always answering "no event" (most steps of a melody hold a note or a rest);
- z read: log p(x | z_x) - log p(x | z_x'), teacher-forced, averaged over the windows, with z_x a
  window's posterior mean and z_x' the next window's: what its own code is worth to the decoder
  (0 for a decoder that ignores z, MusicVAE's posterior collapse);
- test ELBO (nats per window, L_1 averaged over the windows) and KL(q(z|x) || p(z)).

    python scripts/music_table.py
"""

from __future__ import annotations

import argparse
import csv
import json
from pathlib import Path

import torch
from torch.distributions import kl_divergence

from pvae import runs
from pvae.bounds import estimate_bounds
from pvae.kinds.events.generate import reconstruction_accuracy
from pvae.train import TrainConfig, Trainer

from tables import markdown, start_script, write_table

RUNS = {  # name -> the options that differ
    "hierarchical, 16 bars": dict(decoder="hierarchical", bars=16),
    "flat, 16 bars": dict(decoder="flat", bars=16),
    "hierarchical, 2 bars": dict(decoder="hierarchical", bars=2),
    "flat, 2 bars": dict(decoder="flat", bars=2),
}
# Roberts et al. 2018, Table 1 (full-size models, their MIDI melody corpus), teacher-forced / sampled, as
# recalled: the paper's text was not at hand to check them
PAPER = {
    "hierarchical, 16 bars": "~0.92 / ~0.81",
    "flat, 16 bars": "~0.88 / ~0.62",
    "hierarchical, 2 bars": "not in the paper (2 bars are one segment)",
    "flat, 2 bars": "~0.986 / ~0.951",
}


@torch.no_grad()
def evaluate(run: Path, args: argparse.Namespace) -> dict:
    config, model, guide = runs.load_run(run)
    x = runs.load_split(config, "test").head(args.test_windows).tensor()
    torch.manual_seed(args.seed)
    accuracy = reconstruction_accuracy(model, guide, x, args.temperature)
    elbo = estimate_bounds(model, guide, x, [1], batch_size=50, seed=args.seed).mean(1)
    kl = float(kl_divergence(guide.posterior(x), model.prior(len(x))).mean())
    baseline = float((x == 0).double().mean())  # always "no event"
    z = guide.posterior(x).mean
    own, other = model.likelihood(z).log_prob(x), model.likelihood(z.roll(1, 0)).log_prob(x)
    reads_z = float((own - other).mean())  # what a window's own code is worth to the decoder
    return {
        **accuracy,
        "baseline": baseline,
        "reads_z": reads_z,
        "elbo": elbo,
        "kl": kl,
        "windows": len(x),
        "steps": config["data"]["steps"],
    }


MEASURES = (  # the columns of one run's accuracies (``evaluate``), in ``measured``'s order
    "accuracy: teacher-forced / sampled",
    "on note-ons: teacher-forced / sampled",
    "always no-event",
    "z read (nats / window)",
    "test ELBO (nats / window)",
    "KL",
    "test windows",
)


def measured(r: dict) -> list[str]:
    """The cells of ``MEASURES`` for one run's ``evaluate`` result."""
    return [
        f"{r['teacher_forced']:.3f} / {r['sampled']:.3f} +- {r['sampled_se']:.3f}",
        f"{r['teacher_forced_notes']:.3f} / {r['sampled_notes']:.3f}",
        f"{r['baseline']:.3f}",
        f"{r['reads_z']:.1f}",
        f"{r['elbo']:.1f}",
        f"{r['kl']:.1f}",
        str(r["windows"]),
    ]


def train_minutes(run: Path) -> float:
    """The run's own training time (``timing.csv``), however many invocations made it."""
    with open(run / runs.TIMING) as f:
        return sum(float(row["seconds"]) for row in csv.DictReader(f)) / 60


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", default="folk:essen", help="melody spec (default folk:essen)")
    p.add_argument("--steps-2", type=int, help="optimiser steps of the 2-bar runs (default: the model's)")
    p.add_argument("--steps-16", type=int, default=4500, help="optimiser steps of the 16-bar runs (default 4500)")
    p.add_argument("--test-windows", type=int, default=500)
    p.add_argument("--temperature", type=float, default=0.1, help="sampled accuracy: the decoder's tau")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--only", choices=list(RUNS), action="append", help="train and measure only these rows")
    p.add_argument("--out", type=Path, default=Path("runs/music_table"))
    args = p.parse_args(argv)
    command = start_script()
    results, minutes, configs = {}, {}, {}
    for name, options in RUNS.items():
        if args.only and name not in args.only:
            continue
        out = args.out / name.replace(",", "").replace(" ", "-")
        steps = args.steps_16 if options["bars"] == 16 else args.steps_2
        config = TrainConfig.for_model(
            model="melody", data=args.data, seed=args.seed, **({"steps": steps} if steps else {}), **options
        )
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
    columns = ["model", *MEASURES, "steps", "train min", "paper (recalled): teacher-forced / sampled"]
    rows = [
        (name, *measured(r), configs[name].steps, f"{minutes[name]:.0f}", PAPER[name]) for name, r in results.items()
    ]
    c = next(iter(configs.values()))
    lines = [
        f"`{command}`: the melody model's defaults (z {c.latent_dim}, encoder BiLSTM {c.enc_hidden}, decoder "
        f"LSTMs {c.dec_hidden}, batch {c.batch_size}, lr {c.lr:g}, KL weight {c.kl_weight:g} with free bits "
        f"{c.kl_floor:g}, transposition up to +-{c.transpose}), seed {args.seed}; {args.test_windows} test windows "
        f"at most, sampled at tau {args.temperature:g} (+- one standard error over the windows); "
        f"{sum(minutes.values()):.0f} min of training in all",
        "",
        *markdown(columns, rows),
    ]
    write_table(args.out, lines)


if __name__ == "__main__":
    main()
