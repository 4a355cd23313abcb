"""Likelihood-free variational inference, ``lfvi`` (Tran, Ranganath & Blei 2017): the ELBO of a model
whose p(x | z) can only be sampled, with the log density ratio it needs estimated by a discriminator;
the vectorisation talk's third approach, with the hard rasteriser as the simulator.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch.nn import functional as F

from pvae.contracts import Model, Option
from pvae.errors import UserError
from pvae.objectives.adversarial import ALI, DISC_DROPOUT, DISC_HIDDEN, DISC_LR_RATIO
from pvae.raster import hard_render

SIMULATOR = Option(
    "simulator",
    "site",
    "lfvi: how x ~ p(x | z) is drawn: the model's own pixel distribution (site), or the hard rasteriser of the "
    "strokes of a model that draws (hard), binarised as the data were",
    "adversarial",
    choices=("site", "hard"),
    scope="objective",
)


class LFVI(ALI):
    r"""Likelihood-free variational inference (Tran, Ranganath & Blei 2017, section 3). Up to the
    data's entropy, which no parameter changes, the ELBO is a density ratio,

        ELBO = E_q[log p(x, z) - log q(z | x)] = E_q[r(x, z)] + E_{p_data}[log p_data(x)],
        r(x, z) = log p(z) p(x | z) - log p_data(x) q(z | x),

    and r is what a classifier of (x, z) pairs learns without any density: D_psi trained by the log
    loss on generated pairs (x' ~ p(x | z'), z' ~ p(z)) as 1 and data pairs (x, z ~ q(z | x)) as 0
    has the logit D* = r. Per datapoint b, a bar stopping the gradient,

        loss_b = -D_{\bar\psi}(x_b, z_b)                                  (the guide: -ELBO)
                 + D_{\bar\psi}(x'_b, \bar z'_b)                           (the model: KL(p || q) = E_p[r])
                 + softplus(-D_psi(\bar x'_b, \bar z'_b)) + softplus(D_psi(x_b, \bar z_b))   (D: the log loss)

    The guide's gradient reaches it through z alone (E_q[grad_phi log q] = 0, so holding r's own
    dependence on phi fixed is exact), and neither it nor D needs a gradient of the simulator. The
    model's does: log p_theta(x | z) cannot be evaluated, so the decoder descends the other KL,
    E_p[r], whose gradient is E[grad_x r(x', z') dx'/dtheta] (again exact with r held fixed), and x'
    must be a differentiable function of theta. With ``simulator="hard"`` (the vectorisation model)
    x' is drawn from the hard, non-differentiable rasteriser (``pvae.raster.hard_render``: the SVG's
    own picture, binarised b ~ Bernoulli(ink) as the data were), and its gradient is the model's own
    renderer's (``--renderer soft`` or ``neural``), straight through: x' = b + p - sg(p), p the
    pixel probabilities of p(x | z'). The draws D reads are the simulator's alone.
    With ``simulator="site"`` x' is the model's own draw at its observation site, as in ``ALI``.

    :param data_dim, latent_dim, num_classes, disc_hidden, disc_dropout, disc_lr_ratio: as ``ALI``.
    :param simulator: ``"site"`` or ``"hard"``.
    """

    name = "lfvi"
    options = (DISC_HIDDEN, DISC_DROPOUT, DISC_LR_RATIO, SIMULATOR)

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
        simulator: str = "site",
    ) -> None:
        if simulator not in SIMULATOR.choices:
            raise ValueError(f"simulator must be one of {', '.join(SIMULATOR.choices)}, not {simulator!r}")
        super().__init__(
            num_particles,
            max_plate_nesting,
            data_dim,
            latent_dim,
            num_classes,
            disc_hidden,
            disc_dropout,
            disc_lr_ratio,
        )
        self.simulator = simulator

    def refusal(self, model: Model | None) -> str | None:
        if self.simulator == "hard" and (model is None or not model.supports_vectorise):
            return "--simulator hard needs a model that draws strokes (--model strokes-raster)"
        return None

    def _fake(self, model, fn, value: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        """x' = b + p - sg(p): b the simulator's draw, p the pixel probabilities of p(x | z')."""
        if self.simulator == "site":
            return super()._fake(model, fn, value, z)
        drawing = getattr(model, "__self__", None)  # the module of a bound ``Model.model``
        why = self.refusal(drawing) if isinstance(drawing, Model) else self.refusal(None)
        if why is not None:
            raise UserError(why)
        p = fn.mean
        with torch.no_grad():
            ink = hard_render(drawing.strokes(z), math.isqrt(p.shape[-1]))
            b = torch.bernoulli(torch.as_tensor(ink, dtype=p.dtype, device=p.device))
        return b + p - p.detach()

    def differentiable_loss(self, model, guide, x, y=None, **kwargs) -> torch.Tensor:
        (x, z), (fake_x, fake_z) = self._pairs(model, guide, x, y, kwargs)
        d = self._registered(f"{self.name}_discriminator", (x, z.detach()), y)
        frozen = {name: p.detach() for name, p in d.named_parameters()}
        players = -torch.func.functional_call(d, frozen, (x, z, y))
        players = players + torch.func.functional_call(d, frozen, (fake_x, fake_z, y))
        judge = F.softplus(-d(fake_x.detach(), fake_z, y)) + F.softplus(d(x, z.detach(), y))
        return (players + judge).mean(0).sum()
