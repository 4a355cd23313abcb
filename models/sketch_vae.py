"""sketch-rnn (Ha & Eck 2017) as a Pyro model: a latent code z and an autoregressive LSTM decoder
with a mixture density output over pen offsets and a categorical pen state.

    z ~ N(0, I) (``Model.prior``),   c = z   or, class-conditional (SVG-VAE, Lopes et al. 2019),   c = [z, onehot(y)]
    (h_0, c_0) = tanh(W_c c + b_c)
    h_t = LSTM([S_{t-1}, c], h_{t-1}),     S_0 = (0, 0, 1, 0, 0)
    S_t | h_t ~ StrokeStep(pi, mu, sigma, rho, q) = W_o h_t + b_o:
        6M + 3 numbers -> pi = softmax, mu, sigma = exp, rho = tanh, q = softmax

The observation site ``"x"`` is the padded stroke-5 sketch ``(B, T, 5)``. Its distribution,
``SketchDecoding``, scores a sketch by teacher forcing (the decoder reads the true previous
stroke) and draws new sketches by feeding its own samples back. With ``unconditional`` there is no
z: the decoder-only model of the paper's Table 1, trained without a guide. With class labels y (the
glyph data's characters), one z drawn once and decoded with every y gives one style in every class.
"""

from __future__ import annotations

import math

import pyro
import torch
from pyro.distributions import TorchDistribution
from torch import nn
from torch.distributions import constraints

from pvae.contracts import CONDITIONAL, LATENT_DIM, Model, Option, batch_size_of
from pvae.distributions.strokes import StrokeSequence, StrokeStep
from pvae.layers import DEC_HIDDEN, LSTM, one_hot

START = (0.0, 0.0, 1.0, 0.0, 0.0)  # S_0
PAD = (0.0, 0.0, 0.0, 0.0, 1.0)

MIXTURES = Option(
    "mixtures",
    20,
    "mixture components of each output (sketch, svg-vae)",
    "networks",
    int,
    low=1,
    scope="model",
    metavar="M",
)
LAYER_NORM = Option("layer_norm", False, "layer-normalised decoder LSTM (slower)", "networks", bool, scope="model")
RECURRENT_DROPOUT = Option(
    "recurrent_dropout",
    0.0,
    "decoder recurrent dropout probability (slower)",
    "networks",
    scope="model",
    type=float,
    low=0.0,
    high=1.0,
    high_open=True,
)
UNCONDITIONAL = Option(
    "unconditional", False, "decoder-only sketch model (no z, no guide)", "networks", bool, scope="model"
)
MASK_PEN = Option("mask_pen", False, "pen loss only up to each sketch's end", "networks", bool, scope="model")


