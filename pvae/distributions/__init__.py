"""Custom distributions with ``torch.distributions`` semantics (``batch_shape``/``event_shape``,
broadcasting ``log_prob``), usable at Pyro sample sites."""

from pvae.distributions.bernoulli import BernoulliImage

__all__ = ["BernoulliImage"]
