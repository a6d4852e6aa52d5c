"""Closed forms used as test oracles and benchmark ground truth (docs/math.md §7).

* :class:`GaussianMixture`, :func:`gaussian`, :func:`standard_normal`: endpoint densities with
  exact log-density, score, moments and sampling.
* :class:`InterpolantOracle`: exact ``rho(t)``, ``b``, ``v``, ``s``, ``eta`` of a spatially
  linear interpolant between two Gaussian mixtures (SI App. A).
* :class:`GaussianSB`, :func:`gaussian_sb`: closed-form entropic OT plan and Schrödinger bridge
  between two Gaussians (cross-covariance, conditionals, SB marginals, drift, costs).
* :class:`SBMixtureBenchmark`, :func:`make_mixture_benchmark`: SB benchmark with an exactly
  known plan (Gushchin et al. 2023): samplers, exact conditional moments, SB drift.

Example:
    >>> import torch
    >>> from bridge.interpolants import Linear
    >>> oracle = InterpolantOracle(Linear(), standard_normal(2), gaussian([3.0, 0.0], 0.5))
    >>> oracle.fields().drift(torch.full((2,), 0.5, dtype=torch.float64), torch.zeros(2, 2, dtype=torch.float64)).shape
    torch.Size([2, 2])
"""

from .gaussian_sb import GaussianSB, gaussian_sb
from .interpolant_oracle import InterpolantOracle
from .mixture import GaussianMixture, gaussian, standard_normal
from .sb_mixture import SBMixtureBenchmark, make_mixture_benchmark

__all__ = [
    "GaussianMixture",
    "gaussian",
    "standard_normal",
    "InterpolantOracle",
    "GaussianSB",
    "gaussian_sb",
    "SBMixtureBenchmark",
    "make_mixture_benchmark",
]
