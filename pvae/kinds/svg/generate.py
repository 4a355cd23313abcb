"""Generation from svg runs: one style in every character (``pvae sample --style-from``, ``pvae
style``), interpolation between two fonts' styles (``pvae interpolate``, ``pvae style --to``) and
glyph -> z -> commands (``pvae reconstruct``).

A style is a code z: the posterior mean of a glyph image, or the mean of a font's glyphs' means.
Decoding it with every class y gives one command sequence per character, written into
``RUN/COMMAND/ARGUMENTS/`` (``runs.output_dir``) as SVG files (one ``.svg`` per glyph, each a
``<path>`` of M, L, C and Z, and ``sheet.svg`` with all of them) and as a PNG sheet of the commands
filled (``outlines.rasterise``) beside the image decoder's pixel means. Every command prints the
commands per glyph of the decoded sequences against those of the originals (the paper's stroke
counts).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import numpy as np
import torch

from pvae import render, runs
from pvae.data.fonts import GLYPH_CHARS
from pvae.errors import UserError
from pvae.kinds.base import require_command
from pvae.kinds.svg.data import IMAGE_SIZE, SVGData
from pvae.kinds.svg.outlines import VIEWBOX, rasterise, read_font, svg_document, svg_path, to_rows
from pvae.posterior import encode, slerp

SHEET_COLUMNS = 31  # 62 characters in two rows
INTERPOLATION_CHARS = "ABCDEFGHabcdefgh0123"
FILE_NAMES = [f"{i:02d}_{c}" for i, c in enumerate(GLYPH_CHARS)]  # "10_A", "36_a": apart on any file system


def _say(line: str) -> None:
    print(line, file=sys.stderr)


def _load(run: str | os.PathLike, command: str) -> tuple[dict, torch.nn.Module, torch.nn.Module, SVGData]:
    config = runs.load_config(run)
    require_command(command, config, run)
    config, model, guide = runs.load_run(run)
    return config, model, guide, runs.load_data(config, ("test",))


def font_images(font: str | os.PathLike) -> tuple[torch.Tensor, torch.Tensor, list[np.ndarray]]:
    """A font's glyphs of ``GLYPH_CHARS`` that have an outline: rasters ``(N, D)``, classes ``(N,)``
    and absolute command rows (uncapped), for encoding a style."""
    path = Path(font).expanduser()
    if not path.is_file():
        raise UserError(f"{font}: no such font file")
    outlines = read_font(path, GLYPH_CHARS)
    glyphs = [(GLYPH_CHARS.index(c), to_rows(contours)) for c, contours in outlines.items()]
    glyphs = [(cls, rows) for cls, rows in glyphs if len(rows)]
    if not glyphs:
        raise UserError(f"{font}: no glyph of 0-9 A-Z a-z with an outline")
    images = torch.tensor(np.stack([rasterise(rows, IMAGE_SIZE).ravel() for _, rows in glyphs]))
    return images, torch.tensor([cls for cls, _ in glyphs]), [rows for _, rows in glyphs]


def parse_style(spec: str) -> tuple[str, str | None]:
    """``FONT`` or ``FONT:CHAR`` -> (font path, the character or ``None`` for the whole font)."""
    if len(spec) > 2 and spec[-2] == ":" and not Path(spec).is_file():
        return spec[:-2], spec[-1]
    return spec, None


@torch.no_grad()
def style_code(guide, spec: str) -> tuple[torch.Tensor, torch.Tensor, list[np.ndarray]]:
    """The style z ``(Z,)`` of ``FONT`` (the mean of its glyphs' posterior means) or ``FONT:CHAR``
    (that glyph's), with the font's images and commands (those of the character alone for
    ``FONT:CHAR``)."""
    font, char = parse_style(spec)
    images, classes, rows = font_images(font)
    if char is not None:
        if char not in GLYPH_CHARS:
            raise UserError(f"{spec}: {char!r} is not one of 0-9 A-Z a-z")
        keep = classes == GLYPH_CHARS.index(char)
        if not keep.any():
            raise UserError(f"{spec}: the font has no outline for {char!r}")
        images, classes, rows = images[keep], classes[keep], [r for r, k in zip(rows, keep) if k]
    return encode(guide, images, classes).mean(0), images, rows


@torch.no_grad()
def decode_style(model, data: SVGData, z: torch.Tensor, classes: torch.Tensor, temperature: float) -> list[np.ndarray]:
    """Absolute command rows of each class of ``classes`` ``(N,)`` drawn from one code z ``(Z,)``."""
    rows = model.generate(z.expand(len(classes), -1), classes, temperature)
    return [data.commands_of(r) for r in rows]


def write_glyphs(folder: Path, glyphs: list[np.ndarray], names: list[str]) -> list[Path]:
    """One SVG file per glyph (``folder/NAME.svg``) and ``sheet.svg`` with all of them in rows of
    ``SHEET_COLUMNS``; returns the sheet's path and the folder's (the glyphs' files are its ``.svg``)."""
    folder.mkdir(parents=True, exist_ok=True)
    for rows, name in zip(glyphs, names):
        path = folder / f"{name}.svg"
        path.write_text(svg_document(rows, name))
    cells = []
    for i, rows in enumerate(glyphs):
        x, y = (i % SHEET_COLUMNS) * VIEWBOX, (i // SHEET_COLUMNS) * VIEWBOX
        cells.append(f'<path transform="translate({x:g} {y:g})" d="{svg_path(rows)}" fill-rule="evenodd"/>')
    width, height = SHEET_COLUMNS * VIEWBOX, -(-len(glyphs) // SHEET_COLUMNS) * VIEWBOX
    sheet = folder / "sheet.svg"
    sheet.write_text(
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width:g} {height:g}" width="{width * 2:g}" '
        f'height="{height * 2:g}">' + "".join(cells) + "</svg>\n"
    )
    return [sheet, folder]


def filled(glyphs: list[np.ndarray]) -> torch.Tensor:
    """Absolute command rows filled as pixels, ``(N, 64, 64)``."""
    return torch.tensor(np.stack([rasterise(rows, IMAGE_SIZE) for rows in glyphs]))


def command_counts(decoded: list[np.ndarray], originals: list[np.ndarray]) -> str:
    """The line that compares commands per glyph (mean, min-max) of decoded and original sequences."""

    def stats(glyphs: list[np.ndarray]) -> str:
        n = [len(g) for g in glyphs]
        return f"{np.mean(n):.1f} ({min(n)}-{max(n)})"

    return f"commands per glyph: decoded {stats(decoded)}, originals {stats(originals)}"


@torch.no_grad()
def style_sheet(
    model, data, z: torch.Tensor, path: Path, temperature: float, title: str, truth=None
) -> list[np.ndarray]:
    """Draw every character of one style: a PNG of the image decoder's means and the decoded commands
    filled (with the true glyphs ``truth`` ``(62, D)`` on top when given); returns the commands."""
    classes = torch.arange(model.num_classes)
    glyphs = decode_style(model, data, z, classes, temperature)
    means = torch.sigmoid(model.image_logits(model.code(z.expand(len(classes), -1), classes)))
    rows = [means.reshape(-1, IMAGE_SIZE, IMAGE_SIZE), filled(glyphs)]
    if truth is not None:
        rows.insert(0, truth.reshape(-1, IMAGE_SIZE, IMAGE_SIZE))
    render.image_grid(torch.cat(rows), path, ncol=SHEET_COLUMNS, title=title)
    return glyphs


def style_run(run: str | os.PathLike, spec: str, temperature: float = 0.1, seed: int = 0) -> list[Path]:
    """One style (``FONT`` or ``FONT:CHAR``) decoded into every character: SVGs and a PNG sheet
    (``pvae style --font FONT --glyph CHAR``)."""
    font, char = parse_style(spec)
    return _style(run, "style", spec, temperature, seed, font=Path(font).stem, glyph=char or "all")


def _style(run: str | os.PathLike, command: str, spec: str, temperature: float, seed: int, **arguments) -> list[Path]:
    """``style_run`` as ``pvae COMMAND`` with its ``arguments`` besides the temperature and seed."""
    config, model, guide, data = _load(run, command)
    torch.manual_seed(seed)
    z, images, originals = style_code(guide, spec)
    font, char = parse_style(spec)
    folder = runs.output_dir(run, command, **arguments, temperature=temperature, seed=seed)
    png = folder / "sheet.png"
    title = f"style of {Path(font).name}{'' if char is None else ' ' + repr(char)}: image decoder, commands filled"
    glyphs = style_sheet(model, data, z, png, temperature, title)
    _say(command_counts(glyphs, originals))
    return [png, *write_glyphs(folder, glyphs, FILE_NAMES)]


def sample_run(
    run: str | os.PathLike, style_from: str | None = None, n: int | None = None, temperature: float = 0.5, seed: int = 0
) -> list[Path]:
    """With ``style_from`` (``FONT[:CHAR]``), that style in every character (``style_run``); else ``n``
    (default 4) styles drawn from p(z), each in every character."""
    if style_from is not None:
        font, char = parse_style(style_from)
        shown = Path(font).stem + ("" if char is None else f":{char}")
        return _style(run, "sample", style_from, temperature, seed, style_from=shown)
    config, model, guide, data = _load(run, "sample")
    torch.manual_seed(seed)
    folder = runs.output_dir(run, "sample", n=n or 4, temperature=temperature, seed=seed)
    paths, decoded = [], []
    for i, z in enumerate(model.prior(n or 4).sample()):
        glyphs = style_sheet(model, data, z, folder / f"style_{i}.png", temperature, f"a style drawn from p(z) ({i})")
        paths += [
            folder / f"style_{i}.png",
            *write_glyphs(folder / f"style_{i}", glyphs, FILE_NAMES),
        ]
        decoded += glyphs
    originals = [
        data.commands_of(x) for x in data.split("test").images[:, IMAGE_SIZE * IMAGE_SIZE :].unflatten(-1, (-1, 7))
    ]
    _say(command_counts(decoded, originals))
    return paths


def _test_fonts(data: SVGData, first: int, second: int) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """Two test fonts by their order in the test split: each one's images ``(n, D)`` and classes ``(n,)``."""
    fonts = list(dict.fromkeys(data.fonts["test"].tolist()))
    for i in (first, second):
        if not 0 <= i < len(fonts):
            raise UserError(f"--pair {first} {second}: the test split has {len(fonts)} fonts, 0-{len(fonts) - 1}")
    test = data.split("test")
    chosen = []
    for i in (first, second):
        keep = torch.from_numpy(data.fonts["test"] == fonts[i])
        chosen.append((test.images[keep, : IMAGE_SIZE * IMAGE_SIZE], test.labels[keep]))
    return chosen


@torch.no_grad()
def interpolation_sheet(
    model, data, z0: torch.Tensor, z1: torch.Tensor, steps: int, path: Path, temperature: float, title: str
):
    """Rows of ``INTERPOLATION_CHARS`` decoded along the slerp from z0 to z1; returns the commands by row."""
    classes = torch.tensor([GLYPH_CHARS.index(c) for c in INTERPOLATION_CHARS])
    rows = []
    for z in slerp(z0, z1, torch.linspace(0, 1, steps)):
        rows.append(decode_style(model, data, z, classes, temperature))
    render.image_grid(torch.cat([filled(r) for r in rows]), path, ncol=len(classes), title=title)
    return rows


def interpolate_run(
    run: str | os.PathLike, first: int = 0, second: int = 1, steps: int = 8, temperature: float = 0.1, seed: int = 0
) -> list[Path]:
    """The style path between test fonts ``first`` and ``second`` (their glyphs' mean codes)."""
    config, model, guide, data = _load(run, "interpolate")
    torch.manual_seed(seed)
    (x0, y0), (x1, y1) = _test_fonts(data, first, second)
    z0, z1 = encode(guide, x0, y0).mean(0), encode(guide, x1, y1).mean(0)
    folder = runs.output_dir(run, "interpolate", pair=[first, second], steps=steps, temperature=temperature, seed=seed)
    png = folder / "interpolation.png"
    title = f"test fonts {first} -> {second}: the commands filled, one style per row"
    rows = interpolation_sheet(model, data, z0, z1, steps, png, temperature, title)
    return [
        png,
        *write_glyphs(
            folder / "svg",
            [g for row in rows for g in row],
            [f"{row}_{FILE_NAMES[GLYPH_CHARS.index(c)]}" for row in range(steps) for c in INTERPOLATION_CHARS],
        ),
    ]


def interpolate_fonts(
    run: str | os.PathLike, first: str, second: str, steps: int = 8, temperature: float = 0.1, seed: int = 0
) -> list[Path]:
    """The style path between two font files (``pvae style --font A --to B``)."""
    config, model, guide, data = _load(run, "interpolate")
    torch.manual_seed(seed)
    z0, z1 = style_code(guide, first)[0], style_code(guide, second)[0]
    folder = runs.output_dir(
        run, "style", font=Path(first).stem, to=Path(second).stem, steps=steps, temperature=temperature, seed=seed
    )
    png = folder / "interpolation.png"
    interpolation_sheet(model, data, z0, z1, steps, png, temperature, f"{Path(first).name} -> {Path(second).name}")
    return [png]


@torch.no_grad()
def reconstruct_run(run: str | os.PathLike, n: int = 8, seed: int = 0, temperature: float = 0.1) -> list[Path]:
    """``n`` test glyphs (spread over the split) -> z (posterior mean) -> commands, as SVGs and a
    sheet: the glyphs, the image decoder's means, the decoded commands filled."""
    config, model, guide, data = _load(run, "reconstruct")
    torch.manual_seed(seed)
    test = data.split("test")
    index = torch.linspace(0, len(test) - 1, min(n, len(test))).long()
    images, classes = test.images[index, : IMAGE_SIZE * IMAGE_SIZE], test.labels[index]
    z = encode(guide, images, classes)
    decoded = [data.commands_of(r) for r in model.generate(z, classes, temperature)]
    means = torch.sigmoid(model.image_logits(model.code(z, classes)))
    folder = runs.output_dir(run, "reconstruct", n=len(index), seed=seed)
    png = folder / "reconstructions.png"
    shown = torch.cat([images, means, filled(decoded).flatten(1)]).reshape(-1, IMAGE_SIZE, IMAGE_SIZE)
    render.image_grid(
        shown, png, ncol=len(index), title="test glyphs; the image decoder's means; the commands decoded from z"
    )
    originals = [data.commands_of(x) for x in test.images[index, IMAGE_SIZE * IMAGE_SIZE :].unflatten(-1, (-1, 7))]
    _say(command_counts(decoded, originals))
    names = [f"{int(i):04d}_{GLYPH_CHARS[int(c)]}" for i, c in zip(index, classes)]
    return [png, *write_glyphs(folder, decoded, names)]


def first_font(labels: torch.Tensor) -> int:
    """How many rows the split's first font has: ``load_svg`` keeps each font's glyphs together in
    class order, so they are the rows before the class first goes down."""
    drops = torch.nonzero(labels[1:] <= labels[:-1])
    return int(drops[0]) + 1 if len(drops) else len(labels)


def training_figures(folder: Path, model, guide, test, config: dict, seed: int) -> None:
    """The style sheet of the first test font (its glyphs' mean code) at the end of training: its
    glyphs, the image decoder's means and the commands decoded, filled."""
    data_like = SVGData(
        "", {}, {}, [], config["data"]["max_commands"], *(np.array(config["data"][k]) for k in ("mean", "std"))
    )
    torch.manual_seed(seed)
    n = first_font(test.labels)
    images, classes = test.images[:n, : IMAGE_SIZE * IMAGE_SIZE], test.labels[:n]
    with torch.no_grad():
        z = encode(guide, images, classes).mean(0)
    truth = torch.zeros(model.num_classes, IMAGE_SIZE * IMAGE_SIZE)
    truth[classes] = images
    folder.mkdir(parents=True, exist_ok=True)
    title = "a test font: its glyphs; the image decoder; the commands decoded, filled"
    style_sheet(model, data_like, z, folder / "style.png", 0.1, title, truth)
