"""Glyph data from font files: outlines, stroke-3 sketches, the ``glyphs[:PATH]`` spec and bad input."""

from __future__ import annotations

import shutil
import warnings

import numpy as np
import pytest

from pvae.data.fonts import GLYPH_CHARS, glyph_contours, matplotlib_font_files
from pvae.errors import DataError
from pvae.kinds.base import absolute_spec, load_dataset
from pvae.kinds.strokes.generate import interpolate_run, reconstruct_run
from pvae.kinds.strokes.glyphs import font_sketches, read_glyphs
from pvae.train import TrainConfig, train


def _font(name: str):
    return next(f for f in matplotlib_font_files() if f.name == name)


def test_a_font_gives_62_closed_finite_glyphs():
    font = _font("DejaVuSans.ttf")
    assert len(GLYPH_CHARS) == 62
    for char in GLYPH_CHARS:
        contours = glyph_contours(font, char)
        assert contours, char
        for contour in contours:
            assert contour.ndim == 2 and contour.shape[1] == 2 and len(contour) >= 3
            assert np.isfinite(contour).all()
            assert np.array_equal(contour[0], contour[-1]), char  # closed
    sketches = font_sketches(font)
    assert len(sketches) == 62
    for char, sketch in zip(GLYPH_CHARS, sketches):
        assert np.isfinite(sketch).all() and sketch[-1, 2] == 1
        assert int(sketch[:, 2].sum()) == len(glyph_contours(font, char))  # one stroke per contour
        extent = np.ptp(np.cumsum(sketch[:, :2], 0), axis=0)
        assert extent.max() == pytest.approx(255, abs=6)  # normalised per glyph: longer side 255 (less RDP)
    glyphs = read_glyphs(font)
    assert glyphs.classes.tolist() == list(range(62)) and set(glyphs.fonts.tolist()) == {0}


def test_glyphs_spec_reads_a_font_file_or_folder(tmp_path):
    data = load_dataset(f"glyphs:{_font('DejaVuSans.ttf')}")
    assert sum(len(s) for s in data.splits.values()) == 62
    labels = np.concatenate([s.labels.numpy() for s in data.splits.values()])
    assert sorted(labels.tolist()) == list(range(62))

    for name in ("DejaVuSans.ttf", "DejaVuSansMono.ttf", "LastResortHE-Regular.ttf"):
        shutil.copy(_font(name), tmp_path / name)
    (tmp_path / "broken.otf").write_bytes(b"\x00\x01garbage" * 20)
    (tmp_path / "notes.txt").write_text("not a font, and not named like one")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        glyphs = read_glyphs(tmp_path)
    messages = [str(w.message) for w in caught]
    assert len(messages) == 1 and "skipped 2 of 4 fonts" in messages[0], messages
    assert "LastResortHE-Regular.ttf" in messages[0] and "broken.otf" in messages[0]
    assert [f.name for f in glyphs.files] == ["DejaVuSans.ttf", "DejaVuSansMono.ttf"]
    assert len(glyphs.sketches) == 124 and np.bincount(glyphs.fonts).tolist() == [62, 62]

    assert absolute_spec("glyphs") == "glyphs"
    assert absolute_spec(f"glyphs:{tmp_path.name}").startswith("glyphs:/")


def test_bad_fonts_are_one_line_data_errors(tmp_path):
    garbage = tmp_path / "garbage.ttf"
    garbage.write_bytes(b"this is no font" * 50)
    empty = tmp_path / "empty"
    empty.mkdir()
    lacking = tmp_path / "lacking"
    lacking.mkdir()
    shutil.copy(_font("LastResortHE-Regular.ttf"), lacking)
    for spec, message in [
        (f"glyphs:{garbage}", f"{garbage}: not a TrueType/OpenType font"),
        (f"glyphs:{empty}", "no .ttf or .otf font in this folder"),
        (f"glyphs:{lacking}", "no usable font among 1 file(s)"),
        (f"glyphs:{tmp_path / 'missing'}", "no such font file or folder"),
        ("glyphs:", "give a font file or folder"),
    ]:
        with pytest.raises(DataError) as error:
            load_dataset(spec)
        assert message in str(error.value) and "\n" not in str(error.value), str(error.value)
    with pytest.raises(DataError, match="garbage.ttf"):
        font_sketches(garbage)
    with pytest.raises(DataError, match="no glyph for '0', '1'"):
        font_sketches(lacking / "LastResortHE-Regular.ttf")


def test_generation_reads_a_glyph_folder_once(tmp_path):
    """``pvae reconstruct`` and ``pvae interpolate`` on a run of a folder with a corrupt font warn
    about the skipped font once each: the data are read once."""
    fonts = tmp_path / "fonts"
    fonts.mkdir()
    shutil.copy(_font("DejaVuSans.ttf"), fonts / "DejaVuSans.ttf")
    (fonts / "broken.ttf").write_bytes(b"\x00\x01garbage" * 20)
    config = TrainConfig.for_model(
        model="sketch", data=f"glyphs:{fonts}", latent_dim=2, enc_hidden=4, dec_hidden=4, mixtures=1, steps=1
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        run = train(config, tmp_path / "run", progress=False)
    for generate in (lambda: reconstruct_run(run, n=2, temperatures=(0.5,)), lambda: interpolate_run(run, steps=2)):
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            generate()
        assert [str(w.message) for w in caught] == [
            f"{fonts}: skipped 1 of 2 fonts: 1 not TrueType/OpenType fonts (e.g. broken.ttf)"
        ]
