"""Generation from image runs: class-conditional samples (``pvae sample --label``), image
completion (``pvae complete``), as PNG grids, and vectorisation (``pvae vectorise``: images -> SVG
drawings, for models that draw strokes); each into ``RUN/COMMAND/ARGUMENTS/`` (``runs.output_dir``).

The sketch counterparts live in ``pvae.kinds.strokes.generate``; each data kind (``pvae.kinds``)
lists the commands that apply to its runs.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch

from pvae import render, runs
from pvae.errors import UserError
from pvae.kinds.base import kind_of, kind_of_spec, require_command
from pvae.kinds.image.figures import class_samples, style_grid
from pvae.posterior import decode_mean, point_estimate
from pvae.raster import hard_render

HIDDEN_GREY = 0.35  # how hidden pixels are drawn in the completion figure's inputs


def _load_images(run: str | os.PathLike, command: str):
    require_command(command, runs.load_config(run), run)
    return runs.load_run(run)


def parse_label(label: str | int, num_classes: int, run: str | os.PathLike, names: str | None = None) -> int:
    """Class index of ``label``: an integer 0..C-1 or, given class ``names``, one of them."""
    if not num_classes:
        raise UserError(f"--label {label}: {run} is not class-conditional (train with --model cvae or --conditional)")
    text = str(label)
    if names is not None and len(text) == 1 and text in names:
        return names.index(text)
    try:
        value = int(text)
    except ValueError:
        value = None
    if value is None or not 0 <= value < num_classes:
        raise UserError(f"--label {label}: not a class of {run}; use 0-{num_classes - 1}")
    return value


def sample_run(run: str | os.PathLike, n: int = 100, label: str | int | None = None, seed: int = 0) -> list[Path]:
    """``n`` decoded samples from p(z | y) (or p(z)), ``samples.png``; for a class-conditional run
    without ``label``, the style-vs-content grid (one z per row, one class per column) instead."""
    config, model, _ = _load_images(run, "sample")
    shape = tuple(config["data"]["shape"])
    if model.supports_completion:
        raise UserError(f"{run}: a completion run generates from visible pixels; use pvae complete")
    torch.manual_seed(seed)
    if label is None and model.num_classes:
        return [style_grid(model, shape, runs.output_dir(run, "sample", seed=seed) / "style_content.png")]
    if label is None:
        out = runs.output_dir(run, "sample", n=n, seed=seed)
        path = out / "samples.png"
        z = model.prior(n).sample()
        images = decode_mean(model, z)
        render.image_grid(images.reshape(-1, *shape), path, title="decoded samples of p(z) (pixel means)")
        if not model.supports_vectorise:
            return [path]
        folder = out / "svg"
        folder.mkdir(exist_ok=True)
        return [path, *write_svgs(model, z, folder)]
    y = parse_label(label, model.num_classes, run)
    path = runs.output_dir(run, "sample", n=n, label=y, seed=seed) / "samples.png"
    images = class_samples(model, torch.full((n,), y, dtype=torch.long))
    render.image_grid(images.reshape(-1, *shape), path, title=f"decoded samples of p(z | y={y}) (pixel means)")
    return [path]


def complete_run(run: str | os.PathLike, n: int = 8, samples: int = 5, seed: int = 0) -> list[Path]:
    """Completions of ``n`` test images spread evenly over the split (test sets are often sorted by
    class): per row the input (hidden part grey), the baseline's prediction, ``samples`` CVAE
    completions (z ~ p(z | visible)) and the original."""
    config, model, _ = _load_images(run, "complete")
    if not model.supports_completion:
        raise UserError(f"{run}: not an image-completion run (train with --model completion)")
    shape = tuple(config["data"]["shape"])
    torch.manual_seed(seed)
    test = runs.load_split(config, "test").tensor()
    x = test[torch.linspace(0, len(test) - 1, min(n, len(test))).long()]
    y = model.condition(x, None)
    shown = torch.where(model.hidden, torch.full_like(x, HIDDEN_GREY), x)
    baseline = torch.where(model.hidden, model.baseline_prediction(y), x)
    completions = model.complete(y, samples)  # (S, B, D)
    rows = torch.stack([shown, baseline, *completions, x], 1)  # (B, S + 3, D)
    path = runs.output_dir(run, "complete", n=len(x), samples=samples, seed=seed) / "completions.png"
    render.image_grid(
        rows.reshape(-1, *shape),
        path,
        ncol=samples + 3,
        title=f"{model.visible_quadrants} visible quadrant(s): input, baseline, {samples} CVAE samples, truth",
    )
    return [path]


@torch.no_grad()
def write_svgs(model, z: torch.Tensor, folder: Path, first: int = 0) -> list[Path]:
    """One SVG per code in ``z`` ``(B, Z)``: the model's drawing of it, ``folder/000.svg``, ...
    (numbered from ``first``)."""
    strokes = model.strokes(z)
    paths = [folder / f"{first + i:03d}.svg" for i in range(len(z))]
    for i, path in enumerate(paths):
        render.strokes_svg(strokes[i], model.size, path)
    return paths


def svg_images(paths: list[Path], size: int) -> torch.Tensor:
    """SVG files rendered back to pixels (``pvae.raster.hard_render`` of their ``<path>`` elements), ``(N, S^2)``."""
    return torch.tensor(np.stack([hard_render(render.read_strokes_svg(p), size) for p in paths]), dtype=torch.float32)


@torch.no_grad()
def vectorise_run(run: str | os.PathLike, spec: str | None = None, n: int = 16) -> list[Path]:
    """Encode ``n`` test images (of the run's data, or of ``spec``) with the guide's point estimate
    of z, write each one's drawing as an SVG, and a sheet: the images, the model's renders of the
    drawings, and the SVG files rendered back to pixels (deterministic: the guide's mean and the
    renderers draw nothing at random)."""
    config, model, guide = _load_images(run, "vectorise")
    if not model.supports_vectorise:
        raise UserError(f"{run}: its model does not draw strokes; vectorise runs of --model strokes-raster")
    shape = tuple(config["data"]["shape"])
    kind = kind_of(config) if spec is None else kind_of_spec(spec)
    if kind.name != "image":
        raise UserError(f"--data {spec}: not image data")
    loaded = runs.load_data(config, ("test",)) if spec is None else kind.load(spec, splits=("test",))
    shown, data = loaded.split("test"), kind.evaluation_split(loaded, "test", config)
    if shown.images.shape[1] != shape[0] * shape[1]:
        raise UserError(f"--data {spec}: its images are not {shape[0]}x{shape[1]} like the run's")
    index = torch.linspace(0, len(data) - 1, min(n, len(data))).long()
    x = data.tensor()[index]
    y = model.condition(x, None)
    z = point_estimate(guide.posterior(x, y))
    folder = runs.output_dir(run, "vectorise", data=spec or "test", n=len(index))
    paths = write_svgs(model, z, folder)
    drawn = model.render(model.strokes(z))
    back = svg_images(paths, model.size)
    sheet = folder / "sheet.png"
    rows = torch.cat([shown.tensor()[index].reshape(len(index), -1), drawn, back])
    render.image_grid(
        rows.reshape(-1, *shape),
        sheet,
        ncol=len(index),
        title="rows: images; the model's renders of their drawings; the SVG files rendered back",
    )
    return [sheet, *paths]
