"""The ``pvae`` command: thin flag parsing over the library
(``pvae train | bounds | inspect | sample | reconstruct | interpolate | complete | style``)."""

from __future__ import annotations

import argparse
import dataclasses
import signal
import sys
import warnings
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path

from pvae.errors import UserError
from pvae.memory import keep_freed_memory


class _Parser(argparse.ArgumentParser):
    """An argparse parser whose errors are one line on stderr (usage stays in ``--help``)."""

    def error(self, message: str):
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def _train_parser(sub) -> None:
    from pvae.objectives import OBJECTIVES
    from pvae.train import LR_SCHEDULES, TrainConfig

    d = TrainConfig()
    p = sub.add_parser(
        "train",
        help="train a model/guide pair with SVI",
        description="Train a VAE with SVI and write a run folder (config, checkpoint, metrics, figures). "
        "Defaults shown are the image models'; --model sketch brings sketch-rnn's own (see README).",
    )
    # Defaults are None so that a resumed run can tell which flags were given.
    p.add_argument(
        "--model", help=f"generative model: gaussian, linear, cvae, completion or sketch (default {d.model})"
    )
    p.add_argument(
        "--guide",
        help="guide q(z|x): mlp, linear, rnn, or diag, lowrank, full, iaf on the data's encoder "
        f"(default {d.guide}; rnn for sketch)",
    )
    p.add_argument("--objective", choices=OBJECTIVES, help=f"training objective (default {d.objective})")
    p.add_argument("--particles", type=int, metavar="K", help=f"samples per datapoint (default {d.particles})")
    p.add_argument(
        "--data",
        help="digits[:N[:SEED]], mnist:DIR, binarized-mnist:FILE, glyphs, sketch:FILE.npz, "
        f"quickdraw:FILE.ndjson (default {d.data}; glyphs for sketch)",
    )
    p.add_argument("--epochs", type=int, help=f"epochs to train in all (default {d.epochs})")
    p.add_argument("--steps", type=int, help="stop after this many optimiser steps in all")
    p.add_argument("--batch-size", type=int, help=f"datapoints per step (default {d.batch_size})")
    p.add_argument("--seed", type=int, help=f"random seed (default {d.seed})")
    p.add_argument("--out", type=Path, help="run folder (default runs/MODEL-OBJECTIVE-TIME)")
    p.add_argument("--resume", action="store_true", help="continue the run in --out from its checkpoint")
    p.add_argument("--device", default="cpu", help="torch device (default cpu)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")

    n = p.add_argument_group("networks")
    n.add_argument("--latent-dim", type=int, metavar="Z", help=f"latent dimensions (default {d.latent_dim})")
    n.add_argument("--hidden", type=int, nargs="+", metavar="H", help=f"MLP hidden sizes (default {d.hidden[0]})")
    n.add_argument("--activation", help=f"MLP hidden activation (default {d.activation})")
    n.add_argument("--likelihood", choices=("bernoulli", "gaussian"), help=f"pixel likelihood (default {d.likelihood})")
    n.add_argument("--obs-scale", type=float, help="fixed pixel std of a gaussian likelihood (default: learned)")
    n.add_argument("--posterior-scale", choices=("softplus", "exp"), help="how the MLP guide makes sigma")
    n.add_argument("--rank", type=int, help=f"lowrank guide: columns of the covariance factor (default {d.rank})")
    n.add_argument("--flows", type=int, help=f"iaf guide: IAF steps (default {d.flows})")
    n.add_argument("--flow-hidden", type=int, metavar="H", help="iaf guide: MADE hidden units (default 2 Z, >= 16)")
    n.add_argument("--enc-hidden", type=int, help=f"sketch encoder LSTM size (default {d.enc_hidden})")
    n.add_argument("--dec-hidden", type=int, help=f"sketch decoder LSTM size (default {d.dec_hidden})")
    n.add_argument("--mixtures", type=int, metavar="M", help=f"sketch mixture components (default {d.mixtures})")
    n.add_argument("--layer-norm", action="store_true", default=None, help="layer-normalised decoder LSTM (slower)")
    n.add_argument("--recurrent-dropout", type=float, help="decoder recurrent dropout probability (slower)")
    n.add_argument("--unconditional", action="store_true", default=None, help="decoder-only sketch model")
    n.add_argument("--mask-pen", action="store_true", default=None, help="pen loss only up to each sketch's end")

    c = p.add_argument_group("conditioning")
    c.add_argument(
        "--conditional",
        action="store_true",
        default=None,
        help="class labels as the condition y of model and guide (cvae: always; sketch: per glyph class)",
    )
    c.add_argument("--learned-prior", action="store_true", default=None, help="cvae: p(z | y) learned per class")
    c.add_argument("--visible-quadrants", type=int, metavar="Q", help="completion: quadrants given, 1-3 (default 1)")
    c.add_argument("--baseline-epochs", type=int, help="completion: baseline network epochs first (default 10)")

    g = p.add_argument_group("data")
    g.add_argument("--train-limit", type=int, metavar="N", help="train on the first N training examples only")
    g.add_argument("--max-seq-len", type=int, help=f"drop longer sketches (default {d.max_seq_len})")
    g.add_argument("--augment-scale", type=float, help="random x/y stretch of sketches (sketch default 0.15)")
    g.add_argument("--augment-drop", type=float, help="point-drop probability of sketches (sketch default 0.10)")

    o = p.add_argument_group("optimiser")
    o.add_argument("--lr", type=float, help=f"Adam learning rate (default {d.lr})")
    o.add_argument("--adam-betas", type=float, nargs=2, metavar="B", help="Adam betas (default 0.9 0.999)")
    o.add_argument("--adam-eps", type=float, help=f"Adam epsilon (default {d.adam_eps})")
    o.add_argument(
        "--lr-schedule", choices=LR_SCHEDULES, help="constant; iwae (Burda et al.); sketch (decay to --min-lr)"
    )
    o.add_argument("--lr-decay", type=float, help=f"sketch schedule: lr decay per step (default {d.lr_decay})")
    o.add_argument("--min-lr", type=float, help=f"sketch schedule: the lr it decays to (default {d.min_lr})")
    o.add_argument("--clip-value", type=float, help="clip every gradient element to +-this (sketch default 1.0)")

    k = p.add_argument_group("KL controls")
    k.add_argument("--kl-weight", type=float, help="weight w of the KL term (default 1; sketch 0.5)")
    k.add_argument(
        "--kl-weight-units",
        choices=("nats", "sketch-rnn"),
        help="w on KL in nats, or sketch-rnn's w on KL/Z against recon/T (default nats; sketch: sketch-rnn)",
    )
    k.add_argument("--kl-weight-start", type=float, help="annealing: the weight at step 0 (sketch 0.01)")
    k.add_argument("--kl-anneal-rate", type=float, help="annealing: w - (w - start) rate^step (sketch 0.99995)")
    k.add_argument("--kl-floor", type=float, help="nats per latent dimension not penalised (sketch 0.2)")
    k.add_argument(
        "--kl-floor-mode",
        choices=("total", "per-dim"),
        help="floor the mean KL per dimension (sketch-rnn) or each dimension (free bits)",
    )


