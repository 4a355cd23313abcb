"""MusicVAE (Roberts et al. 2018) for melodies, as a Pyro model: a latent code z and an
autoregressive LSTM decoder over event tokens, flat or hierarchical.

    z ~ N(0, I) (``Model.prior``)

    flat:          c_1 = z                                         (one segment of T steps)
    hierarchical:  (h_0, c_0) = tanh(W_z z + b_z)                 the conductor, over U segments
                   c_u = Conductor(0, h_{u-1})                    its inputs zero, as MusicVAE's

    each segment u of S = T / U steps (the bottom decoder, its state reset per segment):
        (h_0, c_0) = tanh(W_c c_u + b_c)
        h_t = LSTM([onehot(x_{t-1}), c_u], h_{t-1}),   x_0 = none (a zero vector)
        x_t | h_t ~ Categorical(softmax(W_o h_t + b_o))

The flat decoder has one segment and reads z itself at every step; the hierarchical one reads
only its segment's conductor output, so what it plays in each bar must come through z. The
token before a segment's first step is the true previous token (teacher forcing) or the previous
sample; only the LSTM state is cut at segment boundaries. The observation site ``"x"`` is the
token sequence ``(B, T)`` under ``MelodyDecoding``: teacher-forced scoring, autoregressive drawing.
"""

from __future__ import annotations

import math

import torch
from pyro.distributions import TorchDistribution
from torch import nn
from torch.distributions import constraints
from torch.nn import functional as F

from pvae.contracts import LATENT_DIM, Model, Option
from pvae.distributions.events import EventSequence
from pvae.layers import DEC_HIDDEN

DECODERS = ("flat", "hierarchical")

DECODER = Option(
    "decoder",
    "hierarchical",
    "a flat LSTM over all steps, or MusicVAE's conductor over segments and a bottom LSTM per segment",
    "melody",
    choices=DECODERS,
    scope="model",
)
DEC_LAYERS = Option("dec_layers", 2, "layers of the melody decoder LSTMs", "melody", int, low=1, scope="model")
_HIERARCHICAL = (lambda c: c.decoder == "hierarchical", "--decoder hierarchical")  # what the conductor reads
CONDUCTOR_HIDDEN = Option(
    "conductor_hidden",
    128,
    "conductor LSTM size",
    "melody",
    int,
    low=1,
    scope="model",
    needs=_HIERARCHICAL,
)
SEGMENT_BARS = Option(
    "segment_bars",
    1,
    "bars per conductor step (dividing --bars)",
    "melody",
    int,
    low=1,
    scope="model",
    needs=_HIERARCHICAL,
)


