"""Shared test fixtures: tiny models, and paths to ../shared/data when it is there."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyro
import pytest
import torch

SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"


ABC_NOTES = "CDEFGABc"


def write_abc_tunes(path, count: int = 8, bars: int = 4, seed: int = 0):
    """``count`` 4/4 tunes of ``bars`` bars of eighth and quarter notes and rests, in one ABC file."""
    rng = np.random.default_rng(seed)
    tunes = []
    for i in range(count):
        bar_texts = []
        for _ in range(bars):
            units, text = 0, ""
            while units < 8:  # eighths per bar
                length = int(rng.choice([1, 2])) if units < 7 else 1
                symbol = "z" if rng.random() < 0.1 else ABC_NOTES[rng.integers(len(ABC_NOTES))]
                text += symbol + ("2" if length == 2 else "")
                units += length
            bar_texts.append(text)
        tunes.append(f"X:{i + 1}\nT:tune {i}\nM:4/4\nL:1/8\nK:C\n" + "|".join(bar_texts) + "|]\n")
    path.write_text("\n".join(tunes))
    return path


GLYPH_CHARS = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"


def write_font(path, draw, chars: str = GLYPH_CHARS, upem: int = 1000, ascent: int = 800, descent: int = -200):
    """A TrueType font (fontTools' ``FontBuilder``) whose glyph of each character is drawn by
    ``draw(pen, index)`` on a ``TTGlyphPen`` (``None`` draws nothing); advance width 600."""
    from fontTools.fontBuilder import FontBuilder
    from fontTools.pens.ttGlyphPen import TTGlyphPen

    names = [f"g{i}" for i in range(len(chars))]
    builder = FontBuilder(upem, isTTF=True)
    builder.setupGlyphOrder([".notdef", *names])
    builder.setupCharacterMap({ord(c): n for c, n in zip(chars, names)})
    glyphs = {}
    for i, name in enumerate([".notdef", *names]):
        pen = TTGlyphPen(None)
        if i and draw is not None:
            draw(pen, i - 1)
        glyphs[name] = pen.glyph()
    builder.setupGlyf(glyphs)
    left = {n: min((x for x, _ in getattr(g, "coordinates", [])), default=0) for n, g in glyphs.items()}
    builder.setupHorizontalMetrics({n: (600, left[n]) for n in glyphs})  # lsb = xMin: drawn where drawn
    builder.setupHorizontalHeader(ascent=ascent, descent=descent)
    builder.setupNameTable({"familyName": path.stem, "styleName": "Regular"})
    builder.setupOS2()
    builder.setupPost()
    builder.save(str(path))
    return path


def write_test_fonts(folder, count: int = 3):
    """``count`` fonts of 62 glyphs each: a box whose size follows the character, with a curved
    (quadratic) top and a square hole; the stroke weight follows the font."""
    folder.mkdir(parents=True, exist_ok=True)
    for f in range(count):
        weight = 20 + 15 * f

        def draw(pen, i, weight=weight):
            right, top = 150 + 5 * (i % 20), 300 + 6 * i
            pen.moveTo((100, 0))
            pen.lineTo((100, top))
            pen.qCurveTo((100 + right // 2, top + 100), (100 + right, top))
            pen.lineTo((100 + right, 0))
            pen.closePath()
            pen.moveTo((100 + weight, weight))  # the hole, drawn the other way round
            pen.lineTo((100 + right - weight, weight))
            pen.lineTo((100 + right - weight, top - weight))
            pen.lineTo((100 + weight, top - weight))
            pen.closePath()

        write_font(folder / f"test{f}.ttf", draw)
    return folder


@pytest.fixture
def shared_file():
    """``shared_file(*parts)``: a path under ../shared/data, or a skip when the checkout has none."""

    def find(*parts: str) -> Path:
        path = SHARED_DATA.joinpath(*parts)
        if not path.exists():
            pytest.skip(f"reference data {'/'.join(parts)} is not present in this checkout's data folder")
        return path

    return find


@pytest.fixture(autouse=True, scope="session")
def _private_cache(tmp_path_factory):
    """Parsed melody corpora are cached in a folder of the test session, never the user's."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("PVAE_CACHE", str(tmp_path_factory.mktemp("cache")))
        yield


@pytest.fixture(autouse=True)
def _fresh_pyro():
    """Each test starts with an empty param store, validation on and a fixed seed."""
    pyro.clear_param_store()
    pyro.enable_validation(True)
    pyro.set_rng_seed(0)
    yield
    pyro.clear_param_store()


@pytest.fixture(scope="module")
def one_thread():
    """Torch on one thread for a module: tiny models (LSTMs above all) run several times faster so
    than with two threads on a busy 2-core machine."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _shapes(n: int, seed: int = 0) -> list[np.ndarray]:
    from pvae.kinds.strokes.data import lines_to_stroke3

    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        corners = (
            np.array([[0, 0], [1, 0], [1, 1], [0, 1], [0, 0]])
            if i % 2
            else np.array([[0, 0], [1, 0], [0.5, 1], [0, 0]])
        )
        out.append(lines_to_stroke3([np.round(corners * rng.uniform(20, 60) + rng.uniform(0, 50, 2))]))
    return out


@pytest.fixture(scope="session")
def stroke_shapes():
    """``stroke_shapes(n, seed=0)``: n squares and triangles of random size and position, drawn as
    closed polylines, as stroke-3 sketches."""
    return _shapes
