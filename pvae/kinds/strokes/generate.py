"""Generation with sketch models: samples, reconstructions at several temperatures, latent
interpolation and sketch completion, written as SVG (svgwrite) and PNG (matplotlib) into
``RUN/COMMAND/ARGUMENTS/`` (``runs.output_dir``); and, for class-conditional runs on glyph data,
font style: one glyph's code decoded as every character.

Works with any model that has ``generate(z, n, temperature, prefix, y=...)`` and a ``latent_dim``
(0 for a decoder-only model), and any guide with ``posterior(x, y)``, on padded stroke-5 sketches.
A class-conditional model (``num_classes`` > 0) gets the labels of the sketches it encodes or
continues, ``model.condition(x, labels)``, and classes in turn when it draws from the prior.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from torch import nn

from pvae import render, runs
from pvae.data.fonts import GLYPH_CHARS
from pvae.distributions.strokes import drawn_segments
from pvae.errors import UserError
from pvae.kinds.base import require_command, require_font
from pvae.kinds.strokes.data import StrokeSplit, to_stroke3, to_stroke5
from pvae.kinds.strokes.glyphs import font_sketches
from pvae.posterior import encode, slerp

INK, CONTINUATION, SOURCE = "black", "#d62728", "#1f77b4"
TEMPERATURES = (0.1, 0.2, 0.4, 0.6, 0.8, 1.0)
SPECIMEN = "Hamburgefonstiv"  # type designers' test word: most of the strokes of the Latin alphabet
EMPTY_BELOW = 3  # a draw with fewer pen-down segments is empty (``empty``)
COMPLETION_CODES = ("prefix", "prior")  # where ``complete_run`` takes z from; the first is the default


def empty(x: torch.Tensor) -> torch.Tensor:
    """Which padded stroke-5 draws ``(N, T, 5)`` are empty: ``(N,)`` bool, true for a draw of fewer
    than ``EMPTY_BELOW`` pen-down segments (``drawn_segments``: lines from a point to the next with
    the pen down) before its end-of-sketch row.

    This catches the draws that end almost at once (the decoder picks p3 within the first few steps)
    and those that only move the pen; counted in lines, not in ink length, it does not depend on the
    data's scale. Real sketches have many more: every test sketch of aaron_sheep has at least 20, of
    the glyphs at least 6; 0.7% of omniglot's test characters (single marks) have fewer than 3."""
    return drawn_segments(x) < EMPTY_BELOW


def _share(count: int, n: int) -> str:
    return f"{count} of {n} ({count / n:.1%})"


def _empty_line(draws: torch.Tensor, source: str, data: torch.Tensor | None = None) -> str:
    """One line: how many ``draws`` ``(N, T, 5)`` are empty (and of the sketches ``data``, when given)."""
    line = f"empty draws: {_share(int(empty(draws).sum()), len(draws))} {source}"
    if data is not None:
        line += f"; empty test sketches: {_share(int(empty(data).sum()), len(data))}"
    return f"{line} (empty: fewer than {EMPTY_BELOW} pen-down segments before the end of the sketch)"


def _drawings(x: torch.Tensor, colour: str = INK) -> list[render.Drawing]:
    return [[(to_stroke3(s), colour)] for s in x.cpu()]


def _save(drawings: list[render.Drawing], folder: Path, name: str, ncol: int, title: str) -> list[Path]:
    """The same grid as ``folder/NAME.svg`` and ``folder/NAME.png``."""
    svg, png = folder / f"{name}.svg", folder / f"{name}.png"
    folder.mkdir(parents=True, exist_ok=True)
    render.sketches_svg(drawings, svg, ncol=ncol)
    render.sketches_png(drawings, png, ncol=ncol, title=title)
    return [svg, png]


def _needs_guide(guide: nn.Module | None, what: str) -> None:
    if guide is None:
        raise UserError(f"{what} needs a latent code: this run's model is decoder-only (no guide)")


def _prior_labels(model: nn.Module, n: int, label: int | None = None) -> torch.Tensor | None:
    """Labels ``(n,)`` for drawing from the prior of a class-conditional model: ``label`` for all,
    else the classes in turn; ``None`` for an unconditional model."""
    classes = model.num_classes
    if not classes:
        return None
    return torch.full((n,), label) if label is not None else torch.arange(n) % classes


