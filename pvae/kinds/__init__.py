"""Data kinds, one wing (subpackage) each: ``image``, ``strokes``, ``events``, ``svg``. A wing holds the
kind's readers, its ``DataKind``, its figures and its generation commands, and imports no other
wing; the protocol and the registry (``KINDS``) are ``pvae.kinds.base``, which the core reads.
"""

from pvae.kinds.base import KINDS, DataKind, kind_of, kind_of_spec, load_dataset

__all__ = [
    "KINDS",
    "DataKind",
    "kind_of",
    "kind_of_spec",
    "load_dataset",
    "image",
    "strokes",
    "events",
    "svg",
]  # KINDS' order
