"""Small networks with one calling convention: ``net(t, x)``."""

from .gradient import GradientField
from .mlp import MLP, TimeEmbedding

__all__ = ["GradientField", "MLP", "TimeEmbedding"]
