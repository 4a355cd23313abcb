"""SVG-VAE (Lopes et al. 2019) as a Pyro model: a latent style z, a class-conditional image
decoder for the glyph's pixels and an autoregressive LSTM decoder for its drawing commands.

    z ~ N(0, I),   y the character (62 classes)
    image | z, y ~ Bernoulli(sigmoid(deconv([z, onehot(y)])))   64 x 64 pixels; class-conditional instance norm
    (h_0, c_0) = tanh(W [sg(z), onehot(y)] + b)
    h_t = LSTM([row_{t-1}, sg(z), onehot(y)], h_{t-1}),   row_0 = 0
    row_t | h_t ~ CommandSequence step: softmax over 4 commands, 6 x K-component 1-D mixtures

sg is the stop-gradient of the paper: the command decoder reads z but does not shape it, so z is
the image VAE's style code alone. The observation site ``"x"`` is the glyph's row (``pvae.kinds.
svg.data``: pixels, then T command rows), scored by ``GlyphLikelihood`` as log p(image | z, y) +
log p(commands | z, y), teacher-forced. The paper trains the VAE first and then the decoder on
its frozen z; here one run does both: for the first ``vae_first`` of the planned steps the command
term is computed without gradients (the VAE learns alone), then both learn (jointly, z still
under the stop-gradient).
"""

from __future__ import annotations

import math

import torch
from pyro.distributions import TorchDistribution
from torch import nn
from torch.distributions import constraints

from models.sketch_vae import MIXTURES
from pvae.contracts import CONDITIONAL, LATENT_DIM, Model, Option
from pvae.distributions.bernoulli import BernoulliImage
from pvae.distributions.svg import ARGS, COMMANDS, EOS, ROW, CommandSequence
from pvae.layers import DEC_HIDDEN, one_hot

VAE_FIRST = Option(
    "vae_first",
    0.2,
    "svg-vae: share of the steps in which only the image VAE learns",
    "networks",
    float,
    low=0.0,
    high=1.0,
    high_open=True,
    scope="model",
)
IGNORE_Z = Option(
    "ignore_z",
    False,
    "svg-vae: the command decoder reads the class alone (the decoder-only floor)",
    "networks",
    bool,
    scope="model",
)
CHANNELS = (64, 64, 32, 32, 16)  # the image decoder's channels at 4, 8, 16, 32 and 64 pixels


