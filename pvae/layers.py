"""Network layers shared by models and guides: activations, ``Linear`` (with the centred
low-precision products of ``pvae bounds``), ``mlp``, sketch-rnn's ``LSTM``, ``PixelDecoder``, and the
options that configure them (each declared once here, and listed by the parts that read it)."""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from contextlib import contextmanager

import pyro.distributions as dist
import torch
from torch import nn
from torch.nn import functional as F

from pvae.contracts import Option
from pvae.distributions import BernoulliImage
from pvae.distributions.bernoulli import binary_log_prob, is_binary, log_sigmoid_sum_

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


HIDDEN = Option("hidden", [400], "MLP hidden sizes", "networks", int, low=1, nargs="+", scope="networks", metavar="H")
ACTIVATION = Option(
    "activation", "relu", "MLP hidden activation", "networks", scope="networks", choices=tuple(ACTIVATIONS)
)
DEC_HIDDEN = Option("dec_hidden", 512, "decoder LSTM size (sketch, melody)", "networks", int, low=1, scope="model")
LIKELIHOOD = Option(
    "likelihood", "bernoulli", "pixel likelihood", "networks", choices=("bernoulli", "gaussian"), scope="model"
)
OBS_SCALE = Option(
    "obs_scale",
    None,
    "fixed pixel std of a gaussian likelihood",
    "networks",
    type=float,
    low=0.0,
    low_open=True,
    optional=True,
    scope="model",
    default_text="learned per pixel",
)


# Below this many input features the centring's passes over x and the output cost more than the
# lower-precision product saves (one thread: 50 -> 200 took 0.36 ms centred, 0.32 ms in float32).
MIN_LOW_PRECISION_FEATURES = 64
# The dtype of ``particle_products`` while one is active: a plain module global, not a ContextVar,
# which ``torch.compile`` cannot trace (every Linear would break a compiled graph).
_particle_dtype: torch.dtype | None = None


@contextmanager
def particle_products(dtype: torch.dtype | None) -> Iterator[None]:
    """Inside, every ``Linear`` whose input has a particle dimension (3 or more dims: the objectives
    put the K particles first) multiplies in ``dtype`` (None: as usual), in the whole process.
    Meant for evaluation without gradients: ``pvae bounds --matmul-dtype bfloat16``. Layers that
    are not ``Linear`` (the sketch and melody models' recurrent cells) are untouched."""
    global _particle_dtype
    before, _particle_dtype = _particle_dtype, dtype
    try:
        yield
    finally:
        _particle_dtype = before


