"""Network builders and the Model/Guide base classes shared by models and guides (which never
import each other)."""

from __future__ import annotations

from collections.abc import Sequence

import pyro
import pyro.distributions as dist
import torch
from torch import nn

ACTIVATIONS: dict[str, type[nn.Module]] = {
    "relu": nn.ReLU,
    "tanh": nn.Tanh,
    "softplus": nn.Softplus,
    "elu": nn.ELU,
    "leaky_relu": nn.LeakyReLU,
}


def activation(name: str) -> nn.Module:
    """The activation module called ``name`` (one of ``ACTIVATIONS``)."""
    try:
        return ACTIVATIONS[name]()
    except KeyError:
        raise ValueError(f"unknown activation {name!r}; choose one of {', '.join(ACTIVATIONS)}") from None


def mlp(sizes: Sequence[int], act: str, final_activation: bool = False) -> nn.Sequential:
    """Linear layers ``sizes[0] -> sizes[1] -> ... -> sizes[-1]`` with ``act`` between them.

    With ``final_activation`` the last layer is followed by ``act`` too (an encoder trunk);
    without it the output is linear (a decoder's logits or means).
    """
    layers: list[nn.Module] = []
    for i, (n_in, n_out) in enumerate(zip(sizes[:-1], sizes[1:])):
        layers.append(nn.Linear(n_in, n_out))
        if final_activation or i < len(sizes) - 2:
            layers.append(activation(act))
    return nn.Sequential(*layers)


class Model(nn.Module):
    """Base of the Model contract (ARCHITECTURE.md): subclasses give ``prior`` and ``likelihood``,
    this class gives the Pyro program over a batch of B datapoints.

        with pyro.plate("data", B):  z ~ prior(B, y);  x ~ likelihood(z, y)
    """

    latent_dim: int

    def prior(self, batch_size: int, y: torch.Tensor | None = None) -> dist.Distribution:
        raise NotImplementedError

    def likelihood(self, z: torch.Tensor, y: torch.Tensor | None = None) -> dist.Distribution:
        raise NotImplementedError

    def model(self, x: torch.Tensor, y: torch.Tensor | None = None) -> None:
        """The Pyro model: ``z ~ p(z)``, ``x ~ p(x | z)`` for each of the B datapoints."""
        pyro.module("model", self)
        with pyro.plate("data", x.shape[0]):
            z = pyro.sample("z", self.prior(x.shape[0], y))
            pyro.sample("x", self.likelihood(z, y), obs=x)


class Guide(nn.Module):
    """Base of the Guide contract: subclasses give ``posterior``; this class gives the Pyro guide."""

    latent_dim: int

    def posterior(self, x: torch.Tensor, y: torch.Tensor | None = None) -> dist.Distribution:
        raise NotImplementedError

    def guide(self, x: torch.Tensor, y: torch.Tensor | None = None) -> None:
        """The Pyro guide: ``z ~ q(z | x)`` for each of the B datapoints."""
        pyro.module("guide", self)
        with pyro.plate("data", x.shape[0]):
            pyro.sample("z", self.posterior(x, y))
