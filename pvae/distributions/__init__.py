"""Custom distributions with ``torch.distributions`` semantics (``batch_shape``/``event_shape``,
broadcasting ``log_prob``), usable at Pyro sample sites."""

from pvae.distributions.bernoulli import BernoulliImage
from pvae.distributions.normal import ReparamNormal, StandardNormal

__all__ = ["BernoulliImage", "ReparamNormal", "StandardNormal"]
