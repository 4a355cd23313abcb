"""Every figure of an image run at latent sizes 1, 2 and 3: training's, ``--resume``'s and
``pvae inspect``'s; the latent strip of a 1-D latent."""

from __future__ import annotations

import numpy as np
import pytest

from pvae import render
from pvae.cli import main

TRAINING = ("loss", "reconstructions", "prior_samples", "latent_scatter", "style_content")
INSPECTION = (
    "active_units",
    "latent_scatter",
    "traversals",
    "reconstructions_iw",
    "posterior_predictive",
    "prior_samples",
    "style_content",
)


@pytest.mark.parametrize("latent_dim", [1, 2, 3])
def test_every_image_figure_is_drawn_at_small_latent_sizes(tmp_path, capsys, one_thread, latent_dim):
    run = tmp_path / "run"
    args = ["--data", "digits:200", "--latent-dim", str(latent_dim), "--hidden", "16", "--conditional"]
    assert main(["train", *args, "--steps", "2", "--no-progress", "--out", str(run)]) == 0
    for name in TRAINING:
        assert (run / "figures" / f"{name}.png").stat().st_size > 1000, name
    assert main(["train", "--resume", "--out", str(run), "--steps", "3", "--no-progress"]) == 0
    assert main(["inspect", str(run)]) == 0
    folder = run / "inspect" / "split=test,limit=all,seed=0"
    for name in INSPECTION:
        assert (folder / f"{name}.png").stat().st_size > 1000, name


@pytest.mark.parametrize("classes", [None, 3, 12])
def test_a_one_dimensional_latent_is_a_strip_of_rows_by_label(tmp_path, classes):
    rng = np.random.default_rng(0)
    points = rng.normal(size=(60, 1))
    labels = None if classes is None else rng.integers(classes, size=60)
    path = tmp_path / "strip.png"
    render.latent_scatter(points, labels, path, title="one dimension")
    assert path.stat().st_size > 1000
