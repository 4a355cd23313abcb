"""Generation from image runs: class-conditional samples (``pvae sample --label``) and image
completion (``pvae complete``), as PNG grids in ``RUN/samples/``.

The sketch counterparts live in ``pvae.sketching``; each data kind (``pvae.data.kinds``) lists the
commands that apply to its runs.
"""

from __future__ import annotations

import os
from pathlib import Path

import torch

from pvae import render, runs
from pvae.data.kinds import require_command
from pvae.errors import UserError
from pvae.inspect import class_samples, decode_mean, style_grid

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
    """``n`` decoded samples from p(z | y) (or p(z)); for a class-conditional run without ``label``,
    the style-vs-content grid (one z per row, one class per column) instead."""
    config, model, _ = _load_images(run, "sample")
    shape, out = tuple(config["data"]["shape"]), Path(run) / runs.SAMPLES
    out.mkdir(exist_ok=True)
    torch.manual_seed(seed)
    if model.supports_completion:
        raise UserError(f"{run}: a completion run generates from visible pixels; use pvae complete")
    if label is None and model.num_classes:
        return [style_grid(model, shape, out / "style_content.png")]
    if label is None:
        path = out / "prior.png"
        images = decode_mean(model, model.prior(n).sample())
        render.image_grid(images.reshape(-1, *shape), path, title="decoded samples of p(z) (pixel means)")
        return [path]
    y = parse_label(label, model.num_classes, run)
    path = out / f"label_{y}.png"
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
    shape, out = tuple(config["data"]["shape"]), Path(run) / runs.SAMPLES
    out.mkdir(exist_ok=True)
    torch.manual_seed(seed)
    test = runs.load_split(config, "test").tensor()
    x = test[torch.linspace(0, len(test) - 1, min(n, len(test))).long()]
    y = model.condition(x, None)
    shown = torch.where(model.hidden, torch.full_like(x, HIDDEN_GREY), x)
    baseline = torch.where(model.hidden, model.baseline_prediction(y), x)
    completions = model.complete(y, samples)  # (S, B, D)
    rows = torch.stack([shown, baseline, *completions, x], 1)  # (B, S + 3, D)
    path = out / "completions.png"
    render.image_grid(
        rows.reshape(-1, *shape),
        path,
        ncol=samples + 3,
        title=f"{model.visible_quadrants} visible quadrant(s): input, baseline, {samples} CVAE samples, truth",
    )
    return [path]
