"""The ``pvae`` command: thin flag parsing over the library (``pvae train | bounds | inspect``)."""

from __future__ import annotations

import argparse
import dataclasses
import signal
import sys
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
        description="Train a VAE with SVI and write a run folder (config, checkpoint, metrics, figures).",
    )
    # Defaults are None so that a resumed run can tell which flags were given.
    p.add_argument("--model", help=f"generative model (default {d.model})")
    p.add_argument("--guide", help=f"guide q(z|x) (default {d.guide})")
    p.add_argument("--objective", choices=OBJECTIVES, help=f"training objective (default {d.objective})")
    p.add_argument("--particles", type=int, metavar="K", help=f"samples per datapoint (default {d.particles})")
    p.add_argument("--data", help=f"digits[:N[:SEED]], mnist:DIR or binarized-mnist:FILE (default {d.data})")
    p.add_argument("--epochs", type=int, help=f"epochs to train in all (default {d.epochs})")
    p.add_argument("--batch-size", type=int, help=f"datapoints per step (default {d.batch_size})")
    p.add_argument("--lr", type=float, help=f"Adam learning rate (default {d.lr})")
    p.add_argument("--latent-dim", type=int, metavar="Z", help=f"latent dimensions (default {d.latent_dim})")
    p.add_argument("--hidden", type=int, nargs="+", metavar="H", help=f"hidden layer sizes (default {d.hidden[0]})")
    p.add_argument("--activation", help=f"hidden activation (default {d.activation})")
    p.add_argument("--likelihood", choices=("bernoulli", "gaussian"), help=f"pixel likelihood (default {d.likelihood})")
    p.add_argument("--obs-scale", type=float, help="fixed pixel std of a gaussian likelihood (default: learned)")
    p.add_argument(
        "--posterior-scale",
        choices=("softplus", "exp"),
        help=f"how the guide makes sigma (default {d.posterior_scale})",
    )
    p.add_argument("--adam-betas", type=float, nargs=2, metavar="B", help="Adam betas (default 0.9 0.999)")
    p.add_argument("--adam-eps", type=float, help=f"Adam epsilon (default {d.adam_eps})")
    p.add_argument("--lr-schedule", choices=LR_SCHEDULES, help="constant, or iwae: Burda et al.'s 3^i-epoch stages")
    p.add_argument("--train-limit", type=int, metavar="N", help="train on the first N training examples only")
    p.add_argument("--seed", type=int, help=f"random seed (default {d.seed})")
    p.add_argument("--out", type=Path, help="run folder (default runs/MODEL-OBJECTIVE-TIME)")
    p.add_argument("--resume", action="store_true", help="continue the run in --out from its checkpoint")
    p.add_argument("--device", default="cpu", help="torch device (default cpu)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")


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
            if name != "epochs" and value != saved.get(name):
                flag = "--" + name.replace("_", "-")
                raise UserError(
                    f"{flag} {value}: differs from the run's {saved.get(name)}; a resumed run keeps its config"
                )
        config = TrainConfig(**{**saved, **given})
    else:
        config = TrainConfig(**given)
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


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``pvae`` console script."""
    parser = _Parser(prog="pvae", description="Variational autoencoders as Pyro model/guide pairs.")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    _train_parser(sub)
    _bounds_parser(sub)
    _inspect_parser(sub)
    args = parser.parse_args(argv)
    keep_freed_memory()
    # SIGTERM (a scheduler stopping the job) is handled like Ctrl-C: save, then stop.
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    try:
        return {"train": _train, "bounds": _bounds, "inspect": _inspect}[args.command](args)
    except UserError as e:
        print(f"pvae {args.command}: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"pvae {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
