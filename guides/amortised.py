"""Amortised guides as a trunk and a head: the same encoder with any of four posteriors.

    h = trunk(x, y)    (``guides.trunks``: an MLP for images, a BiLSTM for strokes and for events)
    q(z | x) = head(h)  (``guides.heads``: diagonal, low-rank or full Gaussian, or an IAF)

The trunk follows the data: give ``data_dim`` for images (the trainer passes it for image data),
``max_len`` for stroke sketches (passed for stroke data; the LSTM does not need it otherwise) or
``vocab`` for event tokens (passed for events data: an LSTM over onehot tokens), or name it with
``trunk``. Arguments the chosen trunk does not use are ignored (``hidden`` and
``activation`` are the MLP's, ``enc_hidden`` the LSTM's), so one set of flags serves both. A
condition y is read only as class labels (``num_classes`` > 0); otherwise (an unconditional guide,
or the completion model's visible image) it is ignored.

``MLPGuide`` (``guides.mlp``) and ``RNNGuide`` (``guides.rnn``) are ``DiagGuide`` with the trunk
fixed (and, for ``RNNGuide``, sketch-rnn's sigma = exp(r / 2)), kept under their names and
constructor arguments so run folders that name them still load.

The capabilities of ``pvae.contracts.Guide`` are declared per class: every head reads all four data
kinds (an svg glyph through its image); the Gaussian heads have ``analytic_kl`` (KL(q || p) in
closed form against a diagonal Normal prior: needed by ``--objective meanfield``), the diagonal one
is also ``factorised`` (needed by free bits, ``--kl-floor-mode per-dim``); the flow has neither; the
point estimate ``DeltaGuide`` has no density at all (its "KL" is Pyro's -log p(mu)).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import pyro.distributions as dist
import torch
from torch import nn

from guides.heads import SCALES, DeltaHead, DiagonalHead, FullHead, IAFHead, LowRankHead
from guides.trunks import ENC_HIDDEN, MLPTrunk, RNNTrunk
from pvae.contracts import LATENT_DIM, Guide, Option
from pvae.layers import ACTIVATION, HIDDEN

TRUNKS = ("mlp", "rnn")

POSTERIOR_SCALE = Option(
    "posterior_scale", "softplus", "how the guide makes sigma", "networks", scope="guide", choices=SCALES, arg="scale"
)
RANK = Option("rank", 2, "lowrank guide: columns of the covariance factor", "networks", int, low=1, scope="guide")
FLOWS = Option("flows", 2, "iaf guide: IAF steps", "networks", int, low=1, scope="guide")
FLOW_HIDDEN = Option(
    "flow_hidden",
    None,
    "iaf guide: MADE hidden units",
    "networks",
    int,
    low=1,
    optional=True,
    scope="guide",
    metavar="H",
    default_text="2 Z, at least 16",
)
TRUNK_OPTIONS = (LATENT_DIM, HIDDEN, ACTIVATION, ENC_HIDDEN)  # what every trunk reads


class AmortisedGuide(Guide):
    """q(z | x) = head(trunk(x, y)); subclasses choose the head. Parameters: ``trunk.*``, ``head.*``."""

    analytic_kl = True
    factorised = False
    data_kinds = ("image", "strokes", "events", "svg")

    def __init__(
        self,
        make_head: Callable[[int], nn.Module],
        latent_dim: int,
        data_dim: int | None = None,
        max_len: int | None = None,
        vocab: int | None = None,
        trunk: str | None = None,
        hidden: Sequence[int] = (400,),
        activation: str = "relu",
        enc_hidden: int = 256,
        num_classes: int = 0,
    ) -> None:
        super().__init__()
        if trunk is None:
            if (data_dim, max_len, vocab).count(None) != 2:
                raise ValueError(
                    "give one of data_dim (images: an MLP trunk), max_len (strokes) or vocab (events: LSTM trunks)"
                )
            trunk = "mlp" if data_dim is not None else "rnn"
        if trunk not in TRUNKS:
            raise ValueError(f"trunk must be 'mlp' or 'rnn', not {trunk!r}")
        if trunk == "mlp" and data_dim is None:
            raise ValueError("an MLP trunk needs data_dim")
        self.latent_dim, self.num_classes, self.kind = latent_dim, num_classes, trunk
        self.traceable = trunk == "mlp"  # the RNN trunk packs each batch by its sequences' lengths
        if trunk == "mlp":
            self.trunk: nn.Module = MLPTrunk(data_dim, list(hidden), activation, num_classes)
        else:
            self.trunk = RNNTrunk(enc_hidden, num_classes, vocab)
        self.head = make_head(self.trunk.out_dim)

    def posterior(self, x: torch.Tensor, y: torch.Tensor | None = None) -> dist.Distribution:
        """q(z | x) (or q(z | x, y) for class labels y): batch ``(B,)``, event ``(Z,)``."""
        return self.head(self.trunk(x, y))


class DiagGuide(AmortisedGuide):
    """Diagonal Normal q(z | x) = N(mu, diag(sigma^2)), (mu, r) = W trunk(x, y) + b, sigma = g(r).

    :param latent_dim: Z.
    :param data_dim: D of flattened images (chooses the MLP trunk).
    :param max_len: rows of padded stroke sketches (chooses the LSTM trunk).
    :param vocab: V of event tokens (chooses the LSTM trunk over onehot tokens).
    :param trunk: ``"mlp"`` or ``"rnn"``, to choose explicitly.
    :param hidden: MLP hidden sizes, from x inwards.
    :param activation: MLP hidden activation (``pvae.layers.ACTIVATIONS``).
    :param enc_hidden: LSTM size of each direction.
    :param scale: how the head makes sigma: ``"softplus"``, ``"exp"`` (the IWAE paper's) or ``"logvar"``
        (sigma = exp(r / 2), sketch-rnn's); plus ``pvae.layers.MIN_SCALE``.
    :param num_classes: C > 0 reads class labels y as onehot(y).
    """

    name = "diag"
    options = (*TRUNK_OPTIONS, POSTERIOR_SCALE)
    factorised = True

    def __init__(self, latent_dim: int = 20, scale: str = "softplus", **trunk: Any) -> None:
        super().__init__(lambda h: DiagonalHead(h, latent_dim, scale), latent_dim, **trunk)


class DeltaGuide(AmortisedGuide):
    """A point estimate q(z | x) = Delta(mu(x)), mu = W trunk(x, y) + b: a deterministic encoder.

    With ``elbo`` the loss is -[log p(x | mu(x)) + log p(mu(x))], a regularised autoencoder; so with
    ``meanfield``, through Pyro's closed form KL(Delta(v) || p) = -log p(v) (its entropy taken as 0,
    the MAP convention). It has no density (``density`` False), so importance-weighted objectives
    and bounds on log p(x) refuse it. Arguments as ``DiagGuide``, less ``scale``.
    """

    name = "delta"
    options = TRUNK_OPTIONS
    analytic_kl = True
    density = False

    def __init__(self, latent_dim: int = 20, **trunk: Any) -> None:
        super().__init__(lambda h: DeltaHead(h, latent_dim), latent_dim, **trunk)


class LowRankGuide(AmortisedGuide):
    """q(z | x) = N(mu, F F^T + diag(sigma^2)), F ``(Z, rank)``; other arguments as ``DiagGuide``.

    :param rank: columns of F.
    """

    name = "lowrank"
    options = (*TRUNK_OPTIONS, POSTERIOR_SCALE, RANK)

    def __init__(self, latent_dim: int = 20, scale: str = "softplus", rank: int = 2, **trunk: Any) -> None:
        super().__init__(lambda h: LowRankHead(h, latent_dim, scale, rank), latent_dim, **trunk)


class FullGuide(AmortisedGuide):
    """q(z | x) = N(mu, L L^T) with a full lower-triangular L per datapoint; arguments as ``DiagGuide``."""

    name = "full"
    options = (*TRUNK_OPTIONS, POSTERIOR_SCALE)

    def __init__(self, latent_dim: int = 20, scale: str = "softplus", **trunk: Any) -> None:
        super().__init__(lambda h: FullHead(h, latent_dim, scale), latent_dim, **trunk)


class IAFGuide(AmortisedGuide):
    """Amortised IAF q(z | x) (Kingma et al. 2016): a diagonal Normal and ``flows`` IAF steps, all
    reading the trunk's context h; other arguments as ``DiagGuide``. No closed-form KL.

    :param flows: IAF steps.
    :param flow_hidden: hidden units of each step's MADE (default 2 Z, at least 16).
    """

    name = "iaf"
    options = (*TRUNK_OPTIONS, POSTERIOR_SCALE, FLOWS, FLOW_HIDDEN)
    analytic_kl = False

    def __init__(
        self,
        latent_dim: int = 20,
        scale: str = "softplus",
        flows: int = 2,
        flow_hidden: int | None = None,
        **trunk: Any,
    ) -> None:
        super().__init__(lambda h: IAFHead(h, latent_dim, scale, flows, flow_hidden), latent_dim, **trunk)