def training_figures(
    folder: str | os.PathLike, model: nn.Module, guide: nn.Module | None, test: StrokeSplit, seed: int = 0
):
    """Reconstructions of 10 test sketches (top: the sketches) and 20 samples, as SVG and PNG in ``folder``."""
    folder = Path(folder)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        if guide is not None:
            head = test.head(10)
            x = head.tensor()
            y = model.condition(x, head.labels)
            recon = model.generate(encode(guide, x, y), temperature=0.2, y=y)
            _save(
                _drawings(x) + _drawings(recon),
                folder,
                "reconstructions",
                10,
                "test sketches; reconstructions (tau 0.2)",
            )
        y = _prior_labels(model, 20)
        z = model.prior(20, y).sample() if model.latent_dim else None
        samples = model.generate(z, n=20, temperature=0.5, y=y)
        title = "samples from the prior (tau 0.5)" + ("" if y is None else ", classes in turn")
        _save(_drawings(samples), folder, "prior_samples", 10, title)


def _load(run: str | os.PathLike, command: str):
    require_command(command, runs.load_config(run), run)
    return runs.load_run(run)


def _is_glyph_run(config: dict) -> bool:
    return config["data"]["spec"].partition(":")[0] == "glyphs"


def resolve_label(config: dict, model: nn.Module, label: int | str) -> int:
    """The class index that ``label`` names: a number, or on glyph data also a character of
    ``GLYPH_CHARS`` ("A" is class 10); out of range (for a class-conditional model) raises ``UserError``."""
    glyphs = _is_glyph_run(config)
    if glyphs and isinstance(label, str) and len(label) == 1 and label in GLYPH_CHARS:
        index = GLYPH_CHARS.index(label)
    else:
        try:
            index = int(label)
        except (TypeError, ValueError):
            kinds = "a class number or one of the characters 0-9 A-Z a-z" if glyphs else "a class number"
            raise UserError(f"--label {label}: not {kinds}") from None
    count = model.num_classes or (len(GLYPH_CHARS) if glyphs else 0)
    if index < 0 or (count and index >= count):
        raise UserError(f"--label {label}: out of range; this run's classes are 0-{count - 1}")
    return index


def _of_class(split: StrokeSplit, index: int, label: int | str) -> StrokeSplit:
    """The sketches of ``split`` labelled ``index``."""
    if split.labels is None:
        raise UserError(f"--label {label}: this run's data have no labels")
    picked = (split.labels == index).nonzero()[:, 0]
    if not len(picked):
        raise UserError(f"--label {label}: no test sketch has this label")
    return dataclasses.replace(split, sketches=[split.sketches[i] for i in picked], labels=split.labels[picked])


def sample_run(
    run: str | os.PathLike,
    n: int = 20,
    temperature: float = 0.5,
    prior: bool = False,
    seed: int = 0,
    label: int | str | None = None,
    say: Callable[[str], None] | None = None,
) -> list[Path]:
    """``n`` sketches at ``temperature``: from the prior, or conditioned on the codes of the first
    ``n`` test sketches (drawn above their samples). With ``label`` (a class number; on glyph data
    also a character) only that class: the prior's samples of a class-conditional model, or the
    test sketches with that label. ``say`` gets one line: the share of empty draws (``empty``),
    and of empty test sketches when drawing from their codes."""
    config, model, guide = _load(run, "sample")
    index = None if label is None else resolve_label(config, model, label)
    given = {} if index is None else {"label": index}
    prior = prior or guide is None
    torch.manual_seed(seed)
    if prior:
        if index is not None and not model.num_classes:
            raise UserError(
                f"--label {label}: the prior of this run is not class-conditional (train with --conditional)"
            )
        y = _prior_labels(model, n, index)
        z = model.prior(n, y).sample() if model.latent_dim else None
        draws = model.generate(z, n=n, temperature=temperature, y=y)
        title = f"from the prior, tau {temperature:g}" + ("" if index is None else f", class {index}")
        if say is not None:
            say(_empty_line(draws, title))
        folder = runs.output_dir(run, "sample", n=n, **given, temperature=temperature, prior=prior, seed=seed)
        return _save(_drawings(draws), folder, "samples", 10, title)
    test = runs.load_split(config, "test")
    if index is not None:
        test = _of_class(test, index, label)
    test = test.head(n)
    x = test.tensor()
    y = model.condition(x, test.labels)
    samples = model.generate(encode(guide, x, y), temperature=temperature, y=y)
    if say is not None:
        say(_empty_line(samples, f"from the codes of test sketches, tau {temperature:g}", x))
    drawings = [d for i in range(0, len(x), 10) for d in _drawings(x[i : i + 10]) + _drawings(samples[i : i + 10])]
    folder = runs.output_dir(run, "sample", n=len(x), **given, temperature=temperature, prior=prior, seed=seed)
    return _save(
        drawings,
        folder,
        "samples",
        10,
        f"test sketches and samples from their codes, tau {temperature:g}",
    )


