"""What the experiment and benchmark scripts share: plain int flags, the start of a run, and the markdown table.

The scripts run as ``python scripts/NAME.py``, which puts this folder first on ``sys.path``: they import this
module as ``from tables import ...``.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Iterable, Sequence
from pathlib import Path

from pvae.memory import keep_freed_memory


def int_flags(parser: argparse.ArgumentParser, **defaults: int) -> None:
    """Add ``--NAME`` (underscores written as dashes) of type int for each default, in order, without help text:
    the sizes and counts a script takes, one call rather than a line each."""
    for name, default in defaults.items():
        parser.add_argument(f"--{name.replace('_', '-')}", type=int, default=default)


def start_script() -> str:
    """Free memory as the ``pvae`` command does, then print the command line and return it, for the table to
    quote: ``python scripts/NAME.py ARGS``, the same whichever way the script's path was written."""
    keep_freed_memory()
    command = f"python {' '.join([Path(sys.argv[0]).as_posix(), *sys.argv[1:]])}"
    print(f"command: {command}", flush=True)
    return command


def markdown(columns: Sequence[str], rows: Iterable[Sequence[object]]) -> list[str]:
    """The lines of a markdown table: the header of ``columns``, its rule, then a line per row, each cell as
    ``str`` gives it (so a caller formats its numbers itself)."""
    return [_line(columns), "|" + "---|" * len(columns), *(_line(cells) for cells in rows)]


def _line(cells: Sequence[object]) -> str:
    return "| " + " | ".join(str(cell) for cell in cells) + " |"


def write_table(out: Path, lines: Sequence[str], results: object = None) -> None:
    """Print ``lines`` and keep the same text as ``out/table.md``, and ``results`` (unless None) as
    ``out/results.json``, so that what the terminal shows is what the run folder holds."""
    table = "\n".join(lines)
    print(table)
    out.mkdir(parents=True, exist_ok=True)
    (out / "table.md").write_text(table + "\n")
    if results is not None:
        (out / "results.json").write_text(json.dumps(results, indent=2))
