"""The layout the code keeps (docs/architecture.md, "Layout"): the import contracts of pyproject.toml
(``lint-imports``), an import graph without cycles, modules of at most 600 lines, and ruff's lint
and format checks, so that ``.ci/run`` (the README's test command) checks them all; and that nothing
shipped cites a file outside the repository."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("pvae", "models", "guides")
MOST_LINES = 600


def _tool(name: str) -> str:
    """The console script ``name`` installed beside this Python (the test extra), else skip."""
    path = shutil.which(name, path=str(Path(sys.executable).parent)) or shutil.which(name)
    if path is None:
        pytest.skip(f"{name} is not installed (pip install -e '.[test]')")
    return path


def _run(*command: str) -> subprocess.CompletedProcess:
    return subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=300)


def test_import_contracts_are_kept():
    result = _run(_tool("lint-imports"))
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    assert "0 broken" in result.stdout


def _cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in edges[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(edges):
        if v not in index:
            visit(v)
    return found


def test_cycle_finder_finds_a_cycle():
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert _cycles({"a": {"b"}, "b": set()}) == []


def test_the_import_graph_has_no_cycle():
    """Every import counts, those inside functions too (grimp reads them all)."""
    grimp = pytest.importorskip("grimp", reason="grimp comes with import-linter (the test extra)")
    graph = grimp.build_graph(*PACKAGES)
    edges = {m: set(graph.find_modules_directly_imported_by(m)) for m in graph.modules}
    assert _cycles(edges) == []


def test_no_module_is_over_600_lines():
    long = {}
    for package in PACKAGES:
        for path in (ROOT / package).rglob("*.py"):
            lines = path.read_text().count("\n")
            if lines > MOST_LINES:
                long[str(path.relative_to(ROOT))] = lines
    assert long == {}


@pytest.mark.parametrize("command", [("check",), ("format", "--check")], ids=["check", "format"])
def test_ruff(command):
    result = _run(_tool("ruff"), *command, *PACKAGES, "tests", "scripts")
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]


CITED_OUTSIDE = ("REFERENCES.md", "../shared")  # the workspace's notes and data, not in the repository
TEXT = (".py", ".md", ".toml", ".txt", ".json", ".csv", ".sh", ".yaml", ".yml")


def test_nothing_shipped_cites_files_outside_the_repository():
    """The code, scripts and docs cite the project's own measurements (docs/results.md) or public
    sources, never a file that only the authors' workspace holds."""
    files = [ROOT / "README.md"]
    for folder in (*PACKAGES, "scripts", "docs"):
        files += [p for p in (ROOT / folder).rglob("*") if p.is_file() and p.suffix in TEXT]
    citing = {
        str(path.relative_to(ROOT)): name
        for path in files
        for name in CITED_OUTSIDE
        if name in path.read_text(encoding="utf-8", errors="replace")
    }
    assert citing == {}
