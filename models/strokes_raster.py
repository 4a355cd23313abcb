"""A VAE whose decoder draws: z -> a fixed number of strokes -> a renderer -> Bernoulli pixels.

Image vectorisation without labels (the talk "Unsupervised image vectorisation"; Mihai & Hare
2021): the code of an image is a drawing of ``segments`` strokes, so the decoder's output is SVG.

    z ~ N(0, I_Z)
    (P_n, w_n, a_n)_{n=1..N} = g(MLP(z))       control points in pixels, width, ink in (0, 1)
    ink = render(strokes)                       ``pvae.raster``: soft (analytic) or neural
    x | z ~ Bernoulli(eps + (1 - 2 eps) ink)    per pixel, eps = ``INK_FLOOR``

g maps the MLP's outputs r through sigmoids: P = S sigmoid(r), w = w_min + (w_max - w_min)
sigmoid(r) with (w_min, w_max) = ``pvae.raster.WIDTH_RANGE``, a = ``INK_MAX`` sigmoid(r). The floor
eps keeps the likelihood finite where the data have ink and no stroke passes (stray pixels).

Renderers (``--renderer``):

- ``soft``: differentiable; its sigma (pixels) is annealed geometrically from ``sigma`` to
  ``sigma_final`` over the first ``SIGMA_ANNEAL`` of the run's planned steps (``set_progress``),
  then kept; the current sigma and the planned steps are buffers of the model, so a saved run
  evaluates as it ended and a resumed one keeps its schedule. Each stroke is computed only near
  itself (``pvae.raster.soft_render_windowed``, within ``pvae.raster.INK_BOUND`` of the dense
  render at every pixel); ``windowed = False`` on a model selects the dense reference.
- ``neural``: a network imitating the non-differentiable ``hard_render`` of one stroke, trained
  in ``pretrain`` before SVI (``renderer_steps`` steps on random strokes) and frozen.

With the deterministic guide ``delta``, ``elbo`` trains the regularised autoencoder
log p(x | z) + log p(z) of the talk's first approach; with a stochastic guide, a VAE.

Shapes: ``x`` ``(B, S^2)``; ``z`` ``(..., B, Z)``; strokes ``(..., B, N, ...)``.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Sequence

import pyro.distributions as dist
import torch

from pvae.contracts import LATENT_DIM, PRIOR, Model, Option
from pvae.distributions import BernoulliImage
from pvae.distributions.priors import checked_prior
from pvae.layers import ACTIVATION, HIDDEN, mlp
from pvae.raster import CONTROL_POINTS, WIDTH_RANGE, NeuralRenderer, Strokes, soft_render

RENDERERS = ("soft", "neural")
INK_FLOOR = 1e-3  # eps: the least and most probability of ink at a pixel
INK_MAX = 0.999  # strokes' ink below 1, so log(1 - ink) stays finite
SIGMA_ANNEAL = 0.75  # the soft renderer's sigma reaches sigma_final after this fraction of the run

# The neural renderer is frozen outside ``pretrain``, so pyro.module leaves it out of the param store.
warnings.filterwarnings("ignore", message=r"renderer\..* was not registered in the param store")

_FITTED: dict[tuple, dict[str, torch.Tensor]] = {}  # neural renderers trained in this process, by settings


def _sigma_final_at_most_sigma(config) -> str | None:
    if config.sigma_final > config.sigma:
        return f"--sigma-final {config.sigma_final}: must be at most --sigma {config.sigma}"
    return None


SEGMENTS = Option("segments", 8, "strokes per image, N", "drawing", int, low=1, scope="model", metavar="N")
PRIMITIVE = Option(
    "primitive",
    "line",
    "stroke shape: a line or a quadratic Bezier",
    "drawing",
    choices=tuple(CONTROL_POINTS),
    scope="model",
)
RENDERER = Option(
    "renderer",
    "soft",
    "soft (analytic, differentiable) or neural (imitates a hard rasteriser)",
    "drawing",
    choices=RENDERERS,
    scope="model",
)
_SOFT = (lambda c: c.renderer == "soft", "--renderer soft")  # what the soft renderer reads
SIGMA = Option(
    "sigma",
    2.0,
    "soft renderer: ink falloff width in pixels at the start",
    "drawing",
    float,
    low=0.0,
    low_open=True,
    scope="model",
    needs=_SOFT,
)
SIGMA_FINAL = Option(
    "sigma_final",
    0.5,
    "soft renderer: the width annealed to (at most --sigma)",
    "drawing",
    float,
    low=0.0,
    low_open=True,
    scope="model",
    needs=_SOFT,
    check_with=_sigma_final_at_most_sigma,
)
RENDERER_STEPS = Option(
    "renderer_steps",
    2000,
    "neural renderer: its training steps before SVI",
    "drawing",
    int,
    low=1,
    scope="model",
    needs=(lambda c: c.renderer == "neural", "--renderer neural"),
)


class StrokesRaster(Model):
    """Images drawn by ``segments`` lines or quadratic Béziers through a soft or neural renderer.

    :param data_dim: pixels per image, S^2 (square images).
    :param latent_dim: Z.
    :param hidden: decoder MLP hidden sizes, from z outwards.
    :param activation: hidden activation name (``pvae.layers.ACTIVATIONS``).
    :param segments: N, strokes per image.
    :param primitive: ``"line"`` or ``"bezier"``.
    :param renderer: ``"soft"`` or ``"neural"``.
    :param sigma: soft renderer: the falloff width in pixels at the start of training.
    :param sigma_final: soft renderer: the width it is annealed to (at most ``sigma``).
    :param renderer_steps: neural renderer: its training steps in ``pretrain``.
    :param prior: p(z), a name of ``pvae.distributions.priors.PRIORS``.
    """

    name = "strokes-raster"
    windowed = True  # the soft renderer computes each stroke near itself only (False: the dense reference)
    options = (LATENT_DIM, HIDDEN, ACTIVATION, PRIOR, SEGMENTS, PRIMITIVE, RENDERER, SIGMA, SIGMA_FINAL, RENDERER_STEPS)
    data_kind = "image"
    binary = True
    supports_vectorise = True

    def __init__(
        self,
        data_dim: int,
        latent_dim: int = 20,
        hidden: Sequence[int] = (400,),
        activation: str = "relu",
        segments: int = 8,
        primitive: str = "line",
        renderer: str = "soft",
        sigma: float = 2.0,
        sigma_final: float = 0.5,
        renderer_steps: int = 2000,
        prior: str = "normal",
    ) -> None:
        super().__init__()
        self.prior_name = checked_prior(prior, latent_dim)
        size = math.isqrt(data_dim)
        if size * size != data_dim:
            raise ValueError(f"strokes-raster draws square images; {data_dim} pixels are not a square")
        if segments < 1:
            raise ValueError(f"segments must be at least 1, not {segments}")
        if primitive not in CONTROL_POINTS:
            raise ValueError(f"primitive must be one of {', '.join(CONTROL_POINTS)}, not {primitive!r}")
        if renderer not in RENDERERS:
            raise ValueError(f"renderer must be one of {', '.join(RENDERERS)}, not {renderer!r}")
        if not 0 < sigma_final <= sigma:
            raise ValueError(f"need 0 < sigma_final <= sigma, not {sigma_final} and {sigma}")
        self.data_dim, self.latent_dim, self.size = data_dim, latent_dim, size
        self.segments, self.primitive, self.renderer_name = segments, primitive, renderer
        self.sigma_start, self.sigma_final, self.renderer_steps = sigma, sigma_final, renderer_steps
        self.controls = CONTROL_POINTS[primitive]
        self.decoder = mlp([latent_dim, *hidden, segments * (2 * self.controls + 2)], activation)
        with torch.no_grad():  # strokes start spread over the canvas, not all at its centre
            self.decoder[-1].bias.view(segments, -1)[:, : 2 * self.controls].normal_(0, 1.5)
        self.renderer = NeuralRenderer(primitive, size).requires_grad_(False) if renderer == "neural" else None
        self.register_buffer("sigma", torch.tensor(float(sigma)))
        self.register_buffer("planned_steps", torch.tensor(0))  # the run's length when it started: 0 until then

    def strokes(self, z: torch.Tensor) -> Strokes:
        """The drawing of each code: points ``(..., N, K, 2)`` in pixels, width and ink ``(..., N)``."""
        raw = self.decoder(z).unflatten(-1, (self.segments, 2 * self.controls + 2))
        points = self.size * torch.sigmoid(raw[..., : 2 * self.controls]).unflatten(-1, (self.controls, 2))
        low, high = WIDTH_RANGE
        width = low + (high - low) * torch.sigmoid(raw[..., -2])
        return Strokes(points, width, INK_MAX * torch.sigmoid(raw[..., -1]))

    def render(self, strokes: Strokes) -> torch.Tensor:
        """Ink image ``(..., S^2)`` in [0, 1) of the drawings, by this model's renderer."""
        if self.renderer is None:
            return soft_render(strokes, self.sigma, self.size, windowed=self.windowed)
        return self.renderer(strokes)

    def likelihood(self, z: torch.Tensor, y: torch.Tensor | None = None) -> dist.Distribution:
        """p(x | z): Bernoulli pixels, probability eps + (1 - 2 eps) ink; batch ``z.shape[:-1]``, event ``(S^2,)``."""
        p = INK_FLOOR + (1 - 2 * INK_FLOOR) * self.render(self.strokes(z))
        return BernoulliImage(torch.log(p) - torch.log1p(-p))

    def set_progress(self, step: int, steps: int) -> None:
        """sigma = sigma_start (sigma_final / sigma_start)^min(1, step / (SIGMA_ANNEAL steps)), with
        ``steps`` the run's planned length when it started (kept in the checkpoint, so a run resumed
        with a larger limit keeps its schedule)."""
        if not self.planned_steps:
            self.planned_steps.fill_(steps)
        done = min(1.0, step / max(SIGMA_ANNEAL * int(self.planned_steps), 1))
        self.sigma.fill_(self.sigma_start * (self.sigma_final / self.sigma_start) ** done)

    def pretrain(self, batches: Callable[[], object], log: Callable[[str], None]) -> None:
        """Train the neural renderer on random strokes (no data needed) and freeze it; a renderer of
        the same settings trained earlier in this process is reused."""
        if self.renderer is None:
            return
        seed = int(torch.randint(2**31, ()))
        key = (self.primitive, self.size, self.renderer_steps, seed)
        if key not in _FITTED:
            self.renderer.fit(self.renderer_steps, seed=seed, log=log)
            _FITTED[key] = {k: v.clone() for k, v in self.renderer.state_dict().items()}
        else:
            self.renderer.load_state_dict(_FITTED[key])
            log(f"neural renderer ({self.primitive}): reused, held-out BCE {float(self.renderer.heldout_bce):.4f}")


__all__ = ["RENDERERS", "StrokesRaster"]
