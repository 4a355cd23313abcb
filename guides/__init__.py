"""Amortised guides q(z | x), one module each; see docs/architecture.md for the Guide contract and
``pvae.nn.Guide`` for the capabilities each class declares (``analytic_kl``, ``factorised``,
``data_kinds``).

``diag``, ``lowrank``, ``full`` and ``iaf`` share one encoder trunk, chosen by the data (MLP for
images, BiLSTM for strokes and events), and differ in the head: diagonal, low-rank plus diagonal or
full-covariance Gaussian, or an inverse autoregressive flow. ``mlp`` and ``rnn`` are ``diag`` with
the trunk fixed (``rnn`` with sketch-rnn's sigma = exp(r / 2)), kept with their original
constructor arguments and parameter names; ``linear`` is the linear-Gaussian guide of pPCA;
``delta`` is the same trunk with a point estimate, a deterministic encoder.
"""

from guides.amortised import (
    AmortisedGuide,
    DeltaGuide,
    DiagGuide,
    FullGuide,
    IAFGuide,
    LowRankGuide,
)
from guides.linear import LinearGuide
from guides.mlp import MLPGuide
from guides.rnn import RNNGuide

GUIDES = {
    "mlp": MLPGuide,
    "linear": LinearGuide,
    "rnn": RNNGuide,
    "diag": DiagGuide,
    "lowrank": LowRankGuide,
    "full": FullGuide,
    "iaf": IAFGuide,
    "delta": DeltaGuide,
}

__all__ = [
    "GUIDES",
    "AmortisedGuide",
    "DeltaGuide",
    "DiagGuide",
    "FullGuide",
    "IAFGuide",
    "LinearGuide",
    "LowRankGuide",
    "MLPGuide",
    "RNNGuide",
]
