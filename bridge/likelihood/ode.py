r"""Log-density of the probability-flow ODE model (docs/math.md §4, SI 2.52-2.53).

Along :math:`\dot X_t = b(t, X_t)` the continuity equation
:math:`\partial_t\rho + \nabla\cdot(b\rho) = 0` gives
:math:`\tfrac{d}{dt}\log\rho(t, X_t) = -\nabla\cdot b(t, X_t)`, hence

.. math:: \log\hat\rho(1, X_1) = \log\rho_0(X_0) - \int_0^1 \nabla\cdot b(t, X_t)\,dt.

We integrate the augmented state :math:`(X_t, \ell_t)` with :math:`\dot\ell = \nabla\cdot b`,
backward from a data point (:func:`ode_log_density`) or forward from a source sample
(:func:`ode_sample_log_density`), with the solvers of :mod:`bridge.samplers`.

Hutchinson probes: with a fixed-step solver, fresh probes are drawn at every step and shared by
the stages of that step. The increment of :math:`\ell` over a step is then an unbiased estimate
of the exact-divergence increment of the same solver (the path :math:`X` does not depend on the
probes), so the order is kept, and the variance of the total is a sum of per-step variances,
:math:`O(h)`. :class:`~bridge.samplers.RK45` needs one smooth right-hand side: there the probes
are drawn once per trajectory (FFJORD's choice), and the variance does not shrink with the step.
Each of the ``P`` probes drives its own accumulator; the standard error is their spread.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor

from ..losses import _check_t_range
from ..samplers.ode import RK45, _check_callable, _check_ode_solver, _check_steps, _check_x, _time_grid
from .divergence import DivergenceEstimator, _check_estimator, _check_generator, _mean_and_stderr

__all__ = ["ODELogDensity", "ode_log_density", "ode_sample_log_density"]

Field = Callable[[Tensor, Tensor], Tensor]


@dataclass
class ODELogDensity:
    """Output of :func:`ode_log_density` and :func:`ode_sample_log_density`.

    Attributes:
        log_density: :math:`\\log\\hat\\rho(1, x_1)` per point, ``(n,)``.
        stderr: its Monte-Carlo standard error from the Hutchinson probes, ``(n,)`` (0 for the
            exact divergence, NaN for one probe). Integration error is not included.
        x0: the point at ``t = t_min`` (integrated endpoint, or the given source sample), ``(n, d)``.
        x1: the point at ``t = t_max`` (the given data point, or the generated sample), ``(n, d)``.
        log_rho0: :math:`\\log\\rho_0(x_0)`, ``(n,)``.
        divergence_integral: :math:`\\int \\nabla\\cdot b\\,dt` over the path (mean over probes), ``(n,)``.
        nfe: evaluations of ``b`` with its divergence along the path.
    """

    log_density: Tensor
    stderr: Tensor
    x0: Tensor
    x1: Tensor
    log_rho0: Tensor
    divergence_integral: Tensor
    nfe: int


def _log_rho0(log_rho0, x: Tensor) -> Tensor:
    out = log_rho0(x)
    if not isinstance(out, Tensor) or out.shape != (x.shape[0],):
        got = tuple(out.shape) if isinstance(out, Tensor) else type(out).__name__
        raise ValueError(f"log_rho0: expected output of shape ({x.shape[0]},), got {got}")
    return out


def _integrate(drift, x, *, t_start, t_end, estimator, solver, steps, generator, create_graph, progress=None):
    """Integrate ``(X, l)`` with ``dX/dt = b``, ``dl/dt = q`` (one ``l`` per probe) from
    ``t_start`` to ``t_end``; ``progress(k, steps)`` after each fixed step. Returns ``X(t_end)``,
    ``l(t_end)`` of shape ``(A, n)`` and nfe."""
    n, d = x.shape
    kw = dict(dtype=x.dtype, device=x.device, generator=generator)
    n_acc = 1 if estimator.exact else estimator.probes
    probes = [estimator.draw(n, d, **kw)]

    def augmented(t: Tensor, z: Tensor) -> Tensor:
        q, bx = estimator.estimate(drift, t, z[:, :d], probes[0], create_graph=create_graph)
        return torch.cat([bx, q.T], dim=1)

    z = torch.cat([x, x.new_zeros(n, n_acc)], dim=1)
    if isinstance(solver, RK45):
        z, _, _, nfe = solver.integrate(augmented, z, t_start, t_end)
    else:
        grid = _time_grid(t_start, t_end, steps)
        for k in range(steps):
            if k > 0 and not estimator.exact:
                probes[0] = estimator.draw(n, d, **kw)
            z = solver.step(augmented, grid[k], grid[k + 1] - grid[k], z)
            if progress is not None:
                progress(k + 1, steps)
        nfe = steps * solver.stages
    if not bool(torch.isfinite(z).all()):
        raise FloatingPointError(
            f"drift: the path or its divergence became NaN/Inf between t={t_start:g} and t={t_end:g}; "
            "check the drift there or use more steps"
        )
    return z[:, :d], z[:, d:].T, nfe


def _run(drift, x, log_rho0, *, forward, divergence, solver, steps, t_range, generator, create_graph, progress):
    _check_callable(drift, "drift")
    _check_x(x)
    if not callable(log_rho0):
        raise TypeError(f"log_rho0: expected a callable x -> (n,) log-density, got {type(log_rho0).__name__}")
    estimator: DivergenceEstimator = _check_estimator(divergence)
    solver = _check_ode_solver(solver)
    steps = _check_steps(steps)
    lo, hi = _check_t_range(t_range)
    _check_generator(generator, x)
    with torch.enable_grad() if create_graph else torch.no_grad():
        t_start, t_end = (lo, hi) if forward else (hi, lo)
        x_end, acc, nfe = _integrate(
            drift,
            x,
            t_start=t_start,
            t_end=t_end,
            estimator=estimator,
            solver=solver,
            steps=steps,
            generator=generator,
            create_graph=create_graph,
            progress=progress,
        )
        x0, x1 = (x, x_end) if forward else (x_end, x)
        lp0 = _log_rho0(log_rho0, x0)
        # acc = int_{t_start}^{t_end} div b dt per probe: +int_0^1 forward, -int_0^1 backward
        div_int = acc if forward else -acc
        log_density, stderr = _mean_and_stderr(lp0 - div_int, estimator.exact)
    return ODELogDensity(
        log_density=log_density,
        stderr=stderr,
        x0=x0,
        x1=x1,
        log_rho0=lp0,
        divergence_integral=div_int.mean(0),
        nfe=nfe,
    )


def ode_log_density(
    drift: Field,
    x1: Tensor,
    *,
    log_rho0: Callable[[Tensor], Tensor],
    divergence: DivergenceEstimator | None = None,
    solver=None,
    steps: int = 100,
    t_range=(0.0, 1.0),
    generator: torch.Generator | None = None,
    create_graph: bool = False,
    progress: Callable[[int, int], None] | None = None,
) -> ODELogDensity:
    r"""Log-density of the ODE model at data points (docs/math.md §4, SI 2.52-2.53):

    .. math:: \log\hat\rho(1, x_1) = \log\rho_0(X_0) - \int_0^1 \nabla\cdot b(t, X_t)\,dt,
        \qquad \dot X_t = b(t, X_t),\ X_1 = x_1,

    integrating backward from ``t = 1`` to ``t = 0``. This is the density of the pushforward of
    ``rho0`` by the model's flow: exact up to integration error (and Hutchinson noise) for *any*
    ``b``, learned or not. With ``t_range = (t_min, t_max)`` the path runs from ``t_max`` to
    ``t_min`` and ``rho0`` stands in for ``rho(t_min)`` (an error of order ``t_min``).

    Args:
        drift: ``b(t, x)``, differentiable in ``x``.
        x1: data points ``(n, d)``.
        log_rho0: ``x -> log rho0(x)``, shape ``(n,)``, e.g. ``standard_normal(d).log_prob``.
        divergence: :class:`~bridge.likelihood.Exact` (default) or
            :class:`~bridge.likelihood.Hutchinson` (see the module notes on probes).
        solver: :class:`~bridge.samplers.Euler`, ``Heun`` (default), ``RK4`` or ``RK45``; the
            error of the log-density is of the solver's order in the step size. ``RK45``'s error
            control counts each accumulator as one more coordinate of the state.
        steps: uniform steps for the fixed-step solvers.
        t_range: ``(t_min, t_max)``, default the whole interval.
        generator: random generator for the Hutchinson probes.
        create_graph: make the result differentiable (in ``x1`` and the parameters of ``b``);
            otherwise it runs without a graph and returns detached tensors.
        progress: optional callback ``(steps done, steps)`` after each step of a fixed-step
            solver (e.g. :meth:`bridge.progress.Progress.part`); silent by default.

    Returns:
        :class:`ODELogDensity` with the log-density, its standard error and the endpoint ``x0``.

    Example:
        >>> import torch
        >>> from bridge.reference import standard_normal
        >>> x1 = torch.zeros(1, 2, dtype=torch.float64)
        >>> r = ode_log_density(lambda t, x: x, x1, log_rho0=standard_normal(2).log_prob)  # x1 = e x0
        >>> round(r.log_density.item(), 4)  # log N(0; 0, e^2 I) = -log(2 pi) - 2
        -3.8379
    """
    return _run(
        drift,
        x1,
        log_rho0,
        forward=False,
        divergence=divergence,
        solver=solver,
        steps=steps,
        t_range=t_range,
        generator=generator,
        create_graph=create_graph,
        progress=progress,
    )


def ode_sample_log_density(
    drift: Field,
    x0: Tensor,
    *,
    log_rho0: Callable[[Tensor], Tensor],
    divergence: DivergenceEstimator | None = None,
    solver=None,
    steps: int = 100,
    t_range=(0.0, 1.0),
    generator: torch.Generator | None = None,
    create_graph: bool = False,
    progress: Callable[[int, int], None] | None = None,
) -> ODELogDensity:
    r"""Generate samples with the ODE and their model log-density, accumulated on the way:

    .. math:: X_1 = x_0 + \int_0^1 b(t, X_t)\,dt, \qquad
        \log\hat\rho(1, X_1) = \log\rho_0(x_0) - \int_0^1 \nabla\cdot b(t, X_t)\,dt.

    The forward counterpart of :func:`ode_log_density` (same arguments); ``x0`` should be
    drawn from ``rho0``. The result's ``x1`` holds the samples.

    Example:
        >>> import torch
        >>> from bridge.reference import standard_normal
        >>> r = ode_sample_log_density(lambda t, x: x, torch.zeros(1, 2, dtype=torch.float64),
        ...                            log_rho0=standard_normal(2).log_prob)
        >>> round(r.log_density.item(), 4)
        -3.8379
    """
    return _run(
        drift,
        x0,
        log_rho0,
        forward=True,
        divergence=divergence,
        solver=solver,
        steps=steps,
        t_range=t_range,
        generator=generator,
        create_graph=create_graph,
        progress=progress,
    )