def _train(args: argparse.Namespace) -> int:
    from pvae import runs
    from pvae.train import Interrupted, TrainConfig, train

    names = [f.name for f in dataclasses.fields(TrainConfig)]
    given = {name: getattr(args, name) for name in names if getattr(args, name) is not None}
    if args.resume:
        if args.out is None:
            raise UserError("--resume needs --out DIR, the run folder to continue")
        saved = runs.load_config(args.out)["train"]
        for name, value in given.items():
            if name not in ("epochs", "steps") and value != saved.get(name):
                flag = "--" + name.replace("_", "-")
                raise UserError(
                    f"{flag} {value}: differs from the run's {saved.get(name)}; a resumed run keeps its config"
                )
        config = TrainConfig(**{**saved, **given})
    else:
        config = TrainConfig.for_model(**given)
    out = args.out or Path("runs") / f"{config.model}-{config.objective}-{datetime.now():%Y%m%d-%H%M%S}"
    try:
        train(config, out, resume=args.resume, device=args.device, progress=not args.no_progress)
    except Interrupted as e:
        print(f"pvae train: {e}", file=sys.stderr)
        return 130
    print(f"done: {out}", file=sys.stderr)
    return 0


def _bounds_parser(sub) -> None:
    from pvae.bounds import DEFAULT_KS

    p = sub.add_parser(
        "bounds",
        help="ELBO and importance-weighted bounds L_k of a trained run",
        description="Estimate the ELBO and L_k per datapoint on a split; "
        "write RUN/bounds.json and RUN/figures/bounds.png.",
    )
    p.add_argument("run", type=Path, help="run folder")
    p.add_argument(
        "--k", type=int, nargs="+", default=list(DEFAULT_KS), help="importance samples (default 1 5 50 500 5000)"
    )
    p.add_argument("--split", default="test", help="data split (default test)")
    p.add_argument("--limit", type=int, metavar="N", help="only the first N datapoints")
    p.add_argument("--batch-size", type=int, default=100, help="datapoints evaluated together (default 100)")
    p.add_argument("--seed", type=int, default=0, help="random seed of the draws (default 0)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")


