"""A run's report: one static HTML page, ``RUN/report.html``, that needs no network and no script.

The page holds the run's loss and test-ELBO curves (drawn here from ``metrics.csv`` with
matplotlib, as an SVG data URI), the figures training drew (``RUN/figures/``), what every later
command wrote into ``RUN/COMMAND/ARGUMENTS/`` (bounds and inspection numbers as tables, images as
relative ``<img>``, small SVGs inline, WAVs as ``<audio controls>``, other files as links), and last
the config as a table. It reads files alone, so it serves every data kind without naming one. Every
text taken from a file is escaped, and an SVG is inlined only through a whitelist of elements and
attributes (no script, no event handler, no external reference); any other SVG is an ``<img>``.
"""

from __future__ import annotations

import base64
import csv
import html
import io
import json
import math
import os
import re
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any
from urllib.parse import quote

import matplotlib
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from pvae import runs

REPORT = "report.html"
INLINE_SVG_BYTES, INLINE_TOTAL_BYTES = 100_000, 2_000_000  # larger SVGs, and those past the total, are <img>
IMAGES = (".png", ".jpg", ".jpeg", ".gif", ".webp")
AUDIO = (".wav", ".ogg", ".mp3")
SKIPPED = {runs.CONFIG, runs.CHECKPOINT, runs.PREVIOUS, runs.METRICS, runs.TIMING, runs.LOCK, REPORT}
FIRST_COMMANDS = ("bounds", "inspect")  # then the others in name order
MOST_ROWS = 200  # of a table read from a file
SVG_NS, XLINK_NS = "{http://www.w3.org/2000/svg}", "{http://www.w3.org/1999/xlink}"
SVG_TAGS = {
    "svg", "g", "defs", "path", "polyline", "polygon", "line", "rect", "circle", "ellipse", "text", "tspan",
    "title", "desc", "clipPath", "mask", "linearGradient", "radialGradient", "stop", "use", "symbol", "marker",
}  # fmt: skip

CSS = """
body { font: 14px/1.45 system-ui, sans-serif; margin: 0 auto; max-width: 1100px; padding: 1em 2em; color: #222; }
h1 { font-size: 1.5em; margin-bottom: 0.2em; } h2 { border-bottom: 1px solid #ccc; margin-top: 1.6em; }
h3 { font-size: 1.05em; margin-bottom: 0.3em; } code { background: #f3f3f3; padding: 0 0.25em; }
nav a { margin-right: 1em; } .summary { color: #555; }
table { border-collapse: collapse; margin: 0.5em 0; font-size: 13px; }
td, th { border: 1px solid #ddd; padding: 2px 8px; text-align: left; vertical-align: top; }
th { background: #f6f6f6; } td.num { text-align: right; font-variant-numeric: tabular-nums; }
.gallery { display: flex; flex-wrap: wrap; gap: 12px; align-items: flex-start; }
figure { margin: 0; } figcaption { font-size: 12px; color: #555; }
img, figure svg { max-width: 100%; height: auto; border: 1px solid #eee; }
.gallery img, .gallery > figure > svg { max-height: 320px; width: auto; }
"""


def write_report(run: str | os.PathLike) -> Path:
    """Write ``RUN/report.html`` (atomically) and return its path; ``UserError`` if RUN is not a run."""
    run = Path(run)
    page = report_html(run, runs.load_config(run))
    runs.atomic_write_text(run / REPORT, page)
    return run / REPORT


def report_html(run: Path, config: dict[str, Any]) -> str:
    """The report page of the run in folder ``run`` with config ``config``."""
    inline = _Inliner()
    sections = [
        ("curves", "Training curves", _curves(run, config)),
        ("figures", "Figures", _gallery(run, _files(run / runs.FIGURES, False) + _files(run, False), inline)),
    ]
    for command in _commands(run):
        body = "".join(
            f"<h3><code>{_text(folder.name)}</code></h3>\n{_gallery(run, _files(folder, True), inline)}\n"
            for folder in _dirs(command)
        )
        if _files(command, False):  # files of the command's own (a run folder of an earlier version)
            body = _gallery(run, _files(command, False), inline) + "\n" + body
        sections.append((f"out-{command.name}", f"pvae {command.name}", body))
    sections.append(("config", "Config", _table(_flatten(config))))  # last: the longest
    train = config.get("train", {})
    title = f"pvae run {run.resolve().name}"
    summary = ", ".join(
        f"{key} {_text(_shown(train[key]))}" for key in ("model", "guide", "objective", "data") if key in train
    )
    nav = " ".join(f'<a href="#{key}">{_text(name)}</a>' for key, name, _ in sections)
    body = "\n".join(
        f'<section id="{key}">\n<h2>{_text(name)}</h2>\n{text}\n</section>' for key, name, text in sections
    )
    return (
        '<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        f"<title>{_text(title)}</title>\n<style>{CSS}</style>\n</head>\n<body>\n"
        f'<h1>{_text(title)}</h1>\n<p class="summary">{summary}</p>\n<nav>{nav}</nav>\n{body}\n</body>\n</html>\n'
    )


