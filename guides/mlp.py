"""An MLP encoder giving a diagonal Normal q(z | x) (Kingma & Welling 2014): ``DiagGuide`` with
the MLP trunk, under its original name and constructor arguments.

    h = MLP([x, onehot(y)]);  (mu, r) = W h + b;  q(z | x) = N(mu, diag(sigma^2)),  sigma = g(r) + MIN_SCALE

with g = softplus (default) or exp, the IWAE paper's choice. Parameters: ``trunk.*`` (the MLP's
``0.weight``, ``0.bias``, ...) and ``head.weight``, ``head.bias``, as they always were.
"""

from __future__ import annotations

from collections.abc import Sequence

from guides.amortised import POSTERIOR_SCALE, DiagGuide
from pvae.contracts import LATENT_DIM
from pvae.layers import ACTIVATION, HIDDEN


class MLPGuide(DiagGuide):
    """Diagonal Normal q(z | x) from an MLP over the flattened datapoint (``DiagGuide(trunk="mlp")``).

    :param data_dim: D, the size of one flattened datapoint.
    :param latent_dim: Z.
    :param hidden: encoder hidden sizes, from x inwards.
    :param activation: hidden activation name (see ``pvae.layers.ACTIVATIONS``).
    :param scale: how the head's output becomes sigma: ``"softplus"``, ``"exp"`` or ``"logvar"``.
    :param num_classes: C > 0 makes q(z | x, y) for class labels y: the MLP reads [x, onehot(y)].
    """

    name = "mlp"
    options = (LATENT_DIM, HIDDEN, ACTIVATION, POSTERIOR_SCALE)
    data_kinds = ("image", "svg")

    def __init__(
        self,
        data_dim: int,
        latent_dim: int = 20,
        hidden: Sequence[int] = (400,),
        activation: str = "relu",
        scale: str = "softplus",
        num_classes: int = 0,
    ) -> None:
        super().__init__(
            latent_dim,
            scale,
            trunk="mlp",
            data_dim=data_dim,
            hidden=hidden,
            activation=activation,
            num_classes=num_classes,
        )
        self.data_dim = data_dim