def reconstruct_run(run: str | os.PathLike, n: int = 8, temperatures=TEMPERATURES, seed: int = 0) -> list[Path]:
    """Rows: a test sketch, then its reconstructions at each temperature (the temperature figure)."""
    config, model, guide = _load(run, "reconstruct")
    _needs_guide(guide, "pvae reconstruct")
    torch.manual_seed(seed)
    test = runs.load_split(config, "test").head(n)
    x = test.tensor()
    y = model.condition(x, test.labels)
    z = encode(guide, x, y)
    columns = [_drawings(x)] + [_drawings(model.generate(z, temperature=t, y=y)) for t in temperatures]
    drawings = [col[i] for i in range(len(x)) for col in columns]
    title = "each row: a test sketch, then reconstructions at tau " + ", ".join(f"{t:g}" for t in temperatures)
    folder = runs.output_dir(run, "reconstruct", n=len(x), seed=seed)
    return _save(drawings, folder, "reconstructions", len(columns), title)


def interpolate_run(
    run: str | os.PathLike, first: int = 0, second: int = 1, steps: int = 10, temperature: float = 0.1, seed: int = 0
) -> list[Path]:
    """Decode codes between two encoded test sketches: a linear strip above a spherical one. A
    class-conditional model draws the first sketch's class up to the middle, then the second's."""
    config, model, guide = _load(run, "interpolate")
    _needs_guide(guide, "pvae interpolate")
    test = runs.load_split(config, "test")
    for i in (first, second):
        if not 0 <= i < len(test):
            raise UserError(f"--pair {i}: the test split has sketches 0-{len(test) - 1}")
    torch.manual_seed(seed)
    x = test.tensor()[[first, second]]
    y = model.condition(x, None if test.labels is None else test.labels[[first, second]])
    z0, z1 = encode(guide, x, y)
    t = torch.linspace(0, 1, steps)
    y_t = None if y is None else torch.where(t < 0.5, y[0], y[1])
    drawings = []
    for z in (torch.lerp(z0, z1, t[:, None]), slerp(z0, z1, t)):
        drawings += _drawings(model.generate(z, temperature=temperature, y=y_t))
    title = f"test sketches {first} -> {second}: linear (top) and spherical (bottom) interpolation, tau {temperature:g}"
    folder = runs.output_dir(run, "interpolate", pair=[first, second], steps=steps, temperature=temperature, seed=seed)
    return _save(drawings, folder, "interpolation", steps, title)


