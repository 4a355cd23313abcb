"""``pvae compare RUN RUN ...``: runs of one data kind side by side. A row per run, with the options
whose values differ between the runs (from each ``config.json``) and the run's final numbers:

- test ELBO and KL: the last row of ``metrics.csv`` (nats per datapoint);
- L_k: the bound of the largest k of the newest ``pvae bounds`` on the test split
  (``RUN/bounds/*/bounds.json``), with that k;
- active units: of the newest ``pvae inspect`` on the test split (``RUN/inspect/*/inspect.json``);
- steps and minutes of training (``metrics.csv``, ``timing.csv``).

A number a run does not have is ``-``, and a line under the table says why. The test-ELBO curves of
all runs are drawn in one figure.
"""

from __future__ import annotations

import csv
import json
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pvae import render, runs
from pvae.errors import UserError

MISSING = "-"
FORMATS = ("text", "markdown", "csv")
METRICS = ("test ELBO", "KL", "L_k", "active units", "steps", "minutes")
WHY_MISSING = {
    "test ELBO": "test ELBO: no epoch finished",
    "KL": "KL: no epoch finished",
    "L_k": "L_k: not computed (pvae bounds RUN)",
    "active units": "active units: not computed (pvae inspect RUN)",
    "steps": "steps: no epoch finished",
    "minutes": "minutes: no timing.csv",
}


@dataclass
class Comparison:
    """The table: ``columns`` (run, the differing options, then ``METRICS``), one row of strings per
    run, and the notes on the cells marked ``MISSING``."""

    columns: list[str]
    rows: list[list[str]]
    notes: list[str] = field(default_factory=list)


def _rows(path: Path) -> list[dict[str, str]]:
    if not path.is_file():
        return []
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def _newest(run: Path, command: str, name: str) -> dict[str, Any] | None:
    """The newest ``RUN/COMMAND/*/NAME`` written for the test split, read as JSON, or ``None``."""
    found = []
    for path in (run / command).glob(f"*/{name}"):
        try:
            result = json.loads(path.read_text())
        except (OSError, ValueError):
            continue
        if isinstance(result, dict) and result.get("split", "test") == "test":
            found.append((path.stat().st_mtime, result))
    return max(found, key=lambda item: item[0])[1] if found else None


def _number(text: str | None, digits: int) -> str:
    try:
        return f"{float(text):.{digits}f}"
    except (TypeError, ValueError):
        return MISSING


def _metrics(run: Path) -> dict[str, str]:
    """The ``METRICS`` cells of one run."""
    metrics = _rows(run / runs.METRICS)
    last = metrics[-1] if metrics else {}
    cells = {
        "test ELBO": _number(last.get("test_elbo"), 2),
        "KL": _number(last.get("test_kl"), 2),
        "steps": last.get("step", MISSING),
    }
    timing = _rows(run / runs.TIMING)
    cells["minutes"] = f"{sum(float(r['seconds']) for r in timing) / 60:.1f}" if timing else MISSING
    bounds = _newest(run, "bounds", "bounds.json")
    if bounds and bounds.get("bounds"):
        k = max(bounds["bounds"], key=int)
        cells["L_k"] = f"{bounds['bounds'][k]['mean']:.2f} (k={k})"
    else:
        cells["L_k"] = MISSING
    inspected = _newest(run, "inspect", "inspect.json")
    active = inspected.get("active_units") if inspected else None
    cells["active units"] = MISSING if active is None else f"{active} of {inspected.get('latent_dim', '?')}"
    return cells


def _shown(value: Any) -> str:
    if isinstance(value, list):
        return " ".join(map(str, value))
    return "default" if value is None else str(value)


def compare_runs(paths: Sequence[str | os.PathLike]) -> Comparison:
    """The comparison of runs of one data kind; ``UserError`` for a folder that holds no run, or
    for runs of different data kinds."""
    if len(paths) < 2:
        raise UserError("give at least two run folders to compare")
    folders = [Path(p) for p in paths]
    configs = [runs.load_config(p) for p in folders]
    kinds = {str(p): c["data"]["kind"] for p, c in zip(folders, configs)}
    if len(set(kinds.values())) > 1:
        shown = ", ".join(f"{p} holds {k} data" for p, k in kinds.items())
        raise UserError(f"{shown}: compare runs of one data kind")
    options = [c["train"] for c in configs]
    names = sorted({name for o in options for name in o})
    differing = [n for n in names if len({json.dumps(o.get(n), sort_keys=True) for o in options}) > 1]
    columns = ["run", *differing, *METRICS]
    rows, missing = [], set()
    for folder, option in zip(folders, options):
        cells = _metrics(folder)
        missing |= {m for m in METRICS if cells[m] == MISSING}
        rows.append([folder.name or str(folder), *(_shown(option.get(n)) for n in differing), *map(cells.get, METRICS)])
    notes = [f"{MISSING} {WHY_MISSING[m]}" for m in METRICS if m in missing]
    return Comparison(columns, rows, notes)


def format_table(comparison: Comparison, style: str = "text") -> str:
    """The table as aligned text, a markdown table or csv (``FORMATS``); notes follow text and markdown."""
    if style not in FORMATS:
        raise ValueError(f"style must be one of {', '.join(FORMATS)}, not {style!r}")
    columns, rows = comparison.columns, comparison.rows
    if style == "csv":
        lines = [",".join(_csv_cell(c) for c in row) for row in (columns, *rows)]
        return "\n".join(lines) + "\n"
    if style == "markdown":
        lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
        lines += ["| " + " | ".join(row) + " |" for row in rows]
    else:
        widths = [max(len(str(cell)) for cell in column) for column in zip(columns, *rows)]
        lines = ["  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip() for row in (columns, *rows)]
        lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join([*lines, *([""] if comparison.notes else []), *comparison.notes]) + "\n"


def _csv_cell(cell: str) -> str:
    return f'"{cell.replace(chr(34), chr(34) * 2)}"' if any(c in cell for c in ',"\n') else cell


def elbo_figure(paths: Sequence[str | os.PathLike], path: Path) -> Path:
    """The test ELBO of every run against the training step, one line each, as ``path`` (PNG)."""
    curves = {}
    for run in map(Path, paths):
        rows = [r for r in _rows(run / runs.METRICS) if r.get("test_elbo") not in (None, "")]
        curves[run.name or str(run)] = ([int(r["step"]) for r in rows], [float(r["test_elbo"]) for r in rows])
    render.curves_by_step(curves, path, ylabel="test ELBO (nats per datapoint)", title="test ELBO by step")
    return path
