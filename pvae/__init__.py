"""pvae: variational autoencoders written as Pyro model/guide pairs."""

__version__ = "0.1.0"
