"""The learned SDE ``dX = u(t, X) dt + sqrt(2 eps) dW`` on the grid the bridge samples it on.

The bridge's drift is stiff near ``t = 1`` (it pulls ``x`` onto ``x1`` like ``(x1 - x)/(1 - t)``),
so by default the steps are uniform in ``s`` with ``t = 1 - (1 - s)^2`` (docs/math.md §3).
"""

from __future__ import annotations

import weakref

import torch
from torch import Tensor, nn

from ..samplers import StochasticHeun, sample_sde

__all__ = ["SDE_GRIDS", "check_grid", "compiled_drift", "end_grid_sde", "forward_sde", "path_bytes", "sde_times"]

SDE_GRIDS = ("end", "uniform")


def check_grid(grid: str) -> None:
    if grid not in SDE_GRIDS:
        raise ValueError(f"grid: expected 'end' or 'uniform', got {grid!r}")


def _end_time(s):
    """The end-refined grid's time ``t = 1 - (1 - s)^2`` at the uniform ``s``."""
    return 1.0 - (1.0 - s) ** 2


def sde_times(steps: int, grid: str = "end", end: float = 1.0) -> Tensor:
    """The ``steps + 1`` times (float64) at which :meth:`BridgeResult.sample` visits the SDE, i.e.
    the times of its ``trajectory`` (with ``time = end < 1``: the grid scaled to end there).

    Example:
        >>> sde_times(4).tolist()
        [0.0, 0.4375, 0.75, 0.9375, 1.0]
    """
    check_grid(grid)
    s = torch.linspace(0.0, 1.0, steps + 1, dtype=torch.float64)
    times = _end_time(s) if grid == "end" else s
    return times if end == 1.0 else float(end) * times


def end_grid_sde(drift, eps: float, end: float = 1.0):
    """The SDE ``dX = drift(t, X) dt + sqrt(2 eps) dW`` in the end-refined time ``s`` of
    :func:`sde_times` (``t = 1 - (1 - s)^2``): ``(drift_s, eps_s)`` for
    :func:`bridge.samplers.sample_sde` from ``s = 0`` to 1, i.e. ``drift_s(s, x) = t'(s) drift(t(s), x)``
    and ``eps_s(s) = eps t'(s)`` with ``t'(s) = 2 (1 - s)``. An exact change of time: the law at
    ``s`` is the law of the original SDE at ``t(s)``; only the discretisation changes (uniform
    steps in ``s`` shrink towards ``t = 1``). With ``end = T < 1`` the grid is the same one
    scaled to end at ``T``: ``t(s) = T (1 - (1 - s)^2)``, ``t'(s) = 2 T (1 - s)``.

    Example:
        >>> d, e = end_grid_sde(lambda t, x: t[:, None] * x, 0.5)
        >>> d(torch.tensor([0.5]), torch.ones(1, 1)).item(), e(torch.tensor(0.5)).item()
        (0.75, 0.5)
    """
    eps0, T = float(eps), float(end)

    def drift_s(s, x):
        rate, t = 2.0 * (1.0 - s), _end_time(s)
        if T != 1.0:  # (T = 1: the arithmetic of the unscaled grid, draw for draw)
            rate, t = T * rate, T * t
        return rate.to(x.dtype)[:, None] * drift(t, x)

    def eps_s(s):
        rate = eps0 * 2.0 * (1.0 - s)
        return rate if T == 1.0 else T * rate

    return drift_s, eps_s


def forward_sde(
    drift,
    eps: float,
    x: Tensor,
    *,
    steps: int,
    generator=None,
    grid: str = "end",
    trajectory=False,
    progress=None,
    end: float = 1.0,
    noise=None,
):
    """``dX = drift dt + sqrt(2 eps) dW`` from ``x`` at ``t = 0`` to ``t = end`` (default 1) with the
    stochastic Heun method on ``grid`` (:func:`sde_times` scaled to end at ``end``), without
    autograd: the :class:`bridge.samplers.SDEResult` of :func:`bridge.samplers.sample_sde`
    (``progress``: its per-step callback; ``noise``: its standard normals ``(steps, n, d)``,
    drawn from ``generator`` when None)."""
    check_grid(grid)
    t1 = 1.0
    if grid == "end":
        drift, eps = end_grid_sde(drift, eps, end)
    else:
        t1 = float(end)
    with torch.no_grad():
        return sample_sde(
            drift,
            x,
            eps=eps,
            t1=t1,
            steps=steps,
            solver=StochasticHeun(),
            generator=generator,
            trajectory=trajectory,
            progress=progress,
            noise=noise,
        )


_COMPILED: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def compiled_drift(net: nn.Module):
    """``torch.compile(net, dynamic=True)``, made once per network and kept while it lives (a
    gradient drift is traced through :func:`torch.func.grad`, see
    :class:`~bridge.models.GradientField`). benchmarks/README.md §16 measures when it pays."""
    if net not in _COMPILED:
        _COMPILED[net] = torch.compile(net, dynamic=True)
    return _COMPILED[net]


def path_bytes(net: nn.Module, d: int, dtype: torch.dtype, *, trajectory_steps: int = 0) -> int:
    """An estimate of the memory one SDE path takes while :func:`forward_sde` runs ``net``: three
    numbers per unit of each linear layer's output (the pre-activation, the activation and, for a
    gradient drift, its gradient), eight vectors of ``d`` (state, two stages, noise, sums) and the
    trajectory's ``(steps + 1) d`` when one is kept, in bytes of ``dtype``.

    Example:
        >>> from bridge.models import MLP
        >>> path_bytes(MLP(2, hidden=8, depth=1), 2, torch.float32)  # (3 (8 + 2) + 8 * 2) * 4
        184
    """
    units = sum(m.out_features for m in net.modules() if isinstance(m, nn.Linear))
    item = torch.empty((), dtype=dtype).element_size()
    return int((3 * units + 8 * d + (trajectory_steps + 1 if trajectory_steps else 0) * d) * item)
