"""Image completion with a conditional VAE (Sohn et al. 2015; Pyro's CVAE example).

Given the visible quadrants v of a 28x28 image (1: bottom-left; 2: the left half; 3: all but the
bottom-right), model the hidden pixels h:

    y_hat = sigmoid(g(v))                           a deterministic baseline, trained first with
                                                     masked binary cross-entropy, then frozen
    z | v ~ N(mu, sigma) = prior_net([v, y_hat on the hidden pixels])
    h | z, v ~ Bernoulli(f(z)) on the hidden pixels only

The condition y of docs/architecture.md is v (the image with the hidden pixels set to -1), derived from
x by ``condition``; the observation site "x" is the whole image, scored on its hidden pixels. A
guide reads the whole image (training and evaluation, where x is known); completing an unseen
image draws z from the prior network instead.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Sequence

import pyro.distributions as dist
import torch
from torch.nn import functional as F

from pvae.contracts import LATENT_DIM, Model, Option
from pvae.distributions import BernoulliImage
from pvae.errors import UserError
from pvae.layers import ACTIVATION, HIDDEN, PixelDecoder, mlp

HIDDEN_FILL = -1.0  # the value of hidden pixels in the condition, as in Pyro's example
# The baseline is frozen outside its own pretraining, so pyro.module leaves it out of the param store
# (as intended) and says so for each of its parameters at every call.
warnings.filterwarnings("ignore", message=r"baseline\..* was not registered in the param store")

VISIBLE_QUADRANTS = Option(
    "visible_quadrants",
    1,
    "completion: quadrants given",
    "conditioning",
    int,
    choices=(1, 2, 3),
    scope="model",
    metavar="Q",
)
BASELINE_EPOCHS = Option(
    "baseline_epochs", 10, "completion: baseline network epochs first", "conditioning", int, low=0, scope="model"
)


def hidden_mask(visible_quadrants: int, side: int = 28) -> torch.Tensor:
    """Boolean ``(side * side,)``: True on the pixels to complete."""
    if visible_quadrants not in (1, 2, 3):
        raise UserError(f"--visible-quadrants {visible_quadrants}: must be 1, 2 or 3")
    visible = torch.zeros(side, side, dtype=torch.bool)
    half = side // 2
    visible[half:, :half] = True  # 1: bottom-left
    if visible_quadrants >= 2:
        visible[:, :half] = True  # 2: the left half
    if visible_quadrants == 3:
        visible[:half, :] = True  # 3: all but the bottom-right
    return ~visible.reshape(-1)


class CompletionCVAE(Model):
    """The completion CVAE with its baseline network (sizes default to Pyro's example).

    :param data_dim: pixels per image (a square image).
    :param visible_quadrants: 1, 2 or 3.
    :param latent_dim: Z.
    :param hidden: hidden sizes of the baseline, prior and generation networks.
    :param baseline_epochs: epochs of the baseline's training before the CVAE's.
    """

    name = "completion"
    options = (LATENT_DIM, HIDDEN, ACTIVATION, VISIBLE_QUADRANTS, BASELINE_EPOCHS)
    data_kind = "image"
    binary = True
    traceable = True
    supports_completion = True
    prior_has_parameters = True  # the prior network p(z | visible)
    train_defaults = {"latent_dim": 200, "hidden": [500, 500], "batch_size": 128}

    def __init__(
        self,
        data_dim: int,
        visible_quadrants: int = 1,
        latent_dim: int = 200,
        hidden: Sequence[int] = (500, 500),
        activation: str = "relu",
        baseline_epochs: int = 10,
    ) -> None:
        super().__init__()
        side = int(round(data_dim**0.5))
        if side * side != data_dim:
            raise ValueError(f"image completion needs square images, not {data_dim} pixels")
        self.data_dim, self.latent_dim, self.visible_quadrants = data_dim, latent_dim, visible_quadrants
        self.baseline_epochs = baseline_epochs
        self.register_buffer("hidden", hidden_mask(visible_quadrants, side), persistent=False)
        self.baseline = mlp([data_dim, *hidden, data_dim], activation).requires_grad_(False)  # see pretrain
        self.prior_net = mlp([data_dim, *hidden, 2 * latent_dim], activation)
        self.decoder = PixelDecoder(latent_dim, data_dim, hidden, activation, "bernoulli")

    def condition(self, x: torch.Tensor, labels: torch.Tensor | None) -> torch.Tensor:
        """The visible part of each image, hidden pixels set to -1."""
        return x.masked_fill(self.hidden, HIDDEN_FILL)

    def baseline_prediction(self, y: torch.Tensor) -> torch.Tensor:
        """The baseline's pixel probabilities for the hidden part (a no-gradient input to the prior)."""
        with torch.no_grad():
            return torch.sigmoid(self.baseline(y))

    def prior(self, batch_size: int, y: torch.Tensor | None = None) -> dist.Distribution:
        """p(z | v) from the visible part filled in by the baseline: batch ``(B,)``, event ``(Z,)``."""
        filled = torch.where(self.hidden, self.baseline_prediction(y), y)
        loc, raw = self.prior_net(filled).chunk(2, dim=-1)
        return dist.Normal(loc, torch.exp(raw)).to_event(1)

    def likelihood(self, z: torch.Tensor, y: torch.Tensor | None = None) -> dist.Distribution:
        """p(h | z, v): Bernoulli pixels scored on the hidden part only; batch ``z.shape[:-1]``."""
        return BernoulliImage(self.decoder.net(z), mask=self.hidden)

    @torch.no_grad()
    def complete(self, y: torch.Tensor, num_samples: int = 1) -> torch.Tensor:
        """Completions ``(num_samples, B, D)``: pixel probabilities of f(z), z ~ p(z | v), on the
        hidden part, and the visible pixels exactly as given."""
        z = self.prior(y.shape[0], y).sample((num_samples,))
        probs = torch.sigmoid(self.decoder.net(z))
        return torch.where(self.hidden, probs, y.expand_as(probs))

    def masked_bce(self, y: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        """The baseline's binary cross-entropy on the hidden pixels of each image, ``(B,)``."""
        bce = F.binary_cross_entropy_with_logits(self.baseline(y), x, reduction="none")
        return (bce * self.hidden).sum(-1)

    def pretrain(self, batches: Callable[[], object], log: Callable[[str], None]) -> None:
        """Fit the baseline with masked BCE for ``baseline_epochs`` passes of ``batches()``; it is
        frozen otherwise (the ELBO's gradients never reach it, and data-parallel training expects
        every parameter that requires a gradient to get one)."""
        optimizer = torch.optim.Adam(self.baseline.parameters(), lr=1e-3)
        self.baseline.requires_grad_(True)
        try:
            for epoch in range(self.baseline_epochs):
                total = count = 0
                for x, _ in batches():
                    loss = self.masked_bce(self.condition(x, None), x).mean()
                    optimizer.zero_grad()
                    loss.backward()
                    optimizer.step()
                    total, count = total + loss.item() * len(x), count + len(x)
                log(f"baseline epoch {epoch + 1}/{self.baseline_epochs}  masked BCE {total / count:.2f} nats per image")
        finally:
            self.baseline.requires_grad_(False)
            self.baseline.zero_grad(set_to_none=True)  # the trainer's Adam steps every parameter with a .grad