class Linear(nn.Linear):
    """``nn.Linear`` that, inside ``particle_products(dtype)``, multiplies an input ``(K, ..., in)``
    with a leading particle dimension in ``dtype``, centred on its mean over the K particles m:

        W x + b = W (x - m) + (W m + b)

    W m + b (one row per datapoint, not per particle) at the input's precision; W (x - m) in
    ``dtype``, so that its rounding errors are relative to the spread of the particles around m,
    not to x itself. On a CPU with bfloat16 matrix units that product is several times faster
    than float32; on binarized MNIST (a trained 784-200-200-50 net, 200 test images) L_5000 moved
    by 0.001 nats this way and by 0.007 uncentred (docs/results.md, Speed). Any input of 3 or more
    dims is centred over dim 0, which is exact whatever that dim holds; the precision gain needs
    it to hold the particles. Inputs with fewer dims (a guide reading x), and layers with fewer
    than ``MIN_LOW_PRECISION_FEATURES`` inputs, are multiplied as usual.
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self._centred(x):
            return F.linear(x, self.weight, self.bias)
        spread, offset = self._spread_and_offset(x)
        return spread.add_(offset)

    def scaled(self, x: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
        """(W x + b) * ``scale``, a fresh tensor; ``scale`` broadcasts to the output's shape (e.g. one
        row per datapoint). Centred, the scale joins the offset in one pass over the output,
        W (x - m) * scale + (W m + b) * scale, instead of a second pass after ``forward``."""
        if not self._centred(x):
            return F.linear(x, self.weight, self.bias).mul_(scale)
        spread, offset = self._spread_and_offset(x)
        return torch.addcmul(offset * scale, spread, scale, out=spread)

    def _centred(self, x: torch.Tensor) -> bool:
        """x is multiplied centred, in the dtype of ``particle_products``."""
        dtype = _particle_dtype
        return (
            dtype is not None and dtype != x.dtype and x.dim() >= 3 and self.in_features >= MIN_LOW_PRECISION_FEATURES
        )

    def _spread_and_offset(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """W (x - m) multiplied in the particle dtype, returned fresh in x's dtype ``(K, ..., out)``, and
        W m + b ``(..., out)``."""
        dtype = _particle_dtype
        centre = x.mean(0)  # (..., in)
        offset = F.linear(centre, self.weight, self.bias)
        spread = F.linear((x - centre).to(dtype), self.weight.to(dtype))
        return spread.to(x.dtype), offset


def mlp(sizes: Sequence[int], act: str, final_activation: bool = False) -> nn.Sequential:
    """Linear layers ``sizes[0] -> sizes[1] -> ... -> sizes[-1]`` with ``act`` between them.

    With ``final_activation`` the last layer is followed by ``act`` too (an encoder trunk);
    without it the output is linear (a decoder's logits or means).
    """
    layers: list[nn.Module] = []
    for i, (n_in, n_out) in enumerate(zip(sizes[:-1], sizes[1:])):
        layers.append(Linear(n_in, n_out))
        if final_activation or i < len(sizes) - 2:
            layers.append(activation(act))
    return nn.Sequential(*layers)


MIN_SCALE = 1e-5  # floor of a guide's sigma (and of the diagonal of its Cholesky factor), so log q stays finite


class LSTM(nn.Module):
    """A one-layer LSTM with optional layer normalisation and recurrent dropout, sketch-rnn's options.

    Layer normalisation (Ba et al. 2016) normalises each gate's pre-activation and the cell before
    its tanh; recurrent dropout (Semeniuta et al. 2016) drops the cell candidate g, with keep
    probability 1 - ``dropout``, so the memory itself is never erased:

        i, f, o = sigmoid(LN(W_x x + W_h h)),  g = drop(tanh(LN(...))),  c = f c + i g,  h = o tanh(LN(c))

    The loop over time runs in Python, so it is several times slower than ``nn.LSTM``: use it when
    you want these two regularisers. The interface is ``nn.LSTM``'s with ``batch_first=True``:
    ``forward(x (N, T, I), (h, c) each (1, N, H)) -> (out (N, T, H), (h, c))``.
    """

    def __init__(self, input_size: int, hidden_size: int, layer_norm: bool = True, dropout: float = 0.0) -> None:
        super().__init__()
        self.hidden_size, self.dropout = hidden_size, dropout
        self.ih = nn.Linear(input_size, 4 * hidden_size)
        self.hh = nn.Linear(hidden_size, 4 * hidden_size, bias=False)
        self.gate_norm = nn.LayerNorm([4, hidden_size]) if layer_norm else None
        self.cell_norm = nn.LayerNorm(hidden_size) if layer_norm else None
        with torch.no_grad():
            self.ih.bias[hidden_size : 2 * hidden_size].fill_(1.0)  # forget-gate bias 1, as in sketch-rnn

    def forward(self, x: torch.Tensor, state: tuple[torch.Tensor, torch.Tensor] | None = None):
        n, t, _ = x.shape
        if state is None:
            h = c = x.new_zeros(n, self.hidden_size)
        else:
            h, c = state[0][0], state[1][0]
        projected = self.ih(x)  # (N, T, 4H): the input projection of every step at once
        outputs = []
        for step in range(t):
            gates = (projected[:, step] + self.hh(h)).view(n, 4, self.hidden_size)
            if self.gate_norm is not None:
                gates = self.gate_norm(gates)
            i, f, g, o = gates.unbind(1)
            g = torch.tanh(g)
            if self.training and self.dropout > 0:
                g = nn.functional.dropout(g, self.dropout, training=True)
            c = torch.sigmoid(f) * c + torch.sigmoid(i) * g
            h = torch.sigmoid(o) * torch.tanh(self.cell_norm(c) if self.cell_norm is not None else c)
            outputs.append(h)
        return torch.stack(outputs, 1), (h.unsqueeze(0), c.unsqueeze(0))


def batched(x: torch.Tensor, y: torch.Tensor | None, size: int) -> Iterator[tuple[torch.Tensor, torch.Tensor | None]]:
    """Consecutive batches of ``size`` datapoints of ``x`` and of its condition ``y`` (or ``None``)."""
    for start in range(0, x.shape[0], size):
        yield x[start : start + size], None if y is None else y[start : start + size]


def one_hot(y: torch.Tensor, num_classes: int, like: torch.Tensor) -> torch.Tensor:
    """Float one-hot codes of labels ``y`` ``(...)`` -> ``(..., num_classes)``, dtype and device of ``like``."""
    return nn.functional.one_hot(y.long(), num_classes).to(like)


PIXEL_MIN_SCALE = 1e-2  # floor of a learned pixel std, so constant pixels cannot drive it to zero


class PixelDecoder(nn.Module):
    """An MLP from a code to p(x | code) over D pixels: Bernoulli logits, or Gaussian means with a
    fixed std or a learned one per pixel (floored at ``PIXEL_MIN_SCALE``).

    :param in_dim: size of the code (z, or z with a one-hot label).
    :param data_dim: D.
    """

    def __init__(
        self,
        in_dim: int,
        data_dim: int,
        hidden: Sequence[int],
        activation: str,
        likelihood: str = "bernoulli",
        obs_scale: float | None = None,
    ) -> None:
        super().__init__()
        if likelihood not in ("bernoulli", "gaussian"):
            raise ValueError(f"likelihood must be 'bernoulli' or 'gaussian', not {likelihood!r}")
        if obs_scale is not None and obs_scale <= 0:
            raise ValueError(f"obs_scale must be positive, not {obs_scale}")
        self.likelihood, self.obs_scale = likelihood, obs_scale
        self.net = mlp([in_dim, *hidden, data_dim], activation)
        learned = likelihood == "gaussian" and obs_scale is None
        self.raw_scale = nn.Parameter(torch.zeros(data_dim)) if learned else None

    def forward(self, code: torch.Tensor) -> dist.Distribution:
        """p(x | code): batch ``code.shape[:-1]``, event ``(D,)``."""
        out = self.net(code)
        if self.likelihood == "bernoulli":
            return BernoulliImage(out)
        if self.raw_scale is None:
            return dist.Normal(out, torch.full_like(out, self.obs_scale)).to_event(1)
        scale = nn.functional.softplus(self.raw_scale) + PIXEL_MIN_SCALE
        return dist.Normal(out, scale.expand_as(out)).to_event(1)

    def log_prob(self, code: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        """log p(x | code), shape ``code.shape[:-1]``: ``self(code).log_prob(x)``, computed with fewer
        passes over the logits where that is exact: without gradients, for Bernoulli pixels all 0
        or 1 (and distribution validation off), the last layer gives s l with s = 2 x - 1 in one pass
        (``Linear.scaled``), and ``log_sigmoid_sum_`` scores that buffer in place, which nothing else
        holds. A row it leaves at -inf is scored again from the logits (``binary_log_prob``).
        """
        if (
            self.likelihood != "bernoulli"
            or torch.is_grad_enabled()
            or BernoulliImage._validate_args
            or code.shape[:-1] != torch.broadcast_shapes(code.shape[:-1], x.shape[:-1])  # x would widen the logits
            or not is_binary(x)
        ):
            return self(code).log_prob(x)
        h, last = self.net[:-1](code), self.net[-1]
        x = x.to(h.dtype)  # as BernoulliImage scores pixels: in the logits' dtype
        out = log_sigmoid_sum_(last.scaled(h, 2 * x - 1))  # sum_d log sigmoid(s_d l_d)
        lost = out == -math.inf
        if lost.any():  # the same logits again, all of them (a subset would be centred otherwise)
            out[lost] = binary_log_prob(last(h), x)[lost]
        return out

    @torch.no_grad()
    def init_output_bias(self, data_mean: torch.Tensor) -> None:
        """Start at the data mean (Burda et al.: Bernoulli bias = logit of the mean)."""
        last = self.net[-1]
        mean = data_mean.reshape(-1).to(last.bias)
        if self.likelihood == "bernoulli":
            mean = mean.clamp(1e-3, 1 - 1e-3)
            last.bias.copy_(torch.log(mean) - torch.log1p(-mean))
        else:
            last.bias.copy_(mean)
