"""Amortised guides q(z | x), one module each; see ARCHITECTURE.md for the Guide contract."""

from guides.linear import LinearGuide
from guides.mlp import MLPGuide
from guides.rnn import RNNGuide

GUIDES = {"mlp": MLPGuide, "linear": LinearGuide, "rnn": RNNGuide}

__all__ = ["GUIDES", "LinearGuide", "MLPGuide", "RNNGuide"]
