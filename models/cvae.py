"""The class-conditional VAE on images, registered as ``cvae``: ``GaussianVAE`` with class labels
(``num_classes`` >= 2) and ``--conditional`` on by default.

    z | y ~ N(0, I)   or, with ``learned_prior``,   N(mu(y), diag(sigma(y))^2)
    x | z, y ~ p(x | f([z, onehot(y)]))            (Bernoulli or Gaussian pixels)

Its parameters are ``GaussianVAE``'s (``decoder.*``, ``prior_net.weight``), so run folders of
either load into the other with the same arguments.
"""

from __future__ import annotations

from collections.abc import Sequence

from models.gaussian_vae import LEARNED_PRIOR, GaussianVAE
from pvae.contracts import CONDITIONAL, LATENT_DIM
from pvae.layers import ACTIVATION, HIDDEN, LIKELIHOOD, OBS_SCALE


class CVAE(GaussianVAE):
    """Class-conditional VAE on images (the constructor of the original ``cvae``, labels required).

    :param data_dim: pixels per image, D.
    :param num_classes: C >= 2, labels 0..C-1.
    :param latent_dim: Z.
    :param hidden: decoder hidden sizes.
    :param activation: hidden activation name.
    :param likelihood: ``"bernoulli"`` or ``"gaussian"``.
    :param obs_scale: Gaussian only: a fixed pixel std, or ``None`` to learn one per pixel.
    :param learned_prior: p(z | y) with a mean and std per class instead of N(0, I).
    """

    name = "cvae"
    options = (LATENT_DIM, HIDDEN, ACTIVATION, LIKELIHOOD, OBS_SCALE, CONDITIONAL, LEARNED_PRIOR)
    train_defaults = {"conditional": True}

    def __init__(
        self,
        data_dim: int,
        num_classes: int,
        latent_dim: int = 20,
        hidden: Sequence[int] = (400,),
        activation: str = "relu",
        likelihood: str = "bernoulli",
        obs_scale: float | None = None,
        learned_prior: bool = False,
    ) -> None:
        if num_classes < 2:
            raise ValueError(f"a class-conditional model needs at least 2 classes, not {num_classes}")
        super().__init__(data_dim, latent_dim, hidden, activation, likelihood, obs_scale, num_classes, learned_prior)