def _text(value: Any) -> str:
    return html.escape(str(value), quote=True)


def _shown(value: Any) -> str:
    """A config or result value as text: strings as they are, everything else as JSON."""
    return value if isinstance(value, str) else json.dumps(value)


def _flatten(value: Any, prefix: str = "") -> list[tuple[str, Any]]:
    """``(dotted.key, value)`` rows of nested dicts (lists are values)."""
    if isinstance(value, dict) and value:
        return [row for key, item in value.items() for row in _flatten(item, f"{prefix}{key}.")]
    return [(prefix[:-1], value)]


def _table(rows: list[tuple[str, Any]], header: tuple[str, str] = ("name", "value")) -> str:
    """A two-column table of escaped text; at most ``MOST_ROWS`` rows, long values cut."""
    cells = []
    for key, value in rows[:MOST_ROWS]:
        shown = _shown(value)
        shown = shown if len(shown) <= 300 else shown[:300] + " ..."
        number = isinstance(value, int | float) and not isinstance(value, bool)
        cells.append(f"<tr><td>{_text(key)}</td><td{' class=num' if number else ''}>{_text(shown)}</td></tr>")
    more = f"<p>... and {len(rows) - MOST_ROWS} more rows</p>" if len(rows) > MOST_ROWS else ""
    head = "".join(f"<th>{_text(h)}</th>" for h in header)
    return f"<table>\n<tr>{head}</tr>\n" + "\n".join(cells) + "\n</table>" + more


def _read_rows(path: Path) -> list[dict[str, str]]:
    if not path.is_file():
        return []
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def _number(text: str | None) -> float:
    try:
        return float(text) if text not in (None, "") else math.nan
    except ValueError:
        return math.nan


def _curves(run: Path, config: dict[str, Any]) -> str:
    """The train loss and test -ELBO against the step, and the other test terms, from metrics.csv."""
    rows = _read_rows(run / runs.METRICS)
    if not rows:
        return f"<p>No {runs.METRICS} rows yet.</p>"
    steps = [_number(r.get("step")) for r in rows]
    objective = config.get("train", {}).get("objective", "objective")
    panels = [
        {
            f"train loss ({objective})": [_number(r.get("train_loss")) for r in rows],
            "test -ELBO": [-_number(r.get("test_elbo")) for r in rows],
        }
    ]
    terms = [k for k in rows[0] if k.startswith("test_") and k != "test_elbo"]
    if terms:
        panels.append({k.removeprefix("test_"): [_number(r.get(k)) for r in rows] for k in terms})
    fig = Figure(figsize=(4.6 * len(panels), 3.2))
    for ax, series, ylabel in zip(
        fig.subplots(1, len(panels), squeeze=False)[0], panels, ("nats per datapoint", "test terms (nats)")
    ):
        for name, values in series.items():
            ax.plot(steps, values, marker="o", markersize=3, label=name)
        ax.set_xlabel("step")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_ylabel(ylabel)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    buffer = io.BytesIO()
    with matplotlib.rc_context({"svg.fonttype": "none", "svg.hashsalt": "pvae"}):  # text as text; fixed ids
        fig.savefig(buffer, format="svg", bbox_inches="tight", metadata={"Date": None})
    uri = "data:image/svg+xml;base64," + base64.b64encode(buffer.getvalue()).decode()
    last = rows[-1]
    final = _table(list(last.items()), ("last row", "value"))
    return f'<div class="gallery">\n<figure><img src="{uri}" alt="training curves"></figure>\n{final}\n</div>'


def _dirs(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith("."))


def _commands(run: Path) -> list[Path]:
    """The folders of the commands that wrote into the run (``RUN/COMMAND/ARGUMENTS/``), and any other
    folder that holds something."""
    found = [p for p in _dirs(run) if p.name != runs.FIGURES and any(p.iterdir())]
    first = {name: i for i, name in enumerate(FIRST_COMMANDS)}
    return sorted(found, key=lambda p: (first.get(p.name, len(first)), p.name))


