"""The tutorial (docs/tutorial/): every numbered script runs in quick mode, writes its figure and
prints only finite numbers; each is a jupytext "percent" script that opens as a notebook."""

from __future__ import annotations

import math
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

TUTORIAL = Path(__file__).resolve().parents[1] / "docs" / "tutorial"
SCRIPTS = sorted(TUTORIAL.glob("[0-9][0-9]_*.py"))
NUMBER = re.compile(r"[-+]?(?:\d+\.\d*|\.\d+|\d+)(?:[eE][-+]?\d+)?|\b(?:nan|inf)\b", re.IGNORECASE)


def test_seven_scripts() -> None:
    assert [p.name[:2] for p in SCRIPTS] == [f"{i:02d}" for i in range(1, 8)]


@pytest.mark.parametrize("script", SCRIPTS, ids=[p.stem for p in SCRIPTS])
def test_runs_quick(script: Path, tmp_path: Path) -> None:
    env = {**os.environ, "PVAE_TUTORIAL_QUICK": "1", "PVAE_TUTORIAL_OUT": str(tmp_path), "OMP_NUM_THREADS": "1"}
    done = subprocess.run(
        [sys.executable, script.name], cwd=TUTORIAL, env=env, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr[-2000:]
    figure = tmp_path / f"{script.stem}.png"
    assert figure.is_file() and figure.stat().st_size > 1000
    numbers = [float(n) for n in NUMBER.findall(done.stdout)]
    assert len(numbers) >= 3, done.stdout
    assert all(math.isfinite(n) for n in numbers), done.stdout


@pytest.mark.parametrize("script", SCRIPTS, ids=[p.stem for p in SCRIPTS])
def test_opens_as_notebook(script: Path) -> None:
    jupytext = pytest.importorskip("jupytext", reason="jupytext (the tutorial extra) is not installed")
    notebook = jupytext.read(script, fmt="py:percent")
    kinds = [cell.cell_type for cell in notebook.cells]
    assert kinds[0] == "markdown" and kinds.count("code") >= 2
