"""Generative models p(x, z), one module each; see ARCHITECTURE.md for the Model contract."""

from models.gaussian_vae import GaussianVAE
from models.linear_vae import LinearVAE

MODELS = {"gaussian": GaussianVAE, "linear": LinearVAE}

__all__ = ["GaussianVAE", "LinearVAE", "MODELS"]
