"""The ``pvae`` command: thin flag parsing over the library
(``pvae train | bounds | inspect | sample | reconstruct | interpolate | complete | vectorise | style |
report | compare``).

The parsers read the registries (every option, model and kind), so everything is imported at the
start; only ``--nproc``'s launcher is imported where it is used. The kinds are reached through their
registry alone (``pvae.kinds.base``)."""

from __future__ import annotations

import argparse
import difflib
import os
import signal
import sys
import warnings
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path

import torch

from pvae import distributed, runs
from pvae.bounds import DEFAULT_KS, bounds_for_run
from pvae.compare import compare_runs, elbo_figure, format_table
from pvae.errors import UserError
from pvae.kinds.base import KINDS, absolute_spec, generate, spec_forms
from pvae.memory import keep_freed_memory
from pvae.options import TrainConfig, add_arguments, all_options, given_values
from pvae.posterior import inspect_run
from pvae.report import write_report
from pvae.train import Interrupted, train


class _Parser(argparse.ArgumentParser):
    """An argparse parser whose errors are one line on stderr (usage stays in ``--help``)."""

    def error(self, message: str):
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def _train_parser(sub) -> None:
    p = sub.add_parser(
        "train",
        help="train a model/guide pair with SVI",
        description="Train a VAE with SVI and write a run folder (config, checkpoint, metrics, figures). "
        f"--data takes one of: {', '.join(spec_forms())}. A model's own defaults (e.g. sketch-rnn's for --model "
        "sketch) are shown beside each option's.",
    )
    p.add_argument("--out", type=Path, help="run folder (default runs/MODEL-OBJECTIVE-TIME)")
    p.add_argument("--resume", action="store_true", help="continue the run in --out from its checkpoint")
    p.add_argument("--device", default="cpu", help="torch device (default cpu; cuda: one GPU per rank)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument(
        "--nproc",
        type=int,
        metavar="N",
        help="train data-parallel in N processes on this machine (torchrun --standalone --nproc-per-node N)",
    )
    add_arguments(p)


def _launch(nproc: int, argv: Sequence[str], out: Path | None) -> int:
    """``pvae train --nproc N ...``: the same command in N processes, started by torchrun's own
    launcher (``elastic_launch``, as ``torchrun --standalone``); a failed rank ends the others and
    is reported in one line."""
    import logging  # lazy, as the launcher below: only --nproc uses them (CLI start-up time)
    import uuid

    from torch.distributed.elastic.multiprocessing.api import SignalException
    from torch.distributed.elastic.multiprocessing.errors import ChildFailedError
    from torch.distributed.launcher.api import LaunchConfig, elastic_launch

    if nproc < 1:
        raise UserError(f"--nproc {nproc}: must be at least 1")
    rest, skip = [], False
    for arg in argv:
        if skip:
            skip = False
        elif arg == "--nproc":
            skip = True
        elif not arg.startswith("--nproc="):
            rest.append(arg)
    os.environ.setdefault("OMP_NUM_THREADS", "1")  # as torchrun does: N processes share the cores
    logging.getLogger("torch.distributed.elastic").setLevel(logging.CRITICAL)  # its report: ours is one line
    config = LaunchConfig(
        min_nodes=1,
        max_nodes=1,
        nproc_per_node=nproc,
        run_id=str(uuid.uuid4()),
        rdzv_backend="c10d",
        rdzv_endpoint="localhost:0",
        max_restarts=0,
    )
    try:
        elastic_launch(config, sys.executable)("-m", "pvae.cli", *rest)
    except SignalException as e:  # Ctrl-C or SIGTERM to the launcher: the ranks stopped and saved
        return 128 + e.sigval
    except ChildFailedError as e:
        rank, failure = e.get_first_failure()
        if failure.exitcode in (128 + signal.SIGINT, 128 + signal.SIGTERM):
            return failure.exitcode  # stopped by a signal, checkpoint saved: said by rank 0
        if failure.exitcode < 0:  # killed: the others were stopped
            resume = out is not None and runs.has_checkpoint(out)
            again = f"; continue with: pvae train --resume --out {out}" if resume else ""
            raise UserError(
                f"rank {rank} of {nproc} was killed (signal {-failure.exitcode}), so the others were stopped{again}"
            ) from None
        return failure.exitcode  # the rank said why (an error line)
    return 0


def _train(args: argparse.Namespace) -> int:
    ranks, device = distributed.start(args.device)
    try:
        code = _train_ranks(args, ranks, device)
        ranks.barrier()  # rank 0 draws the figures while the others wait
        return code
    finally:
        distributed.stop()


