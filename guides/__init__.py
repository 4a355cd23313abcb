"""Amortised guides q(z | x), one module each; see ARCHITECTURE.md for the Guide contract."""

from guides.mlp import MLPGuide
from guides.linear import LinearGuide

GUIDES = {"mlp": MLPGuide, "linear": LinearGuide}

__all__ = ["GUIDES", "LinearGuide", "MLPGuide"]
