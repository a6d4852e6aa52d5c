"""Small networks with one calling convention: ``net(t, x)``."""

from .mlp import MLP, TimeEmbedding

__all__ = ["MLP", "TimeEmbedding"]