def _train_ranks(args: argparse.Namespace, ranks, device: str) -> int:
    say = (lambda line: print(line, file=sys.stderr)) if ranks.main else (lambda line: None)
    given = given_values(args)
    if args.resume:
        if args.out is None:
            raise UserError("--resume needs --out DIR, the run folder to continue")
        saved = runs.load_config(args.out)["train"]
        if "data" in given:  # compared as saved: with absolute paths
            given["data"] = absolute_spec(given["data"])
        for name, value in given.items():
            if all_options()[name].on_resume == "keep" and value != saved.get(name, all_options()[name].default):
                option = all_options()[name]
                raise UserError(
                    f"{option.flag} {option.shown(value)}: differs from the run's "
                    f"{option.shown(saved.get(name, option.default))}; a resumed run keeps its config"
                )
        limits = [name for name, option in all_options().items() if option.on_resume == "limit"]
        limits = {name: given.get(name) for name in limits} if any(n in given for n in limits) else {}
        changed = {name: value for name, value in given.items() if all_options()[name].on_resume == "change"}
        config = TrainConfig(**{**saved, **limits, **changed})
        config.given = frozenset(given)
    else:
        config = TrainConfig.for_model(**given)
    out = ranks.broadcast(
        args.out or Path("runs") / f"{config.model}-{config.objective}-{datetime.now():%Y%m%d-%H%M%S}"
    )
    try:
        train(config, out, resume=args.resume, device=device, progress=not args.no_progress, ranks=ranks)
    except Interrupted as e:
        say(f"pvae train: {e}")
        return 128 + e.signum  # as a process stopped by that signal: 130 for Ctrl-C, 143 for SIGTERM
    say(f"done: {out}")
    return 0


def _bounds_parser(sub) -> None:
    p = sub.add_parser(
        "bounds",
        help="ELBO and importance-weighted bounds L_k of a trained run",
        description="Estimate the ELBO and L_k per datapoint on a split; "
        "write bounds.json and bounds.png into RUN/bounds/ARGUMENTS/ (one folder per set of arguments).",
    )
    p.add_argument("run", type=Path, help="run folder")
    p.add_argument(
        "--k", type=int, nargs="+", default=list(DEFAULT_KS), help="importance samples (default 1 5 50 500 5000)"
    )
    p.add_argument("--split", default="test", help="data split (default test)")
    p.add_argument("--limit", type=int, metavar="N", help="only the first N datapoints")
    p.add_argument("--batch-size", type=int, default=100, help="datapoints evaluated together (default 100)")
    p.add_argument("--seed", type=int, default=0, help="random seed of the draws (default 0)")
    p.add_argument(
        "--matmul-dtype",
        choices=("float32", "bfloat16"),
        default="float32",
        help="dtype of the matrix products of the model's MLP layers over the k samples (default float32); "
        "bfloat16 is centred so that L_k moves little (0.0004 nats on binarized MNIST) and was 1.3x faster end "
        "to end on a CPU with bfloat16 matrix units (AMX); guides and recurrent layers stay in float32",
    )
    p.add_argument("--no-progress", action="store_true", help="no progress bar")


def _bounds(args: argparse.Namespace) -> int:

    bad = [k for k in args.k if k < 1]
    if bad:
        raise UserError(f"--k {bad[0]}: every k must be at least 1")
    for flag, value in (("--limit", args.limit), ("--batch-size", args.batch_size)):
        if value is not None and value < 1:
            raise UserError(f"{flag} {value}: must be at least 1")
    bounds, folder = bounds_for_run(
        args.run,
        sorted(set(args.k)),
        args.split,
        args.limit,
        args.batch_size,
        args.seed,
        progress=not args.no_progress,
        matmul_dtype=torch.bfloat16 if args.matmul_dtype == "bfloat16" else None,
    )
    print(bounds.table())
    print(f"written: {folder / 'bounds.json'}, {folder / 'bounds.png'}", file=sys.stderr)
    return 0


def _inspect_parser(sub) -> None:
    p = sub.add_parser(
        "inspect",
        help="posterior inspection figures and numbers of a trained run",
        description="Latent scatter, traversals, active units, KL per dimension, importance-resampled "
        "reconstructions, posterior predictive and prior samples, with inspect.json, into RUN/inspect/ARGUMENTS/.",
    )
    p.add_argument("run", type=Path, help="run folder")
    p.add_argument("--split", default="test", help="data split (default test)")
    p.add_argument("--limit", type=int, metavar="N", help="only the first N datapoints")
    p.add_argument("--seed", type=int, default=0, help="random seed (default 0)")


