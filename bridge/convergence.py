r"""Sinkhorn's sweeps at the final temperature, and when a run can no longer converge.

Near the solution Sinkhorn's marginal error falls geometrically, so the rate of a run's recent
iterations, carried forward, estimates the iterations it still needs. A run that must converge or
else raise stops as soon as that estimate exceeds :data:`GIVE_UP_FACTOR` times the iterations it
has left: its outcome, an error, is then all but known, and at a small ``eps`` (a plan whose rows
sit on single points) the iterations left would take minutes. The rate can still change (it can
speed up after a slow stretch); the factor leaves room for that, and a run whose estimate is
near its budget carries on.

Example:
    >>> errors = [0.5 * 0.99**k for k in range(100)]  # one every iteration
    >>> round(iterations_needed(errors, 1, 1e-6))  # log(1e-6 / err) / log(0.99) more
    1207
    >>> hopeless(errors, 1, 1e-6, left=250), hopeless(errors, 1, 1e-6, left=350)
    (True, False)
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import torch
from torch import Tensor

__all__ = [
    "GIVE_UP_FACTOR",
    "MIN_ERRORS",
    "final_sweeps",
    "give_up_target",
    "hopeless",
    "iterations_needed",
    "stopped_early",
]

#: A run gives up when the recent rate needs more than this many times the iterations it has left.
GIVE_UP_FACTOR = 4.0
#: Error records a run has before it is judged (with one record every 10 POT iterations: 100).
MIN_ERRORS = 10


def iterations_needed(errors: Sequence[float], every: int, target: float, current: float | None = None) -> float:
    """Iterations still needed to bring an error to ``target`` at the geometric rate of the second
    half of ``errors`` (recorded every ``every`` iterations); ``inf`` when they did not fall over
    it, 0 when it is already there. The error is ``current`` (default: the last record), which may
    be another norm of the same residual: near the solution every norm falls at the same rate."""
    now = float(errors[-1] if current is None else current)
    if now <= target:
        return 0.0
    recent = list(errors[len(errors) // 2 :]) if len(errors) >= 4 else list(errors[-2:])
    first, last = float(recent[0]), float(recent[-1])
    if len(recent) < 2 or not 0.0 < last < first:
        return math.inf
    log_rate = math.log(last / first) / ((len(recent) - 1) * every)  # < 0
    return math.log(target / now) / log_rate


def hopeless(errors: Sequence[float], every: int, target: float, left: int, current: float | None = None) -> bool:
    """Whether a run with these ``errors`` (one every ``every`` iterations), its error now
    ``current`` (default: the last record) and ``left`` iterations to go should stop: it has
    :data:`MIN_ERRORS` records, and at its recent rate it needs more than :data:`GIVE_UP_FACTOR`
    times ``left`` iterations to reach ``target``."""
    if len(errors) < MIN_ERRORS:
        return False
    return iterations_needed(errors, every, target, current) > GIVE_UP_FACTOR * left


def give_up_target(tol: float, check: bool, give_up_above: float | None) -> float | None:
    """The error a solver's sweeps give up on: ``give_up_above`` when given, else ``tol`` when the
    run must converge (``check``), else None (they never give up)."""
    return tol if give_up_above is None and check else give_up_above


def stopped_early(gave_up: bool, allowed: int) -> str:
    """What a :class:`bridge.ot.ConvergenceError` message adds when its run gave up ("" otherwise)."""
    if not gave_up:
        return ""
    return f" (stopped early: at the rate of its recent iterations, the {allowed} allowed would not be enough)"


def final_sweeps(
    g: Tensor,
    f_of: Callable[[Tensor], Tensor],
    g_of: Callable[[Tensor], Tensor],
    b: Tensor,
    reg: float,
    *,
    tol: float,
    max_iter: int,
    progress=None,
    give_up: float | None = None,
) -> tuple[Tensor, Tensor, float, int, bool]:
    r"""Log-domain Sinkhorn sweeps at temperature ``reg`` from the target potential ``g``, until the
    column marginal's L1 error is at most ``tol`` or ``max_iter`` sweeps are done.

    ``f_of(g)`` and ``g_of(f)`` are the two c-transforms (the solver's own passes over the cost),
    ``b`` the target weights. After each ``f`` update the row marginal is exact, so the column
    sums are :math:`b_j e^{(g_j - g'_j)/\mathrm{reg}}` with :math:`g'` the next ``g``: the error
    costs nothing extra. With ``give_up``, the sweeps stop early once :func:`hopeless` (on every
    tenth sweep's error) says the error will not fall to ``give_up`` in the sweeps left.

    Returns:
        ``(f, g, marginal_error, sweeps, gave_up)``.
    """
    f = f_of(g)  # from here on the row marginal is exact
    it, errors = 0, []
    while True:
        g_next = g_of(f)
        err = float((b * torch.expm1((g - g_next) / reg)).abs().sum())
        if err <= tol or it >= max_iter:
            return f, g, err, it, False
        if it % 10 == 0:  # POT records its error every ten iterations; the same pace here
            errors.append(err)
            if give_up is not None and hopeless(errors, 10, give_up, max_iter - it):
                return f, g, err, it, True
        g = g_next
        f = f_of(g)
        it += 1
        if progress is not None:
            progress(it, max_iter)
