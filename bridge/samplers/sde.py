r"""Integrators for the generative SDEs of docs/math.md §3 (SI 2.33-2.35):

.. math:: dX_t = b_\pm(t, X_t)\,dt + \sqrt{2\epsilon(t)}\,dW_t,

forward from ``t0`` to ``t1 > t0`` with the forward drift ``b_F = b + eps s``, or backward from
``t0`` to ``t1 < t0`` with ``b_B = b - eps s`` (:func:`bridge.fields.forward_drift`,
:func:`bridge.fields.backward_drift`). ``eps`` is the paper's: the Brownian term is
``sqrt(2 eps) dW``, variance ``2 eps`` per unit time. On the grid ``t_k`` with
``dt = t_{k+1} - t_k`` (negative going backward) both schemes use the increment

.. math:: \Delta W_k = \sqrt{2\,\epsilon(\tau_k)\,|dt|}\;\xi_k, \qquad \xi_k \sim N(0, I),

with ``tau_k = t_k`` for :class:`EulerMaruyama` and the midpoint ``tau_k = t_k + dt/2`` for
:class:`StochasticHeun` (the midpoint rule for the variance ``int 2 eps dt`` of the step keeps
the weak order 2 when eps depends on t). The noise is additive (it does not depend on x), for
which Euler–Maruyama has strong order 1.

The drift is called as ``drift(t, x)`` with ``t`` of shape ``(n,)``, in the dtype and on the
device of ``x``. The samplers do not switch off autograd: wrap the call in ``torch.no_grad()``
when sampling from a network.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor

from ..fields import eps_value
from ..interpolants.base import bcast
from .ode import (
    _check_callable,
    _check_steps,
    _check_times,
    _check_x,
    _checked,
    _finish,
    _raise_nonfinite,
    _time_grid,
    _tvec,
)

__all__ = ["EulerMaruyama", "StochasticHeun", "SDEResult", "sample_sde"]

Field = Callable[[Tensor, Tensor], Tensor]


class SDESolver:
    """Base class of the one-step SDE methods: ``x_{k+1} = step(drift, t_k, dt, x_k, dw_k)``.

    Attributes:
        strong_order: order of ``E|X_N - X(t1)|`` in the step size (same Brownian path).
        weak_order: order of the error of expectations ``E f(X_N) - E f(X(t1))``.
        stages: drift evaluations per step.
        noise_point: ``eps`` is evaluated at ``t_k + noise_point * dt``.
    """

    strong_order: float = 0.0
    weak_order: float = 0.0
    stages: int = 0
    noise_point: float = 0.0

    def step(self, drift: Field, t: float, dt: float, x: Tensor, dw: Tensor) -> Tensor:
        """One step from ``(t, x)`` to ``t + dt`` given the Brownian increment ``dw`` (already
        scaled by ``sqrt(2 eps |dt|)``)."""
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


class EulerMaruyama(SDESolver):
    r"""Euler–Maruyama: :math:`x_{k+1} = x_k + b(t_k, x_k)\,dt + \sqrt{2\epsilon(t_k)|dt|}\,\xi_k`.

    Strong order 1 (additive noise), weak order 1.

    Example:
        >>> import torch
        >>> EulerMaruyama().step(lambda t, x: -x, 0.0, 0.1, torch.ones(1, 1), torch.zeros(1, 1))
        tensor([[0.9000]])
    """

    strong_order = 1.0
    weak_order = 1.0
    stages = 1
    noise_point = 0.0

    def step(self, drift: Field, t: float, dt: float, x: Tensor, dw: Tensor) -> Tensor:
        return x + dt * drift(_tvec(t, x), x) + dw


class StochasticHeun(SDESolver):
    r"""Stochastic Heun (predictor–corrector) for additive noise, the same increment in both stages:

    .. math::
        \tilde x = x_k + b(t_k, x_k)\,dt + \Delta W_k, \qquad
        x_{k+1} = x_k + \tfrac12\big(b(t_k, x_k) + b(t_{k+1}, \tilde x)\big)\,dt + \Delta W_k,

    with :math:`\Delta W_k = \sqrt{2\epsilon(t_k + dt/2)|dt|}\,\xi_k`. Strong order 1, weak
    order 2 (additive noise); with ``dw = 0`` it is :class:`bridge.samplers.Heun`.

    Example:
        >>> import torch
        >>> StochasticHeun().step(lambda t, x: -x, 0.0, 0.1, torch.ones(1, 1), torch.zeros(1, 1))
        tensor([[0.9050]])
    """

    strong_order = 1.0
    weak_order = 2.0
    stages = 2
    noise_point = 0.5

    def step(self, drift: Field, t: float, dt: float, x: Tensor, dw: Tensor) -> Tensor:
        k1 = drift(_tvec(t, x), x)
        k2 = drift(_tvec(t + dt, x), x + dt * k1 + dw)
        return x + (0.5 * dt) * (k1 + k2) + dw


@dataclass
class SDEResult:
    """Output of :func:`sample_sde`.

    Attributes:
        x: final state ``(n, d)`` at ``t1`` (after ``denoise``, if given).
        t: times visited, 1-D, ``steps + 1`` values from ``t0`` to ``t1``.
        trajectory: states at those times, ``(steps + 1, n, d)`` (before ``denoise``), or None.
        nfe: number of drift evaluations.
    """

    x: Tensor
    t: Tensor
    trajectory: Tensor | None
    nfe: int


def _check_sde_solver(solver) -> SDESolver:
    if solver is None:
        return EulerMaruyama()
    if isinstance(solver, type):
        raise TypeError(f"solver: expected a solver instance such as {solver.__name__}(), got the class itself")
    if not isinstance(solver, SDESolver):
        raise TypeError(f"solver: expected EulerMaruyama() or StochasticHeun(), got {type(solver).__name__}")
    return solver


def _check_eps(eps):
    if callable(eps):
        return eps
    if isinstance(eps, bool) or not isinstance(eps, numbers.Real) and not (isinstance(eps, Tensor) and eps.dim() == 0):
        raise TypeError(f"eps: expected a number >= 0 or a callable t -> tensor, got {type(eps).__name__}")
    e = float(eps)
    if not math.isfinite(e) or e < 0:
        raise ValueError(f"eps: expected a finite number >= 0, got {e}")
    return e


def _eps_tensor(eps: Callable, t: Tensor, x: Tensor, *, check: bool) -> Tensor:
    """``eps(t)`` lined up with ``x``; validated in full (with a sync) only when ``check``."""
    if check:
        try:
            return eps_value(eps, t, x)
        except ValueError as err:
            raise ValueError(f"{err} at t={t[0].item():.6g}") from None
    e = eps(t)
    if not isinstance(e, Tensor):
        return x.new_tensor(float(e))
    return bcast(e, x) if e.dim() > 0 else e


def _check_noise(noise, steps: int, x: Tensor) -> Tensor:
    if not isinstance(noise, Tensor):
        raise TypeError(f"noise: expected a tensor of shape (steps, n, d) or None, got {type(noise).__name__}")
    want = (steps,) + tuple(x.shape)
    if tuple(noise.shape) != want:
        raise ValueError(f"noise: expected shape (steps, n, d) = {want}, got {tuple(noise.shape)}")
    if not noise.is_floating_point():
        raise TypeError(f"noise: expected a floating-point tensor, got dtype {noise.dtype}")
    if not bool(torch.isfinite(noise).all()):
        raise ValueError("noise: contains NaN or Inf")
    return noise.to(dtype=x.dtype, device=x.device)


def sample_sde(
    drift: Field,
    x: Tensor,
    *,
    eps,
    t0: float = 0.0,
    t1: float = 1.0,
    steps: int = 500,
    solver=None,
    generator: torch.Generator | None = None,
    noise: Tensor | None = None,
    trajectory: bool = False,
    denoise: Field | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> SDEResult:
    r"""Integrate the generative SDE (docs/math.md §3, SI 2.33-2.35)

    .. math:: dX_t = \mathrm{drift}(t, X_t)\,dt + \sqrt{2\epsilon(t)}\,dW_t, \qquad X_{t_0} = x,

    on ``steps`` uniform steps from ``t0`` to ``t1``. Forward (``t1 > t0``): pass
    ``b_F = b + eps s`` (SI 2.33); backward (``t1 < t0``): pass ``b_B = b - eps s`` (SI 2.35).
    Each step is ``x <- x + drift * dt + sqrt(2 eps |dt|) xi`` at lowest order, with
    ``dt = t_{k+1} - t_k`` negative going backward (docs/math.md §3 writes ``x <- x - b_B h + ...`` with
    ``h > 0``). With the exact fields, ``X_{t_1} ~ rho(t1)`` for any ``eps >= 0``.

    Args:
        drift: ``b_F`` or ``b_B``; called with ``t`` of shape ``(n,)`` and ``x`` of shape ``(n, d)``.
        x: initial state ``(n, d)``, floating point.
        eps: diffusion level (the paper's eps, diffusion ``sqrt(2 eps)``): a number >= 0 or a
            callable ``t -> tensor`` (``t`` of shape ``(n,)``; result of shape ``()``, ``(n,)``
            or ``(n, d)``), see :func:`bridge.fields.eps_value`. It must match the eps in the drift.
        t0, t1: start and end times (``t0 != t1``).
        steps: number of uniform steps.
        solver: :class:`EulerMaruyama` (default) or :class:`StochasticHeun` instance.
        generator: random generator for the increments (on the device of ``x``).
        noise: optional standard normals ``xi`` of shape ``(steps, n, d)`` used instead of
            drawing (e.g. to drive several step sizes with one Brownian path).
        trajectory: also return the states at every grid time.
        denoise: optional map ``(t, x) -> x`` applied once to the final state with ``t = t1``
            (the final denoising step of docs/math.md §3, :func:`bridge.fields.denoise_one_sided`).
        progress: optional callback ``(steps done, steps)`` after each step (e.g.
            :meth:`bridge.progress.Progress.part`); it does not touch the random draws.

    Returns:
        :class:`SDEResult` with the final state, the grid, the optional trajectory and the
        number of drift evaluations.

    Raises:
        FloatingPointError: if the state becomes NaN/Inf; the message names the step's times.

    Example:
        >>> import torch
        >>> g = torch.Generator().manual_seed(0)
        >>> x = torch.zeros(5000, 1, dtype=torch.float64)
        >>> r = sample_sde(lambda t, x: -x, x, eps=0.5, t1=5.0, steps=200, generator=g)
        >>> round(r.x.var().item(), 1)  # stationary variance eps / 1
        0.5
    """
    _check_callable(drift, "drift")
    _check_x(x)
    eps = _check_eps(eps)
    t0, t1 = _check_times(t0, t1)
    steps = _check_steps(steps)
    solver = _check_sde_solver(solver)
    if denoise is not None:
        _check_callable(denoise, "denoise")
    if noise is not None:
        noise = _check_noise(noise, steps, x)
    elif generator is not None:
        if not isinstance(generator, torch.Generator):
            raise TypeError(f"generator: expected a torch.Generator or None, got {type(generator).__name__}")
        if generator.device.type != x.device.type:
            raise ValueError(f"generator: on device {generator.device}, but x is on {x.device}")

    grid = _time_grid(t0, t1, steps)
    traj = x.new_empty((steps + 1,) + tuple(x.shape)) if trajectory else None
    if traj is not None:
        traj[0] = x
    finite = torch.empty(steps, dtype=torch.bool, device=x.device)  # filled on device: no sync per step
    eps_ok = torch.empty(steps, dtype=torch.bool, device=x.device) if callable(eps) else None
    step, c = solver.step, solver.noise_point
    f = _checked(drift, "drift")
    for k in range(steps):
        t, dt = grid[k], grid[k + 1] - grid[k]
        if noise is not None:
            xi = noise[k]
        else:
            xi = torch.randn(x.shape, generator=generator, dtype=x.dtype, device=x.device)
        if callable(eps):
            e = _eps_tensor(eps, _tvec(t + c * dt, x), x, check=k == 0)
            eps_ok[k] = (e >= 0).all()  # NaN fails too; checked once after the loop
            scale = torch.sqrt((2.0 * abs(dt)) * e)
        else:
            scale = math.sqrt(2.0 * eps * abs(dt))
        x = step(f, t, dt, x, scale * xi)
        f = drift
        finite[k] = torch.isfinite(x).all()
        if traj is not None:
            traj[k + 1] = x
        if progress is not None:
            progress(k + 1, steps)
    if eps_ok is not None and not bool(eps_ok.all()):
        k = int(torch.nonzero(~eps_ok)[0, 0])
        raise ValueError(
            f"eps: the callable returned a negative or NaN value at t={grid[k] + c * (grid[k + 1] - grid[k]):.6g}"
        )
    if not bool(finite.all()):
        _raise_nonfinite(finite, grid)
    t = torch.tensor(grid, dtype=x.dtype, device=x.device)
    return SDEResult(x=_finish(x, t1, denoise), t=t, trajectory=traj, nfe=steps * solver.stages)
