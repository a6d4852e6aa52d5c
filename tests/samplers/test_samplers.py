"""Tests for bridge.samplers: declared orders measured on problems with exact answers (docs/math.md §3).

Oracles are independent of the samplers: closed-form ODE solutions, and for the linear SDE
dX = (a(t) X + c(t)) dt + sqrt(2 eps(t)) dW the variation-of-constants formula, whose
deterministic integrals are done by scipy.integrate.quad (absolute accuracy ~1e-14).
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy.integrate import quad

from bridge.samplers import (
    RK4,
    RK45,
    Euler,
    EulerMaruyama,
    Heun,
    ODEResult,
    SDEResult,
    StochasticHeun,
    sample_ode,
    sample_sde,
)

DT = torch.float64


def fitted_order(steps, errors) -> float:
    """Least-squares slope of log(error) against log(h), h = 1 / steps."""
    h = 1.0 / np.asarray(steps, dtype=float)
    return float(np.polyfit(np.log(h), np.log(np.asarray(errors, dtype=float)), 1)[0])


# ----------------------------------------------------------------------------------------------
# ODE problems with closed-form solutions: each yields (drift, x0, exact(t0, t1, x0)).


def _rot(theta: float) -> torch.Tensor:
    c, s = math.cos(theta), math.sin(theta)
    return torch.tensor([[c, -s], [s, c]], dtype=DT)


def linear_problem():
    """x' = cos(t) x + t J x (J the 90° rotation); cos(t) I and t J commute, so
    x(t1) = exp(sin t1 - sin t0) R((t1^2 - t0^2) / 2) x(t0)."""
    J = torch.tensor([[0.0, -1.0], [1.0, 0.0]], dtype=DT)

    def drift(t, x):
        return torch.cos(t)[:, None] * x + t[:, None] * (x @ J.T)

    def exact(t0, t1, x0):
        R = _rot((t1**2 - t0**2) / 2)
        return math.exp(math.sin(t1) - math.sin(t0)) * (x0 @ R.T)

    x0 = torch.randn(8, 2, generator=torch.Generator().manual_seed(1), dtype=DT)
    return drift, x0, exact


def nonlinear_problem():
    """Logistic growth at rate cos(t): x' = cos(t) x (1 - x), so
    x(t1) = 1 / (1 + (1/x(t0) - 1) exp(sin t0 - sin t1))."""

    def drift(t, x):
        return torch.cos(t)[:, None] * x * (1.0 - x)

    def exact(t0, t1, x0):
        return 1.0 / (1.0 + (1.0 / x0 - 1.0) * math.exp(math.sin(t0) - math.sin(t1)))

    x0 = torch.linspace(0.05, 0.95, 8, dtype=DT)[:, None]
    return drift, x0, exact


ODE_PROBLEMS = {"linear": linear_problem, "nonlinear": nonlinear_problem}
DIRECTIONS = {"forward": (0.0, 1.0), "backward": (1.0, 0.0)}
# Step counts in the asymptotic range of each method (errors well above float64 round-off).
FIXED_STEPS = {
    Euler: [20, 40, 80, 160, 320],
    Heun: [10, 20, 40, 80, 160],
    RK4: [8, 16, 32, 64, 128],
    RK45: [4, 8, 16, 32],
}


def ode_solve(solver_cls, drift, x0, t0, t1, steps):
    if solver_cls is RK45:  # the Dormand–Prince method on a fixed grid, without step control
        grid = [t0 + (t1 - t0) * k / steps for k in range(steps + 1)]
        x = x0
        for k in range(steps):
            x = RK45().step(drift, grid[k], grid[k + 1] - grid[k], x)
        return x
    return sample_ode(drift, x0, t0=t0, t1=t1, steps=steps, solver=solver_cls()).x


def ode_order(solver_cls, problem, t0, t1) -> float:
    drift, x0, exact = ODE_PROBLEMS[problem]()
    ref = exact(t0, t1, x0)
    steps = FIXED_STEPS[solver_cls]
    errs = [(ode_solve(solver_cls, drift, x0, t0, t1, n) - ref).abs().max().item() for n in steps]
    return fitted_order(steps, errs)


# Deterministic problems, so the fitted slope has no sampling noise; what remains is the next term of
# the error expansion over the usable range of steps (coarse end: pre-asymptotic, fine end: round-off
# at ~1e-13). Measured deviations: <= 0.05 for Euler and Heun, <= 0.17 for RK4 (the rotating linear
# problem). Dormand & Prince chose the coefficients to make the 5th-order error constant small, so
# 6th-order terms stay visible down to round-off and the fit comes out steep: measured 4.98-5.51.
# Allowed window (below, above) the declared order; a lost order shows up as a slope <= order - 1.
ORDER_WINDOW = {Euler: (0.2, 0.2), Heun: (0.2, 0.2), RK4: (0.2, 0.2), RK45: (0.2, 0.7)}


@pytest.mark.parametrize("direction", list(DIRECTIONS))
@pytest.mark.parametrize("problem", list(ODE_PROBLEMS))
@pytest.mark.parametrize("solver_cls", [Euler, Heun, RK4, RK45])
def test_ode_order(solver_cls, problem, direction):
    slope = ode_order(solver_cls, problem, *DIRECTIONS[direction])
    below, above = ORDER_WINDOW[solver_cls]
    assert solver_cls.order - below < slope < solver_cls.order + above, slope


@pytest.mark.parametrize("direction", list(DIRECTIONS))
@pytest.mark.parametrize("problem", list(ODE_PROBLEMS))
def test_rk45_tolerance(problem, direction):
    drift, x0, exact = ODE_PROBLEMS[problem]()
    t0, t1 = DIRECTIONS[direction]
    ref = exact(t0, t1, x0)
    errs, nfes = [], []
    for tol in [1e-4, 1e-6, 1e-8, 1e-10]:
        r = sample_ode(drift, x0, t0=t0, t1=t1, solver=RK45(rtol=tol, atol=tol))
        assert r.t[0].item() == t0 and r.t[-1].item() == t1
        assert bool(((r.t[1:] - r.t[:-1]) * (t1 - t0) > 0).all())  # monotone in the direction of travel
        # global error relative to the local tolerance scale atol + rtol |x|
        errs.append(((r.x - ref).abs() / (tol + tol * ref.abs())).max().item())
        nfes.append(r.nfe)
    # Local error control bounds the global error only loosely; here it lands within a modest
    # factor of the tolerance scale atol + rtol |x| (measured 0.036-0.28): neither above it nor
    # wastefully far below it.
    assert 0.01 < min(errs) and max(errs) < 1.0, errs
    absolute = [e * tol for e, tol in zip(errs, [1e-4, 1e-6, 1e-8, 1e-10])]
    assert all(a > b for a, b in zip(absolute, absolute[1:])), absolute
    assert all(a < b for a, b in zip(nfes, nfes[1:])), nfes


def test_rk45_trajectory_and_limits():
    drift, x0, exact = linear_problem()
    r = sample_ode(drift, x0, solver=RK45(rtol=1e-6, atol=1e-8), trajectory=True)
    assert r.trajectory.shape == (len(r.t), *x0.shape)
    assert torch.equal(r.trajectory[0], x0) and torch.equal(r.trajectory[-1], r.x)
    with pytest.raises(RuntimeError, match="max_steps=3"):
        sample_ode(drift, x0, solver=RK45(rtol=1e-10, atol=1e-10, max_steps=3))


# ----------------------------------------------------------------------------------------------
# Linear SDE dX = (a(t) X + c(t)) dt + sqrt(2 eps(t)) dW with a(t) = -(1 + t), c(t) = sin(3t).
# Phi(t1, s) = exp(A(t1) - A(s)), A(t) = -(t + t^2/2), in either direction of time.


def a_fn(t):
    return -(1.0 + t)


def A_fn(t):
    return -(t + t * t / 2.0)


def c_fn(t):
    return torch.sin(3.0 * t) if isinstance(t, torch.Tensor) else math.sin(3.0 * t)


def linear_drift(t, x):
    return a_fn(t)[:, None] * x + c_fn(t)[:, None]


EPS = {
    "const": (0.4, lambda s: 0.4),
    "time": (lambda t: 0.3 + 0.2 * torch.cos(2.0 * t), lambda s: 0.3 + 0.2 * math.cos(2.0 * s)),
}
X0 = 0.7


def exact_mean(t0, t1, x0=X0):
    det, _ = quad(lambda s: math.exp(A_fn(t1) - A_fn(s)) * c_fn(s), t0, t1, epsabs=1e-14, epsrel=1e-13)
    return math.exp(A_fn(t1) - A_fn(t0)) * x0 + det


def exact_var(t0, t1, eps_float):
    lo, hi = min(t0, t1), max(t0, t1)
    v, _ = quad(lambda s: math.exp(2 * (A_fn(t1) - A_fn(s))) * 2 * eps_float(s), lo, hi, epsabs=1e-14, epsrel=1e-13)
    return v


def scheme_moments(solver, eps, t0, t1, steps):
    """Exact mean and variance of the scheme's X_N for the linear SDE, with no Monte Carlo.

    The scheme is affine in (x, xi), so sample j driven by xi_k = delta_jk gives
    X_j = X_zero + g_j with X_zero the noise-free run (the mean) and Var = sum_j g_j^2.
    """
    x = torch.full((steps + 1, 1), X0, dtype=DT)
    noise = torch.zeros(steps, steps + 1, 1, dtype=DT)
    noise[torch.arange(steps), torch.arange(steps), 0] = 1.0  # sample `steps` keeps zero noise
    xN = sample_sde(linear_drift, x, eps=eps, t0=t0, t1=t1, steps=steps, solver=solver, noise=noise).x[:, 0]
    mean = xN[-1].item()
    var = ((xN[:-1] - xN[-1]) ** 2).sum().item()
    return mean, var


WEAK_STEPS = [10, 20, 40, 80, 160]


def sde_weak_orders(solver_cls, eps_kind, direction):
    eps, eps_float = EPS[eps_kind]
    t0, t1 = DIRECTIONS[direction]
    m, v = exact_mean(t0, t1), exact_var(t0, t1, eps_float)
    dm, dv = [], []
    for n in WEAK_STEPS:
        mean, var = scheme_moments(solver_cls(), eps, t0, t1, n)
        dm.append(abs(mean - m))
        dv.append(abs(var - v))
    return fitted_order(WEAK_STEPS, dm), fitted_order(WEAK_STEPS, dv)


@pytest.mark.parametrize("direction", list(DIRECTIONS))
@pytest.mark.parametrize("eps_kind", list(EPS))
@pytest.mark.parametrize("solver_cls", [EulerMaruyama, StochasticHeun])
def test_sde_weak_order(solver_cls, eps_kind, direction):
    # Exact moments of the scheme (no Monte-Carlo noise) against exact moments of the SDE: the
    # slopes are deterministic (measured within 0.06 of the order), so the ODE tolerance applies.
    slope_mean, slope_var = sde_weak_orders(solver_cls, eps_kind, direction)
    assert abs(slope_mean - solver_cls.weak_order) < 0.2, slope_mean
    assert abs(slope_var - solver_cls.weak_order) < 0.2, slope_var


class _LeftPointHeun(StochasticHeun):
    noise_point = 0.0  # eps at the start of the step


def test_heun_needs_midpoint_eps_for_weak_order_2():
    # With eps(t) at the left end of the step, the step's variance 2 eps(t_k) |dt| misses the
    # integral of 2 eps by O(dt^2), so the variance converges at order 1 only: the weak test above
    # detects the choice of noise_point.
    _, slope_var = sde_weak_orders(_LeftPointHeun, "time", "forward")
    assert abs(slope_var - 1.0) < 0.2, slope_var


def sde_strong_order(solver_cls, eps_kind, direction, *, paths=400, fine=2**13, seed=0):
    """RMS error at t1 against the exact solution driven by the same Brownian path.

    The exact solution is Phi(t1,t0) x0 + int Phi(t1,s) c(s) ds + int Phi(t1,s) sqrt(2 eps(s)) dW_s; the
    stochastic integral is summed over `fine` sub-steps at their midpoints (error O(1/fine), far
    below the coarse errors), and each coarse xi is the normalised sum of its fine xi's.
    """
    eps, eps_float = EPS[eps_kind]
    t0, t1 = DIRECTIONS[direction]
    g = torch.Generator().manual_seed(seed)
    xi_fine = torch.randn(fine, paths, generator=g, dtype=DT)
    h = (t1 - t0) / fine
    s = t0 + (torch.arange(fine, dtype=DT) + 0.5) * h
    eps_s = torch.tensor([eps_float(v) for v in s.tolist()], dtype=DT)
    weight = torch.exp(A_fn(t1) - A_fn(s)) * torch.sqrt(2 * eps_s * abs(h))
    ref = exact_mean(t0, t1) + (weight[:, None] * xi_fine).sum(0)
    errs = []
    x = torch.full((paths, 1), X0, dtype=DT)
    for n in STRONG_STEPS:
        r = fine // n
        xi = xi_fine.reshape(n, r, paths).sum(1) / math.sqrt(r)
        xN = sample_sde(linear_drift, x, eps=eps, t0=t0, t1=t1, steps=n, solver=solver_cls(), noise=xi[:, :, None]).x
        errs.append((xN[:, 0] - ref).square().mean().sqrt().item())
    return fitted_order(STRONG_STEPS, errs)


STRONG_STEPS = [8, 16, 32, 64, 128]


@pytest.mark.parametrize("direction", list(DIRECTIONS))
@pytest.mark.parametrize("eps_kind", list(EPS))
@pytest.mark.parametrize("solver_cls", [EulerMaruyama, StochasticHeun])
def test_sde_strong_order(solver_cls, eps_kind, direction):
    # RMS errors over 400 paths have ~4% relative sampling error each, but they are strongly
    # correlated across step sizes (same paths): measured slopes are within 0.06 of 1 over seeds
    # 0 and 1; 0.2 allows for that and the pre-asymptotic curvature at 8 steps.
    slope = sde_strong_order(solver_cls, eps_kind, direction)
    assert abs(slope - solver_cls.strong_order) < 0.2, slope


@pytest.mark.parametrize("solver_cls, t0, t1", [(EulerMaruyama, 0.0, 8.0), (StochasticHeun, 8.0, 0.0)])
def test_sde_ou_stationary_statistics(solver_cls, t0, t1):
    # OU with stationary law N(mu, eps/theta): forward drift b_F = -theta (x - mu); the backward
    # drift is b_B = b - eps s = +theta (x - mu) (b = 0 for a stationary law, s = -(x - mu) theta/eps).
    # From x = 3, |t1 - t0| = 8 leaves a mean offset 2 (1 - theta h)^200 < 1e-3. Expected moments are
    # the scheme's own, y_{k+1} = R y_k + G dW_k with y = x - mu (EM: R = 1 - theta h, G = 1; Heun:
    # R = 1 - theta h + (theta h)^2 / 2, G = 1 - theta h / 2); their stationary variances differ from
    # eps/theta by +2% (EM) and -0.01% (Heun) at h = 0.04. Tolerance 4 standard errors, N = n d = 20000:
    # sqrt(var / N) for the mean and var sqrt(2 / N) for the variance (Gaussian samples).
    theta, mu, eps, n, d, steps = 1.0, 1.0, 0.5, 10000, 2, 200
    h = abs(t1 - t0) / steps
    sign = 1.0 if t1 > t0 else -1.0
    g = torch.Generator().manual_seed(1234)
    x = torch.full((n, d), 3.0, dtype=DT)
    drift = lambda t, x: -sign * theta * (x - mu)
    r = sample_sde(drift, x, eps=eps, t0=t0, t1=t1, steps=steps, solver=solver_cls(), generator=g)
    th = theta * h
    R, G = (1 - th, 1.0) if solver_cls is EulerMaruyama else (1 - th + th * th / 2, 1 - th / 2)
    mean = mu + (3.0 - mu) * R**steps
    var = G * G * 2 * eps * h / (1 - R * R) * (1 - R ** (2 * steps))
    assert abs(var / (eps / theta) - 1) < 0.03  # the scheme's variance is near the SDE's
    N = n * d
    se_mean, se_var = math.sqrt(var / N), var * math.sqrt(2.0 / N)
    assert abs(r.x.mean().item() - mean) < 4 * se_mean
    assert abs(r.x.var().item() - var) < 4 * se_var


# ----------------------------------------------------------------------------------------------
# interface: shapes, calls, denoising, determinism, consistency


class CountingDrift:
    def __init__(self, fn):
        self.fn, self.calls, self.times = fn, 0, []

    def __call__(self, t, x):
        assert t.shape == (x.shape[0],) and t.dtype == x.dtype and t.device == x.device
        assert bool((t == t[0]).all())
        self.calls += 1
        self.times.append(t[0].item())
        return self.fn(t, x)


@pytest.mark.parametrize("solver", [Euler(), Heun(), RK4()])
def test_ode_shapes_nfe_and_calls(solver):
    drift = CountingDrift(lambda t, x: -x)
    x0 = torch.randn(5, 3, generator=torch.Generator().manual_seed(0), dtype=DT)
    r = sample_ode(drift, x0, t0=1.0, t1=0.25, steps=6, solver=solver, trajectory=True)
    assert isinstance(r, ODEResult)
    assert r.x.shape == (5, 3) and r.t.shape == (7,) and r.trajectory.shape == (7, 5, 3)
    assert r.t[0].item() == 1.0 and r.t[-1].item() == 0.25
    assert torch.equal(r.trajectory[0], x0) and torch.equal(r.trajectory[-1], r.x)
    assert r.nfe == drift.calls == 6 * solver.order  # Euler, Heun, RK4: stages == order
    grid = [1.0 - 0.125 * k for k in range(7)]
    visited = sorted(set(round(t, 12) for t in drift.times))
    expected = {Euler: grid[:-1], Heun: grid, RK4: grid + [1.0 - 0.0625 * (2 * k + 1) for k in range(6)]}
    assert visited == sorted(round(t, 12) for t in expected[type(solver)])
    assert sample_ode(lambda t, x: -x, x0, steps=3, solver=solver).trajectory is None


@pytest.mark.parametrize("solver", [EulerMaruyama(), StochasticHeun()])
def test_sde_shapes_and_nfe(solver):
    drift = CountingDrift(lambda t, x: -x)
    x0 = torch.zeros(4, 2)
    r = sample_sde(
        drift, x0, eps=0.1, steps=9, solver=solver, trajectory=True, generator=torch.Generator().manual_seed(0)
    )
    assert isinstance(r, SDEResult)
    assert r.x.shape == (4, 2) and r.x.dtype == torch.float32
    assert r.t.shape == (10,) and r.trajectory.shape == (10, 4, 2)
    assert torch.equal(r.trajectory[-1], r.x)
    assert r.nfe == drift.calls == 9 * solver.stages


def test_denoise_applied_once_at_t1():
    calls = []

    def denoise(t, x):
        calls.append(t.clone())
        return x + 100.0

    x0 = torch.ones(3, 2, dtype=DT)
    for run in (
        lambda: sample_ode(lambda t, x: -x, x0, t0=0.0, t1=0.9, steps=5, trajectory=True, denoise=denoise),
        lambda: sample_sde(lambda t, x: -x, x0, eps=0.2, t1=0.9, steps=5, trajectory=True, denoise=denoise),
        lambda: sample_ode(lambda t, x: -x, x0, t1=0.9, solver=RK45(), trajectory=True, denoise=denoise),
    ):
        calls.clear()
        r = run()
        assert len(calls) == 1 and calls[0].shape == (3,) and bool((calls[0] == 0.9).all())
        assert torch.allclose(r.x, r.trajectory[-1] + 100.0)


def test_generator_determinism():
    x0 = torch.zeros(6, 2, dtype=DT)
    run = lambda seed: (
        sample_sde(lambda t, x: -x, x0, eps=0.3, steps=20, generator=torch.Generator().manual_seed(seed)).x
    )
    assert torch.equal(run(7), run(7))
    assert not torch.equal(run(7), run(8))


def test_noise_argument_drives_the_increments():
    # EM with zero drift: X_N = x0 + sum_k sqrt(2 eps |dt|) xi_k
    xi = torch.randn(10, 3, 1, generator=torch.Generator().manual_seed(3), dtype=DT)
    r = sample_sde(lambda t, x: torch.zeros_like(x), torch.zeros(3, 1, dtype=DT), eps=0.5, t1=-1.0, steps=10, noise=xi)
    assert torch.allclose(r.x, xi.sum(0) * math.sqrt(2 * 0.5 * 0.1))


@pytest.mark.parametrize("sde_solver, ode_solver", [(EulerMaruyama(), Euler()), (StochasticHeun(), Heun())])
def test_sde_with_zero_eps_is_the_ode_scheme(sde_solver, ode_solver):
    drift, x0, _ = nonlinear_problem()
    a = sample_sde(drift, x0, eps=0.0, t0=1.0, t1=0.0, steps=13, solver=sde_solver).x
    b = sample_ode(drift, x0, t0=1.0, t1=0.0, steps=13, solver=ode_solver).x
    assert torch.allclose(a, b, rtol=0, atol=1e-15)


def test_float32_and_eps_shapes():
    x0 = torch.zeros(4, 3)
    for eps in (0.5, lambda t: 0.5, lambda t: torch.full_like(t, 0.5), lambda t: torch.full((t.shape[0], 3), 0.5)):
        g = torch.Generator().manual_seed(0)
        r = sample_sde(lambda t, x: -x, x0, eps=eps, steps=5, generator=g)
        assert r.x.dtype == torch.float32 and r.x.shape == (4, 3)
        ref = sample_sde(lambda t, x: -x, x0, eps=0.5, steps=5, generator=torch.Generator().manual_seed(0)).x
        assert torch.allclose(r.x, ref, rtol=1e-6, atol=1e-6)


# ----------------------------------------------------------------------------------------------
# errors


def test_nonfinite_drift_is_reported_with_its_time():
    bad = lambda t, x: torch.where(t[:, None] > 0.5, torch.full_like(x, float("nan")), -x)
    x0 = torch.ones(2, 1, dtype=DT)
    with pytest.raises(FloatingPointError, match=r"from t=0\.5 to t=0\.6"):
        sample_ode(bad, x0, steps=10, solver=Heun())
    with pytest.raises(FloatingPointError, match=r"from t=0\.6 to t=0\.7"):
        sample_sde(bad, x0, eps=0.1, steps=10, generator=torch.Generator().manual_seed(0))
    with pytest.raises(FloatingPointError, match=r"t=0\.5"):
        sample_ode(bad, x0, solver=RK45())


@pytest.mark.parametrize(
    "kwargs, exc, message",
    [
        (dict(x=[[0.0]]), TypeError, "x: expected a torch.Tensor"),
        (dict(x=torch.zeros(3)), ValueError, r"x: expected shape \(n, d\)"),
        (dict(x=torch.zeros(3, 1, dtype=torch.int64)), TypeError, "x: expected a floating-point"),
        (dict(x=torch.tensor([[float("nan")]])), ValueError, "x: contains NaN"),
        (dict(steps=0), ValueError, "steps: expected a positive integer"),
        (dict(steps=2.5), ValueError, "steps: expected a positive integer"),
        (dict(t0=0.5, t1=0.5), ValueError, "t0 != t1"),
        (dict(solver=Heun), TypeError, r"solver: expected a solver instance such as Heun\(\)"),
        (dict(solver=EulerMaruyama()), TypeError, "solver: expected Euler"),
        (
            dict(drift=lambda t, x: x[:, 0]),
            ValueError,
            r"drift: expected output of shape \(n, d\) = \(3, 1\), got \(3,\)",
        ),
        (dict(drift=None), TypeError, "drift: expected a callable"),
    ],
)
def test_ode_input_errors(kwargs, exc, message):
    args = dict(drift=lambda t, x: -x, x=torch.zeros(3, 1))
    args.update(kwargs)
    with pytest.raises(exc, match=message):
        sample_ode(args.pop("drift"), args.pop("x"), **args)


@pytest.mark.parametrize(
    "kwargs, exc, message",
    [
        (dict(eps=-1.0), ValueError, "eps: expected a finite number >= 0"),
        (dict(eps="big"), TypeError, "eps: expected a number"),
        (dict(eps=lambda t: -torch.ones_like(t)), ValueError, r"eps: the callable returned a negative.* at t=0$"),
        (dict(eps=lambda t: 0.5 - t), ValueError, r"eps: the callable returned a negative or NaN value at t=0\.6"),
        (dict(noise=torch.zeros(4, 3, 1)), ValueError, r"noise: expected shape \(steps, n, d\) = \(5, 3, 1\)"),
        (dict(noise=torch.zeros(5, 3, 1, dtype=torch.int64)), TypeError, "noise: expected a floating-point"),
        (dict(solver=Heun()), TypeError, "solver: expected EulerMaruyama"),
        (dict(generator=1), TypeError, "generator: expected a torch.Generator"),
        (dict(steps=-3), ValueError, "steps: expected a positive integer"),
        (dict(t0=1.0, t1=1.0), ValueError, "t0 != t1"),
    ],
)
def test_sde_input_errors(kwargs, exc, message):
    args = dict(eps=0.1, steps=5)
    args.update(kwargs)
    with pytest.raises(exc, match=message):
        sample_sde(lambda t, x: -x, torch.zeros(3, 1), **args)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(rtol=0.0), "rtol"),
        (dict(atol=-1.0), "atol"),
        (dict(max_steps=0), "max_steps"),
        (dict(first_step=-0.1), "first_step"),
    ],
)
def test_rk45_option_errors(kwargs, message):
    with pytest.raises(ValueError, match=f"^{message}: expected"):
        RK45(**kwargs)