class SketchVAE(Model):
    """The sketch-rnn generative model; sizes default to the paper's.

    :param max_len: T, the rows of a padded sketch (the data's longest sketch plus one).
    :param latent_dim: Z (ignored when ``unconditional``).
    :param dec_hidden: decoder LSTM size.
    :param mixtures: M, bivariate normals per step.
    :param layer_norm: layer-normalised decoder LSTM (``pvae.layers.LSTM``, a slower Python loop).
    :param recurrent_dropout: drop probability of the decoder's cell candidate (``pvae.layers.LSTM``).
    :param unconditional: the decoder-only model: no z, zero initial state.
    :param mask_pen: count the pen term only up to the end of each sketch (see ``StrokeSequence``).
    :param num_classes: C > 0 conditions the decoder on class labels y 0..C-1 (``condition``).
    """

    name = "sketch"
    options = (LATENT_DIM, DEC_HIDDEN, MIXTURES, LAYER_NORM, RECURRENT_DROPOUT, UNCONDITIONAL, MASK_PEN, CONDITIONAL)
    data_kind = "strokes"
    train_defaults = {
        "data": "glyphs",
        "guide": "rnn",
        "epochs": 10,
        "batch_size": 100,
        "lr": 1e-3,
        "lr_schedule": "sketch",
        "clip_value": 1.0,
        "kl_weight": 0.5,
        "kl_weight_units": "sketch-rnn",
        "kl_weight_start": 0.01,
        # sketch-rnn's rate 0.99995 (--kl-anneal-rate 0.99995) goes 99% of the way only after 92k steps: made for
        # runs of ~10^5 steps, it leaves the weight near 0.05 of 0.5 after a CPU budget of 1500-2000 steps. Half of
        # the planned steps keeps the paper's curve (90% of the way at a quarter of the run) and trains the second
        # half at w, so that the posterior codes meet the prior the samples are drawn from.
        "kl_anneal_fraction": 0.5,
        "kl_floor": 0.2,
        "augment_scale": 0.15,
        "augment_drop": 0.10,
        "latent_dim": 128,
    }

    def __init__(
        self,
        max_len: int,
        latent_dim: int = 128,
        dec_hidden: int = 512,
        mixtures: int = 20,
        layer_norm: bool = False,
        recurrent_dropout: float = 0.0,
        unconditional: bool = False,
        mask_pen: bool = False,
        num_classes: int = 0,
    ) -> None:
        super().__init__()
        if num_classes < 0:
            raise ValueError(f"num_classes must not be negative, not {num_classes}")
        self.max_len, self.mixtures, self.mask_pen, self.unconditional = max_len, mixtures, mask_pen, unconditional
        self.latent_dim = 0 if unconditional else latent_dim
        self.dec_hidden, self.num_classes = dec_hidden, num_classes
        code = self.latent_dim + num_classes  # c = [z, onehot(y)]
        inputs = 5 + code
        if layer_norm or recurrent_dropout > 0:
            self.rnn = LSTM(inputs, dec_hidden, layer_norm=layer_norm, dropout=recurrent_dropout)
        else:
            self.rnn = nn.LSTM(inputs, dec_hidden, batch_first=True)
            with torch.no_grad():
                self.rnn.bias_ih_l0[dec_hidden : 2 * dec_hidden].fill_(1.0)  # forget-gate bias 1, as in sketch-rnn
        self.init_state = nn.Linear(code, 2 * dec_hidden) if code else None
        self.output = nn.Linear(dec_hidden, 6 * mixtures + 3)
        self.register_buffer("start", torch.tensor(START), persistent=False)

    def likelihood(self, z: torch.Tensor | None, y: torch.Tensor | None = None, batch_size: int = 1) -> SketchDecoding:
        """p(x | z, y): batch ``z.shape[:-1]`` (``(batch_size,)`` when unconditional), event ``(T, 5)``;
        labels ``y`` broadcast against that batch."""
        return SketchDecoding(self, z, y, batch_shape=(batch_size,))

    def model(
        self, x: torch.Tensor | None = None, y: torch.Tensor | None = None, batch_size: int | None = None
    ) -> None:
        """``Model.model``; the decoder-only model has no site "z": only ``x ~ p(x | y)``."""
        if not self.unconditional:
            return super().model(x, y, batch_size)
        n = batch_size_of(x, y, batch_size)
        pyro.module("model", self)
        with pyro.plate("data", n):
            pyro.sample("x", self.likelihood(None, y, batch_size=n), obs=x)

    def code(self, z: torch.Tensor | None, y: torch.Tensor | None) -> torch.Tensor | None:
        """What the decoder is conditioned on: c = z ``(..., Z)``, or c = [z, onehot(y)]
        ``(..., Z + C)`` for a class-conditional model (y ``z.shape[:-1]``, or ``(N,)`` without z);
        ``None`` for the unconditional decoder-only model."""
        if not self.num_classes:
            return z
        if y is None:
            raise ValueError("this sketch model is class-conditional: give the labels y")
        label = one_hot(y, self.num_classes, self.start)
        return label if z is None else torch.cat([z, label.expand(*z.shape[:-1], -1)], -1)

    def initial_state(self, code: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor] | None:
        """(h_0, c_0) = tanh(W c + b), each ``(1, N, H)``, from codes ``(N, Z + C)``; zeros (``None``)
        for the unconditional decoder-only model."""
        if code is None:
            return None
        h, c = torch.tanh(self.init_state(code)).chunk(2, dim=-1)
        return h.unsqueeze(0).contiguous(), c.unsqueeze(0).contiguous()

    def step_params(self, out: torch.Tensor) -> StrokeStep:
        """The decoder's output ``(..., H)`` -> one ``StrokeStep`` per position."""
        y = self.output(out)
        m = self.mixtures
        mix, mu_x, mu_y, s_x, s_y, rho, pen = y.split([m, m, m, m, m, m, 3], dim=-1)
        return StrokeStep(
            mix, torch.stack([mu_x, mu_y], -1), torch.exp(torch.stack([s_x, s_y], -1)), torch.tanh(rho), pen
        )

    def decode(self, inputs: torch.Tensor, code: torch.Tensor | None, state=None):
        """Run the decoder over ``inputs`` ``(N, T, 5)`` (each row is S_{t-1}) with codes ``(N, Z + C)``
        (``code``); returns the ``StrokeStep`` of every position (batch ``(N, T)``) and the final
        LSTM state."""
        if code is not None:
            inputs = torch.cat([inputs, code.unsqueeze(1).expand(-1, inputs.shape[1], -1)], -1)
        if state is None:
            state = self.initial_state(code)
        out, state = self.rnn(inputs, state)
        return self.step_params(out), state

    @torch.no_grad()
    def generate(
        self,
        z: torch.Tensor | None,
        n: int | None = None,
        temperature: float = 1.0,
        prefix: torch.Tensor | None = None,
        max_len: int | None = None,
        y: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Draw sketches by feeding each sampled step back in: ``(N, T, 5)``, padded after the end.

        :param z: ``(N, Z)`` codes, or ``None`` for the decoder-only model (then give ``n`` or ``y``).
        :param prefix: ``(N, P, 5)`` stroke-5 rows to continue from (the first P steps are these): the
            decoder reads them teacher-forced (``read_prefix``) and draws the rest from there.
        :param y: labels ``(N,)`` (or one label ``()`` for all) of a class-conditional model.
        """
        if z is not None:
            n = z.shape[0]
        elif n is None:
            n = y.shape[0]
        code = self.code(z, None if y is None else y.expand(n))
        t = max_len or self.max_len
        out = torch.empty(n, t, 5, device=self.start.device)
        done = torch.zeros(n, dtype=torch.bool, device=self.start.device)
        if prefix is None:
            first = 0
            params, state = self.decode(self.start.expand(n, 1, 5), code)
        else:
            first = prefix.shape[1]
            out[:, :first] = prefix
            params, state = self.read_prefix(prefix, code)
            done = prefix[:, :, 4].gt(0.5).any(1)
        pad = torch.tensor(PAD, device=out.device)
        for step in range(first, t):
            rows = torch.where(done[:, None, None], pad, params.sample(temperature=temperature))  # (N, 1, 5)
            out[:, step] = rows[:, 0]
            done = done | rows[:, 0, 4].gt(0.5)
            if done.all():
                out[:, step + 1 :] = pad
                break
            if step + 1 < t:  # p(S_{step+2} | ...) for the next row
                params, state = self.decode(rows, code, state)
        return out

    def read_prefix(self, prefix: torch.Tensor, code: torch.Tensor | None):
        """Teacher-force the decoder through S_0 and a prefix x_1..x_P ``(N, P, 5)`` with codes ``(N, Z + C)``
        (``None`` for the decoder-only model): returns p(S_{P+1} | x_1..x_P, c), a ``StrokeStep`` of
        batch ``(N, 1)``, and the LSTM state after reading x_P, from which a continuation is drawn."""
        n = prefix.shape[0]
        _, state = self.decode(torch.cat([self.start.expand(n, 1, 5), prefix[:, :-1]], 1), code)
        return self.decode(prefix[:, -1:], code, state)


class SketchDecoding(TorchDistribution):
    """p(x | z, y) of ``SketchVAE``: batch ``z.shape[:-1]``, event ``(T, 5)``; labels ``y`` (for a
    class-conditional model) broadcast against the batch.

    ``log_prob(x)`` runs the decoder on [S_0, x_1, ..., x_{T-1}] (teacher forcing) and scores x
    with ``StrokeSequence``; the particle and batch dims are flattened into one LSTM batch.
    ``sample`` generates autoregressively (``SketchVAE.generate``).
    """

    arg_constraints = {}
    support = constraints.independent(constraints.real_vector, 1)
    has_rsample = False

    def __init__(
        self,
        model: SketchVAE,
        z: torch.Tensor | None,
        y: torch.Tensor | None = None,
        batch_shape=(1,),
        validate_args=None,
    ) -> None:
        self.vae, self.z, self.y = model, z, y
        batch = z.shape[:-1] if z is not None else torch.Size(batch_shape)
        super().__init__(batch, torch.Size([model.max_len, 5]), validate_args=validate_args)

    def expand(self, batch_shape, _instance=None) -> SketchDecoding:
        batch_shape = torch.Size(batch_shape)
        z = None if self.z is None else self.z.expand(batch_shape + self.z.shape[-1:])
        y = None if self.y is None else self.y.expand(batch_shape)
        return SketchDecoding(self.vae, z, y, batch_shape=batch_shape, validate_args=False)

    def _code(self, shape: torch.Size) -> torch.Tensor | None:
        """The decoder's codes for a batch ``shape``, flattened: ``(prod(shape), Z + C)``."""
        n = math.prod(shape)
        z = None if self.z is None else self.z.expand(shape + self.z.shape[-1:]).reshape(n, -1)
        y = None if self.y is None else self.y.expand(shape).reshape(n)
        return self.vae.code(z, y)

    def step(self, x: torch.Tensor) -> StrokeStep:
        """The teacher-forced ``StrokeStep`` of every position, flattened to batch ``(N, T)``."""
        n = math.prod(self.batch_shape)
        x = x.expand(self.batch_shape + x.shape[-2:]).reshape(n, *x.shape[-2:])
        inputs = torch.cat([self.vae.start.expand(n, 1, 5), x[:, :-1]], 1)
        return self.vae.decode(inputs, self._code(self.batch_shape))[0]

    def terms(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Offset and pen log-likelihoods of each sketch (sketch-rnn's -L_s T and -L_p T), shape ``batch``."""
        n = math.prod(self.batch_shape)
        flat = x.expand(self.batch_shape + x.shape[-2:]).reshape(n, *x.shape[-2:])
        offset, pen = StrokeSequence(self.step(x), mask_pen=self.vae.mask_pen).terms(flat)
        return offset.reshape(self.batch_shape), pen.reshape(self.batch_shape)

    def log_prob(self, x: torch.Tensor) -> torch.Tensor:
        offset, pen = self.terms(x)
        return offset + pen

    def sample(self, sample_shape=torch.Size(), temperature: float = 1.0) -> torch.Tensor:
        shape = torch.Size(sample_shape) + self.batch_shape
        n = math.prod(shape)
        z = None if self.z is None else self.z.expand(shape + self.z.shape[-1:]).reshape(n, -1)
        y = None if self.y is None else self.y.expand(shape).reshape(n)
        return self.vae.generate(z, n=n, temperature=temperature, y=y).reshape(shape + self.event_shape)
