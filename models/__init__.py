"""Generative models p(x, z), one module each; see docs/architecture.md for the Model contract and
``pvae.contracts.Model`` for the capabilities each class declares (``name``, ``data_kind``, ...).

``MODELS`` holds every model by name: each class of this package's modules with a ``name`` of its
own, and those of installed plug-ins (entry point group ``pvae.models``; ``pvae.registry``). The
classes are also this package's attributes by class name (``from models import GaussianVAE``).
"""

from __future__ import annotations

from pvae.contracts import Model
from pvae.registry import Registry

MODELS: Registry[type[Model]] = Registry("model", Model, __name__, "pvae.models")

__getattr__ = MODELS.class_named  # the registered classes by class name (PEP 562)

__all__ = [  # the public names; the registry lists the models in this order, then any others
    "MODELS",
    "GaussianVAE",
    "LinearVAE",
    "SketchVAE",
    "CVAE",
    "CompletionCVAE",
    "StrokesRaster",
    "MelodyVAE",
    "SVGVAE",
]