class SVGVAE(Model):
    """The SVG-VAE generative model over glyph rows (image, commands), class-conditional.

    :param data_dim: D, the pixels of a glyph (64 * 64).
    :param max_commands: the longest command sequence; T = max_commands + 1 rows with the EOS.
    :param num_classes: C >= 2, the characters.
    :param latent_dim: Z, the style code.
    :param dec_hidden: command LSTM size.
    :param mixtures: K, components of each argument's mixture.
    :param vae_first: the share of the planned steps before the command decoder learns.
    :param ignore_z: the command decoder reads z as zeros: p(commands | y) alone, the floor that
        says what z is worth to it.
    """

    name = "svg-vae"
    data_kind = "svg"
    options = (LATENT_DIM, DEC_HIDDEN, MIXTURES, VAE_FIRST, IGNORE_Z, CONDITIONAL)
    train_defaults = {
        "data": "svg",
        "conditional": True,
        "latent_dim": 32,
        "dec_hidden": 256,
        "mixtures": 10,
        "guide": "diag",
        "hidden": [512],
        "batch_size": 64,
        "lr": 1e-3,
        "clip_value": 1.0,
        # beta 4 (the paper weights its KL by 300 with free bits): at beta 1 z also holds which character it
        # is, so one font's mean code decodes every class as a blend of characters; at 4 the class carries that
        "kl_weight": 4.0,
        "epochs": 1000,  # 17 steps an epoch over the 1,059 training glyphs of the built-in fonts: --steps stops first
        "steps": 6000,
    }

    def __init__(
        self,
        data_dim: int,
        max_commands: int,
        num_classes: int,
        latent_dim: int = 32,
        dec_hidden: int = 256,
        mixtures: int = 10,
        vae_first: float = 0.2,
        ignore_z: bool = False,
    ) -> None:
        super().__init__()
        side = math.isqrt(data_dim)
        if side * side != data_dim or side % 16:
            raise ValueError(f"the image side must be a multiple of 16, and {data_dim} pixels are not such a square")
        if num_classes < 2:
            raise ValueError(f"svg-vae is class-conditional: it needs at least 2 classes, not {num_classes}")
        self.data_dim, self.side, self.steps = data_dim, side, max_commands + 1
        self.latent_dim, self.num_classes, self.mixtures, self.vae_first = latent_dim, num_classes, mixtures, vae_first
        self.commands_learn, self.ignore_z = vae_first == 0, ignore_z
        code = latent_dim + num_classes
        start = side // 16
        self.image_in = nn.Linear(code, CHANNELS[0] * start * start)
        self.upsample = nn.ModuleList(
            nn.ConvTranspose2d(i, o, 4, stride=2, padding=1) for i, o in zip(CHANNELS, CHANNELS[1:])
        )
        self.class_norm = nn.ModuleList(nn.Linear(num_classes, 2 * o) for o in CHANNELS[1:])
        for film in self.class_norm:  # start at gamma = 1, beta = 0
            nn.init.zeros_(film.weight)
            nn.init.zeros_(film.bias)
        self.image_out = nn.Conv2d(CHANNELS[-1], 1, 3, padding=1)
        self.pixel_bias = nn.Parameter(torch.zeros(data_dim))
        self.rnn = nn.LSTM(len(COMMANDS) + ARGS + code, dec_hidden, batch_first=True)
        self.init_state = nn.Linear(code, 2 * dec_hidden)
        self.output = nn.Linear(dec_hidden, len(COMMANDS) + 3 * ARGS * mixtures)

    def code(self, z: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """c = [z, onehot(y)] ``(..., Z + C)`` for codes ``(..., Z)`` and labels broadcasting to ``z.shape[:-1]``."""
        if y is None:
            raise ValueError("svg-vae is class-conditional: give the labels y")
        return torch.cat([z, one_hot(y, self.num_classes, z).expand(*z.shape[:-1], -1)], -1)

    def image_logits(self, code: torch.Tensor) -> torch.Tensor:
        """Pixel logits ``(..., D)`` from codes ``(..., Z + C)``: a linear map to 4 x 4, then per
        upsampling (transposed convolution) the paper's class-conditional instance norm,
        h <- (1 + gamma(y)) * InstanceNorm(h) + beta(y), and a ReLU."""
        flat = code.reshape(-1, code.shape[-1])
        label = flat[:, self.latent_dim :]
        start = self.side // 16
        h = self.image_in(flat).reshape(-1, CHANNELS[0], start, start)
        for up, film in zip(self.upsample, self.class_norm):
            gamma, beta = film(label)[:, :, None, None].chunk(2, 1)
            h = torch.relu((1 + gamma) * nn.functional.instance_norm(up(torch.relu(h))) + beta)
        return self.image_out(h).reshape(*code.shape[:-1], self.data_dim) + self.pixel_bias

    def init_output_bias(self, data_mean: torch.Tensor) -> None:
        """Start the pixel logits at logit(mean pixel) of the training glyphs ``(D,)``."""
        with torch.no_grad():
            self.pixel_bias.copy_(torch.logit(data_mean.clamp(1e-3, 1 - 1e-3)))

    def set_progress(self, step: int, steps: int) -> None:
        self.commands_learn = step >= self.vae_first * steps

    @staticmethod
    def inputs(rows: torch.Tensor) -> torch.Tensor:
        """Decoder inputs of command rows ``(N, T, 7)``: [onehot(command), arguments] ``(N, T, 10)``."""
        command = nn.functional.one_hot(rows[..., 0].round().long().clamp(0, len(COMMANDS) - 1), len(COMMANDS))
        return torch.cat([command.to(rows), rows[..., 1:]], -1)

    def decode(self, inputs: torch.Tensor, code: torch.Tensor, state=None) -> tuple[CommandSequence, tuple]:
        """The command distribution of every position after ``inputs`` ``(N, T, 10)`` (each the
        previous row), codes ``(N, Z + C)`` (read under the stop-gradient, z as zeros with
        ``ignore_z``); batch ``(N,)``, event ``(T, 7)``."""
        code = code.detach()
        if self.ignore_z:
            code = torch.cat([torch.zeros_like(code[:, : self.latent_dim]), code[:, self.latent_dim :]], -1)
        if state is None:
            h, c = torch.tanh(self.init_state(code)).chunk(2, -1)
            state = (h.unsqueeze(0).contiguous(), c.unsqueeze(0).contiguous())
        out, state = self.rnn(torch.cat([inputs, code.unsqueeze(1).expand(-1, inputs.shape[1], -1)], -1), state)
        k = self.mixtures
        params = self.output(out)
        logits, rest = params.split([len(COMMANDS), 3 * ARGS * k], -1)
        mix, loc, log_scale = rest.unflatten(-1, (3, ARGS, k)).unbind(-3)
        return CommandSequence(logits, mix, loc, log_scale.exp()), state

    def command_distribution(self, rows: torch.Tensor, code: torch.Tensor) -> CommandSequence:
        """Teacher forcing: p(row_t | row_<t, z, y) for command rows ``(N, T, 7)``, codes ``(N, Z + C)``."""
        previous = torch.cat([torch.zeros_like(rows[:, :1]), rows[:, :-1]], 1)
        return self.decode(self.inputs(previous), code)[0]

    @torch.no_grad()
    def generate(self, z: torch.Tensor, y: torch.Tensor, temperature: float = 1.0) -> torch.Tensor:
        """Command rows ``(N, T, 7)`` drawn step by step from codes ``(N, Z)`` and labels ``(N,)``,
        each sampled row fed back in; EOS rows of zeros after the end."""
        code = self.code(z, y.expand(z.shape[0]))
        n = z.shape[0]
        out = torch.zeros(n, self.steps, ROW, device=z.device)
        done = torch.zeros(n, dtype=torch.bool, device=z.device)
        previous, state = torch.zeros(n, 1, ROW, device=z.device), None
        for t in range(self.steps):
            params, state = self.decode(self.inputs(previous), code, state)
            row = params.sample(temperature=temperature)[:, 0]
            row = torch.where(done[:, None], torch.zeros_like(row), row)
            out[:, t] = row
            done = done | (row[:, 0] == EOS)
            if done.all():
                break
            previous = row[:, None]
        return out

    def likelihood(self, z: torch.Tensor, y: torch.Tensor | None = None) -> GlyphLikelihood:
        """p(x | z, y): batch ``z.shape[:-1]``, event ``(D + T * 7,)``."""
        return GlyphLikelihood(self, z, y)


class GlyphLikelihood(TorchDistribution):
    """p(image, commands | z, y) of ``SVGVAE``: batch ``z.shape[:-1]``, event ``(D + T * 7,)``.

    ``log_prob`` is the Bernoulli image term plus the teacher-forced ``CommandSequence`` term (the
    particle and batch dims flattened into one LSTM batch); ``sample`` draws the image's pixels and
    generates the commands step by step.
    """

    arg_constraints = {}
    support = constraints.independent(constraints.real, 1)
    has_rsample = False

    def __init__(self, model: SVGVAE, z: torch.Tensor, y: torch.Tensor | None, validate_args=None) -> None:
        self.vae, self.z, self.y = model, z, y
        super().__init__(z.shape[:-1], torch.Size([model.data_dim + model.steps * ROW]), validate_args=validate_args)

    def expand(self, batch_shape, _instance=None) -> GlyphLikelihood:
        batch_shape = torch.Size(batch_shape)
        y = None if self.y is None else self.y.expand(batch_shape)
        return GlyphLikelihood(self.vae, self.z.expand(batch_shape + self.z.shape[-1:]), y, validate_args=False)

    def terms(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """log p(image | z, y) and log p(commands | z, y), each of shape ``batch``."""
        vae, shape = self.vae, self.batch_shape
        code = vae.code(self.z, self.y)
        image = BernoulliImage(vae.image_logits(code)).log_prob(x[..., : vae.data_dim])
        rows = x[..., vae.data_dim :].unflatten(-1, (vae.steps, ROW)).expand(shape + (vae.steps, ROW))
        n = math.prod(shape)
        with torch.set_grad_enabled(torch.is_grad_enabled() and vae.commands_learn):
            commands = vae.command_distribution(rows.reshape(n, vae.steps, ROW), code.reshape(n, -1))
            command_lp = commands.log_prob(rows.reshape(n, vae.steps, ROW)).reshape(shape)
        return image, command_lp

    def log_prob(self, x: torch.Tensor) -> torch.Tensor:
        image, commands = self.terms(x)
        return image + commands

    def sample(self, sample_shape=torch.Size(), temperature: float = 1.0) -> torch.Tensor:
        shape = torch.Size(sample_shape) + self.batch_shape
        z = self.z.expand(shape + self.z.shape[-1:]).reshape(-1, self.z.shape[-1])
        y = self.y.expand(shape).reshape(-1)
        with torch.no_grad():
            image = torch.bernoulli(torch.sigmoid(self.vae.image_logits(self.vae.code(z, y))))
            commands = self.vae.generate(z, y, temperature)
        return torch.cat([image, commands.flatten(1)], -1).reshape(shape + self.event_shape)