def _bounds(args: argparse.Namespace) -> int:
    from pvae.bounds import bounds_for_run

    bad = [k for k in args.k if k < 1]
    if bad:
        raise UserError(f"--k {bad[0]}: every k must be at least 1")
    for flag, value in (("--limit", args.limit), ("--batch-size", args.batch_size)):
        if value is not None and value < 1:
            raise UserError(f"{flag} {value}: must be at least 1")
    bounds = bounds_for_run(
        args.run, sorted(set(args.k)), args.split, args.limit, args.batch_size, args.seed, progress=not args.no_progress
    )
    print(bounds.table())
    print(f"written: {args.run / 'bounds.json'}, {args.run / 'figures' / 'bounds.png'}", file=sys.stderr)
    return 0


def _inspect_parser(sub) -> None:
    p = sub.add_parser(
        "inspect",
        help="posterior inspection figures and numbers of a trained run",
        description="Latent scatter, traversals, active units, KL per dimension, importance-resampled "
        "reconstructions, posterior predictive and prior samples: RUN/figures/ and RUN/inspect.json.",
    )
    p.add_argument("run", type=Path, help="run folder")
    p.add_argument("--split", default="test", help="data split (default test)")
    p.add_argument("--limit", type=int, metavar="N", help="only the first N datapoints")
    p.add_argument("--seed", type=int, default=0, help="random seed (default 0)")


def _inspect(args: argparse.Namespace) -> int:
    from pvae.inspect import inspect_run

    if args.limit is not None and args.limit < 1:
        raise UserError(f"--limit {args.limit}: must be at least 1")
    result = inspect_run(args.run, args.split, args.limit, args.seed)
    print(
        f"{result['active_units']} of {result['latent_dim']} units active "
        f"(Cov_x(E_q[z_u]) > {result['active_threshold']}) on {result['n']} {result['split']} datapoints; "
        f"KL(q || p) {result['kl_total']:.2f} nats per datapoint"
    )
    print(f"written: {args.run / 'inspect.json'}, figures in {args.run / 'figures'}", file=sys.stderr)
    return 0


