"""Generative models p(x, z), one module each; see ARCHITECTURE.md for the Model contract."""

from models.gaussian_vae import GaussianVAE
from models.linear_vae import LinearVAE
from models.sketch_vae import SketchVAE

MODELS = {"gaussian": GaussianVAE, "linear": LinearVAE, "sketch": SketchVAE}

__all__ = ["GaussianVAE", "LinearVAE", "MODELS", "SketchVAE"]