def complete_run(
    run: str | os.PathLike,
    n: int = 5,
    samples: int = 4,
    fraction: float = 0.5,
    temperature: float = 0.5,
    seed: int = 0,
    z: str | None = None,
    say: Callable[[str], None] | None = None,
) -> list[Path]:
    """Continue the first ``fraction`` of ``n`` test sketches ``samples`` times each (sketch-rnn's
    Figure 7): the decoder reads the given part teacher-forced (``read_prefix``) and draws on from its
    state until the end of the sketch; the given part in black, the continuation in red.

    The given part reaches the decoder through its state; the code z (``COMPLETION_CODES``) is
    ``"prefix"`` (the default): the posterior mean of the given part alone, so that all continuations
    of a sketch share the code of what is drawn; or ``"prior"``: one draw from p(z | y) per
    continuation, so that they differ in z as well as in their steps (they draw more, and less like
    the given part: ``docs/results.md``). A decoder-only model has no z (sketch-rnn's own
    completions; ``z`` must then be ``None``); a class-conditional one reads the label. ``say`` gets
    one line: the pen-down segments the continuations draw against those of the rest of the test
    sketches, and how many continuations are empty (``empty``, over the continuation alone)."""
    if z is not None and z not in COMPLETION_CODES:
        raise UserError(f"--z {z}: unknown; choose one of {', '.join(COMPLETION_CODES)}")
    config, model, guide = _load(run, "complete")
    if z is not None:
        _needs_guide(guide, f"--z {z}")
    z = z or COMPLETION_CODES[0]
    test = runs.load_split(config, "test").head(n)
    if not 0 < fraction < 1:
        raise UserError(f"--fraction {fraction}: must be between 0 and 1")
    torch.manual_seed(seed)
    drawings, continued, remaining = [], [], []
    for i, sketch in enumerate(test.sketches):
        p = max(1, round(fraction * len(sketch)))
        given_part = torch.from_numpy(to_stroke5(sketch[:p], test.rows)).unsqueeze(0)  # (1, T, 5), ended after p
        prefix = given_part[:, :p]
        label = model.condition(given_part, None if test.labels is None else test.labels[i : i + 1])
        y = None if label is None else label.expand(samples)
        if not model.latent_dim:
            code = None
        elif z == "prior":
            code = model.prior(samples, y).sample()
        else:
            code = encode(guide, given_part, label).expand(samples, -1)
        out = model.generate(code, n=samples, temperature=temperature, prefix=prefix.expand(samples, -1, -1), y=y)
        whole = torch.from_numpy(to_stroke5(sketch, test.rows)).unsqueeze(0)
        continued.append(drawn_segments(out) - drawn_segments(given_part))  # lines from point p - 1 on
        remaining.append(drawn_segments(whole) - drawn_segments(given_part))
        given = to_stroke3(prefix[0].numpy())
        drawings.append([(np.asarray(sketch), INK)])
        drawings += [[(given, INK), (to_stroke3(o.numpy())[p:], CONTINUATION)] for o in out]
    codes = f"z from the {z}" if model.latent_dim else "decoder-only"
    if say is not None:
        continued, remaining = torch.cat(continued), torch.cat(remaining)
        say(
            f"continuations ({codes}): {continued.float().mean():.1f} pen-down segments on average, the rest of "
            f"the test sketches {remaining.float().mean():.1f}; empty continuations: "
            f"{_share(int((continued < EMPTY_BELOW).sum()), len(continued))} (fewer than {EMPTY_BELOW} segments)"
        )
    title = f"each row: a test sketch; its first {fraction:.0%} continued {samples} times (red), {codes}"
    title += f", tau {temperature:g}"
    code = {"z": z} if model.latent_dim else {}
    arguments = dict(n=len(test), samples=samples, fraction=fraction, temperature=temperature, **code, seed=seed)
    return _save(drawings, runs.output_dir(run, "complete", **arguments), "completions", samples + 1, title)


# --- font style (class-conditional runs on glyph data) --------------------------------------------


def _style_run(run: str | os.PathLike, what: str):
    """The config, model and guide of a class-conditional run on glyph data, else ``UserError``."""
    config, model, guide = _load(run, "style")
    if not (_is_glyph_run(config) and model.num_classes and guide is not None):
        raise UserError(
            f"{run}: {what} needs a class-conditional run on glyph data "
            "(pvae train --model sketch --conditional --data glyphs[:FONTS])"
        )
    return config, model, guide


def _glyph_class(model: nn.Module, char: str, flag: str = "--glyph") -> int:
    """The class of a character of ``GLYPH_CHARS`` that the model draws, else ``UserError``."""
    if not isinstance(char, str) or len(char) != 1 or char not in GLYPH_CHARS:
        raise UserError(f"{flag} {char!r}: not one of the 62 characters 0-9 A-Z a-z")
    index = GLYPH_CHARS.index(char)
    if index >= model.num_classes:
        raise UserError(f"{flag} {char!r}: this run's model draws only {GLYPH_CHARS[: model.num_classes]}")
    return index


def _font_glyph(config: dict, font: str | os.PathLike, char: str) -> np.ndarray:
    """Glyph ``char`` of a font file as normalised stroke-3, as the run's data: offsets / scale."""
    sketch = font_sketches(font, char)[0]  # DataError for a file that is not a font, or no such glyph
    if not len(sketch):
        raise UserError(f"{font}: its glyph {char!r} has no outline")
    rows = config["data"]["rows"]
    if len(sketch) >= rows:
        raise UserError(
            f"{font}: its glyph {char!r} has {len(sketch)} points; this run's model takes at most {rows - 1}"
        )
    return np.column_stack([sketch[:, :2] / config["data"]["scale"], sketch[:, 2]]).astype(np.float32)


