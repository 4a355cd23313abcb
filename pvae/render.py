"""Figures: training curves, image grids and latent scatter plots (matplotlib, no display needed)."""

from __future__ import annotations

import os
import xml.etree.ElementTree as ET
from collections.abc import Sequence

import matplotlib
import numpy as np
import svgwrite
import torch
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from pvae.raster import Strokes

# Figures are built with matplotlib's object API (no pyplot), so drawing needs no display and
# leaves the user's pyplot state and backend alone.


def _save(fig: Figure, path: str | os.PathLike) -> None:
    fig.savefig(path, dpi=110, bbox_inches="tight")


def image_grid(images: torch.Tensor | np.ndarray, path: str | os.PathLike, ncol: int = 10, title: str = "") -> None:
    """Save images ``(N, H, W)`` (values in [0, 1]) as one grid, ``ncol`` per row."""
    images = np.asarray(images, dtype=np.float32)
    n, h, w = images.shape
    nrow = -(-n // ncol)
    canvas = np.ones((nrow * (h + 2) + 2, ncol * (w + 2) + 2), dtype=np.float32)
    for i in range(n):
        r, c = divmod(i, ncol)
        canvas[2 + r * (h + 2) : 2 + r * (h + 2) + h, 2 + c * (w + 2) : 2 + c * (w + 2) + w] = images[i]
    fig = Figure(figsize=(ncol * 0.6, nrow * 0.6 + (0.4 if title else 0)))
    ax = fig.subplots()
    ax.imshow(canvas, cmap="gray_r", vmin=0, vmax=1, interpolation="nearest")
    ax.set_axis_off()
    if title:
        ax.set_title(title, fontsize=9)
    _save(fig, path)


def loss_curves(
    epochs: Sequence[int], series: dict[str, Sequence[float]], path: str | os.PathLike, ylabel: str
) -> None:
    """Save one line per named series against the epoch."""
    fig = Figure(figsize=(5, 3.4))
    ax = fig.subplots()
    for name, values in series.items():
        ax.plot(epochs, values, marker="o", markersize=3, label=name)
    ax.set_xlabel("epoch")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_ylabel(ylabel)
    ax.grid(alpha=0.3)
    ax.legend()
    _save(fig, path)


def curves_by_step(
    curves: dict[str, tuple[Sequence[int], Sequence[float]]], path: str | os.PathLike, ylabel: str, title: str = ""
) -> None:
    """Save one line per named (steps, values) curve against the training step (``pvae compare``)."""
    fig = Figure(figsize=(6, 3.8))
    ax = fig.subplots()
    for name, (steps, values) in curves.items():
        ax.plot(steps, values, marker="o", markersize=3, label=name)
    ax.set_xlabel("step")
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend(fontsize="small")
    _save(fig, path)


def latent_scatter(
    points: np.ndarray, labels: np.ndarray | None, path: str | os.PathLike, title: str = "", axis: str = "z"
) -> None:
    """Save a 2-D scatter of ``points`` ``(N, 2)``, coloured by integer ``labels`` when given; points
    ``(N, 1)`` (a 1-D latent) as a strip, one row per label."""
    fig = Figure(figsize=(5, 4.4))
    ax = fig.subplots()
    if points.shape[1] == 1:
        _latent_strip(ax, points[:, 0], labels, axis)
    else:
        _scatter(ax, points[:, 0], points[:, 1], labels)
        ax.set_xlabel(f"{axis}1")
        ax.set_ylabel(f"{axis}2")
    if title:
        ax.set_title(title, fontsize=9)
    _save(fig, path)


def _scatter(ax, x: np.ndarray, y: np.ndarray, labels: np.ndarray | None, legend: bool = True) -> None:
    """Points (x, y), one colour per label (up to 10, with a ``legend``), else a colour map."""
    if labels is None:
        ax.scatter(x, y, s=3, alpha=0.5)
    elif len(np.unique(labels)) > 10:  # too many classes for a legend: one colour map
        ax.scatter(x, y, s=3, alpha=0.6, c=labels, cmap="turbo")
    else:
        for label in np.unique(labels):
            mask = labels == label
            colour = matplotlib.colormaps["tab10"](label % 10)
            ax.scatter(x[mask], y[mask], s=3, alpha=0.6, label=str(label), color=colour)
        if legend:
            ax.legend(markerscale=4, fontsize=7, loc="best", ncol=2)


def _latent_strip(ax, values: np.ndarray, labels: np.ndarray | None, axis: str) -> None:
    """Values of one dimension along x, jittered within one row per label (one row without labels)."""
    jitter = np.random.default_rng(0).uniform(-0.3, 0.3, len(values))
    if labels is None:
        _scatter(ax, values, jitter, None)
        ax.set_yticks([])
    else:
        classes, rows = np.unique(labels, return_inverse=True)
        _scatter(ax, values, rows.ravel() + jitter, labels, legend=False)  # the rows name the labels
        if len(classes) <= 10:
            ax.set_yticks(np.arange(len(classes)), [str(c) for c in classes])
        ax.set_ylabel("label")
    ax.set_xlabel(f"{axis}1")


def principal_components(points: np.ndarray, k: int = 2) -> np.ndarray:
    """Project ``points`` ``(N, D)`` onto their first ``k`` principal components (or keep them if D <= k)."""
    if points.shape[1] <= k:
        return points
    centred = points - points.mean(0)
    _, _, vt = np.linalg.svd(centred, full_matrices=False)
    return centred @ vt[:k].T


def bounds_plot(
    ks: Sequence[int], means: Sequence[float], stderrs: Sequence[float], path: str | os.PathLike, title: str = ""
) -> None:
    """Save the mean bound L_k against k (log axis) with standard-error bars."""
    fig = Figure(figsize=(5, 3.4))
    ax = fig.subplots()
    ax.errorbar(ks, means, yerr=stderrs, marker="o", capsize=3)
    ax.set_xscale("log")
    ax.set_xlabel("k (importance samples)")
    ax.set_ylabel("mean L_k (nats per datapoint)")
    ax.grid(alpha=0.3, which="both")
    if title:
        ax.set_title(title, fontsize=9)
    _save(fig, path)


def unit_bars(
    variances: np.ndarray, kl: np.ndarray | None, threshold: float, path: str | os.PathLike, title: str = ""
) -> None:
    """Save per-latent-dimension bars: variance of the posterior means (log scale, with the
    active-unit threshold) and KL(q || p) (``None``: a point-estimate guide has none), dimensions
    sorted by variance."""
    order = np.argsort(variances)[::-1]
    fig = Figure(figsize=(max(5.0, 0.18 * len(order)), 4.6))
    top, bottom = fig.subplots(2, 1, sharex=True)
    positions = np.arange(len(order))
    top.bar(positions, variances[order], color=["C0" if v > threshold else "C7" for v in variances[order]])
    top.axhline(threshold, color="C3", linestyle="--", linewidth=1, label=f"active: > {threshold}")
    top.set_yscale("log")
    top.set_ylabel("Cov_x(E_q[z_u])")
    top.legend(fontsize=7)
    if kl is None:
        bottom.text(0.5, 0.5, "no KL(q || p): the guide is a point estimate", ha="center", transform=bottom.transAxes)
    else:
        bottom.bar(positions, kl[order], color="C1")
    bottom.set_ylabel("KL(q || p) (nats)")
    bottom.set_xlabel("latent dimension u")
    bottom.set_xticks(positions, [str(u) for u in order], fontsize=6, rotation=90)
    if title:
        top.set_title(title, fontsize=9)
    _save(fig, path)


# --- sketches -----------------------------------------------------------------------------------
# A drawing is a list of stroke-3 parts drawn one after another (the second part starting where the
# first ended, with the pen as the first left it), each with its own colour: a sketch alone, or a
# prefix and its continuation.

Drawing = Sequence[tuple[np.ndarray, str]]


def _polylines(drawing: Drawing) -> list[tuple[np.ndarray, str]]:
    """Absolute pen-down polylines with their colours; a drawing starts with the pen up. A part that
    starts with the pen down (the previous part's last point kept it down) draws its first line from
    the previous part's last point, in its own colour."""
    out, position, pen_up = [], np.zeros(2), True
    for sketch, colour in drawing:
        sketch = np.asarray(sketch, dtype=np.float64)
        if not len(sketch):
            continue
        points = position + np.cumsum(sketch[:, :2], axis=0)
        lifted = np.concatenate([[pen_up], sketch[:-1, 2] > 0.5])  # pen state before each point
        start = 0
        for i in range(1, len(points) + 1):
            if i == len(points) or lifted[i]:
                segment = points[start:i]
                if start == 0 and not lifted[0]:  # continues the previous part's line
                    segment = np.concatenate([position[None], segment])
                if len(segment) > 1:
                    out.append((segment, colour))
                start = i
        position, pen_up = points[-1], bool(sketch[-1, 2] > 0.5)
    return out


def _bounds(lines: list[tuple[np.ndarray, str]]) -> tuple[np.ndarray, np.ndarray]:
    if not lines:
        return np.zeros(2), np.ones(2)
    points = np.concatenate([p for p, _ in lines])
    return points.min(0), points.max(0)


def sketches_svg(
    drawings: Sequence[Drawing], path: str | os.PathLike, ncol: int = 10, cell: float = 80.0, stroke_width: float = 1.5
) -> None:
    """Save drawings as one SVG grid (``ncol`` per row), each scaled to fit a ``cell``-pixel square."""
    nrow = max(1, -(-len(drawings) // ncol))
    svg = svgwrite.Drawing(str(path), size=(f"{ncol * cell:.0f}px", f"{nrow * cell:.0f}px"), profile="tiny")
    svg.add(svg.rect(insert=(0, 0), size=(ncol * cell, nrow * cell), fill="white"))
    for k, drawing in enumerate(drawings):
        lines = _polylines(drawing)
        low, high = _bounds(lines)
        factor = 0.85 * cell / max(float(np.max(high - low)), 1e-6)
        r, c = divmod(k, ncol)
        centre = (low + high) / 2
        origin = np.array([(c + 0.5) * cell, (r + 0.5) * cell])
        for points, colour in lines:
            xy = (points - centre) * factor + origin
            svg.add(
                svg.polyline(
                    [(round(float(x), 2), round(float(y), 2)) for x, y in xy],
                    stroke=colour,
                    fill="none",
                    stroke_width=stroke_width,
                    stroke_linecap="round",
                    stroke_linejoin="round",
                )
            )
    svg.save()


def sketches_png(drawings: Sequence[Drawing], path: str | os.PathLike, ncol: int = 10, title: str = "") -> None:
    """The same grid as ``sketches_svg``, as a PNG through matplotlib."""
    nrow = max(1, -(-len(drawings) // ncol))
    head = 0.3 if title else 0.0  # inches above the grid for the title
    fig = Figure(figsize=(ncol * 1.0, nrow * 1.0 + head))
    axes = np.atleast_1d(fig.subplots(nrow, ncol)).ravel()
    # one inch a cell at any grid size (matplotlib's default margins are fractions of the figure)
    fig.subplots_adjust(left=0, right=1, bottom=0, top=nrow / (nrow + head), wspace=0.1, hspace=0.1)
    for ax in axes:
        ax.set_axis_off()
    for ax, drawing in zip(axes, drawings):
        for points, colour in _polylines(drawing):
            ax.plot(points[:, 0], points[:, 1], color=colour, linewidth=1.0)
        ax.set_aspect("equal")
        ax.invert_yaxis()
    if title:
        fig.suptitle(title, fontsize=9, y=1.0, va="top")
    _save(fig, path)


# --- drawings of strokes (pvae.raster.Strokes) as SVG ---------------------------------------------
# One SVG per drawing, in the renderers' pixel coordinates (viewBox 0 0 S S): each stroke is one
# <path> (M ... L ... for a line, M ... Q ... for a quadratic Bézier), black, round-capped, with
# the stroke's width and its ink as the opacity, so a viewer composites overlapping strokes as the
# renderers' soft OR does.

SVG_SCALE = 10  # the SVG's displayed size is this many times the canvas


def strokes_svg(strokes, size: int, path: str | os.PathLike) -> None:
    """Save one drawing (``Strokes`` with points ``(N, K, 2)``) as an SVG with N ``<path>`` elements."""
    s = strokes.numpy()
    shown = f"{size * SVG_SCALE}px"
    svg = svgwrite.Drawing(str(path), size=(shown, shown), viewBox=f"0 0 {size} {size}")
    svg.add(svg.rect(insert=(0, 0), size=(size, size), fill="white"))
    for points, width, ink in zip(s.points, s.width, s.ink):
        xy = [f"{x:.3f} {y:.3f}" for x, y in points]
        d = f"M {xy[0]} L {xy[1]}" if len(xy) == 2 else f"M {xy[0]} Q {xy[1]} {xy[2]}"
        svg.add(
            svg.path(
                d=d,
                fill="none",
                stroke="black",
                stroke_width=round(float(width), 3),
                stroke_opacity=round(float(ink), 4),
                stroke_linecap="round",
            )
        )
    svg.save()


def read_strokes_svg(path: str | os.PathLike):
    """The drawing in an SVG written by ``strokes_svg`` (``Strokes`` of numpy arrays), read from the
    file's ``<path>`` elements alone: what a viewer of the file would draw."""
    points, widths, inks = [], [], []
    for element in ET.parse(path).getroot().iter("{http://www.w3.org/2000/svg}path"):
        numbers = [float(v) for v in element.get("d").replace("M", " ").replace("L", " ").replace("Q", " ").split()]
        points.append(np.reshape(numbers, (-1, 2)))
        widths.append(float(element.get("stroke-width")))
        inks.append(float(element.get("stroke-opacity")))
    return Strokes(np.array(points), np.array(widths), np.array(inks))
