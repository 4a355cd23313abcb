"""Adversarial objectives and their discriminators: ``aae`` (Makhzani et al. 2015) and ``ali``
(Dumoulin et al. 2017). One loss trains every player, each term reading the other players' side
detached; the discriminator is registered with ``pyro.module`` inside the loss, so plain
``pyro.infer.SVI`` and the trainer both train it.
"""

from __future__ import annotations

from collections.abc import Sequence

import pyro
import torch
from pyro import poutine
from pyro.distributions.util import scale_and_mask
from torch import nn
from torch.nn import functional as F
from torch.nn.parameter import is_lazy

from pvae.contracts import Option
from pvae.errors import UserError
from pvae.objectives.base import _LossFromDifferentiable

ADVERSARIAL_WEIGHT = Option(
    "adversarial_weight",
    30.0,
    "aae: weight w of the adversarial terms (the reconstruction is in nats over all pixels)",
    "adversarial",
    float,
    low=0.0,
    scope="objective",
)
DISC_HIDDEN = Option(
    "disc_hidden",
    [256, 256],
    "aae, ali: discriminator hidden sizes",
    "adversarial",
    int,
    low=1,
    nargs="+",
    scope="objective",
    metavar="H",
)
DISC_DROPOUT = Option(
    "disc_dropout",
    0.0,
    "aae, ali: dropout after each hidden layer of the discriminator (ALI's: 0.2)",
    "adversarial",
    float,
    low=0.0,
    high=1.0,
    high_open=True,
    scope="objective",
)
DISC_LR_RATIO = Option(
    "disc_lr_ratio",
    1.0,
    "aae, ali: discriminator learning rate over the model's",
    "adversarial",
    float,
    low=0.0,
    low_open=True,
    scope="objective",
)


FAKE_PIXELS = Option(
    "fake_pixels",
    "sample",
    "ali: what the discriminator reads of p(x | z'): a draw (straight-through for binary pixels) or the mean",
    "adversarial",
    choices=("sample", "mean"),
    scope="objective",
)


