"""Amortised guides q(z | x), one module each; see ARCHITECTURE.md for the Guide contract."""

from guides.linear import LinearGuide
from guides.mlp import MLPGuide

GUIDES = {"mlp": MLPGuide, "linear": LinearGuide}

__all__ = ["GUIDES", "LinearGuide", "MLPGuide"]
