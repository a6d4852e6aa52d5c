"""The outer variable: the learnable interpolant that the max–min's outer loop ascends on."""

from __future__ import annotations

import torch

from ..interpolants.learnable import FourierInterpolant, NeuralInterpolant
from ..interpolants.schedules import BrownianGamma
from .config import SBConfig

__all__ = ["build_interpolant"]


def build_interpolant(
    cfg: SBConfig, d: int, eps: float, generator: torch.Generator | None = None
) -> FourierInterpolant | NeuralInterpolant:
    """The family ``cfg.interpolant`` on ``gamma_0 = sqrt(2 eps t(1-t))``, the Brownian bridge of
    the bridge's reference process (docs/math.md §5).

    ``"fourier"``: spatially linear with learnable Fourier coefficients
    (:class:`~bridge.interpolants.FourierInterpolant`); ``"neural"``:
    ``(1-t) x0 + t x1 + t(1-t) N_phi(t, x0, x1)`` (:class:`~bridge.interpolants.NeuralInterpolant`),
    which can bend paths that the spatially linear family cannot. Either starts as the linear
    interpolant (zero Fourier coefficients; ``N_phi``'s last layer at zero). ``generator`` draws
    the neural interpolant's initial weights.

    Example:
        >>> it = build_interpolant(SBConfig(), 2, eps=0.5)
        >>> it.gamma(torch.tensor([0.5], dtype=torch.float64)).tolist()  # sqrt(2 eps t(1-t)) per dimension
        [[0.5, 0.5]]
    """
    gamma0 = BrownianGamma(a=2.0 * eps)
    if cfg.interpolant == "fourier":
        return FourierInterpolant(
            cfg.n_modes, dim=d if cfg.diagonal else None, gamma=gamma0, learn_gamma=cfg.learn_gamma
        )
    return NeuralInterpolant(
        d,
        gamma=gamma0,
        hidden=cfg.neural_hidden,
        depth=cfg.neural_depth,
        generator=generator,
        learn_gamma=cfg.learn_gamma,
        n_modes=cfg.n_modes,
    )
