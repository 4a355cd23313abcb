"""Amortised guides q(z | x), one module each; see ARCHITECTURE.md for the Guide contract.

``mlp``, ``rnn`` and ``linear`` are the original guides (diagonal Normal from an MLP or a BiLSTM,
and the linear-Gaussian guide of pPCA). ``diag``, ``lowrank``, ``full`` and ``iaf`` share one
encoder trunk, chosen by the data (MLP for images, BiLSTM for strokes), and differ in the head:
diagonal, low-rank plus diagonal or full-covariance Gaussian, or an inverse autoregressive flow.
"""

from guides.amortised import (
    AmortisedGuide,
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
}

__all__ = [
    "GUIDES",
    "AmortisedGuide",
    "DiagGuide",
    "FullGuide",
    "IAFGuide",
    "LinearGuide",
    "LowRankGuide",
    "MLPGuide",
    "RNNGuide",
]