def _inspect(args: argparse.Namespace) -> int:
    if args.limit is not None and args.limit < 1:
        raise UserError(f"--limit {args.limit}: must be at least 1")
    result = inspect_run(args.run, args.split, args.limit, args.seed)
    kl = result["kl_total"]
    print(
        f"{result['active_units']} of {result['latent_dim']} units active "
        f"(Cov_x(E_q[z_u]) > {result['active_threshold']}) on {result['n']} {result['split']} datapoints; "
        + ("no KL(q || p): the guide is a point estimate" if kl is None else f"KL(q || p) {kl:.2f} nats per datapoint")
    )
    print(f"written: {result['folder']}/inspect.json and its figures", file=sys.stderr)
    return 0


def _generation_parsers(sub) -> None:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("run", type=Path, help="run folder")
    common.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    p = sub.add_parser(
        "sample", parents=[common], help="draw sketches (SVG and PNG), images, or melodies (MIDI and a piano roll)"
    )
    p.add_argument("-n", type=int, help="how many (default 20 sketches, 100 images, 8 melodies)")
    p.add_argument("--label", help="class-conditional runs: the class to draw (a number, or a glyph character)")
    p.add_argument("--temperature", type=float, default=0.5, help="sampling temperature tau (default 0.5)")
    p.add_argument(
        "--prior",
        action="store_true",
        help="from the prior, not from the codes of test sketches (sketch runs print the share of empty draws "
        "either way)",
    )
    p = sub.add_parser(
        "reconstruct",
        parents=[common],
        help="reconstructions of test sketches at temperatures 0.1-1, or of test melodies (MIDI and a piano roll)",
    )
    p.add_argument("-n", type=int, default=8, help="test sketches or melodies (default 8)")
    p = sub.add_parser(
        "interpolate",
        parents=[common],
        help="interpolation between two test sketches, or melodies (one MIDI file of the path)",
    )
    p.add_argument(
        "--pair", type=int, nargs=2, default=[0, 1], metavar="I", help="test sketch or melody indices (default 0 1)"
    )
    p.add_argument("--steps", type=int, default=10, help="points on the path (default 10)")
    p.add_argument("--temperature", type=float, default=0.1, help="sampling temperature (default 0.1)")
    p = sub.add_parser(
        "complete", parents=[common], help="continue the first part of test sketches (red), or complete images"
    )
    p.add_argument("-n", type=int, help="test sketches or images (default 5 sketches, 8 images)")
    p.add_argument("--samples", type=int, default=4, help="continuations of each (default 4)")
    p.add_argument("--fraction", type=float, default=0.5, help="the part given (default 0.5)")
    p.add_argument("--temperature", type=float, default=0.5, help="sampling temperature (default 0.5)")
    p = sub.add_parser(
        "vectorise",
        parents=[common],
        help="images as SVG drawings (runs of --model strokes-raster)",
        description="Encode test images, write each one's decoded strokes as an SVG (one <path> per stroke) and a "
        "sheet of the images, the model's renders and the SVGs rendered back, into RUN/vectorise/ARGUMENTS/.",
    )
    p.add_argument("--data", metavar="SPEC", help="images to vectorise (default the run's own test split)")
    p.add_argument("-n", type=int, help="images (default 16)")
    p = sub.add_parser(
        "style",
        parents=[common],
        help="one font's style in all 62 characters (class-conditional glyph runs)",
        description="Encode one glyph of a font and decode its code as every character 0-9 A-Z a-z "
        "(SVG and PNG in RUN/style/ARGUMENTS/); with --to, interpolate between two fonts' styles.",
    )
    p.add_argument("--font", type=Path, help="a .ttf or .otf font file (required)")
    p.add_argument("--glyph", default="A", help="the character to encode (default A)")
    p.add_argument("--to", type=Path, metavar="FONT", help="a second font: write a style interpolation sheet")
    p.add_argument("--steps", type=int, default=8, help="interpolation rows with --to (default 8)")
    p.add_argument("--temperature", type=float, default=0.1, help="sampling temperature (default 0.1)")
    for kind in KINDS.values():  # the flags that only one kind's commands read
        for command, parser in sub.choices.items():
            kind.add_arguments(command, parser)


def _generate(args: argparse.Namespace) -> int:
    for flag in ("n", "samples", "steps"):
        value = getattr(args, flag, None)
        if value is not None and value < 1:
            raise UserError(f"{'-n' if flag == 'n' else '--' + flag} {value}: must be at least 1")
    temperature = getattr(args, "temperature", 1.0)
    if not temperature > 0:
        raise UserError(f"--temperature {temperature}: must be positive")
    paths = generate(args.command, args, runs.load_config(args.run))
    print("written: " + ", ".join(map(str, paths)))
    return 0


def _report_parser(sub) -> None:
    p = sub.add_parser(
        "report",
        help="a static HTML page of each run (RUN/report.html)",
        description="Write RUN/report.html for each run: its config, training curves, figures, and what bounds, "
        "inspect and the generation commands wrote into it; one page that needs no network. Training writes it too.",
    )
    p.add_argument("runs", type=Path, nargs="+", metavar="RUN", help="run folders")


