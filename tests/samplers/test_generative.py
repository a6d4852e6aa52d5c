"""With the exact fields, the ODE and the SDEs (several eps) push rho0 to rho1 (docs/math.md §3, §7).

* 2-D Gaussian -> two-component mixture: sample moments along the paths match the closed-form
  marginal rho(t) at several t, for the ODE, the forward SDE at eps in {0.5, 1, 2} and the
  backward SDE.
* 1-D Gaussian -> Gaussian: the measured convergence order of each sampler, driven by the exact
  fields, matches its declared order. The ODE's flow map is known in closed form,
  ``X_t = m_t + sqrt(C_t / C_0) (x_0 - m_0)``; the SDE's law at t = 1 must be ``N(m_1, C_1)``
  for every eps, and its mean and variance are computed without Monte-Carlo noise (the exact
  drift is affine in x, so the scheme is affine in x and in the noise).

Tolerances:

=====================  =====================================================================
check                  tolerance and reason
=====================  =====================================================================
moments along paths    4 standard errors of the sample mean / covariance entry, estimated from
                       the samples themselves (fixed seed, n = 4000); the discretisation bias
                       with 100 Heun steps is orders of magnitude below one standard error
order slopes           |slope - declared| < 0.25: a least-squares slope over a factor 8 in step
                       size, well in the asymptotic range for these smooth fields
=====================  =====================================================================
"""

import math

import pytest
import torch

from bridge.interpolants import Linear, Trig
from bridge.reference import GaussianMixture, InterpolantOracle, gaussian, standard_normal
from bridge.samplers import RK4, Euler, EulerMaruyama, Heun, StochasticHeun, sample_ode, sample_sde

DT = torch.float64
T_CHECK = (0.25, 0.5, 0.75, 1.0)


def _mixture_problem(interp):
    rho0 = standard_normal(2)
    rho1 = GaussianMixture(
        weights=torch.tensor([0.4, 0.6], dtype=DT),
        means=torch.tensor([[-1.5, 0.5], [1.5, -0.5]], dtype=DT),
        covs=torch.stack([torch.tensor([[0.3, 0.1], [0.1, 0.2]], dtype=DT), 0.25 * torch.eye(2, dtype=DT)]),
    )
    return InterpolantOracle(interp, rho0, rho1), rho0, rho1


def _assert_moments(x, mix, what):
    n = x.shape[0]
    m_hat = x.mean(0)
    xc = x - m_hat
    c_hat = xc.T @ xc / (n - 1)
    m, c = mix.mean(), mix.cov()
    se_m = (c.diagonal() / n).sqrt()
    prod = xc.unsqueeze(2) * xc.unsqueeze(1)  # (n, d, d)
    se_c = prod.var(0).div(n).sqrt()
    z_m = ((m_hat - m).abs() / se_m).max()
    z_c = ((c_hat - c).abs() / se_c).max()
    assert z_m < 4 and z_c < 4, f"{what}: mean off by {z_m:.2f} SE, covariance by {z_c:.2f} SE"


SLOW = pytest.mark.slow  # the quick run keeps one ODE and one SDE case; each other case adds ~1 s


@pytest.mark.parametrize(
    "interp, eps",
    [
        (Linear(), 0.0),
        pytest.param(Linear(), 0.5, marks=SLOW),
        pytest.param(Linear(), 1.0, marks=SLOW),
        pytest.param(Linear(), 2.0, marks=SLOW),
        pytest.param(Trig(), 0.0, marks=SLOW),
        (Trig(), 1.0),
    ],
    ids=lambda v: repr(v),
)
def test_exact_fields_push_rho0_to_rho1(interp, eps):
    oracle, rho0, _ = _mixture_problem(interp)
    fields = oracle.fields()
    g = torch.Generator().manual_seed(11 + int(10 * eps))
    x0 = rho0.sample(4000, generator=g)
    steps = 100
    if eps == 0.0:
        res = sample_ode(fields.drift, x0, steps=steps, solver=Heun(), trajectory=True)
    else:
        res = sample_sde(
            fields.forward_drift(eps), x0, eps=eps, steps=steps, solver=StochasticHeun(), generator=g, trajectory=True
        )
    for t in T_CHECK:
        k = round(t * steps)
        assert math.isclose(float(res.t[k]), t, abs_tol=1e-12)
        _assert_moments(res.trajectory[k], oracle.marginal(t), f"eps={eps}, t={t}")


