"""Coupling refinement after the max–min (``SBConfig.refine_rounds``, docs/math.md §5).

Each round draws pairs ``(x0, x1)``: ``x0`` from the training samples and ``x1`` from the learned
SDE started there. The solver then resets the interpolant to the one it started from (the
Brownian bridge of the reference process) and trains on those pairs with a new warm-up and
learning-rate schedule: one step of iterative Markovian fitting (Shi et al. 2023; Peluchetti
2023), whose fixed point is the bridge.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from .potential import MixturePotential
from .sde import forward_sde

__all__ = ["REFINE_CHUNK", "RefineSchedule", "sde_pairs"]

#: rows of the SDE integrated at once when drawing refinement pairs
REFINE_CHUNK = 8192


def sde_pairs(
    drift: nn.Module, x0: Tensor, n: int, eps: float, steps: int, gen: torch.Generator, progress=None
) -> tuple[Tensor, Tensor]:
    """``n`` pairs ``(x0[i], X1)``: rows of ``x0`` drawn with replacement and ``X1`` from the SDE
    ``dX = drift dt + sqrt(2 eps) dW`` started there (end-refined Heun grid, as
    :meth:`BridgeResult.sample`). ``progress(done, n)`` is told the pairs done, step by step.
    A :class:`~bridge.sb.MixturePotential` drift's ``X1`` are drawn exactly, without the SDE."""
    xa = x0[torch.randint(0, x0.shape[0], (n,), generator=gen).to(x0.device)]
    if isinstance(drift, MixturePotential):
        with torch.no_grad():
            xb = drift.sample(xa, generator=gen)[:, 0]
        if progress is not None:
            progress(n, n)
        return xa, xb
    xb = []
    for i in range(0, n, REFINE_CHUNK):
        c = xa[i : i + REFINE_CHUNK]
        part = None if progress is None else _part(progress, i, c.shape[0], n)
        xb.append(forward_sde(drift, eps, c, steps=steps, generator=gen, progress=part).x)
    xb = torch.cat(xb)
    if not bool(torch.isfinite(xb).all()):
        raise FloatingPointError("coupling refinement: the learned SDE gave NaN or Inf samples; the max-min diverged")
    return xa, xb


def _part(progress, start: int, size: int, n: int):
    return lambda done, total: progress(start + size * done // max(total, 1), n)


@dataclass(frozen=True)
class RefineSchedule:
    """How the budget is shared: phase 0 is the max–min, phases ``1..rounds`` the refinement rounds,
    which get ``share`` of the budget together, split evenly.

    Example:
        >>> s = RefineSchedule(rounds=2, share=0.5)
        >>> [s.phase_end(p) for p in range(3)]
        [0.5, 0.75, 1.0]
    """

    rounds: int
    share: float

    def phase_end(self, phase: int) -> float:
        """The budget fraction at which ``phase`` ends."""
        if phase >= self.rounds:
            return 1.0
        return 1.0 - self.share + phase * self.share / self.rounds

    def due(self, phase: int, frac: float) -> bool:
        """Whether the next round starts now, at budget fraction ``frac``."""
        return phase < self.rounds and frac >= self.phase_end(phase)

    def decay(self, frac: float, phase: int, phase_start: float) -> float:
        """The learning-rate factor: a cosine from 1 to 0.05 over the phase's own share."""
        local = (frac - phase_start) / max(self.phase_end(phase) - phase_start, 1e-12)
        return 0.05 + 0.95 * 0.5 * (1.0 + math.cos(math.pi * min(max(local, 0.0), 1.0)))