class MelodyVAE(Model):
    """The MusicVAE melody model; sizes are CPU-sized (the paper's: z 512, LSTMs of 1024-2048, a
    2-layer BiLSTM encoder of 2048).

    :param steps: T, the tokens of a window (bars x 16).
    :param vocab: V, the event vocabulary (no-event, note-off, one note-on per pitch).
    :param bars: bars per window.
    :param latent_dim: Z.
    :param decoder: ``"flat"`` or ``"hierarchical"``.
    :param dec_hidden: bottom (or flat) decoder LSTM size.
    :param dec_layers: layers of the decoder LSTMs (bottom, flat and conductor).
    :param conductor_hidden: conductor LSTM size.
    :param segment_bars: bars per conductor step (hierarchical; must divide ``bars``).
    """

    name = "melody"
    options = (LATENT_DIM, DEC_HIDDEN, DECODER, DEC_LAYERS, CONDUCTOR_HIDDEN, SEGMENT_BARS)
    data_kind = "events"
    # MusicVAE's recipe (lr 1e-3 decayed by 0.9999 a step, clipping, beta annealed, free bits) at a CPU budget,
    # measured on 2-bar Essen windows (docs/results.md, "Melodies"): a larger lr with a faster decay and a
    # clip, beta 0.5 (cat-mel_2bar_big's) reached at rate 0.9995, and a KL floor of 1 nat a dimension. At a
    # floor of 0.25 the KL sat at the floor (16 nats) and z held too little of the tune (0.56 of the
    # note-ons right, teacher-forced, at 8400 steps); at 1.0 it holds 64 nats and 0.94 of them.
    train_defaults = {
        "data": "folk:essen",
        "guide": "diag",
        "epochs": 50,  # a 16-bar run: about 2000 steps (its 2462 windows); a 2-bar run stops at --steps first
        "steps": 14000,  # a 2-bar run: 29 passes over its 31,173 windows, 14 minutes on 2 cores
        "batch_size": 64,
        "lr": 3e-3,
        "lr_schedule": "sketch",
        "lr_decay": 0.9998,
        "min_lr": 1e-4,
        "clip_value": 1.0,
        "kl_weight": 0.5,
        "kl_weight_start": 0.0,
        "kl_anneal_rate": 0.9995,  # MusicVAE's 0.99999 is made for ~10^5 steps; this reaches 0.99 of w at 9200
        "kl_floor": 1.0,
        "latent_dim": 64,
        "enc_hidden": 128,
        "dec_hidden": 128,
        "transpose": 5,
    }

    def __init__(
        self,
        steps: int,
        vocab: int,
        bars: int,
        latent_dim: int = 64,
        decoder: str = "hierarchical",
        dec_hidden: int = 128,
        dec_layers: int = 2,
        conductor_hidden: int = 128,
        segment_bars: int = 1,
    ) -> None:
        super().__init__()
        if decoder not in DECODERS:
            raise ValueError(f"decoder must be one of {', '.join(DECODERS)}, not {decoder!r}")
        if steps % bars:
            raise ValueError(f"{steps} steps are not a whole number of {bars} bars")
        if decoder == "hierarchical" and bars % segment_bars:
            raise ValueError(f"--bars {bars} is not a multiple of --segment-bars {segment_bars}")
        self.steps, self.vocab, self.bars, self.latent_dim = steps, vocab, bars, latent_dim
        self.decoder, self.dec_hidden, self.dec_layers = decoder, dec_hidden, dec_layers
        self.segments = bars // segment_bars if decoder == "hierarchical" else 1  # U
        if decoder == "hierarchical":
            self.conductor_init = nn.Linear(latent_dim, 2 * dec_layers * conductor_hidden)
            self.conductor = nn.LSTM(1, conductor_hidden, num_layers=dec_layers, batch_first=True)
            code = conductor_hidden
        else:
            code = latent_dim
        self.init_state = nn.Linear(code, 2 * dec_layers * dec_hidden)
        self.rnn = nn.LSTM(vocab + code, dec_hidden, num_layers=dec_layers, batch_first=True)
        self.output = nn.Linear(dec_hidden, vocab)

    def likelihood(self, z: torch.Tensor, y: torch.Tensor | None = None) -> MelodyDecoding:
        """p(x | z): batch ``z.shape[:-1]``, event ``(T,)``."""
        return MelodyDecoding(self, z)

    @staticmethod
    def _state(init: nn.Linear, code: torch.Tensor, layers: int) -> tuple[torch.Tensor, torch.Tensor]:
        """(h_0, c_0) = tanh(W code + b), each ``(layers, N, H)``, from codes ``(N, C)``."""
        h, c = torch.tanh(init(code)).reshape(code.shape[0], 2, layers, -1).permute(1, 2, 0, 3).unbind(0)
        return h.contiguous(), c.contiguous()

    def segment_codes(self, z: torch.Tensor) -> torch.Tensor:
        """What each segment's bottom decoder reads: ``(N, U, C)`` from z ``(N, Z)``; z itself for
        the flat decoder (U = 1), the conductor's outputs for the hierarchical one."""
        if self.decoder == "flat":
            return z.unsqueeze(1)
        state = self._state(self.conductor_init, z, self.dec_layers)
        out, _ = self.conductor(z.new_zeros(z.shape[0], self.segments, 1), state)
        return out

    def _inputs(self, previous: torch.Tensor, code: torch.Tensor) -> torch.Tensor:
        """[onehot(previous), code] ``(..., V + C)``; ``previous`` = V (no token yet) is a zero vector."""
        onehot = F.one_hot(previous, self.vocab + 1)[..., : self.vocab].to(code)
        return torch.cat([onehot, code.expand(*onehot.shape[:-1], -1)], -1)

    def logits(self, z: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        """Teacher-forced logits ``(N, T, V)`` of tokens x ``(N, T)`` given z ``(N, Z)``: every segment
        of every sequence is one row of a single LSTM batch ``(N U, S)``."""
        n, t = x.shape
        codes = self.segment_codes(z)
        u = codes.shape[1]
        previous = torch.cat([x.new_full((n, 1), self.vocab), x[:, :-1]], 1).long()
        codes = codes.reshape(n * u, 1, -1)
        inputs = self._inputs(previous.reshape(n * u, t // u), codes)
        out, _ = self.rnn(inputs, self._state(self.init_state, codes[:, 0], self.dec_layers))
        return self.output(out).reshape(n, t, self.vocab)

    @torch.no_grad()
    def generate(
        self, z: torch.Tensor, temperature: float = 1.0, forced: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Decode step by step, feeding each token back: the tokens ``(N, T)`` and the logits
        ``(N, T, V)`` they were drawn from. Tokens are drawn from softmax(logits / tau) (the most
        likely at tau = 0), or, with ``forced`` ``(N, T)``, are those (teacher forcing, one step
        at a time)."""
        n, t = z.shape[0], self.steps
        codes = self.segment_codes(z)
        u = codes.shape[1]
        tokens = torch.empty(n, t, dtype=torch.long, device=z.device)
        logits = z.new_empty(n, t, self.vocab)
        previous = torch.full((n,), self.vocab, dtype=torch.long, device=z.device)
        for segment in range(u):
            code = codes[:, segment]
            state = self._state(self.init_state, code, self.dec_layers)
            for step in range(segment * t // u, (segment + 1) * t // u):
                out, state = self.rnn(self._inputs(previous, code).unsqueeze(1), state)
                logits[:, step] = self.output(out[:, 0])
                if forced is not None:
                    previous = forced[:, step].long()
                else:
                    previous = EventSequence(logits[:, step : step + 1]).sample(temperature=temperature)[:, 0]
                tokens[:, step] = previous
        return tokens, logits


class MelodyDecoding(TorchDistribution):
    """p(x | z) of ``MelodyVAE``: batch ``z.shape[:-1]``, event ``(T,)``.

    ``log_prob(x)`` runs the decoder on the tokens shifted by one (teacher forcing) and scores x
    with ``EventSequence``; the particle and batch dims are flattened into one LSTM batch.
    ``sample(temperature=tau)`` decodes autoregressively (``MelodyVAE.generate``).
    """

    arg_constraints = {}
    support = constraints.independent(constraints.nonnegative_integer, 1)
    has_rsample = False

    def __init__(self, model: MelodyVAE, z: torch.Tensor, validate_args=None) -> None:
        self.vae, self.z = model, z
        super().__init__(z.shape[:-1], torch.Size([model.steps]), validate_args=validate_args)

    def expand(self, batch_shape, _instance=None) -> MelodyDecoding:
        batch_shape = torch.Size(batch_shape)
        return MelodyDecoding(self.vae, self.z.expand(batch_shape + self.z.shape[-1:]), validate_args=False)

    def _flat(self, shape: torch.Size, x: torch.Tensor | None = None):
        n = math.prod(shape)
        z = self.z.expand(shape + self.z.shape[-1:]).reshape(n, -1)
        return z if x is None else (z, x.expand(shape + x.shape[-1:]).reshape(n, -1))

    def steps(self, x: torch.Tensor) -> EventSequence:
        """The teacher-forced ``EventSequence`` of x, batch ``self.batch_shape``."""
        z, flat = self._flat(self.batch_shape, x)
        return EventSequence(self.vae.logits(z, flat).reshape(*self.batch_shape, self.vae.steps, self.vae.vocab))

    def log_prob(self, x: torch.Tensor) -> torch.Tensor:
        return self.steps(x).log_prob(x)

    def sample(self, sample_shape=torch.Size(), temperature: float = 1.0) -> torch.Tensor:
        shape = torch.Size(sample_shape) + self.batch_shape
        tokens, _ = self.vae.generate(self._flat(shape), temperature)
        return tokens.reshape(shape + self.event_shape)