def test_backward_sde_pulls_rho1_to_rho0():
    oracle, _, rho1 = _mixture_problem(Linear())
    fields = oracle.fields()
    g = torch.Generator().manual_seed(5)
    x1 = rho1.sample(4000, generator=g)
    res = sample_sde(
        fields.backward_drift(1.0),
        x1,
        eps=1.0,
        t0=1.0,
        t1=0.0,
        steps=100,
        solver=StochasticHeun(),
        generator=g,
        trajectory=True,
    )
    for t in (0.75, 0.5, 0.25, 0.0):
        k = round((1.0 - t) * 100)
        _assert_moments(res.trajectory[k], oracle.marginal(t), f"backward, t={t}")


# --- orders with exact fields (1-D Gaussian -> Gaussian) -----------------------------------
M0, C0, M1, C1 = 0.0, 1.0, 2.0, 2.0  # C_t = 1 - t + 2t^2: sqrt(C_t) is not affine in t


def _gauss_oracle():
    return InterpolantOracle(Linear(), gaussian([M0], C0), gaussian([M1], C1))


def _slope(steps, errors):
    h = torch.tensor([1.0 / s for s in steps], dtype=DT).log()
    e = torch.tensor(errors, dtype=DT).log()
    hc = h - h.mean()
    return float((hc * (e - e.mean())).sum() / (hc * hc).sum())


@pytest.mark.parametrize("solver", [Euler(), Heun(), RK4()], ids=repr)
def test_ode_order_with_exact_fields(solver):
    oracle = _gauss_oracle()
    x0 = torch.linspace(-2.0, 2.0, 9, dtype=DT).unsqueeze(1)
    exact = M1 + math.sqrt(C1 / C0) * (x0 - M0)  # closed-form flow map at t = 1
    # RK4 is pre-asymptotic below ~32 steps here (error ratio 5, not 16, from 8 to 16 steps)
    steps = [8, 16, 32, 64] if solver.order < 4 else [32, 64, 128, 256]
    errors = [float((sample_ode(oracle.b, x0, steps=s, solver=solver).x - exact).abs().max()) for s in steps]
    assert abs(_slope(steps, errors) - solver.order) < 0.25, (errors, _slope(steps, errors))


def _affine_law(drift, eps, steps, solver):
    """Exact mean and variance of the scheme's output for an affine drift, from X_0 ~ N(M0, C0)."""
    # the scheme maps (x0, xi_1..xi_N) affinely to X_N: probe with x0 in {0, 1} and unit noises
    zero = torch.zeros(steps, 1, 1, dtype=DT)
    base = sample_sde(drift, torch.zeros(1, 1, dtype=DT), eps=eps, steps=steps, solver=solver, noise=zero).x[0, 0]
    slope_x = sample_sde(drift, torch.ones(1, 1, dtype=DT), eps=eps, steps=steps, solver=solver, noise=zero).x[0, 0]
    slope_x = slope_x - base
    basis = torch.eye(steps, dtype=DT).unsqueeze(-1)  # sample j has xi_k = delta_jk
    xs = torch.zeros(steps, 1, dtype=DT)
    gains = sample_sde(drift, xs, eps=eps, steps=steps, solver=solver, noise=basis).x[:, 0] - base
    mean = base + slope_x * M0
    var = slope_x**2 * C0 + (gains**2).sum()
    return float(mean), float(var)


@pytest.mark.parametrize("solver", [EulerMaruyama(), StochasticHeun()], ids=repr)
@pytest.mark.parametrize("eps", [0.5, pytest.param(2.0, marks=SLOW)])
def test_sde_weak_order_with_exact_fields(solver, eps):
    fields = _gauss_oracle().fields()
    steps = [16, 32, 64, 128]
    err_m, err_v = [], []
    for s in steps:
        mean, var = _affine_law(fields.forward_drift(eps), eps, s, solver)
        err_m.append(abs(mean - M1))
        err_v.append(abs(var - C1))
    # the mean error of an affine scheme is that of its deterministic part: at least the weak order
    assert _slope(steps, err_v) > solver.weak_order - 0.25, err_v
    assert abs(_slope(steps, err_v) - solver.weak_order) < 0.25, (err_v, _slope(steps, err_v))
    assert max(err_m) < 1e-2 or _slope(steps, err_m) > solver.weak_order - 0.25, err_m