def _generation_parsers(sub) -> None:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("run", type=Path, help="run folder")
    common.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    p = sub.add_parser("sample", parents=[common], help="draw sketches (SVG and PNG) or images into RUN/samples/")
    p.add_argument("-n", type=int, help="how many (default 20 sketches, 100 images)")
    p.add_argument("--label", help="class-conditional runs: the class to draw (a number, or a glyph character)")
    p.add_argument("--temperature", type=float, default=0.5, help="sampling temperature tau (default 0.5)")
    p.add_argument("--prior", action="store_true", help="from the prior, not from the codes of test sketches")
    p = sub.add_parser("reconstruct", parents=[common], help="reconstructions of test sketches at temperatures 0.1-1")
    p.add_argument("-n", type=int, default=8, help="test sketches (default 8)")
    p = sub.add_parser("interpolate", parents=[common], help="linear and spherical interpolation between two sketches")
    p.add_argument("--pair", type=int, nargs=2, default=[0, 1], metavar="I", help="test sketch indices (default 0 1)")
    p.add_argument("--steps", type=int, default=10, help="sketches in each strip (default 10)")
    p.add_argument("--temperature", type=float, default=0.1, help="sampling temperature (default 0.1)")
    p = sub.add_parser(
        "complete", parents=[common], help="continue the first part of test sketches (red), or complete images"
    )
    p.add_argument("-n", type=int, help="test sketches or images (default 5 sketches, 8 images)")
    p.add_argument("--samples", type=int, default=4, help="continuations of each (default 4)")
    p.add_argument("--fraction", type=float, default=0.5, help="the part given (default 0.5)")
    p.add_argument("--temperature", type=float, default=0.5, help="sampling temperature (default 0.5)")
    p = sub.add_parser(
        "style",
        parents=[common],
        help="one font's style in all 62 characters (class-conditional glyph runs)",
        description="Encode one glyph of a font and decode its code as every character 0-9 A-Z a-z "
        "(SVG in RUN/samples/, PNG in RUN/figures/); with --to, interpolate between two fonts' styles.",
    )
    p.add_argument("--font", type=Path, required=True, help="a .ttf or .otf font file")
    p.add_argument("--glyph", default="A", help="the character to encode (default A)")
    p.add_argument("--to", type=Path, metavar="FONT", help="a second font: write a style interpolation sheet")
    p.add_argument("--steps", type=int, default=8, help="interpolation rows with --to (default 8)")
    p.add_argument("--temperature", type=float, default=0.1, help="sampling temperature (default 0.1)")


def _generate(args: argparse.Namespace) -> int:
    from pvae import imaging, runs, sketching

    for flag in ("n", "samples", "steps"):
        value = getattr(args, flag, None)
        if value is not None and value < 1:
            raise UserError(f"{'-n' if flag == 'n' else '--' + flag} {value}: must be at least 1")
    temperature = getattr(args, "temperature", 1.0)
    if not temperature > 0:
        raise UserError(f"--temperature {temperature}: must be positive")
    if args.command == "style":
        if args.to is None:
            paths = sketching.style_run(args.run, args.font, args.glyph, args.temperature, args.seed)
        else:
            paths = sketching.font_interpolation_run(
                args.run, args.font, args.to, args.steps, args.glyph, temperature=args.temperature, seed=args.seed
            )
    elif runs.load_config(args.run)["data"]["kind"] == "image":
        if args.command == "sample":
            paths = imaging.sample_run(args.run, args.n or 100, args.label, args.seed)
        elif args.command == "complete":
            paths = imaging.complete_run(args.run, args.n or 8, args.samples, args.seed)
        else:
            raise UserError(f"{args.run}: pvae {args.command} draws sketches; this is a run of image data")
    elif args.command == "sample":
        paths = sketching.sample_run(args.run, args.n or 20, args.temperature, args.prior, args.seed, args.label)
    elif args.command == "reconstruct":
        paths = sketching.reconstruct_run(args.run, args.n, seed=args.seed)
    elif args.command == "interpolate":
        paths = sketching.interpolate_run(args.run, *args.pair, args.steps, args.temperature, args.seed)
    else:
        paths = sketching.complete_run(args.run, args.n or 5, args.samples, args.fraction, args.temperature, args.seed)
    print("written: " + ", ".join(map(str, paths)))
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``pvae`` console script."""
    parser = _Parser(prog="pvae", description="Variational autoencoders as Pyro model/guide pairs.")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    _train_parser(sub)
    _bounds_parser(sub)
    _inspect_parser(sub)
    _generation_parsers(sub)
    args = parser.parse_args(argv)
    keep_freed_memory()
    # Data warnings (dropped sketches, skipped fonts) are for users: one line each, no source line.
    warnings.formatwarning = lambda message, category, *rest, **kw: f"pvae {args.command}: warning: {message}\n"
    # SIGTERM (a scheduler stopping the job) is handled like Ctrl-C: save, then stop.
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    try:
        commands = {"train": _train, "bounds": _bounds, "inspect": _inspect}
        return commands.get(args.command, _generate)(args)
    except UserError as e:
        print(f"pvae {args.command}: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"pvae {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
