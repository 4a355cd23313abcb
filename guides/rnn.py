"""A bidirectional LSTM encoder for stroke-5 sketches (sketch-rnn's encoder, Ha & Eck 2017):
``DiagGuide`` with the LSTM trunk and sketch-rnn's log-variance head, under its original name and
constructor arguments.

h = [h_forward(last point); h_backward(first point)]   (packed: padding rows are never read)
(mu, s) = W h + b,   q(z | x) = N(mu, diag(exp(s / 2) + MIN_SCALE)^2)

With class labels y (``num_classes`` > 0) the head reads [h, onehot(y)]: q(z | x, y), so z need
not encode the class and keeps the style (SVG-VAE, Lopes et al. 2019).

Parameters: ``trunk.rnn.*`` and ``head.*``. Checkpoints of the original class (before it was a
``DiagGuide``) name the LSTM ``rnn.*``; ``_load_from_state_dict`` renames those keys, so old run
folders load.
"""

from __future__ import annotations

from guides.amortised import DiagGuide
from guides.trunks import ENC_HIDDEN
from pvae.contracts import LATENT_DIM


class RNNGuide(DiagGuide):
    """Diagonal Normal q(z | x) (or q(z | x, y)) from a bidirectional LSTM over a padded stroke-5
    sketch ``(B, T, 5)`` (``DiagGuide(trunk="rnn", scale="logvar")``).

    :param latent_dim: Z.
    :param enc_hidden: LSTM size of each direction.
    :param num_classes: C > 0 conditions on class labels y 0..C-1 too.
    """

    name = "rnn"
    options = (LATENT_DIM, ENC_HIDDEN)
    data_kinds = ("strokes",)

    def __init__(self, latent_dim: int = 128, enc_hidden: int = 256, num_classes: int = 0) -> None:
        super().__init__(latent_dim, "logvar", trunk="rnn", enc_hidden=enc_hidden, num_classes=num_classes)
        self.enc_hidden = enc_hidden

    def _load_from_state_dict(self, state_dict, prefix, local_metadata, strict, missing, unexpected, errors) -> None:
        """Upgrade a checkpoint of the original layout in place: ``rnn.*`` -> ``trunk.rnn.*``
        (PyTorch's hook for state-dict upgrades; the children load from the renamed keys)."""
        old = prefix + "rnn."
        for key in [k for k in state_dict if k.startswith(old)]:
            state_dict[prefix + "trunk.rnn." + key[len(old) :]] = state_dict.pop(key)
        super()._load_from_state_dict(state_dict, prefix, local_metadata, strict, missing, unexpected, errors)