def _files(folder: Path, recursive: bool) -> list[Path]:
    """The files of ``folder`` (and of its subfolders if ``recursive``) that the page shows."""
    if not folder.is_dir():
        return []
    found = folder.rglob("*") if recursive else folder.iterdir()
    return sorted(p for p in found if p.is_file() and not p.name.startswith(".") and p.name not in SKIPPED)


def _url(run: Path, path: Path) -> str:
    """``path`` relative to the run folder, as an escaped URL for an attribute."""
    return _text(quote(path.relative_to(run).as_posix()))


def _gallery(run: Path, files: list[Path], inline: _Inliner) -> str:
    """Outputs: JSON as tables, images, SVGs and audio in a gallery, other files as links. Each is
    named by its path in the run folder's subfolder that holds it (``figures/``, ``ARGUMENTS/``)."""
    if not files:
        return "<p>None.</p>"
    svg_stems = {p.with_suffix("") for p in files if p.suffix.lower() == ".svg"}
    tables, shown, links = [], [], []
    for path in files:
        suffix, name = path.suffix.lower(), _text(_name(run, path))
        if suffix == ".json":
            tables.append(f"<p><code>{name}</code></p>\n{_json_table(path)}")
        elif suffix == ".svg":
            figure = inline(path) or f'<img src="{_url(run, path)}" alt="{name}">'
            shown.append(f"<figure>{figure}<figcaption>{name}</figcaption></figure>")
        elif suffix in IMAGES and path.with_suffix("") not in svg_stems:  # an SVG beside it is shown instead
            shown.append(f'<figure><img src="{_url(run, path)}" alt="{name}"><figcaption>{name}</figcaption></figure>')
        elif suffix in AUDIO:
            shown.append(
                f'<figure><audio controls src="{_url(run, path)}"></audio><figcaption>{name}</figcaption></figure>'
            )
        elif suffix not in IMAGES:
            links.append(f'<a href="{_url(run, path)}">{name}</a>')
    parts = tables
    if shown:
        parts.append('<div class="gallery">\n' + "\n".join(shown) + "\n</div>")
    if links:
        parts.append("<p>Files: " + ", ".join(links) + "</p>")
    return "\n".join(parts)


def _name(run: Path, path: Path) -> str:
    """``path`` without the run folder and, inside a command's folder, without its two levels."""
    parts = path.relative_to(run).parts
    return "/".join(parts[2:] if len(parts) > 2 and parts[0] != runs.FIGURES else parts[1:] or parts)


def _json_table(path: Path) -> str:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError) as e:
        return f"<p>unreadable: {_text(e)}</p>"
    return _table(_flatten(data))


class _Inliner:
    """Small SVG files as inline ``<svg>`` markup rebuilt through a whitelist: the elements of
    drawings (no script, foreignObject, image or animation), no ``on*`` attribute, no reference but
    to the same SVG (``#id``), and every id prefixed so that two inlined SVGs never share one."""

    def __init__(self) -> None:
        self.count, self.total, self.prefix = 0, 0, ""

    def __call__(self, path: Path) -> str | None:
        try:
            size = path.stat().st_size
            if size > INLINE_SVG_BYTES or self.total + size > INLINE_TOTAL_BYTES:
                return None
            root = ET.fromstring(path.read_bytes())
        except (OSError, ET.ParseError):
            return None
        if root.tag != f"{SVG_NS}svg":
            return None
        self.count, self.total = self.count + 1, self.total + size
        self.prefix = f"s{self.count}-"
        return self._element(root)

    def _element(self, element: ET.Element) -> str:
        tag = element.tag.removeprefix(SVG_NS)
        if tag not in SVG_TAGS:
            return ""
        attributes = "".join(
            f' {name}="{_text(value)}"'
            for name, value in (self._attribute(k, v) for k, v in element.attrib.items())
            if name
        )
        inner = _text(element.text or "") + "".join(self._element(child) + _text(child.tail or "") for child in element)
        return f"<{tag}{attributes}>{inner}</{tag}>"

    def _attribute(self, name: str, value: str) -> tuple[str | None, str]:
        if name == f"{XLINK_NS}href" or name == "href":
            return ("href", "#" + self.prefix + value[1:]) if value.startswith("#") else (None, "")
        if name.startswith("{") or name.lower().startswith("on"):
            return None, ""
        if "url(" in value:
            if re.search(r"url\(\s*['\"]?(?!#)", value):
                return None, ""
            value = re.sub(r"url\(\s*(['\"]?)#", lambda m: f"url({m.group(1)}#{self.prefix}", value)
        if name == "id":
            value = self.prefix + value
        return name, value
