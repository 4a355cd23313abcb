"""Generation with sketch models: samples, reconstructions at several temperatures, latent
interpolation and sketch completion, written as SVG (svgwrite) and PNG (matplotlib).

Works with any model that has ``generate(z, n, temperature, prefix)`` and a ``latent_dim`` (0 for
a decoder-only model), and any guide with ``posterior(x)``, on padded stroke-5 sketches.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch
from torch import nn

from pvae import render, runs
from pvae.data.strokes import StrokeSplit, to_stroke3, to_stroke5
from pvae.errors import UserError

INK, CONTINUATION = "black", "#d62728"
TEMPERATURES = (0.1, 0.2, 0.4, 0.6, 0.8, 1.0)


def _drawings(x: torch.Tensor, colour: str = INK) -> list[render.Drawing]:
    return [[(to_stroke3(s), colour)] for s in x.cpu()]


@torch.no_grad()
def encode(guide: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """The posterior means E_q[z | x] of padded sketches ``(N, T, 5)``: ``(N, Z)``."""
    return guide.posterior(x).mean


def slerp(z0: torch.Tensor, z1: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """Spherical interpolation: sin((1-t) w) / sin w z0 + sin(t w) / sin w z1, w = angle(z0, z1)."""
    cos = torch.dot(z0, z1) / (z0.norm() * z1.norm())
    omega = torch.arccos(cos.clamp(-1 + 1e-7, 1 - 1e-7))
    if omega.abs() < 1e-6:
        return torch.lerp(z0, z1, t[:, None])
    return (torch.sin((1 - t) * omega)[:, None] * z0 + torch.sin(t * omega)[:, None] * z1) / torch.sin(omega)


def _save(drawings: list[render.Drawing], run: Path, name: str, ncol: int, title: str) -> list[Path]:
    """The same grid as ``RUN/samples/NAME.svg`` and ``RUN/figures/NAME.png``."""
    svg, png = run / runs.SAMPLES / f"{name}.svg", run / runs.FIGURES / f"{name}.png"
    for path in (svg, png):
        path.parent.mkdir(parents=True, exist_ok=True)
    render.sketches_svg(drawings, svg, ncol=ncol)
    render.sketches_png(drawings, png, ncol=ncol, title=title)
    return [svg, png]


def _needs_guide(guide: nn.Module | None, what: str) -> None:
    if guide is None:
        raise UserError(f"{what} needs a latent code: this run's model is decoder-only (no guide)")


def training_figures(
    run: str | os.PathLike, model: nn.Module, guide: nn.Module | None, test: StrokeSplit, seed: int = 0
):
    """Reconstructions of 10 test sketches (top: the sketches) and 20 samples, in figures/ and samples/."""
    run = Path(run)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        if guide is not None:
            x = test.head(10).tensor()
            recon = model.generate(encode(guide, x), temperature=0.2)
            _save(
                _drawings(x) + _drawings(recon),
                run,
                "reconstructions",
                10,
                "test sketches; reconstructions (tau 0.2)",
            )
        z = model.prior(20).sample() if model.latent_dim else None
        samples = model.generate(z, n=20, temperature=0.5)
        _save(_drawings(samples), run, "prior_samples", 10, "samples from the prior (tau 0.5)")


def _load(run: str | os.PathLike):
    kind = runs.load_config(run)["data"]["kind"]
    if kind != "strokes":
        raise UserError(f"{run}: a run of {kind} data; this command draws sketches")
    return runs.load_run(run)


def sample_run(
    run: str | os.PathLike, n: int = 20, temperature: float = 0.5, prior: bool = False, seed: int = 0
) -> list[Path]:
    """``n`` sketches at ``temperature``: from the prior, or conditioned on the codes of the first
    ``n`` test sketches (drawn above their samples)."""
    config, model, guide = _load(run)
    run = Path(run)
    torch.manual_seed(seed)
    if prior or guide is None:
        z = model.prior(n).sample() if model.latent_dim else None
        drawings = _drawings(model.generate(z, n=n, temperature=temperature))
        return _save(drawings, run, f"prior_t{temperature:g}", 10, f"from the prior, tau {temperature:g}")
    x = runs.load_split(config, "test").head(n).tensor()
    samples = model.generate(encode(guide, x), temperature=temperature)
    drawings = [d for i in range(0, len(x), 10) for d in _drawings(x[i : i + 10]) + _drawings(samples[i : i + 10])]
    return _save(
        drawings,
        run,
        f"conditional_t{temperature:g}",
        10,
        f"test sketches and samples from their codes, tau {temperature:g}",
    )


def reconstruct_run(run: str | os.PathLike, n: int = 8, temperatures=TEMPERATURES, seed: int = 0) -> list[Path]:
    """Rows: a test sketch, then its reconstructions at each temperature (the temperature figure)."""
    config, model, guide = _load(run)
    _needs_guide(guide, "pvae reconstruct")
    torch.manual_seed(seed)
    x = runs.load_split(config, "test").head(n).tensor()
    z = encode(guide, x)
    columns = [_drawings(x)] + [_drawings(model.generate(z, temperature=t)) for t in temperatures]
    drawings = [col[i] for i in range(len(x)) for col in columns]
    title = "each row: a test sketch, then reconstructions at tau " + ", ".join(f"{t:g}" for t in temperatures)
    return _save(drawings, Path(run), "temperatures", len(columns), title)


def interpolate_run(
    run: str | os.PathLike, first: int = 0, second: int = 1, steps: int = 10, temperature: float = 0.1, seed: int = 0
) -> list[Path]:
    """Decode codes between two encoded test sketches: a linear strip above a spherical one."""
    config, model, guide = _load(run)
    _needs_guide(guide, "pvae interpolate")
    test = runs.load_split(config, "test")
    for i in (first, second):
        if not 0 <= i < len(test):
            raise UserError(f"--pair {i}: the test split has sketches 0-{len(test) - 1}")
    torch.manual_seed(seed)
    x = test.tensor()[[first, second]]
    z0, z1 = encode(guide, x)
    t = torch.linspace(0, 1, steps)
    drawings = []
    for z in (torch.lerp(z0, z1, t[:, None]), slerp(z0, z1, t)):
        drawings += _drawings(model.generate(z, temperature=temperature))
    title = f"test sketches {first} -> {second}: linear (top) and spherical (bottom) interpolation, tau {temperature:g}"
    return _save(drawings, Path(run), f"interpolate_{first}_{second}", steps, title)


def complete_run(
    run: str | os.PathLike, n: int = 5, samples: int = 4, fraction: float = 0.5, temperature: float = 0.5, seed: int = 0
) -> list[Path]:
    """Continue the first ``fraction`` of ``n`` test sketches ``samples`` times each (the paper's
    Figure 7): the given part in black, the continuation in red. The code z is the posterior mean
    of the given part alone, so the model never sees the rest."""
    config, model, guide = _load(run)
    test = runs.load_split(config, "test").head(n)
    if not 0 < fraction < 1:
        raise UserError(f"--fraction {fraction}: must be between 0 and 1")
    torch.manual_seed(seed)
    drawings = []
    for sketch in test.sketches:
        p = max(1, round(fraction * len(sketch)))
        prefix = torch.from_numpy(to_stroke5(sketch[:p], test.rows)[:p]).unsqueeze(0)
        z = None
        if guide is not None:
            z = encode(guide, torch.from_numpy(to_stroke5(sketch[:p], test.rows)).unsqueeze(0)).expand(samples, -1)
        out = model.generate(z, n=samples, temperature=temperature, prefix=prefix.expand(samples, -1, -1))
        given = to_stroke3(prefix[0].numpy())
        drawings.append([(np.asarray(sketch), INK)])
        drawings += [[(given, INK), (to_stroke3(o.numpy())[p:], CONTINUATION)] for o in out]
    title = f"each row: a test sketch; its first {fraction:.0%} continued {samples} times (red), tau {temperature:g}"
    return _save(drawings, Path(run), "complete", samples + 1, title)
