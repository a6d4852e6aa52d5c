"""The learned SDE ``dX = u(t, X) dt + sqrt(2 eps) dW`` on the grid the bridge samples it on.

The bridge's drift is stiff near ``t = 1`` (it pulls ``x`` onto ``x1`` like ``(x1 - x)/(1 - t)``),
so by default the steps are uniform in ``s`` with ``t = 1 - (1 - s)^2`` (docs/math.md §3).
"""

from __future__ import annotations

import torch
from torch import Tensor

from ..samplers import StochasticHeun, sample_sde

__all__ = ["SDE_GRIDS", "check_grid", "end_grid_sde", "forward_sde", "sde_times"]

SDE_GRIDS = ("end", "uniform")


def check_grid(grid: str) -> None:
    if grid not in SDE_GRIDS:
        raise ValueError(f"grid: expected 'end' or 'uniform', got {grid!r}")


def _end_time(s):
    """The end-refined grid's time ``t = 1 - (1 - s)^2`` at the uniform ``s``."""
    return 1.0 - (1.0 - s) ** 2


def sde_times(steps: int, grid: str = "end") -> Tensor:
    """The ``steps + 1`` times (float64) at which :meth:`BridgeResult.sample` visits the SDE, i.e.
    the times of its ``trajectory``.

    Example:
        >>> sde_times(4).tolist()
        [0.0, 0.4375, 0.75, 0.9375, 1.0]
    """
    check_grid(grid)
    s = torch.linspace(0.0, 1.0, steps + 1, dtype=torch.float64)
    return _end_time(s) if grid == "end" else s


def end_grid_sde(drift, eps: float):
    """The SDE ``dX = drift(t, X) dt + sqrt(2 eps) dW`` in the end-refined time ``s`` of
    :func:`sde_times` (``t = 1 - (1 - s)^2``): ``(drift_s, eps_s)`` for
    :func:`bridge.samplers.sample_sde` from ``s = 0`` to 1, i.e. ``drift_s(s, x) = t'(s) drift(t(s), x)``
    and ``eps_s(s) = eps t'(s)`` with ``t'(s) = 2 (1 - s)``. An exact change of time: the law at
    ``s`` is the law of the original SDE at ``t(s)``; only the discretisation changes (uniform
    steps in ``s`` shrink towards ``t = 1``).

    Example:
        >>> d, e = end_grid_sde(lambda t, x: t[:, None] * x, 0.5)
        >>> d(torch.tensor([0.5]), torch.ones(1, 1)).item(), e(torch.tensor(0.5)).item()
        (0.75, 0.5)
    """
    eps0 = float(eps)

    def drift_s(s, x):
        return (2.0 * (1.0 - s)).to(x.dtype)[:, None] * drift(_end_time(s), x)

    def eps_s(s):
        return eps0 * 2.0 * (1.0 - s)

    return drift_s, eps_s


def forward_sde(
    drift, eps: float, x: Tensor, *, steps: int, generator=None, grid: str = "end", trajectory=False, progress=None
):
    """``dX = drift dt + sqrt(2 eps) dW`` from ``x`` at ``t = 0`` to ``t = 1`` with the stochastic
    Heun method on ``grid`` (:func:`sde_times`), without autograd: the
    :class:`bridge.samplers.SDEResult` of :func:`bridge.samplers.sample_sde` (``progress``: its
    per-step callback)."""
    check_grid(grid)
    if grid == "end":
        drift, eps = end_grid_sde(drift, eps)
    with torch.no_grad():
        return sample_sde(
            drift,
            x,
            eps=eps,
            steps=steps,
            solver=StochasticHeun(),
            generator=generator,
            trajectory=trajectory,
            progress=progress,
        )
