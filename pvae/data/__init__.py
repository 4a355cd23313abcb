"""Datasets by spec string (the ``--data`` flag):

- ``digits[:N[:SEED]]``: built-in 28x28 digits rendered from matplotlib's fonts (nothing to
  download); N training images (default 50000) and N/5 test images, from SEED (default 0).
- ``mnist:DIR``: MNIST's four idx files (``train-images-idx3-ubyte[.gz]`` and friends) in DIR.
- ``binarized-mnist:FILE``: the fixed binarisation in one ``.npz`` (keys train/valid/test).

Stroke data (sketch models):

- ``glyphs``: built-in stroke-3 sketches of the glyphs 0-9 A-Z a-z of matplotlib's fonts
  (outline contours as pen strokes; nothing to download); labels are the characters (their index
  in ``pvae.data.fonts.GLYPH_CHARS``).
- ``glyphs:PATH``: the same from a ``.ttf``/``.otf`` font file or a folder of them (searched
  recursively); fonts without all 62 characters are skipped with one warning.
- ``sketch:FILE``: sketch-rnn's ``.npz`` (object arrays, read by a restricted unpickler that
  rebuilds numeric arrays only: ``pvae.data.npz``) or our pickle-free cache of it
  (``pvae.data.strokes.save_stroke_cache``).
- ``quickdraw:FILE``: a QuickDraw ``.ndjson`` file, simplified or raw layout.

Melodies (``pvae.data.music``; needs the ``music`` extra):

- ``folk:essen``, ``folk:oneills``: the Essen folk song collection and O'Neill's Music of Ireland
  (1850), as ABC inside music21's package (nothing to download).
- ``abc:PATH``: an ABC file or a folder of them; ``midi:PATH``: a monophonic MIDI file or a folder.
"""

from __future__ import annotations

from pathlib import Path

from pvae.data.images import ImageData, ImageSplit, binarize

PATH_SCHEMES = (
    "mnist",
    "binarized-mnist",
    "glyphs",
    "sketch",
    "quickdraw",
    "abc",
    "midi",
)  # specs that name a file or folder
DEFAULT_DIGITS = 50000


def load_digits(n_train: int = DEFAULT_DIGITS, seed: int = 0) -> ImageData:
    """The built-in digits: ``n_train`` training and ``n_train // 5`` test images."""
    from pvae.data.digits import render_digits

    train = ImageSplit(*render_digits(n_train, seed=2 * seed))
    test = ImageSplit(*render_digits(max(1, n_train // 5), seed=2 * seed + 1))
    for split in (train, test):
        split.images = split.images.reshape(len(split), -1)
    return ImageData(name=f"digits:{n_train}:{seed}", shape=(28, 28), splits={"train": train, "test": test})


def absolute_spec(spec: str) -> str:
    """``spec`` with its paths made absolute (each of a comma-separated list), so a run folder's
    config works from any directory."""
    kind, sep, rest = spec.partition(":")
    if kind in PATH_SCHEMES and rest:
        return f"{kind}:" + ",".join(str(Path(part).expanduser().resolve()) for part in rest.split(","))
    return spec


def load_glyphs(path: str | None = None, seed: int = 0) -> tuple[dict[str, list], dict]:
    """Raw glyph sketches of every font of ``path`` (a font file or folder; default: matplotlib's
    fonts) with all of ``GLYPH_CHARS``, in a seeded split of the glyphs, and their labels (the index
    of the character in ``GLYPH_CHARS``, int64) per split. ``pvae.data.fonts.read_glyphs`` gives
    the font of each glyph too."""
    import torch

    from pvae.data.fonts import read_glyphs
    from pvae.data.strokes import split_seeded

    glyphs = read_glyphs(path)
    parts = split_seeded(glyphs.sketches, seed)
    labels = torch.from_numpy(glyphs.classes)
    raw = {s: [glyphs.sketches[i] for i in idx] for s, idx in parts.items()}
    return raw, {s: labels[idx] for s, idx in parts.items()}


def class_count(data) -> int:
    """C, the number of classes of a dataset's labelled train split (labels 0..C-1); 0 without labels."""
    labels = data.split("train").labels
    return 0 if labels is None or not len(labels) else int(labels.max()) + 1


def load_dataset(
    spec: str, options: dict | None = None, saved: dict | None = None, splits: tuple[str, ...] | None = None
):
    """The dataset a ``--data`` spec names (``ImageData``, ``StrokeData`` or ``MelodyData``, by the
    spec's kind: ``pvae.data.kinds``); a bad spec or file raises ``DataError``. ``options`` are
    training options by name that shape the data (``max_seq_len``: stroke data drop longer
    sketches; ``bars``: the melody window). ``saved`` is a run's ``config["data"]``, to load the data
    as the run saw them (e.g. the stroke scale), and ``splits`` the splits needed (default all)."""
    from pvae.data.kinds import kind_of_spec

    return kind_of_spec(spec).load(spec, options, saved=saved, splits=splits)


__all__ = [
    "ImageData",
    "ImageSplit",
    "absolute_spec",
    "binarize",
    "class_count",
    "load_dataset",
    "load_digits",
]
