"""What more than one kind of data reads with: ``npz`` (``.npz`` files without running code from
them), ``fonts`` (glyph outlines of TrueType/OpenType fonts: the raster digits and the glyph
sketches), ``splits`` (seeded splits and the datasets' split by name).

Each kind's own readers live in its wing, ``pvae.kinds.image``, ``pvae.kinds.strokes`` and
``pvae.kinds.events``; ``pvae.kinds.base.load_dataset`` loads any ``--data`` spec.
"""
