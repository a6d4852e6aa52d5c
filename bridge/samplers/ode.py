r"""Integrators for the probability-flow ODE :math:`dX_t = b(t, X_t)\,dt` (docs/math.md §3, SI 2.32).

Fixed-step solvers (:class:`Euler`, :class:`Heun`, :class:`RK4`) advance one step at a time;
:class:`RK45` is the adaptive Dormand–Prince 5(4) pair. Each declares its ``order``: the
global error at ``t1`` is :math:`O(h^{\mathrm{order}})` for step size :math:`h`, which
``tests/test_samplers.py`` measures. :func:`sample_ode` is the one entry point; with ``t1 < t0``
it integrates backward in time (e.g. from rho1 at t = 1 to rho0 at t = 0, docs/math.md §4).

The drift is always called as ``drift(t, x)`` with ``t`` of shape ``(n,)`` (the scalar time
expanded), in the dtype and on the device of ``x``. The samplers do not switch off autograd:
wrap the call in ``torch.no_grad()`` when sampling from a network.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor

__all__ = ["Euler", "Heun", "RK4", "RK45", "ODEResult", "sample_ode"]

Field = Callable[[Tensor, Tensor], Tensor]


# ----------------------------------------------------------------------------------------------
# shared input checks and helpers (also used by sde.py)


def _check_x(x) -> None:
    if not isinstance(x, Tensor):
        raise TypeError(f"x: expected a torch.Tensor of shape (n, d), got {type(x).__name__}")
    if x.dim() != 2:
        raise ValueError(f"x: expected shape (n, d), got {tuple(x.shape)}")
    if not x.is_floating_point():
        raise TypeError(f"x: expected a floating-point tensor, got dtype {x.dtype}")
    if not bool(torch.isfinite(x).all()):
        raise ValueError("x: contains NaN or Inf")


def _check_steps(steps) -> int:
    if isinstance(steps, bool) or not isinstance(steps, numbers.Integral) or steps < 1:
        raise ValueError(f"steps: expected a positive integer, got {steps!r}")
    return int(steps)


def _check_times(t0, t1) -> tuple[float, float]:
    try:
        t0, t1 = float(t0), float(t1)
    except (TypeError, ValueError):
        raise TypeError(f"t0, t1: expected numbers, got {t0!r}, {t1!r}") from None
    if not (math.isfinite(t0) and math.isfinite(t1)):
        raise ValueError(f"t0, t1: expected finite times, got {t0}, {t1}")
    if t0 == t1:
        raise ValueError(f"t0, t1: expected t0 != t1, got both = {t0}")
    return t0, t1


def _check_callable(f, name: str) -> None:
    if not callable(f):
        raise TypeError(f"{name}: expected a callable f(t, x), got {type(f).__name__}")


def _time_grid(t0: float, t1: float, steps: int) -> list[float]:
    """Uniform grid ``t_k = t0 + (t1 - t0) k / steps`` as Python floats, ending exactly at t1."""
    grid = [t0 + (t1 - t0) * (k / steps) for k in range(steps)]
    grid.append(t1)
    return grid


def _tvec(t: float, x: Tensor) -> Tensor:
    """The scalar time ``t`` as a tensor of shape ``(n,)`` in the dtype/device of ``x``."""
    return x.new_full((x.shape[0],), t)


def _checked(f: Field, name: str) -> Field:
    """Wrap ``f`` so that its output is checked to be a tensor of the shape of ``x``.

    Used for the first step only, so the check costs nothing in the loop.
    """

    def wrapped(t: Tensor, x: Tensor) -> Tensor:
        out = f(t, x)
        if not isinstance(out, Tensor) or out.shape != x.shape:
            got = tuple(out.shape) if isinstance(out, Tensor) else type(out).__name__
            raise ValueError(f"{name}: expected output of shape (n, d) = {tuple(x.shape)}, got {got}")
        return out

    return wrapped


def _raise_nonfinite(flags: Tensor, grid: list[float]) -> None:
    """``flags[k]`` says whether the state after step k is finite; raise at the first that is not."""
    k = int(torch.nonzero(~flags)[0, 0])
    raise FloatingPointError(
        f"drift: the state became NaN/Inf in the step from t={grid[k]:.6g} to t={grid[k + 1]:.6g} (step {k}): "
        "the drift returned NaN/Inf or the solution blew up; check the drift near that time or use more steps"
    )


def _lincomb(coefs, ks) -> Tensor:
    """``sum_i coefs[i] * ks[i]`` over the non-zero coefficients."""
    out = None
    for c, k in zip(coefs, ks):
        if c != 0.0:
            out = c * k if out is None else out + c * k
    return out


def _finish(x: Tensor, t1: float, denoise: Field | None) -> Tensor:
    if denoise is None:
        return x
    return _checked(denoise, "denoise")(_tvec(t1, x), x)


# ----------------------------------------------------------------------------------------------
# fixed-step solvers


class FixedStepSolver:
    """Base class of the one-step methods: ``x_{k+1} = step(drift, t_k, dt, x_k)``.

    Attributes:
        order: global order of accuracy.
        stages: drift evaluations per step.
    """

    order: int = 0
    stages: int = 0

    def step(self, drift: Field, t: float, dt: float, x: Tensor) -> Tensor:
        """One step from ``(t, x)`` to ``t + dt`` (``dt < 0`` steps backward in time)."""
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


class Euler(FixedStepSolver):
    r"""Explicit Euler, order 1: :math:`x_{k+1} = x_k + h\,b(t_k, x_k)`.

    Example:
        >>> import torch
        >>> Euler().step(lambda t, x: -x, 0.0, 0.1, torch.ones(2, 1))
        tensor([[0.9000],
                [0.9000]])
    """

    order = 1
    stages = 1

    def step(self, drift: Field, t: float, dt: float, x: Tensor) -> Tensor:
        return x + dt * drift(_tvec(t, x), x)


class Heun(FixedStepSolver):
    r"""Heun's method (explicit trapezoid), order 2:

    .. math::
        k_1 = b(t_k, x_k), \quad k_2 = b(t_k + h, x_k + h k_1), \quad
        x_{k+1} = x_k + \tfrac h2 (k_1 + k_2).

    Example:
        >>> import torch
        >>> Heun().step(lambda t, x: -x, 0.0, 0.1, torch.ones(1, 1))
        tensor([[0.9050]])
    """

    order = 2
    stages = 2

    def step(self, drift: Field, t: float, dt: float, x: Tensor) -> Tensor:
        k1 = drift(_tvec(t, x), x)
        k2 = drift(_tvec(t + dt, x), x + dt * k1)
        return x + (0.5 * dt) * (k1 + k2)


class RK4(FixedStepSolver):
    r"""The classical fourth-order Runge–Kutta method:

    .. math::
        k_1 = b(t_k, x_k),\ k_2 = b(t_k + \tfrac h2, x_k + \tfrac h2 k_1),\
        k_3 = b(t_k + \tfrac h2, x_k + \tfrac h2 k_2),\ k_4 = b(t_k + h, x_k + h k_3),\quad
        x_{k+1} = x_k + \tfrac h6 (k_1 + 2k_2 + 2k_3 + k_4).

    Example:
        >>> import torch
        >>> RK4().step(lambda t, x: -x, 0.0, 0.1, torch.ones(1, 1, dtype=torch.float64)).item()
        0.9048375
    """

    order = 4
    stages = 4

    def step(self, drift: Field, t: float, dt: float, x: Tensor) -> Tensor:
        half = 0.5 * dt
        tm = _tvec(t + half, x)
        k1 = drift(_tvec(t, x), x)
        k2 = drift(tm, x + half * k1)
        k3 = drift(tm, x + half * k2)
        k4 = drift(_tvec(t + dt, x), x + dt * k3)
        return x + (dt / 6.0) * (k1 + 2.0 * (k2 + k3) + k4)


# ----------------------------------------------------------------------------------------------
# adaptive Dormand–Prince 5(4)

# Butcher tableau (Dormand & Prince 1980; Hairer, Nørsett & Wanner, Table II.5.2).
_DP_C = (0.0, 1 / 5, 3 / 10, 4 / 5, 8 / 9, 1.0)
_DP_A = (
    (),
    (1 / 5,),
    (3 / 40, 9 / 40),
    (44 / 45, -56 / 15, 32 / 9),
    (19372 / 6561, -25360 / 2187, 64448 / 6561, -212 / 729),
    (9017 / 3168, -355 / 33, 46732 / 5247, 49 / 176, -5103 / 18656),
)
_DP_B = (35 / 384, 0.0, 500 / 1113, 125 / 192, -2187 / 6784, 11 / 84)  # 5th order; = 7th stage row (FSAL)
# b - b*, with b* the embedded 4th-order weights (5179/57600, 0, 7571/16695, 393/640, -92097/339200, 187/2100, 1/40)
_DP_E = (71 / 57600, 0.0, -71 / 16695, 71 / 1920, -17253 / 339200, 22 / 525, -1 / 40)

# step-size controller: h_new = h * clip(SAFETY * err^(-1/5), MIN_FACTOR, MAX_FACTOR)
_SAFETY, _MIN_FACTOR, _MAX_FACTOR = 0.9, 0.2, 10.0


class RK45:
    r"""Adaptive Dormand–Prince 5(4) with local extrapolation (order 5), FSAL.

    Each step computes the 5th-order solution :math:`x_{k+1}` and an embedded error estimate
    :math:`e = h\sum_i (b_i - b^*_i) k_i`; the step is accepted when

    .. math:: \mathrm{err} = \max_{\text{samples}} \Big(\frac1d \sum_j
        \Big(\frac{e_j}{\mathrm{atol} + \mathrm{rtol}\max(|x_{k,j}|, |x_{k+1,j}|)}\Big)^2\Big)^{1/2} \le 1,

    i.e. every sample of the batch is held to the tolerance (RMS over its ``d`` coordinates), and
    the next step is ``h * clip(0.9 err^{-1/5}, 0.2, 10)``. The first step follows Hairer,
    Nørsett & Wanner (II.4) unless ``first_step`` is given.

    Args:
        rtol: relative tolerance (> 0).
        atol: absolute tolerance (>= 0).
        max_steps: maximum number of attempted steps before giving up (RuntimeError).
        first_step: size of the first attempted step (> 0, its sign follows ``t1 - t0``),
            or None to choose it automatically.

    Example:
        >>> import torch
        >>> x = torch.ones(3, 1, dtype=torch.float64)
        >>> r = sample_ode(lambda t, x: -x, x, solver=RK45(rtol=1e-8, atol=1e-10))
        >>> abs(r.x[0, 0].item() - torch.tensor(-1.0).exp().item()) < 1e-8
        True
    """

    order = 5

    def __init__(self, *, rtol: float = 1e-5, atol: float = 1e-6, max_steps: int = 100_000, first_step=None):
        if isinstance(rtol, bool) or not isinstance(rtol, numbers.Real) or not (0 < rtol < math.inf):
            raise ValueError(f"rtol: expected a finite number > 0, got {rtol!r}")
        if isinstance(atol, bool) or not isinstance(atol, numbers.Real) or not (0 <= atol < math.inf):
            raise ValueError(f"atol: expected a finite number >= 0, got {atol!r}")
        if isinstance(max_steps, bool) or not isinstance(max_steps, numbers.Integral) or max_steps < 1:
            raise ValueError(f"max_steps: expected a positive integer, got {max_steps!r}")
        if first_step is not None and (
            isinstance(first_step, bool) or not isinstance(first_step, numbers.Real) or not (0 < first_step < math.inf)
        ):
            raise ValueError(f"first_step: expected None or a finite number > 0, got {first_step!r}")
        self.rtol, self.atol, self.max_steps = float(rtol), float(atol), int(max_steps)
        self.first_step = None if first_step is None else float(first_step)

    def __repr__(self) -> str:
        return f"RK45(rtol={self.rtol:g}, atol={self.atol:g}, max_steps={self.max_steps}, first_step={self.first_step})"

    def _norm(self, e: Tensor, x: Tensor, x_new: Tensor) -> float:
        scale = self.atol + self.rtol * torch.maximum(x.abs(), x_new.abs())
        return float((e / scale).square().mean(dim=1).max().sqrt())

    def _initial_step(self, drift: Field, t0: float, x: Tensor, f0: Tensor, direction: float, span: float) -> float:
        """Hairer, Nørsett & Wanner, *Solving ODEs I*, II.4 (algorithm of p. 169); one drift call."""
        d0, d1 = self._norm(x, x, x), self._norm(f0, x, x)
        h0 = 1e-6 if d0 < 1e-5 or d1 < 1e-5 else 0.01 * d0 / d1
        h0 = min(h0, span)
        x1 = x + (direction * h0) * f0
        f1 = drift(_tvec(t0 + direction * h0, x), x1)
        d2 = self._norm(f1 - f0, x, x) / h0
        dmax = max(d1, d2)
        h1 = max(1e-6, h0 * 1e-3) if dmax <= 1e-15 else (0.01 / dmax) ** (1.0 / 5.0)
        return min(100.0 * h0, h1, span)

    @staticmethod
    def _stages(drift: Field, t: float, dt: float, x: Tensor, k1: Tensor) -> tuple[Tensor, list[Tensor]]:
        """The 5th-order solution after one step and the six stage derivatives."""
        ks = [k1]
        for i in range(1, 6):
            ks.append(drift(_tvec(t + _DP_C[i] * dt, x), x + dt * _lincomb(_DP_A[i], ks)))
        return x + dt * _lincomb(_DP_B, ks), ks

    def step(self, drift: Field, t: float, dt: float, x: Tensor) -> Tensor:
        """One Dormand–Prince step of size ``dt`` without error control (six drift calls).

        :func:`sample_ode` never calls it; it exposes the 5th-order method on a fixed grid
        (e.g. to measure its order).
        """
        return self._stages(drift, t, dt, x, drift(_tvec(t, x), x))[0]

    def integrate(
        self, drift: Field, x: Tensor, t0: float, t1: float, *, trajectory: bool = False
    ) -> tuple[Tensor, list[float], list[Tensor] | None, int]:
        """Integrate ``dx = drift dt`` from ``t0`` to ``t1``; used by :func:`sample_ode`.

        Returns:
            ``(x1, times, states or None, nfe)``.
        """
        direction = 1.0 if t1 > t0 else -1.0
        span = abs(t1 - t0)
        t = t0
        k1 = drift(_tvec(t, x), x)
        nfe = 1
        if not bool(torch.isfinite(k1).all()):
            raise FloatingPointError(f"drift: returned NaN/Inf at t={t:.6g}")
        if self.first_step is None:
            h = self._initial_step(drift, t0, x, k1, direction, span)
            nfe += 1
        else:
            h = min(self.first_step, span)
        times, states = [t], ([x] if trajectory else None)
        attempts, rejected_last, nonfinite = 0, False, False
        while direction * (t1 - t) > 0:
            if attempts >= self.max_steps:
                raise RuntimeError(
                    f"RK45: reached max_steps={self.max_steps} at t={t:.6g} before t1={t1:.6g}; "
                    "loosen rtol/atol or raise max_steps"
                )
            attempts += 1
            if h < 10.0 * math.ulp(max(abs(t), 1.0)):
                if nonfinite:
                    raise FloatingPointError(
                        f"drift: returned NaN/Inf just beyond t={t:.6g} (RK45 step size underflow)"
                    )
                raise RuntimeError(f"RK45: step size underflow at t={t:.6g}; the drift may be singular there")
            last = h >= abs(t1 - t)
            if last:
                h = abs(t1 - t)
            dt = direction * h
            x_new, ks = self._stages(drift, t, dt, x, k1)
            t_new = t1 if last else t + dt
            k7 = drift(_tvec(t_new, x), x_new)
            ks.append(k7)
            nfe += 6
            err_vec = dt * _lincomb(_DP_E, ks)
            err = self._norm(err_vec, x, x_new)
            nonfinite = not math.isfinite(err)
            if nonfinite:
                # NaN/Inf in a trial step is rejected like a large error: it may be an overflow
                # from too large a step. If it persists, the step size underflows (below).
                err = math.inf
            if err <= 1.0:
                t, x, k1 = t_new, x_new, k7
                times.append(t)
                if states is not None:
                    states.append(x)
                factor = _MAX_FACTOR if err == 0.0 else min(_MAX_FACTOR, _SAFETY * err ** (-0.2))
                if rejected_last:
                    factor = min(factor, 1.0)
                h = h * factor
                rejected_last = False
            else:
                factor = _MIN_FACTOR if math.isinf(err) else max(_MIN_FACTOR, _SAFETY * err ** (-0.2))
                h = h * factor
                rejected_last = True
        if not bool(torch.isfinite(x).all()):
            raise FloatingPointError(f"drift: produced NaN/Inf before t={t:.6g}")
        return x, times, states, nfe


# ----------------------------------------------------------------------------------------------
# entry point


@dataclass
class ODEResult:
    """Output of :func:`sample_ode`.

    Attributes:
        x: final state ``(n, d)`` at ``t1`` (after ``denoise``, if given).
        t: times visited, 1-D, from ``t0`` to ``t1``.
        trajectory: states at those times, ``(len(t), n, d)`` (before ``denoise``), or None.
        nfe: number of drift evaluations.
    """

    x: Tensor
    t: Tensor
    trajectory: Tensor | None
    nfe: int


def _check_ode_solver(solver):
    if solver is None:
        return Heun()
    if isinstance(solver, type):
        raise TypeError(f"solver: expected a solver instance such as {solver.__name__}(), got the class itself")
    if not isinstance(solver, (FixedStepSolver, RK45)):
        raise TypeError(f"solver: expected Euler(), Heun(), RK4() or RK45(), got {type(solver).__name__}")
    return solver


def sample_ode(
    drift: Field,
    x: Tensor,
    *,
    t0: float = 0.0,
    t1: float = 1.0,
    steps: int = 100,
    solver=None,
    trajectory: bool = False,
    denoise: Field | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> ODEResult:
    r"""Integrate the probability-flow ODE (docs/math.md §3, SI 2.32)

    .. math:: \frac{dX_t}{dt} = b(t, X_t), \qquad X_{t_0} = x,

    from ``t0`` to ``t1``; ``t1 < t0`` integrates backward in time (e.g. ``t0=1, t1=0`` maps
    samples of rho1 to rho0). If ``X_{t_0} ~ rho(t0)`` and ``b`` is the interpolant's drift,
    ``X_{t_1} ~ rho(t1)``.

    Args:
        drift: ``b(t, x)``; called with ``t`` of shape ``(n,)`` and ``x`` of shape ``(n, d)``.
        x: initial state ``(n, d)``, floating point.
        t0, t1: start and end times (``t0 != t1``).
        steps: number of uniform steps for the fixed-step solvers (ignored by :class:`RK45`).
        solver: :class:`Euler`, :class:`Heun` (default), :class:`RK4` or :class:`RK45` instance.
        trajectory: also return the states at every time visited.
        denoise: optional map ``(t, x) -> x`` applied once to the final state with ``t = t1``,
            e.g. the final denoising step ``E[x1 | x_t] = (x_t - alpha eta) / beta`` of a
            one-sided model (docs/math.md §3, :func:`bridge.fields.denoise_one_sided`).
        progress: optional callback ``(steps done, steps)`` after each step of a fixed-step
            solver (e.g. :meth:`bridge.progress.Progress.part`); :class:`RK45` does not call it.

    Returns:
        :class:`ODEResult` with the final state, the times, the optional trajectory and the
        number of drift evaluations.

    Raises:
        FloatingPointError: if the state becomes NaN/Inf; the message names the step's times.

    Example:
        >>> import torch
        >>> x0 = torch.ones(4, 2, dtype=torch.float64)
        >>> r = sample_ode(lambda t, x: -x, x0, steps=50, solver=RK4())
        >>> round(r.x[0, 0].item(), 6), r.nfe, tuple(r.t.shape)
        (0.367879, 200, (51,))
    """
    _check_callable(drift, "drift")
    _check_x(x)
    t0, t1 = _check_times(t0, t1)
    solver = _check_ode_solver(solver)
    if denoise is not None:
        _check_callable(denoise, "denoise")

    if isinstance(solver, RK45):
        x, times, states, nfe = solver.integrate(_checked(drift, "drift"), x, t0, t1, trajectory=trajectory)
        traj = torch.stack(states) if states is not None else None
        t = torch.tensor(times, dtype=x.dtype, device=x.device)
        return ODEResult(x=_finish(x, t1, denoise), t=t, trajectory=traj, nfe=nfe)

    steps = _check_steps(steps)
    grid = _time_grid(t0, t1, steps)
    traj = x.new_empty((steps + 1,) + tuple(x.shape)) if trajectory else None
    if traj is not None:
        traj[0] = x
    finite = torch.empty(steps, dtype=torch.bool, device=x.device)  # filled on device: no sync per step
    step = solver.step
    f = _checked(drift, "drift")
    for k in range(steps):
        x = step(f, grid[k], grid[k + 1] - grid[k], x)
        f = drift
        finite[k] = torch.isfinite(x).all()
        if traj is not None:
            traj[k + 1] = x
        if progress is not None:
            progress(k + 1, steps)
    if not bool(finite.all()):
        _raise_nonfinite(finite, grid)
    t = torch.tensor(grid, dtype=x.dtype, device=x.device)
    return ODEResult(x=_finish(x, t1, denoise), t=t, trajectory=traj, nfe=steps * solver.stages)
