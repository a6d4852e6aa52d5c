r"""Log-density (cross-entropy) estimators of the SDE model (docs/math.md §4, SI Thm 2.5, 2.65-2.67).

The model: :math:`dX = \hat b_F\,dt + \sqrt{2\epsilon}\,dW`, :math:`\hat b_F = \hat b + \epsilon\hat s`,
:math:`X_0 \sim \rho_0`, with density :math:`\hat\rho` solving the Fokker–Planck equation
:math:`\partial_t\hat\rho + \nabla\cdot(\hat b_F\hat\rho) = \epsilon\Delta\hat\rho`.
Both estimators run ``M`` paths per data point backward from ``t = 1`` (a step
``y <- y - u(t, y) h + sqrt(2 eps h) xi``, ``h > 0``) and differ in the drift ``u``:

* **Feynman–Kac** (:func:`feynman_kac_log_density`), ``u = b^_F``. For
  :math:`M_t = e^{-\int_t^1 \nabla\cdot\hat b_F(Y)}\hat\rho(t, Y_t)`, Itô's formula in reversed
  time and the Fokker–Planck equation cancel every drift term, so :math:`M` is a martingale and
  :math:`\hat\rho(1, x) = \mathbb E[e^{-\int_0^1\nabla\cdot\hat b_F(t, Y_t)dt}\rho_0(Y_0)]`
  (SI 2.65), for any ``b^, s^``.
* **Backward Itô** (:func:`backward_ito_log_density`), ``u = b^_B = b^ - eps s^`` (the generative
  backward SDE). Itô's formula for :math:`\log\hat\rho(t, X_t)` gives, with
  :math:`\hat s_\star = \nabla\log\hat\rho`,

  .. math:: \log\hat\rho(1, x) = \mathbb E\Big[\log\rho_0(X_0) - \int_0^1 \big(\nabla\cdot\hat b_F
      + \epsilon|\hat s|^2 - \epsilon|\hat s - \hat s_\star|^2\big)(t, X_t)\,dt\Big],

  and the estimator drops the last term: exact when ``s^`` is the model's own score, otherwise
  a lower bound on :math:`\log\hat\rho` (an upper bound on the NLL) with gap
  :math:`\epsilon\,\mathbb E\int|\hat s - \nabla\log\hat\rho|^2dt`.

Time stepping: :class:`~bridge.samplers.EulerMaruyama` (weak order 1) or
:class:`~bridge.samplers.StochasticHeun` (weak order 2; the integral by the trapezoid rule over
the same two stages). Hutchinson probes are redrawn at every evaluation.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor

from ..losses import _check_t_range
from ..samplers.ode import _check_callable, _check_steps, _check_x, _time_grid
from ..samplers.sde import EulerMaruyama, SDESolver, StochasticHeun
from .divergence import DivergenceEstimator, _check_estimator, _check_generator, _mean_and_stderr
from .ode import _log_rho0

__all__ = ["FeynmanKacLogDensity", "BackwardItoLogDensity", "feynman_kac_log_density", "backward_ito_log_density"]

Field = Callable[[Tensor, Tensor], Tensor]


@dataclass
class FeynmanKacLogDensity:
    r"""Output of :func:`feynman_kac_log_density`, all per point ``(n,)``.

    With path weights :math:`w_m = e^{-\int\nabla\cdot\hat b_F}\rho_0(Y_0^m)` (``E w = rho^``):

    Attributes:
        log_density: :math:`\log\frac1M\sum_m w_m`. The mean of the ``w_m`` is unbiased for
            :math:`\hat\rho`, so by Jensen its log is biased *down* (the NLL up), by about
            ``relvar / (2M)`` with ``relvar = Var(w) / (E w)^2`` (delta method).
        stderr: delta-method standard error of ``log_density``, :math:`\sqrt{\mathrm{relvar}/M}`.
        bias: the delta-method estimate ``-relvar / (2M)`` of the bias of ``log_density``.
        jensen: :math:`\frac1M\sum_m\log w_m`, unbiased for :math:`\mathbb E\log w \le \log\hat\rho`:
            a lower bound on the log-density, i.e. the upper bound on the NLL of SI 2.67. Its
            gap does not shrink with ``M``.
        jensen_stderr: standard error of ``jensen``.
        ess: effective sample size :math:`(\sum w)^2/\sum w^2` of the ``M`` paths.
        nfe: evaluations of ``b_F`` with its divergence per path.
    """

    log_density: Tensor
    stderr: Tensor
    bias: Tensor
    jensen: Tensor
    jensen_stderr: Tensor
    ess: Tensor
    nfe: int


@dataclass
class BackwardItoLogDensity:
    """Output of :func:`backward_ito_log_density`, per point ``(n,)``.

    Attributes:
        log_density: mean over the ``M`` paths; unbiased for the expectation in
            :func:`backward_ito_log_density`, which is :math:`\\log\\hat\\rho(1, x)` only when
            ``s^`` is the model's score and lower otherwise.
        stderr: standard error over the paths (NaN for one path).
        nfe: evaluations of ``b_F`` with its divergence per path.
    """

    log_density: Tensor
    stderr: Tensor
    nfe: int


class _ForwardDrift:
    """``b_F = b + eps s`` as one field, keeping ``s`` of the last call (its first ``n`` rows
    are ``s(t, x)``: the divergence replicates ``x`` and the first copy is ``x`` itself)."""

    def __init__(self, drift, score, eps):
        self.drift, self.score, self.eps, self.last_s = drift, score, eps, None

    def __call__(self, t, x):
        s = self.score(t, x)
        self.last_s = s
        return self.drift(t, x) + self.eps * s


def _check_common(drift, score, x, eps, paths, steps, solver, divergence, t_range, generator):
    _check_callable(drift, "drift")
    _check_callable(score, "score")
    _check_x(x)
    if isinstance(eps, bool) or not isinstance(eps, numbers.Real) or not (0 < float(eps) < math.inf):
        raise ValueError(f"eps: expected a finite number > 0 (use ode_log_density for eps = 0), got {eps!r}")
    if isinstance(paths, bool) or not isinstance(paths, numbers.Integral) or paths < 1:
        raise ValueError(f"paths: expected a positive integer, got {paths!r}")
    if solver is None:
        solver = EulerMaruyama()
    elif isinstance(solver, type):
        raise TypeError(f"solver: expected a solver instance such as {solver.__name__}(), got the class itself")
    elif not isinstance(solver, (EulerMaruyama, StochasticHeun)):
        raise TypeError(f"solver: expected EulerMaruyama() or StochasticHeun(), got {type(solver).__name__}")
    _check_generator(generator, x)
    return float(eps), int(paths), _check_steps(steps), solver, _check_estimator(divergence), _check_t_range(t_range)


def _backward_paths(stage, x, *, eps, paths, steps, solver: SDESolver, t_range, generator, progress=None):
    """Run ``paths`` copies of each point backward from ``t_max`` to ``t_min`` (``progress(k, steps)``
    after each step).

    ``stage(t, y) -> (u, r, s)``: the drift ``u`` of the path, the integrand ``r`` (per row)
    and the vector ``s`` of the control variate ``sum s . dW`` (or None). Returns
    ``(Y at t_min, int r dt, sum s . dW)`` over ``paths * n`` rows and the nfe per path.
    """
    lo, hi = t_range
    grid = _time_grid(hi, lo, steps)
    h = (hi - lo) / steps
    y = x.repeat(paths, 1)
    integral = y.new_zeros(y.shape[0])
    martingale = y.new_zeros(y.shape[0])
    scale = math.sqrt(2.0 * eps * h)
    for k in range(steps):
        u1, r1, s1 = stage(y.new_full((y.shape[0],), grid[k]), y)
        dw = scale * torch.randn(y.shape, generator=generator, dtype=y.dtype, device=y.device)
        if s1 is not None:
            martingale = martingale + (s1 * dw).sum(-1)
        if isinstance(solver, StochasticHeun):
            u2, r2, _ = stage(y.new_full((y.shape[0],), grid[k + 1]), y - h * u1 + dw)
            y = y - (0.5 * h) * (u1 + u2) + dw
            integral = integral + (0.5 * h) * (r1 + r2)
        else:
            y = y - h * u1 + dw
            integral = integral + h * r1
        if progress is not None:
            progress(k + 1, steps)
    if not bool(torch.isfinite(y).all() & torch.isfinite(integral).all()):
        raise FloatingPointError(
            "drift: a backward path or its divergence integral became NaN/Inf; check the fields or use more steps"
        )
    return y, integral, martingale, steps * solver.stages


def feynman_kac_log_density(
    drift: Field,
    score: Field,
    x1: Tensor,
    *,
    eps: float,
    log_rho0: Callable[[Tensor], Tensor],
    paths: int = 64,
    steps: int = 200,
    solver=None,
    divergence: DivergenceEstimator | None = None,
    t_range=(0.0, 1.0),
    generator: torch.Generator | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> FeynmanKacLogDensity:
    r"""Feynman–Kac estimate of the SDE model's log-density (docs/math.md §4, SI Thm 2.5, 2.65, 2.67):

    .. math:: \hat\rho(1, x) = \mathbb E\Big[\exp\Big(-\int_0^1 \nabla\cdot\hat b_F(t, Y_t)\,dt\Big)
        \rho_0(Y_0)\Big], \qquad dY = \hat b_F\,dt + \sqrt{2\epsilon}\,dW \text{ backward from } Y_1 = x,

    with the *forward* drift :math:`\hat b_F = \hat b + \epsilon\hat s` (derivation in the module
    notes); ``M = paths`` paths per point. Also returns the Jensen bound
    :math:`\mathbb E[\log\rho_0(Y_0) - \int_0^1\nabla\cdot\hat b_F\,dt] \le \log\hat\rho(1, x)`
    (SI 2.67) from the same paths. Biases: see :class:`FeynmanKacLogDensity`; with
    Hutchinson probes the weights pick up a further factor :math:`\mathbb E e^{-N}\ge 1` from the
    probe noise ``N`` of the integral, whose variance is ``O(h)`` (fresh probes every step).
    The weights' variance grows with ``eps`` and ``d``: check ``ess``.

    Args:
        drift, score: the model's ``b^(t, x)`` and ``s^(t, x)`` (e.g. ``fields.drift``,
            ``fields.score``), differentiable in ``x``.
        x1: data points ``(n, d)``.
        eps: the constant diffusion level ``> 0`` of the model (diffusion ``sqrt(2 eps) dW``).
        log_rho0: ``x -> log rho0(x)``, shape ``(n,)``.
        paths: ``M``, paths per point.
        steps: uniform time steps.
        solver: :class:`~bridge.samplers.EulerMaruyama` (default) or ``StochasticHeun``.
        divergence: :class:`~bridge.likelihood.Exact` (default) or ``Hutchinson``.
        t_range: ``(t_min, t_max)``; ``rho0`` stands in for ``rho(t_min)``.
        generator: random generator for the paths and probes.
        progress: optional callback ``(steps done, steps)`` after each step (e.g.
            :meth:`bridge.progress.Progress.part`); silent by default, the draws are the same.

    Returns:
        :class:`FeynmanKacLogDensity`. No autograd graph is kept.

    Example:
        >>> import torch
        >>> from bridge.reference import standard_normal
        >>> g = torch.Generator().manual_seed(0)
        >>> r = feynman_kac_log_density(lambda t, x: 0 * x, lambda t, x: -x, torch.zeros(2, 1, dtype=torch.float64),
        ...                             eps=0.5, log_rho0=standard_normal(1).log_prob, paths=256, generator=g)
        >>> bool(abs(r.log_density[0] + 0.9189) < 4 * r.stderr[0] + 0.01)  # rho(t) = N(0, 1) throughout
        True
    """
    eps, paths, steps, solver, est, t_range = _check_common(
        drift, score, x1, eps, paths, steps, solver, divergence, t_range, generator
    )
    n, d = x1.shape
    fwd = _ForwardDrift(drift, score, eps)

    def stage(t, y):
        probes = est.draw(*y.shape, dtype=y.dtype, device=y.device, generator=generator)
        q, bf = est.estimate(fwd, t, y, probes)
        return bf, q.mean(0), None

    with torch.no_grad():
        y0, integral, _, nfe = _backward_paths(
            stage,
            x1,
            eps=eps,
            paths=paths,
            steps=steps,
            solver=solver,
            t_range=t_range,
            generator=generator,
            progress=progress,
        )
        log_w = (_log_rho0(log_rho0, y0) - integral).reshape(paths, n)
        log_density = torch.logsumexp(log_w, dim=0) - math.log(paths)
        w = torch.exp(log_w - log_density)  # normalised: mean 1 over the paths
        relvar = w.var(0) if paths > 1 else torch.full_like(log_density, math.nan)
        jensen, jensen_se = _mean_and_stderr(log_w, exact=False)
    return FeynmanKacLogDensity(
        log_density=log_density,
        stderr=torch.sqrt(relvar / paths),
        bias=-relvar / (2 * paths),
        jensen=jensen,
        jensen_stderr=jensen_se,
        ess=paths / w.pow(2).mean(0),
        nfe=nfe,
    )


def backward_ito_log_density(
    drift: Field,
    score: Field,
    x1: Tensor,
    *,
    eps: float,
    log_rho0: Callable[[Tensor], Tensor],
    paths: int = 16,
    steps: int = 200,
    solver=None,
    divergence: DivergenceEstimator | None = None,
    control_variate: bool = True,
    t_range=(0.0, 1.0),
    generator: torch.Generator | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> BackwardItoLogDensity:
    r"""Backward-Itô estimate of the SDE model's log-density (docs/math.md §4):

    .. math:: \log\hat\rho(1, x) \approx \mathbb E\Big[\log\rho_0(X_0) - \int_0^1 \big(\nabla\cdot\hat b_F
        + \epsilon|\hat s|^2\big)(t, X_t)\,dt - \int_0^1 \sqrt{2\epsilon}\,\hat s(t, X_t)\cdot dW_t\Big],

    with :math:`X` the generative backward SDE :math:`dX = \hat b_B\,dt + \sqrt{2\epsilon}\,dW_B`,
    :math:`\hat b_B = \hat b - \epsilon\hat s`, from :math:`X_1 = x`. The stochastic integral
    (left-point, Itô, zero mean) is a control variate (``control_variate=True``): it is the
    martingale part of :math:`\log\hat\rho(t, X_t)` when ``s^`` is the model's score, so the
    per-path values then agree up to discretisation error.

    **Exact only when** ``s^`` **is the model's own score** :math:`\nabla\log\hat\rho`, as for the
    exact fields of an interpolant. Otherwise the expectation is lower than
    :math:`\log\hat\rho(1, x)` by :math:`\epsilon\,\mathbb E\int_0^1|\hat s - \nabla\log\hat\rho|^2dt`
    (module notes): the NLL is biased up. The Monte-Carlo mean is unbiased for that expectation.

    Arguments as :func:`feynman_kac_log_density`, plus ``control_variate``.

    Example:
        >>> import torch
        >>> from bridge.reference import standard_normal
        >>> g = torch.Generator().manual_seed(0)
        >>> r = backward_ito_log_density(lambda t, x: 0 * x, lambda t, x: -x, torch.zeros(2, 1, dtype=torch.float64),
        ...                              eps=0.5, log_rho0=standard_normal(1).log_prob, generator=g)
        >>> round(r.log_density[0].item(), 2)  # log N(0; 0, 1)
        -0.92
    """
    eps, paths, steps, solver, est, t_range = _check_common(
        drift, score, x1, eps, paths, steps, solver, divergence, t_range, generator
    )
    n, d = x1.shape
    fwd = _ForwardDrift(drift, score, eps)

    def stage(t, y):
        probes = est.draw(*y.shape, dtype=y.dtype, device=y.device, generator=generator)
        q, bf = est.estimate(fwd, t, y, probes)
        s = fwd.last_s[: y.shape[0]].detach()
        return bf - 2.0 * eps * s, q.mean(0) + eps * s.pow(2).sum(-1), s if control_variate else None

    with torch.no_grad():
        x0, integral, martingale, nfe = _backward_paths(
            stage,
            x1,
            eps=eps,
            paths=paths,
            steps=steps,
            solver=solver,
            t_range=t_range,
            generator=generator,
            progress=progress,
        )
        values = (_log_rho0(log_rho0, x0) - integral - martingale).reshape(paths, n)
        log_density, stderr = _mean_and_stderr(values, exact=False)
    return BackwardItoLogDensity(log_density=log_density, stderr=stderr, nfe=nfe)
