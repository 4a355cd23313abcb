"""Generative models p(x, z), one module each; see docs/architecture.md for the Model contract and
``pvae.nn.Model`` for the capabilities each class declares (``data_kind``, ``binary``, ...)."""

from models.completion_cvae import CompletionCVAE
from models.cvae import CVAE
from models.gaussian_vae import GaussianVAE
from models.linear_vae import LinearVAE
from models.melody_vae import MelodyVAE
from models.sketch_vae import SketchVAE
from models.strokes_raster import StrokesRaster

MODELS = {
    "gaussian": GaussianVAE,
    "linear": LinearVAE,
    "sketch": SketchVAE,
    "cvae": CVAE,
    "completion": CompletionCVAE,
    "strokes-raster": StrokesRaster,
    "melody": MelodyVAE,
}

__all__ = ["CVAE", "CompletionCVAE", "GaussianVAE", "LinearVAE", "MODELS", "MelodyVAE", "SketchVAE", "StrokesRaster"]
