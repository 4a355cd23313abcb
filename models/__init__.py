"""Generative models p(x, z), one module each; see ARCHITECTURE.md for the Model contract."""

from models.gaussian_vae import GaussianVAE

MODELS = {"gaussian": GaussianVAE}

__all__ = ["GaussianVAE", "MODELS"]
