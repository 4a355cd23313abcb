"""Amortised guides q(z | x), one module each; see docs/architecture.md for the Guide contract and
``pvae.contracts.Guide`` for the capabilities each class declares (``analytic_kl``, ``factorised``,
``data_kinds``).

``diag``, ``lowrank``, ``full`` and ``iaf`` share one encoder trunk, chosen by the data (MLP for
images, BiLSTM for strokes and events), and differ in the head: diagonal, low-rank plus diagonal or
full-covariance Gaussian, or an inverse autoregressive flow. ``mlp`` and ``rnn`` are ``diag`` with
the trunk fixed (``rnn`` with sketch-rnn's sigma = exp(r / 2)), kept with their original
constructor arguments and parameter names; ``linear`` is the linear-Gaussian guide of pPCA;
``delta`` is the same trunk with a point estimate, a deterministic encoder.

``GUIDES`` holds every guide by name: each class of this package's modules with a ``name`` of its
own, and those of installed plug-ins (entry point group ``pvae.guides``; ``pvae.registry``). The
classes are also this package's attributes by class name (``from guides import DiagGuide``), and so
is their base ``AmortisedGuide``, to subclass with a head of one's own.
"""

from __future__ import annotations

from guides.amortised import AmortisedGuide
from pvae.contracts import Guide
from pvae.registry import Registry

GUIDES: Registry[type[Guide]] = Registry("guide", Guide, __name__, "pvae.guides")

__getattr__ = GUIDES.class_named  # the registered classes by class name (PEP 562)

__all__ = [  # the public names; the registry lists the guides in this order, then any others
    "GUIDES",
    "AmortisedGuide",
    "MLPGuide",
    "LinearGuide",
    "RNNGuide",
    "DiagGuide",
    "LowRankGuide",
    "FullGuide",
    "IAFGuide",
    "DeltaGuide",
]
