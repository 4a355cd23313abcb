"""Amortised guides q(z | x), one module each; see ARCHITECTURE.md for the Guide contract."""

from guides.mlp import MLPGuide

GUIDES = {"mlp": MLPGuide}

__all__ = ["GUIDES", "MLPGuide"]
