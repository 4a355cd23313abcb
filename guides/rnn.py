"""A bidirectional LSTM encoder for stroke-5 sketches (sketch-rnn's encoder, Ha & Eck 2017).

h = [h_forward(last point); h_backward(first point)]   (packed: padding rows are never read)
(mu, s) = W h + b,   q(z | x) = N(mu, diag(exp(s / 2))^2)

With class labels y (``num_classes`` > 0) the head reads [h, onehot(y)]: q(z | x, y), so z need
not encode the class and keeps the style (SVG-VAE, Lopes et al. 2019).
"""

from __future__ import annotations

import pyro.distributions as dist
import torch
from torch import nn

from guides.trunks import stroke_features
from pvae.nn import Guide, one_hot


class RNNGuide(Guide):
    """Diagonal Normal q(z | x) (or q(z | x, y)) from a bidirectional LSTM over a padded stroke-5
    sketch ``(B, T, 5)``.

    :param latent_dim: Z.
    :param enc_hidden: LSTM size of each direction.
    :param num_classes: C > 0 conditions on class labels y 0..C-1 too.
    """

    def __init__(self, latent_dim: int = 128, enc_hidden: int = 256, num_classes: int = 0) -> None:
        super().__init__()
        if num_classes < 0:
            raise ValueError(f"num_classes must not be negative, not {num_classes}")
        self.latent_dim, self.enc_hidden, self.num_classes = latent_dim, enc_hidden, num_classes
        self.rnn = nn.LSTM(5, enc_hidden, batch_first=True, bidirectional=True)
        self.head = nn.Linear(2 * enc_hidden + num_classes, 2 * latent_dim)

    def posterior(self, x: torch.Tensor, y: torch.Tensor | None = None) -> dist.Distribution:
        """q(z | x) (or q(z | x, y), labels ``(B,)``): batch ``(B,)``, event ``(Z,)``."""
        features = stroke_features(self.rnn, x)
        if self.num_classes:
            if y is None:
                raise ValueError("this guide is class-conditional: give the labels y")
            features = torch.cat([features, one_hot(y, self.num_classes, features)], -1)
        mu, presig = self.head(features).chunk(2, dim=-1)
        return dist.Normal(mu, torch.exp(presig / 2)).to_event(1)
