"""Encoder trunks shared by every guide: x (and the condition y) -> a context vector h ``(B, H)``.

A guide is a trunk followed by a head (``guides.heads``) that turns h into q(z | x):

- ``MLPTrunk`` (images): an MLP over the flattened datapoint's first ``data_dim`` values (all of an
  image; the pixels of an svg glyph, whose commands follow them), with onehot(y) appended to the
  input for class labels y (``num_classes`` > 0).
- ``RNNTrunk`` (sequences): a bidirectional LSTM, h = [h_forward(last step); h_backward(first
  step)], with onehot(y) appended. Over stroke-5 sketches it is sketch-rnn's encoder (packed, so
  padding rows are never read); over event tokens ``(B, T)`` (``vocab`` given) MusicVAE's, reading
  onehot(x_t).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence

from pvae.contracts import Option
from pvae.distributions.strokes import sketch_lengths
from pvae.layers import mlp, one_hot

ENC_HIDDEN = Option(
    "enc_hidden", 256, "encoder LSTM size (stroke and melody guides)", "networks", int, low=1, scope="guide"
)


class MLPTrunk(nn.Sequential):
    """h = MLP([x, onehot(y)]) ``(B, out_dim)``; with no hidden layers, h is the input itself.

    A ``Sequential`` of the layers of ``pvae.layers.mlp``, so its parameters are named ``0.weight``,
    ``0.bias``, ... as in the image guides' checkpoints.
    """

    def __init__(
        self,
        data_dim: int,
        hidden: Sequence[int],
        activation: str,
        num_classes: int = 0,
    ) -> None:
        super().__init__(*mlp([data_dim + num_classes, *hidden], activation, final_activation=True))
        if num_classes < 0:
            raise ValueError(f"num_classes must not be negative, not {num_classes}")
        self.num_classes, self.data_dim = num_classes, data_dim
        self.out_dim = hidden[-1] if hidden else data_dim + num_classes

    def forward(self, x: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        inputs = x.reshape(x.shape[0], -1)[:, : self.data_dim]
        if self.num_classes:
            inputs = torch.cat([inputs, one_hot(y, self.num_classes, inputs)], -1)
        return super().forward(inputs)


def stroke_features(rnn: nn.LSTM, x: torch.Tensor) -> torch.Tensor:
    """[h_forward(last point); h_backward(first point)] of padded stroke-5 sketches ``(B, T, 5)``
    through a bidirectional LSTM: ``(B, 2 H)``."""
    lengths = sketch_lengths(x).clamp(min=1).cpu()
    packed = pack_padded_sequence(x, lengths, batch_first=True, enforce_sorted=False)
    _, (h, _) = rnn(packed)  # h: (2, B, H), the final state of each direction
    return torch.cat([h[0], h[1]], -1)


class RNNTrunk(nn.Module):
    """h = [BiLSTM(x), onehot(y)] ``(B, 2 enc_hidden + num_classes)`` for stroke-5 sketches
    ``(B, T, 5)``, or, with ``vocab`` V, for event tokens ``(B, T)`` in 0..V-1."""

    def __init__(self, enc_hidden: int = 256, num_classes: int = 0, vocab: int | None = None) -> None:
        super().__init__()
        if num_classes < 0:
            raise ValueError(f"num_classes must not be negative, not {num_classes}")
        self.num_classes, self.vocab = num_classes, vocab
        self.rnn = nn.LSTM(vocab or 5, enc_hidden, batch_first=True, bidirectional=True)
        self.out_dim = 2 * enc_hidden + num_classes

    def forward(self, x: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        if self.vocab is None:
            features = stroke_features(self.rnn, x)
        else:
            _, (h, _) = self.rnn(nn.functional.one_hot(x.long(), self.vocab).to(self.rnn.weight_ih_l0))
            features = torch.cat([h[0], h[1]], -1)
        if self.num_classes:
            if y is None:
                raise ValueError("this guide is class-conditional: give the labels y")
            features = torch.cat([features, one_hot(y, self.num_classes, features)], -1)
        return features
