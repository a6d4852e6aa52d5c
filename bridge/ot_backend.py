r"""Which solver an entropic plan of a given size gets, decided in one place, with its reason.

A plan between ``n`` and ``m`` points is solved

* ``"dense"``: with the ``n x m`` matrix in memory (:func:`bridge.ot.entropic_plan`, POT's
  log-domain Sinkhorn; the Sinkhorn coupling's plans keep their ``n x m`` table of conditional
  rows), when :math:`8nm` bytes (one float64 matrix) are at most ``memory_budget``;
* ``"chunked"``: from the potentials only (:func:`bridge.ot_online.chunked_sinkhorn`, blockwise
  log-domain Sinkhorn with epsilon-scaling), otherwise.

POT's solver holds several ``n x m`` arrays at once (cost, log-kernel, temporaries), so the
default budget :data:`DENSE_PLAN_BYTES` (256 MiB for one matrix, ``n = m = 5792``) keeps its peak
near 1 GiB (about four matrices); benchmarks/README.md §19 measures both sides at ``n = m = 10^4``. Every plan
records the backend it got and why (``backend_reason``); so do ``report.json`` and
``BridgeResult.coupling``.

Example:
    >>> plan_backend(2048, 2048).name, plan_backend(100_000, 100_000).name
    ('dense', 'chunked')
"""

from __future__ import annotations

import numbers
from dataclasses import dataclass

import torch
from torch import Tensor

from .metrics import _pair
from .ot import BLOCK_BYTES, EntropicPotentials, entropic_plan
from .ot_online import chunked_sinkhorn

__all__ = ["BACKENDS", "DENSE_PLAN_BYTES", "PlanBackend", "plan_backend", "solve_plan"]

#: The backends a plan can be asked for.
BACKENDS = ("auto", "dense", "chunked")
#: ``"auto"`` solves densely while one float64 ``n x m`` matrix fits in this many bytes (256 MiB).
DENSE_PLAN_BYTES = 2**28


@dataclass(frozen=True)
class PlanBackend:
    """A plan's solver and why.

    Attributes:
        name: ``"dense"`` or ``"chunked"``.
        reason: one line: the size against the budget, or that it was asked for.
    """

    name: str
    reason: str


def plan_backend(n: int, m: int, *, backend: str = "auto", memory_budget: int | None = None) -> PlanBackend:
    """The backend of an ``n x m`` plan: ``backend`` itself unless ``"auto"``, else ``"dense"``
    exactly when ``8 n m <= memory_budget`` (None: :data:`DENSE_PLAN_BYTES`).

    Example:
        >>> plan_backend(1000, 1000).reason
        '1000 x 1000 float64 plan = 8 MB <= memory budget 268 MB'
    """
    memory_budget = DENSE_PLAN_BYTES if memory_budget is None else memory_budget
    if backend not in BACKENDS:
        raise ValueError(f"backend: expected one of {', '.join(BACKENDS)}, got {backend!r}")
    for name, v in (("n", n), ("m", m), ("memory_budget", memory_budget)):
        if isinstance(v, bool) or not isinstance(v, numbers.Integral) or v < 1:
            raise ValueError(f"{name}: expected a positive int, got {v!r}")
    if backend != "auto":
        return PlanBackend(backend, f"backend={backend!r} was asked for")
    size = 8 * n * m
    words = f"{n} x {m} float64 plan = {size / 1e6:.3g} MB"
    if size <= memory_budget:
        return PlanBackend("dense", f"{words} <= memory budget {memory_budget / 1e6:.3g} MB")
    return PlanBackend("chunked", f"{words} > memory budget {memory_budget / 1e6:.3g} MB")


def solve_plan(
    x0: Tensor,
    x1: Tensor,
    eps: float,
    *,
    backend: str = "auto",
    memory_budget: int | None = None,
    tol: float = 1e-6,
    max_iter: int = 10_000,
    check: bool = True,
    dtype: torch.dtype = torch.float64,
    block_bytes: int = BLOCK_BYTES,
) -> EntropicPotentials:
    r"""The entropic plan of :func:`bridge.ot.entropic_plan` (``reg = 4 eps``) by the backend that
    :func:`plan_backend` picks for its size; the result records it in ``solver`` and
    ``backend_reason``.

    Both backends return the same interface (:class:`bridge.ot.EntropicPotentials`:
    conditionals, barycentric map, conditional samples, cross-covariance, transport cost, value);
    the dense one is the subclass :class:`bridge.ot.EntropicPlanResult`, which also holds ``plan``.

    Args:
        x0, x1: source ``(n, d)`` and target ``(m, d)`` samples.
        eps: the paper's eps.
        backend: ``"auto"``, ``"dense"`` or ``"chunked"``.
        memory_budget: bytes of the one float64 ``n x m`` matrix that ``"auto"`` allows
            (None: :data:`DENSE_PLAN_BYTES`).
        tol: accepted L1 marginal error.
        max_iter: POT's iterations (dense) or sweeps at the final temperature (chunked), at most.
        check: raise :class:`bridge.ot.ConvergenceError` when ``tol`` is not met.
        dtype: the chunked solver's dtype (the dense one is float64).
        block_bytes: the chunked passes' block memory.

    Example:
        >>> import torch
        >>> g = torch.Generator().manual_seed(0)
        >>> x = torch.randn(300, 2, generator=g, dtype=torch.float64)
        >>> a = solve_plan(x, x + 1, 0.5)
        >>> b = solve_plan(x, x + 1, 0.5, memory_budget=10_000)
        >>> a.solver, b.solver, bool((a.cross_covariance() - b.cross_covariance()).abs().max() < 1e-6)
        ('pot', 'chunked', True)
    """
    x0, x1 = _pair(x0, x1, ("x0", "x1"))
    choice = plan_backend(x0.shape[0], x1.shape[0], backend=backend, memory_budget=memory_budget)
    if choice.name == "dense":
        plan = entropic_plan(x0, x1, eps, max_iter=max_iter, tol=tol, check=check)
    else:
        plan = chunked_sinkhorn(
            x0, x1, eps, dtype=dtype, block_bytes=block_bytes, tol=tol, max_iter=max_iter, check=check
        )
    plan.backend_reason = f"{choice.name}: {choice.reason}"
    return plan