def _report(args: argparse.Namespace) -> int:
    for run in args.runs:  # every folder is checked before any page is written
        runs.load_config(run)
    print("written: " + ", ".join(str(write_report(run)) for run in args.runs))
    return 0


def _compare_parser(sub) -> None:
    p = sub.add_parser(
        "compare",
        help="runs of one data kind side by side: their differing options and final numbers",
        description="A table of the runs' options that differ and their final test ELBO, KL, L_k (pvae bounds), "
        "active units (pvae inspect), steps and minutes, and one figure of their test-ELBO curves.",
    )
    p.add_argument("runs", type=Path, nargs="+", metavar="RUN", help="run folders (two or more)")
    style = p.add_mutually_exclusive_group()
    style.add_argument("--markdown", action="store_true", help="print the table as markdown")
    style.add_argument("--csv", type=Path, metavar="FILE", help="also write the table as csv to FILE")
    p.add_argument(
        "--figure", type=Path, default=Path("compare.png"), metavar="FILE", help="the curves (default compare.png)"
    )


def _compare(args: argparse.Namespace) -> int:
    comparison = compare_runs(args.runs)
    print(format_table(comparison, "markdown" if args.markdown else "text"), end="")
    written = [elbo_figure(args.runs, args.figure)]
    if args.csv is not None:
        args.csv.write_text(format_table(comparison, "csv"))
        written.append(args.csv)
    print("written: " + ", ".join(map(str, written)))
    return 0


def _unrecognized(parser: argparse.ArgumentParser, extras: Sequence[str]) -> str:
    """argparse's "unrecognized arguments" line, with the nearest flag of ``parser`` to the first
    mistyped one (``--latnet-dim`` -> ``did you mean --latent-dim?``)."""
    flags = [s for action in parser._actions for s in action.option_strings]
    typed = next((e.split("=", 1)[0] for e in extras if e.startswith("-")), None)
    near = difflib.get_close_matches(typed, flags, n=1) if typed else []
    return f"unrecognized arguments: {' '.join(extras)}" + (f" (did you mean {near[0]}?)" if near else "")


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``pvae`` console script. The warning format and the SIGTERM handler it
    sets are the previous ones again when it returns (a process may run several commands)."""
    saved = warnings.formatwarning, signal.getsignal(signal.SIGTERM)
    try:
        return _main(argv)
    finally:
        warnings.formatwarning = saved[0]
        if saved[1] is not None:  # None: a handler not set from Python, which cannot be put back
            signal.signal(signal.SIGTERM, saved[1])


def _main(argv: Sequence[str] | None) -> int:
    # Warnings are for users (dropped sketches, skipped fonts, a plug-in left out): one line each, no
    # source line; the parsers read the registries, so this is set before they are built.
    warnings.formatwarning = lambda message, category, *rest, **kw: f"pvae: warning: {message}\n"
    parser = _Parser(prog="pvae", description="Variational autoencoders as Pyro model/guide pairs.")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    _train_parser(sub)
    _bounds_parser(sub)
    _inspect_parser(sub)
    _generation_parsers(sub)
    _report_parser(sub)
    _compare_parser(sub)
    args, extras = parser.parse_known_args(argv)
    if extras:  # the subcommand's parser says it, naming the subcommand and the nearest flag
        sub.choices[args.command].error(_unrecognized(sub.choices[args.command], extras))
    keep_freed_memory()
    warnings.formatwarning = lambda message, category, *rest, **kw: f"pvae {args.command}: warning: {message}\n"
    # SIGTERM (a scheduler stopping the job) stops like Ctrl-C; training handles both itself.
    signal.signal(signal.SIGTERM, _terminated)
    try:
        if args.command == "train" and args.nproc is not None and "WORLD_SIZE" not in os.environ:
            return _launch(args.nproc, sys.argv[1:] if argv is None else argv, args.out)
        commands = {"train": _train, "bounds": _bounds, "inspect": _inspect, "report": _report, "compare": _compare}
        return commands.get(args.command, _generate)(args)
    except UserError as e:
        rank = os.environ.get("RANK", "0")  # a data-parallel rank other than 0 says which it is
        print(f"pvae {args.command}: error{'' if rank == '0' else f' (rank {rank})'}: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt as e:
        print(f"pvae {args.command}: interrupted", file=sys.stderr)
        return 128 + (e.signum if isinstance(e, Terminated) else signal.SIGINT)


class Terminated(KeyboardInterrupt):
    """SIGTERM outside training: stop as Ctrl-C does, and exit with SIGTERM's status (143)."""

    signum = signal.SIGTERM


def _terminated(signum, frame) -> None:
    raise Terminated


if __name__ == "__main__":
    sys.exit(main())