class Discriminator(nn.Module):
    """D(z) or D(z, onehot(y)): the logit that z was drawn from the prior rather than from the guide,
    an MLP with leaky ReLUs (Makhzani et al. 2015 use two hidden layers of 1000 units).

    :param inputs: the size of z (ALI: of x and z together), without the labels; ``None``: sized from
        the first input it reads (a ``torch.nn.LazyLinear``; the objectives run it once before
        ``pyro.module`` registers its parameters).
    :param num_classes: C > 0: D also reads the class label y (the label-regularised AAE).
    :param dropout: the probability of dropping each hidden unit (ALI's discriminators: 0.2).
    """

    def __init__(
        self, inputs: int | None = None, hidden: Sequence[int] = (256, 256), num_classes: int = 0, dropout: float = 0.0
    ) -> None:
        super().__init__()
        self.num_classes = num_classes
        widths = [*hidden, 1]
        first = nn.LazyLinear(widths[0]) if inputs is None else nn.Linear(inputs + num_classes, widths[0])
        layers: list[nn.Module] = [first]
        for n_in, n_out in zip(widths, widths[1:]):
            layers += [nn.LeakyReLU(0.2), *([nn.Dropout(dropout)] if dropout else []), nn.Linear(n_in, n_out)]
        self.net = nn.Sequential(*layers)

    def forward(self, z: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        """Logits ``(...)`` of z ``(..., Z)`` (with labels y ``(B,)`` broadcasting against its batch)."""
        if self.num_classes:
            if y is None:
                raise UserError("the discriminator of a class-conditional model reads labels: give y")
            code = F.one_hot(y.long(), self.num_classes).to(z)
            z = torch.cat([z, code.expand(*z.shape[:-1], self.num_classes)], -1)
        return self.net(z).squeeze(-1)


class JointDiscriminator(nn.Module):
    """D(x, z) = f([g(x), h(z)]), ALI's discriminator (Dumoulin et al. 2017): a layer of features of
    each input, so that the few latent values weigh as much as the many pixels, then a joint MLP.

    :param data_dim: pixels per image, ``None``: sized from the first x (``torch.nn.LazyLinear``).
    :param latent_dim: Z, ``None``: sized from the first z.
    :param hidden: the width of each branch, then the joint MLP's hidden sizes.
    :param num_classes: C > 0: the joint MLP also reads onehot(y).
    :param dropout: after every hidden layer.
    """

    def __init__(
        self,
        data_dim: int | None = None,
        latent_dim: int | None = None,
        hidden: Sequence[int] = (256, 256),
        num_classes: int = 0,
        dropout: float = 0.0,
    ) -> None:
        super().__init__()
        width, *rest = hidden
        self.x_branch, self.z_branch = (
            nn.Sequential(
                nn.LazyLinear(width) if n is None else nn.Linear(n, width),
                nn.LeakyReLU(0.2),
                *([nn.Dropout(dropout)] if dropout else []),
            )
            for n in (data_dim, latent_dim)
        )
        self.joint = Discriminator(2 * width, rest, num_classes, dropout)

    def forward(self, x: torch.Tensor, z: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        """Logits ``(...)`` of pairs: x ``(..., D)`` and z ``(..., Z)`` (labels y ``(B,)``)."""
        return self.joint(torch.cat([self.x_branch(x), self.z_branch(z)], -1), y)


class _Adversarial(_LossFromDifferentiable):
    """What the adversarial objectives share: a discriminator (``networks``) at its own learning
    rate, K particles vectorised in a plate left of the data plate, and no KL term."""

    options = (DISC_HIDDEN, DISC_DROPOUT, DISC_LR_RATIO)
    uses_kl = False
    trains_prior = False

    def __init__(
        self, num_particles: int, max_plate_nesting: int, discriminator: nn.Module, disc_lr_ratio: float
    ) -> None:
        if not disc_lr_ratio > 0:
            raise ValueError(f"disc_lr_ratio must be positive, not {disc_lr_ratio}")
        super().__init__(num_particles=num_particles, max_plate_nesting=max_plate_nesting)
        self.vectorize_particles = True
        self.max_plate_nesting = max_plate_nesting + 1
        self.discriminator, self.lr_ratio = discriminator, disc_lr_ratio

    def networks(self) -> list[nn.Module]:
        return [self.discriminator]

    def _registered(self, name: str, inputs: tuple[torch.Tensor, ...], y: torch.Tensor | None) -> nn.Module:
        """The discriminator, registered with ``pyro.module``; a lazy one is sized from ``inputs``
        first, so that the optimiser never sees an uninitialised parameter."""
        if any(is_lazy(p) for p in self.discriminator.parameters()):
            with torch.no_grad():
                self.discriminator(*inputs, y)
        return pyro.module(name, self.discriminator)

    def _check_size(self, option: str, given: int | None, values: str, seen: int) -> None:
        """One line where a size the objective was given (``option``) is not that of its inputs."""
        if given is not None and given != seen:
            raise UserError(
                f"{self.name}: {option}={given}, but {values} has {seen} values; give {seen}, or leave {option} out "
                "to size the discriminator from its first input"
            )

    def _particles(self) -> pyro.plate:
        return pyro.plate("num_particles_vectorized", self.num_particles, dim=-self.max_plate_nesting)


class AAE(_Adversarial):
    r"""The adversarial autoencoder (Makhzani et al. 2015): the reconstruction term of the ELBO,
    with the KL to the prior replaced by a discriminator that tells prior samples from guide samples.
    Any prior one can sample works, with or without a density, and any guide, a point estimate too.

    One loss, so one ``loss_and_grads`` and one optimiser step train both players: for each
    datapoint b (averaged over K particles), with z_b ~ q(z | x_b), z'_b ~ p(z) and w the
    adversarial weight,

        loss_b = -log p(x_b | z_b)
                 + w softplus(-D_{\bar\psi}(z_b))                          (the guide: fool D)
                 + w [softplus(-D_\psi(z'_b)) + softplus(D_\psi(\bar z_b))]    (D: prior 1, guide 0)

    where a bar stops the gradient: the guide's term reads D with detached parameters, and D's term
    reads z detached. So the guide descends the non-saturating generator loss -log D(z) (Goodfellow
    et al. 2014: strong gradients while D wins, unlike the minimax log(1 - D(z)) that a gradient
    reversal would give) and D descends its own cross-entropy, without either term's gradient
    reaching the other player. Pyro's ``SVI`` finds D's parameters through ``pyro.module``; its
    learning rate over the autoencoder's is ``lr_ratio`` in ``pvae train`` (with plain SVI, give
    ``pyro.optim.Adam`` a per-parameter callable).

    With class labels (a class-conditional model, ``num_classes`` > 0) D also reads y, and the
    prior samples z' come from the model's p(z | y): with ``label_regularised`` the y-th Gaussian of
    the mog10 prior (the paper's figure 4), with the class-conditional decoder N(0, I) (figure 7).

    :param latent_dim: Z, the size of D's input; ``None``: the size of the first z it reads.
    :param num_classes: C: D reads onehot(y) too (given the labels as the loss's second argument).
    :param adversarial_weight: w >= 0.
    :param disc_hidden: D's hidden sizes.
    :param disc_dropout: dropout after each of D's hidden layers.
    :param disc_lr_ratio: D's learning rate over the model's and guide's (read by the trainer).
    """

    name = "aae"
    options = (ADVERSARIAL_WEIGHT, DISC_HIDDEN, DISC_DROPOUT, DISC_LR_RATIO)
    traceable = False  # the discriminator's detached copy is a torch.func.functional_call, which torch.jit refuses

    def __init__(
        self,
        num_particles: int = 1,
        max_plate_nesting: int = 1,
        latent_dim: int | None = None,
        num_classes: int = 0,
        adversarial_weight: float = 30.0,
        disc_hidden: Sequence[int] = (256, 256),
        disc_dropout: float = 0.0,
        disc_lr_ratio: float = 1.0,
    ) -> None:
        if not adversarial_weight >= 0:
            raise ValueError(f"adversarial_weight must not be negative, not {adversarial_weight}")
        discriminator = Discriminator(latent_dim, disc_hidden, num_classes, disc_dropout)
        super().__init__(num_particles, max_plate_nesting, discriminator, disc_lr_ratio)
        self.adversarial_weight, self.latent_dim = adversarial_weight, latent_dim

    def differentiable_loss(self, model, guide, *args, **kwargs) -> torch.Tensor:
        particles = self._particles()
        guide_trace = poutine.trace(particles(guide)).get_trace(*args, **kwargs)
        model_trace = poutine.trace(poutine.replay(particles(model), trace=guide_trace)).get_trace(*args, **kwargs)
        site = model_trace.nodes.get("z")
        if site is None or site["type"] != "sample" or site["is_observed"] or "z" not in guide_trace.nodes:
            raise UserError("--objective aae needs a model with a latent site 'z' whose prior it can sample")
        recon = 0.0
        for node in model_trace.nodes.values():
            if node["type"] == "sample" and node["is_observed"]:
                recon = recon + scale_and_mask(node["fn"].log_prob(node["value"]), node["scale"], node["mask"])
        z = guide_trace.nodes["z"]["value"]  # (K, B, Z)
        with torch.no_grad():
            prior_z = site["fn"].sample()  # the prior at the site, expanded over the particles: (K, B, Z)
        y = args[1] if len(args) > 1 else kwargs.get("y")
        self._check_size("latent_dim", self.latent_dim, "the guide's z", z.shape[-1])
        d = self._registered("aae_discriminator", (z.detach(),), y)
        frozen = {name: p.detach() for name, p in d.named_parameters()}
        fool = F.softplus(-torch.func.functional_call(d, frozen, (z, y)))
        judge = F.softplus(-d(prior_z, y)) + F.softplus(d(z.detach(), y))
        return (-recon + self.adversarial_weight * (fool + judge)).mean(0).sum()


class ALI(_Adversarial):
    r"""Likelihood-free inference by a discriminator over (x, z) pairs: ALI / BiGAN (Dumoulin et al.
    2017, Donahue et al. 2017). D(x, z) is the logit that a pair came from the generative model
    p(z) p(x | z) rather than from the inference model p_data(x) q(z | x); the model and the guide
    are trained to make the two joints agree,

        min_{theta, phi} max_psi  E_p[log D(x, z)] + E_q[log(1 - D(x, z))],

    without evaluating log p(x | z) or log q(z | x) anywhere. As in ``AAE``, one loss trains all
    three, each term reading the other player's side detached; per datapoint b, with
    z_b ~ q(z | x_b), z'_b ~ p(z), x'_b a draw from p(x | z'_b),

        loss_b = softplus(-D_{\bar\psi}(x_b, z_b)) + softplus(D_{\bar\psi}(x'_b, z'_b))     (model and guide)
                 + softplus(-D_\psi(\bar x'_b, \bar z'_b)) + softplus(D_\psi(x_b, \bar z_b))   (D)

    (the non-saturating losses). With ``fake_pixels="sample"`` x'_b is a draw with the real images'
    support: ``rsample`` where the decoder has one (Gaussian pixels), else a straight-through draw
    x' = b + p - sg(p), b ~ Bernoulli(p) (binary in value, the gradient of the pixel probabilities
    p). With ``"mean"`` x'_b = p, grey pixels that D tells from binary data by their values alone, so
    the players learn nothing from each other. D reads flattened images.

    :param data_dim: D, pixels per image; ``None``: the size of the first x it reads.
    :param latent_dim: Z; ``None``: the size of the first z it reads.
    :param num_classes: C: D reads onehot(y) too.
    :param disc_hidden: D's hidden sizes.
    :param disc_dropout: dropout after each of D's hidden layers.
    :param disc_lr_ratio: D's learning rate over the model's and guide's (read by the trainer).
    :param fake_pixels: ``"sample"`` or ``"mean"``: what D reads of p(x | z').
    """

    name = "ali"
    options = (DISC_HIDDEN, DISC_DROPOUT, DISC_LR_RATIO, FAKE_PIXELS)
    traceable = False  # the discriminator's detached copy is a torch.func.functional_call, which torch.jit refuses
    data_kinds = ("image",)

    def __init__(
        self,
        num_particles: int = 1,
        max_plate_nesting: int = 1,
        data_dim: int | None = None,
        latent_dim: int | None = None,
        num_classes: int = 0,
        disc_hidden: Sequence[int] = (256, 256),
        disc_dropout: float = 0.0,
        disc_lr_ratio: float = 1.0,
        fake_pixels: str = "sample",
    ) -> None:
        if fake_pixels not in FAKE_PIXELS.choices:
            raise ValueError(f"fake_pixels must be one of {', '.join(FAKE_PIXELS.choices)}, not {fake_pixels!r}")
        discriminator = JointDiscriminator(data_dim, latent_dim, disc_hidden, num_classes, disc_dropout)
        super().__init__(num_particles, max_plate_nesting, discriminator, disc_lr_ratio)
        self.data_dim, self.latent_dim, self.fake_pixels = data_dim, latent_dim, fake_pixels

    def _pairs(self, model, guide, x, y, kwargs) -> tuple[tuple[torch.Tensor, torch.Tensor], ...]:
        """The real pair (x ``(K, B, D)``, z ~ q(z | x)) and the generated pair (x' ~ p(x | z'), z' ~ p(z))."""
        particles = self._particles()
        guide_trace = poutine.trace(particles(guide)).get_trace(x, y, **kwargs)
        generated = poutine.trace(particles(model)).get_trace(None, y, batch_size=x.shape[0])
        if "z" not in guide_trace.nodes or "z" not in generated.nodes or "x" not in generated.nodes:
            raise UserError(f"--objective {self.name} needs a model with a latent site 'z' and an observation site 'x'")
        z = guide_trace.nodes["z"]["value"]  # (K, B, Z)
        prior_z = generated.nodes["z"]["value"]
        site = generated.nodes["x"]
        fake_x = self._fake(model, site["fn"], site["value"], prior_z).reshape(*prior_z.shape[:-1], -1)
        real_x = x.reshape(x.shape[0], -1).expand(*z.shape[:-1], -1)
        self._check_size("data_dim", self.data_dim, "each x", real_x.shape[-1])
        self._check_size("latent_dim", self.latent_dim, "the guide's z", z.shape[-1])
        return (real_x, z), (fake_x, prior_z)

    def _fake(self, model, fn, value: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        """x' of p(x | z'), with the decoder's gradient: the model's own draw ``value`` (reparameterised,
        or straight-through for binary pixels), or the mean."""
        if self.fake_pixels == "mean":
            return fn.mean
        if fn.has_rsample:
            return value
        p = fn.mean
        return value + p - p.detach()

    def differentiable_loss(self, model, guide, x, y=None, **kwargs) -> torch.Tensor:
        (x, z), (fake_x, fake_z) = self._pairs(model, guide, x, y, kwargs)
        d = self._registered(f"{self.name}_discriminator", (x, z.detach()), y)
        frozen = {name: p.detach() for name, p in d.named_parameters()}
        fool = F.softplus(-torch.func.functional_call(d, frozen, (x, z, y)))
        fool = fool + F.softplus(torch.func.functional_call(d, frozen, (fake_x, fake_z, y)))
        judge = F.softplus(-d(fake_x.detach(), fake_z, y)) + F.softplus(d(x, z.detach(), y))
        return (fool + judge).mean(0).sum()