def _font_code(config: dict, guide: nn.Module, sketch: np.ndarray, index: int) -> torch.Tensor:
    """E_q[z | x, y] of one normalised glyph sketch of class ``index``: ``(1, Z)``."""
    x = torch.from_numpy(to_stroke5(sketch, config["data"]["rows"])).unsqueeze(0)
    return encode(guide, x, torch.tensor([index]))


def style_run(
    run: str | os.PathLike, font: str | os.PathLike | None, glyph: str, temperature: float = 0.1, seed: int = 0
) -> list[Path]:
    """Encode the glyph ``glyph`` of the font file ``font``, z = E_q[z | x, y], and decode that z
    with every class y: the font's style in all 62 characters (rows 0-9, A-Z, a-z; the encoded
    glyph in blue at the top right), as ``style.svg`` and ``style.png`` in
    ``RUN/style/font=FONT,glyph=CHAR,temperature=T,seed=S/``."""
    config, model, guide = _style_run(run, "pvae style")
    font = require_font(font)
    index = _glyph_class(model, glyph)
    sketch = _font_glyph(config, font, glyph)
    z = _font_code(config, guide, sketch, index)
    torch.manual_seed(seed)
    classes = torch.arange(model.num_classes)
    decoded = _drawings(model.generate(z.expand(len(classes), -1), temperature=temperature, y=classes))
    ncol = 26
    cells: list[render.Drawing] = []
    for first, last in ((0, 10), (10, 36), (36, 62)):  # one row each of digits, capitals, small letters
        row = decoded[first:last]
        cells += row + [[]] * (ncol - len(row))
    cells[ncol - 1] = [(sketch, SOURCE)]
    title = f"{Path(font).name} {glyph!r} (blue) decoded as every character, tau {temperature:g}"
    folder = runs.output_dir(run, "style", font=Path(font).stem, glyph=glyph, temperature=temperature, seed=seed)
    return _save(cells, folder, "style", ncol, title)


def font_interpolation_run(
    run: str | os.PathLike,
    font_a: str | os.PathLike | None,
    font_b: str | os.PathLike,
    steps: int = 8,
    glyph: str = "A",
    chars: str = SPECIMEN,
    temperature: float = 0.1,
    seed: int = 0,
) -> list[Path]:
    """Interpolate between two fonts' styles: z_a, z_b = E_q[z | x, y] of the glyph ``glyph`` of
    each font, and row i decodes slerp(z_a, z_b, i / (steps - 1)) as each character of ``chars``
    (the first column: the two encoded glyphs, in blue), as
    ``interpolation.svg`` and ``interpolation.png`` in ``RUN/style/font=A,glyph=CHAR,to=B,steps=N,...``."""
    config, model, guide = _style_run(run, "font interpolation")
    font_a = require_font(font_a)
    if steps < 2:
        raise UserError(f"--steps {steps}: must be at least 2")
    if not chars:
        raise UserError("--chars: give at least one character")
    index = _glyph_class(model, glyph)
    columns = [_glyph_class(model, c, "--chars") for c in chars]
    sketches = [_font_glyph(config, font, glyph) for font in (font_a, font_b)]
    z0, z1 = (_font_code(config, guide, s, index)[0] for s in sketches)
    torch.manual_seed(seed)
    z = slerp(z0, z1, torch.linspace(0, 1, steps)).repeat_interleave(len(columns), 0)  # (steps * K, Z)
    out = model.generate(z, temperature=temperature, y=torch.tensor(columns).repeat(steps))
    decoded = _drawings(out)
    cells: list[render.Drawing] = []
    for i in range(steps):
        source = [(sketches[0], SOURCE)] if i == 0 else [(sketches[1], SOURCE)] if i == steps - 1 else []
        cells += [source] + decoded[i * len(columns) : (i + 1) * len(columns)]
    title = (
        f"{Path(font_a).name} -> {Path(font_b).name}: spherical interpolation of the codes of {glyph!r} "
        f"(blue), tau {temperature:g}"
    )
    shown = {} if chars == SPECIMEN else {"chars": chars}
    folder = runs.output_dir(
        run, "style", font=Path(font_a).stem, glyph=glyph, to=Path(font_b).stem, steps=steps, **shown,
        temperature=temperature, seed=seed,
    )  # fmt: skip
    return _save(cells, folder, "interpolation", len(columns) + 1, title)
