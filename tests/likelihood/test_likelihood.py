"""Tests for bridge.likelihood (docs/math.md §4) against closed forms (docs/math.md §7) and autograd.

Oracles, all independent of the code under test: Gaussian log-densities from
``torch.distributions.MultivariateNormal`` (and ``GaussianMixture.log_prob`` for a mixture);
the Jacobian trace from ``torch.autograd.functional.jacobian``; Hutchinson's variance in closed
form; the moments of the linear backward SDE by ``scipy.integrate.solve_ivp`` (for the
Feynman–Kac identity and the Jensen bound's expectation); ``gradcheck`` (finite differences).

Tolerances (float64 throughout unless stated):

=====================================  =============================  ===========================================
check                                  tolerance                      reason
=====================================  =============================  ===========================================
ODE log-density, RK4 16 steps          1e-5 nats                      measured <= 1.3e-6 in d = 1, 2, 10
ODE order slopes                       declared +- 0.35               measured 0.89 (Euler), 2.05 (Heun), 4.07 (RK4)
RK45 rtol = atol = 1e-9                1e-7 nats                      error-controlled, measured ~1e-9
forward vs backward ODE                1e-6 (log-density, x0)         RK4 32 steps both ways, measured 3e-8
Hutchinson mean vs exact               |z| < 4.5, >= 90% within 2 SE  200 points, P = 64 (z ~ N(0, 1))
Hutchinson variance vs closed form     25 % relative                  4000 points; SE of a sample variance ~6 %
Hutchinson ODE, 4 vs 64 steps          SE ratio in (3, 5.3)           variance O(h): ratio 4; 64 points, P = 16
Hutchinson ODE calibration             RMS of err/SE in (0.7, 1.5)    t with 15 dof has RMS 1.07; 64 points
SDE backward Itô (Heun, 20 steps)      4 SE + 0.01 nats               weak order 2; bias measured <= 0.003 with
                                                                      20000 paths
Feynman-Kac                            4 SE + |bias| + 0.05 nats      heavy-tailed weights; bias by delta method
Jensen bound vs its closed form        4 SE + 0.05 nats               Heun, 20 steps: measured <= 0.06 (20000 paths)
FK identity via moment ODE             1e-6 nats                      solve_ivp rtol 1e-10
measured KL vs closed form             4 SE + 0.02                    FK paths, SE over 300 points
backward Itô, control variate on/off   SE ratio > 3                   measured 4-5x at 20 steps (residual O(h))
CUDA float32 (skipped without CUDA)    4 SE + 1e-3 nats               float32 round-off over 64 RK4 stages
=====================================  =============================  ===========================================
"""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
from scipy.integrate import quad, solve_ivp

from bridge.interpolants import BrownianGamma, Linear, Trig
from bridge.likelihood import (
    Exact,
    ExcessLoss,
    Hutchinson,
    backward_ito_log_density,
    divergence,
    excess_loss,
    feynman_kac_log_density,
    kl_bound_report,
    ode_log_density,
    ode_sample_log_density,
    training_loss,
)
from bridge.reference import GaussianMixture, InterpolantOracle, gaussian, standard_normal
from bridge.samplers import RK4, RK45, Euler, EulerMaruyama, Heun, StochasticHeun

DT = torch.float64


def rand_spd(d: int, g: torch.Generator) -> torch.Tensor:
    a = torch.randn(d, d, generator=g, dtype=DT) / math.sqrt(d)
    return a @ a.T + 0.5 * torch.eye(d, dtype=DT)


def gaussian_problem(d: int, seed: int = 0):
    """Linear interpolant (gamma = sqrt(t(1-t))) between two Gaussians with full covariances:
    yields the oracle fields, the endpoint parameters and the closed-form log rho1."""
    g = torch.Generator().manual_seed(seed)
    m0, m1 = torch.randn(d, generator=g, dtype=DT), torch.randn(d, generator=g, dtype=DT) + 1.0
    c0, c1 = rand_spd(d, g), rand_spd(d, g)
    oracle = InterpolantOracle(Linear(), gaussian(m0, c0), gaussian(m1, c1))
    log_rho1 = torch.distributions.MultivariateNormal(m1, c1).log_prob
    return oracle, (m0, c0, m1, c1), log_rho1, g


def fitted_order(steps, errors) -> float:
    h = 1.0 / np.asarray(steps, dtype=float)
    return float(np.polyfit(np.log(h), np.log(np.asarray(errors, dtype=float)), 1)[0])


# ----------------------------------------------------------------------------------------------
# divergence


def test_exact_divergence_matches_autograd_jacobian_trace():
    g = torch.Generator().manual_seed(0)
    d = 5
    W1, W2 = torch.randn(8, d, generator=g, dtype=DT), torch.randn(d, 8, generator=g, dtype=DT)

    def f(t, x):
        return torch.tanh(x @ W1.T.to(x.dtype) + t[:, None]) @ W2.T.to(x.dtype) + x.sin()

    x, t = torch.randn(7, d, generator=g, dtype=DT), torch.rand(7, generator=g, dtype=DT)
    want = torch.stack(
        [torch.autograd.functional.jacobian(lambda y, i=i: f(t[i : i + 1], y[None])[0], x[i]).trace() for i in range(7)]
    )
    for est in (Exact(), Exact(max_rows=10)):  # one pass, and chunks of one coordinate
        r = divergence(f, t, x, estimator=est)
        torch.testing.assert_close(r.value, want, rtol=1e-12, atol=1e-12)
        torch.testing.assert_close(r.output, f(t, x))
        assert r.per_probe is None and bool((r.stderr == 0).all()) and not r.value.requires_grad
    r32 = divergence(f, t.float(), x.float())
    assert r32.value.dtype == torch.float32
    torch.testing.assert_close(r32.value, want.float(), rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("distribution", ["rademacher", "gaussian"])
def test_hutchinson_unbiased_and_variance_over_probes(distribution):
    g = torch.Generator().manual_seed(1)
    d = 6
    A = torch.randn(d, d, generator=g, dtype=DT)

    def f(t, x):
        return x @ A.T

    # within a few standard errors of tr A, point by point
    x = torch.randn(200, d, generator=g, dtype=DT)
    r = divergence(f, 0.3, x, estimator=Hutchinson(64, distribution=distribution), generator=g)
    z = (r.value - A.trace()) / r.stderr
    assert z.abs().max() < 4.5 and (z.abs() < 2).double().mean() > 0.9, z
    # single-probe variance in closed form; the mean of P probes has it over P
    S2 = 0.5 * (A + A.T).pow(2).sum()
    var1 = S2 - 2 * A.diagonal().pow(2).sum() if distribution == "rademacher" else S2
    x = torch.randn(4000, d, generator=g, dtype=DT)
    for P in (1, 4, 16):
        r = divergence(f, 0.3, x, estimator=Hutchinson(P, distribution=distribution), generator=g)
        assert abs(float(r.value.var() / (var1 / P)) - 1) < 0.25, (P, float(r.value.var()), float(var1 / P))
        if P > 1:  # the reported standard error estimates the same variance
            assert abs(float(r.stderr.pow(2).mean() / (var1 / P)) - 1) < 0.25
        else:
            assert bool(r.stderr.isnan().all())


def test_divergence_input_errors():
    x = torch.randn(3, 2, dtype=DT)
    with pytest.raises(ValueError, match="f: expected output"):
        divergence(lambda t, x: x[:, :1], 0.0, x)
    with pytest.raises(ValueError, match="no autograd graph"):
        divergence(lambda t, x: x.detach(), 0.0, x)
    with pytest.raises(TypeError, match="estimator"):
        divergence(lambda t, x: x, 0.0, x, estimator=Exact)
    with pytest.raises(ValueError, match="probes"):
        Hutchinson(0)
    with pytest.raises(ValueError, match="distribution"):
        Hutchinson(2, distribution="uniform")
    with pytest.raises(ValueError, match="t: expected"):
        divergence(lambda t, x: x, torch.zeros(4), x)


# ----------------------------------------------------------------------------------------------
# ODE log-density


@pytest.mark.parametrize("d", [1, 2, 10])
def test_ode_log_density_matches_closed_form(d):
    oracle, (m0, c0, m1, c1), log_rho1, g = gaussian_problem(d)
    x1 = oracle.rho1.sample(8, generator=g)
    drift, log_rho0 = oracle.fields().drift, oracle.rho0.log_prob
    r = ode_log_density(drift, x1, log_rho0=log_rho0, solver=RK4(), steps=16)
    assert (r.log_density - log_rho1(x1)).abs().max() < 1e-5
    assert r.nfe == 64 and r.x0.shape == x1.shape and bool((r.stderr == 0).all())
    # the endpoint is the exact flow map's preimage: (x0 - m0) = C0^{1/2} C1^{-1/2} R (x1 - m1)
    # is not unique in d > 1, but its law is: check log rho0(x0) + int div b = log rho1(x1)
    torch.testing.assert_close(r.log_rho0 - r.divergence_integral, r.log_density)
    # Hutchinson (fresh probes every step): unbiased, within a few standard errors
    if d > 1:
        rh = ode_log_density(
            drift, x1, log_rho0=log_rho0, solver=RK4(), steps=16, divergence=Hutchinson(8), generator=g
        )
        assert ((rh.log_density - log_rho1(x1)).abs() < 4 * rh.stderr + 1e-5).all()


@pytest.mark.parametrize(
    "solver, steps", [(Euler(), (8, 16, 32, 64)), (Heun(), (8, 16, 32, 64)), (RK4(), (4, 8, 16, 32))]
)
def test_ode_log_density_order(solver, steps):
    oracle, _, log_rho1, g = gaussian_problem(2)
    x1 = oracle.rho1.sample(6, generator=g)
    errors = [
        float(
            (
                ode_log_density(
                    oracle.fields().drift, x1, log_rho0=oracle.rho0.log_prob, solver=solver, steps=s
                ).log_density
                - log_rho1(x1)
            )
            .abs()
            .max()
        )
        for s in steps
    ]
    assert abs(fitted_order(steps, errors) - solver.order) < 0.35, errors


def test_hutchinson_ode_error_shrinks_with_the_step():
    """Fresh probes every step: the variance of the log-density is a sum of per-step variances,
    O(h), so 16x the steps gives a 4x smaller standard error (the reported SE is calibrated)."""
    oracle, _, log_rho1, g = gaussian_problem(6)
    x1 = oracle.rho1.sample(64, generator=g)
    se = {}
    for steps in (4, 64):
        r = ode_log_density(
            oracle.fields().drift,
            x1,
            log_rho0=oracle.rho0.log_prob,
            steps=steps,
            divergence=Hutchinson(16),
            generator=g,
        )
        se[steps] = float(r.stderr.pow(2).mean().sqrt())
        z = (r.log_density - log_rho1(x1)) / r.stderr
        assert 0.7 < float(z.pow(2).mean().sqrt()) < 1.5  # ~ t with 15 dof: RMS 1.07
    assert 3.0 < se[4] / se[64] < 5.3, se


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
def test_cuda_float32():
    oracle, _, log_rho1, g = gaussian_problem(3)
    x1 = oracle.rho1.sample(8, generator=g)
    gen = torch.Generator(device="cuda").manual_seed(0)
    for est in (Exact(), Hutchinson(8)):  # the oracle evaluates in the dtype/device of its input
        r = ode_log_density(
            oracle.fields().drift, x1.float().cuda(), log_rho0=oracle.rho0.log_prob, solver=RK4(), steps=16,
            divergence=est, generator=gen,
        )  # fmt: skip
        assert r.log_density.device.type == "cuda" and r.log_density.dtype == torch.float32
        err = (r.log_density.double().cpu() - log_rho1(x1)).abs()
        assert (err < 4 * r.stderr.double().cpu() + 1e-3).all()


def test_ode_log_density_adaptive():
    oracle, _, log_rho1, g = gaussian_problem(2, seed=3)
    x1 = oracle.rho1.sample(6, generator=g)
    r = ode_log_density(oracle.fields().drift, x1, log_rho0=oracle.rho0.log_prob, solver=RK45(rtol=1e-9, atol=1e-9))
    assert (r.log_density - log_rho1(x1)).abs().max() < 1e-7 and r.nfe > 0


def test_forward_and_backward_agree_on_a_mixture():
    """Generate with the ODE from rho0, then integrate the samples back: same log-density and
    the same x0; both equal the mixture's closed-form log-density at the samples."""
    g = torch.Generator().manual_seed(4)
    rho1 = GaussianMixture(
        torch.tensor([0.3, 0.7], dtype=DT),
        torch.tensor([[-1.5, 0.0], [1.0, 1.0]], dtype=DT),
        torch.stack([torch.eye(2, dtype=DT) * 0.3, torch.tensor([[0.5, 0.2], [0.2, 0.4]], dtype=DT)]),
    )
    oracle = InterpolantOracle(Linear(), standard_normal(2), rho1)
    x0 = oracle.rho0.sample(6, generator=g)
    kw = dict(log_rho0=oracle.rho0.log_prob, solver=RK4(), steps=32)
    fwd = ode_sample_log_density(oracle.fields().drift, x0, **kw)
    bwd = ode_log_density(oracle.fields().drift, fwd.x1, **kw)
    torch.testing.assert_close(bwd.x0, x0, atol=1e-6, rtol=0)
    torch.testing.assert_close(bwd.log_density, fwd.log_density, atol=1e-6, rtol=0)
    assert (fwd.log_density - rho1.log_prob(fwd.x1)).abs().max() < 1e-4


def test_gradients_flow_through_the_log_density():
    g = torch.Generator().manual_seed(5)
    x1 = torch.randn(2, 2, generator=g, dtype=DT, requires_grad=True)
    W = torch.randn(2, 2, generator=g, dtype=DT, requires_grad=True)
    log_rho0 = standard_normal(2).log_prob

    def logp(x1, W, est=None):
        drift = lambda t, x: torch.tanh(x @ W.T) * (1.0 + t[:, None])
        gen = torch.Generator().manual_seed(0)  # the same probes at every call of gradcheck
        return ode_log_density(
            drift, x1, log_rho0=log_rho0, solver=Heun(), steps=3, divergence=est, generator=gen, create_graph=True
        ).log_density

    assert torch.autograd.gradcheck(logp, (x1, W))
    assert torch.autograd.gradcheck(lambda x1, W: logp(x1, W, Hutchinson(2)), (x1, W))
    # without create_graph nothing is tracked
    r = ode_log_density(lambda t, x: x @ W.T, x1, log_rho0=log_rho0, steps=2)
    assert not r.log_density.requires_grad and not r.x0.requires_grad


def test_ode_log_density_input_errors():
    x = torch.randn(3, 2, dtype=DT)
    lp = standard_normal(2).log_prob
    with pytest.raises(ValueError, match="log_rho0"):
        ode_log_density(lambda t, x: x, x, log_rho0=lambda x: x, steps=2)
    with pytest.raises(TypeError, match="solver"):
        ode_log_density(lambda t, x: x, x, log_rho0=lp, solver=EulerMaruyama())
    with pytest.raises(ValueError, match="t_range"):
        ode_log_density(lambda t, x: x, x, log_rho0=lp, t_range=(0.5, 0.5))
    with pytest.raises(FloatingPointError, match="NaN"):
        ode_log_density(lambda t, x: x / 0.0, x, log_rho0=lp, steps=2)


# ----------------------------------------------------------------------------------------------
# SDE estimators


def backward_moments(x, params, eps):
    """Mean and covariance at t = 0 of the backward process Y_{t-h} = Y_t - h b_F + sqrt(2 eps h) xi
    from Y_1 = x, for the exact Gaussian b_F = m_dot + J_F (y - m_t), J_F = (C_dot/2 - eps I) C^{-1}
    (docs/math.md §7, linear interpolant, gamma^2 = t(1-t)), and int_0^1 tr J_F dt: by solve_ivp/quad."""
    m0, c0, m1, c1 = (p.numpy() for p in params)
    d = m0.shape[0]
    eye = np.eye(d)

    def jf(t):
        c = (1 - t) ** 2 * c0 + t**2 * c1 + t * (1 - t) * eye
        half_cdot = -(1 - t) * c0 + t * c1 + 0.5 * (1 - 2 * t) * eye
        return (half_cdot - eps * eye) @ np.linalg.inv(c)

    def rhs(t, y):  # d/dt of (mu, Sigma); integrated from t = 1 down to 0
        mu, sig = y[:d], y[d:].reshape(d, d)
        J = jf(t)
        dmu = (m1 - m0) + J @ (mu - ((1 - t) * m0 + t * m1))
        dsig = J @ sig + sig @ J.T - 2 * eps * eye
        return np.concatenate([dmu, dsig.ravel()])

    sol = solve_ivp(rhs, (1.0, 0.0), np.concatenate([x, np.zeros(d * d)]), rtol=1e-10, atol=1e-12)
    mu, sig = sol.y[:d, -1], sol.y[d:, -1].reshape(d, d)
    int_tr = quad(lambda t: np.trace(jf(t)), 0.0, 1.0, epsabs=1e-13)[0]
    return mu, sig, int_tr


def test_feynman_kac_identity_in_closed_form():
    """The derivation itself: with the forward drift and the backward-driven Y, the expectation
    E[exp(-int div b_F) rho0(Y_0)] = exp(-int tr J_F) N(mu; m0, C0 + Sigma) is rho1(x)."""
    oracle, params, log_rho1, g = gaussian_problem(2)
    m0, c0 = params[0], params[1]
    x1 = oracle.rho1.sample(3, generator=g)
    for i in range(3):
        mu, sig, int_tr = backward_moments(x1[i].numpy(), params, eps=0.5)
        lp = torch.distributions.MultivariateNormal(m0, c0 + torch.from_numpy(sig)).log_prob(torch.from_numpy(mu))
        assert abs(float(lp) - int_tr - float(log_rho1(x1[i : i + 1]))) < 1e-6


def test_sde_estimators_match_closed_form():
    oracle, params, log_rho1, g = gaussian_problem(2)
    m0, c0 = params[0], params[1]
    f = oracle.fields()
    x1 = oracle.rho1.sample(3, generator=g)
    exact = log_rho1(x1)
    eps = 0.5
    kw = dict(eps=eps, log_rho0=oracle.rho0.log_prob, steps=20, solver=StochasticHeun(), generator=g)
    # backward Itô: exact fields -> s is the model's score -> unbiased; the control variate cuts the noise
    ito = backward_ito_log_density(f.drift, f.score, x1, paths=256, **kw)
    raw = backward_ito_log_density(f.drift, f.score, x1, paths=256, control_variate=False, **kw)
    for r in (ito, raw):
        assert ((r.log_density - exact).abs() < 4 * r.stderr + 0.01).all(), (r.log_density - exact, r.stderr)
    assert (raw.stderr > 3 * ito.stderr).all()  # measured 4-5x at 20 steps; the residual variance is O(h)
    # Feynman-Kac: log of an unbiased mean, biased down by ~ relvar / (2M)
    fk = feynman_kac_log_density(f.drift, f.score, x1, paths=1024, **kw)
    assert ((fk.log_density - exact).abs() < 4 * fk.stderr + fk.bias.abs() + 0.05).all(), fk.log_density - exact
    assert (fk.bias <= 0).all() and (fk.ess > 50).all()
    # Jensen: a strict lower bound on log rho (upper bound on the NLL), equal to its closed form
    assert (fk.jensen < exact - 3 * fk.jensen_stderr).all() and (fk.jensen <= fk.log_density).all()
    for i in range(3):
        mu, sig, int_tr = backward_moments(x1[i].numpy(), params, eps)
        sig, mu = torch.from_numpy(sig), torch.from_numpy(mu)
        ci = torch.linalg.inv(c0)
        e_log_rho0 = -0.5 * (torch.logdet(2 * math.pi * c0) + torch.trace(ci @ sig) + (mu - m0) @ ci @ (mu - m0))
        want = float(e_log_rho0) - int_tr
        assert abs(float(fk.jensen[i]) - want) < 4 * float(fk.jensen_stderr[i]) + 0.05, (float(fk.jensen[i]), want)


def test_sde_input_errors():
    x = torch.randn(3, 2, dtype=DT)
    kw = dict(log_rho0=standard_normal(2).log_prob, steps=2)
    with pytest.raises(ValueError, match="eps"):
        backward_ito_log_density(lambda t, x: x, lambda t, x: x, x, eps=0.0, **kw)
    with pytest.raises(ValueError, match="paths"):
        feynman_kac_log_density(lambda t, x: x, lambda t, x: x, x, eps=1.0, paths=0, **kw)
    with pytest.raises(TypeError, match="solver"):
        feynman_kac_log_density(lambda t, x: x, lambda t, x: x, x, eps=1.0, solver=RK4(), **kw)
    with pytest.raises(TypeError, match="score"):
        feynman_kac_log_density(lambda t, x: x, None, x, eps=1.0, **kw)


# ----------------------------------------------------------------------------------------------
# KL bound (SI Thm 2.4)


def test_kl_bound_report_against_closed_form():
    """rho0 = rho1 = N(0, 1), trig interpolant: rho(t) = N(0, 1), b = 0, s = -x. With
    b^ = eps delta and s^ = -x + delta the model's rho^(t) = N(e_t, 1), e' = -eps e + 2 eps delta,
    so KL(rho1 || rho^1) = e_1^2 / 2 = 2 delta^2 (1 - exp(-eps))^2, and the excesses are
    eps^2 delta^2 / 2 and delta^2 / 2."""
    oracle = InterpolantOracle(Trig(BrownianGamma()), standard_normal(1), standard_normal(1))
    g = torch.Generator().manual_seed(6)
    delta = 0.5
    x0, x1 = standard_normal(1).sample(300, generator=g), standard_normal(1).sample(300, generator=g)

    def kl_closed(eps):
        return 2 * delta**2 * (1 - math.exp(-eps)) ** 2

    for eps in (0.3, 1.26):
        bh = lambda t, x, eps=eps: oracle.b(t, x) + eps * delta
        sh = lambda t, x: oracle.s(t, x) + delta
        eb = excess_loss(bh, oracle.b, oracle.interp, x0, x1, generator=g)
        es = excess_loss(sh, oracle.s, oracle.interp, x0, x1, generator=g)
        assert abs(eb.value - eps**2 * delta**2 / 2) < 1e-12 and abs(es.value - delta**2 / 2) < 1e-12
        rep = kl_bound_report(eps=eps, excess_b=eb, excess_s=es)
        assert rep.bound >= kl_closed(eps) and math.isnan(rep.kl) and rep.holds is None
        assert abs(rep.eps_star - eps) < 1e-9 and abs(rep.bound_at_eps_star - rep.bound) < 1e-9
    # at eps = 1.26 the bound written with half the constant fails: our constant is needed
    assert eb.value / (2 * eps) + eps / 2 * es.value < kl_closed(eps)
    # measured KL with Feynman-Kac at eps = 0.3 (weights well behaved there)
    eps = 0.3
    bh = lambda t, x: oracle.b(t, x) + eps * delta
    sh = lambda t, x: oracle.s(t, x) + delta
    fk = feynman_kac_log_density(
        bh,
        sh,
        x1,
        eps=eps,
        log_rho0=standard_normal(1).log_prob,
        paths=64,
        steps=20,
        solver=StochasticHeun(),
        generator=g,
    )
    rep = kl_bound_report(
        eps=eps,
        excess_b=excess_loss(bh, oracle.b, oracle.interp, x0, x1, generator=g),
        excess_s=excess_loss(sh, oracle.s, oracle.interp, x0, x1, generator=g),
        log_rho1=standard_normal(1).log_prob(x1),
        log_model=fk.log_density,
    )
    assert abs(rep.kl - kl_closed(eps)) < 4 * rep.kl_stderr + 0.02, (rep.kl, kl_closed(eps), rep.kl_stderr)
    assert rep.holds


def test_excess_loss_monte_carlo_and_training_losses():
    oracle = InterpolantOracle(Trig(BrownianGamma()), standard_normal(2), standard_normal(2))
    g = torch.Generator().manual_seed(7)
    x0, x1 = standard_normal(2).sample(4000, generator=g), standard_normal(2).sample(4000, generator=g)
    c = 0.3  # s^ = s + c x: excess = c^2 / 2 int E|x_t|^2 dt = c^2 d / 2, as x_t ~ N(0, I)
    e = excess_loss(lambda t, x: oracle.s(t, x) + c * x, oracle.s, oracle.interp, x0, x1, generator=g)
    assert abs(e.value - c**2) < 4 * e.stderr and e.is_excess
    tl = training_loss([-1.0, -1.1, -0.9])
    rep = kl_bound_report(eps=1.0, excess_b=tl, excess_s=e)
    assert not tl.is_excess and math.isnan(rep.bound) and math.isnan(rep.eps_star)
    with pytest.raises(TypeError, match="excess_b"):
        kl_bound_report(eps=1.0, excess_b=0.1, excess_s=e)
    with pytest.raises(ValueError, match="eps"):
        kl_bound_report(eps=0.0, excess_b=e, excess_s=e)
    assert isinstance(e, ExcessLoss)


# ----------------------------------------------------------------------------------------------
# command line

# the same tiny configuration as the CLI tests
TINY = ["--steps", "30", "--n-train", "400", "--n-test", "200", "--sample-steps", "20", "--hidden", "16",
        "--batch-size", "64", "--eps", "0.5,1", "--quiet"]  # fmt: skip


@pytest.fixture(scope="module")
def fit_run(tmp_path_factory):
    from bridge.cli import main

    root = tmp_path_factory.mktemp("likelihood_cli")
    assert main(["fit", "--out", str(root / "run"), *TINY]) == 0
    data = np.random.default_rng(0).normal(size=(40, 2))
    np.save(root / "x.npy", data)
    return root


def _edited_run(root, name, **changes):
    """A copy of the fit run with its metadata (and matching weights) edited."""
    from bridge.checkpoint import load_checkpoint, save_checkpoint

    state, meta = load_checkpoint(root / "run" / "checkpoint.pt")
    meta.update(changes)
    state = {k: v for k, v in state.items() if k in meta["fields"]}
    save_checkpoint(root / name / "checkpoint.pt", state, meta)
    return root / name


@pytest.mark.parametrize(
    "extra",
    [
        [],
        ["--divergence", "hutchinson", "--probes", "2"],
        ["--method", "sde", "--paths", "3"],
        ["--method", "sde", "--estimator", "fk", "--paths", "3", "--solver", "euler-maruyama"],
    ],
)
def test_cli_likelihood(fit_run, extra):
    from bridge.cli import main
    from bridge.fit_run import load_fit_run

    out = fit_run / ("out" + "".join(extra))
    args = ["likelihood", "--run", str(fit_run / "run"), "--data", str(fit_run / "x.npy"), "--out", str(out)]
    assert main([*args, "--steps", "8", "--quiet", *extra]) == 0
    nll = np.load(out / "nll.npy")
    summary = json.loads((out / "summary.json").read_text())
    assert nll.shape == (40,) and np.isfinite(nll).all()
    for key in ("nll_nats", "nll_bits_per_dim", "stderr_nats", "method", "wall_s"):
        assert key in summary, key
    assert abs(summary["nll_nats"] - nll.mean()) < 1e-6
    assert abs(summary["nll_bits_per_dim"] - nll.mean() / (2 * math.log(2))) < 1e-6
    if not extra:  # the command computes what the library computes
        fields, _ = load_fit_run(fit_run / "run")
        x = torch.from_numpy(np.load(fit_run / "x.npy")).float()
        r = ode_log_density(fields.drift, x, log_rho0=standard_normal(2, dtype=torch.float32).log_prob, steps=8)
        np.testing.assert_allclose(nll, -r.log_density.double().numpy(), rtol=1e-6, atol=1e-5)


def test_cli_likelihood_errors(fit_run, capsys):
    from bridge.cli import main

    bad = np.ones((5, 2))
    bad[1, 0] = np.nan
    np.save(fit_run / "nan.npy", bad)
    np.save(fit_run / "d3.npy", np.ones((5, 3)))
    moons = _edited_run(fit_run, "moons_run", source="moons")
    b_only = _edited_run(fit_run, "b_only", fields=["b"])
    run, data = str(fit_run / "run"), str(fit_run / "x.npy")
    cases = [
        (["--run", str(fit_run / "nope"), "--data", data], "--run"),
        (["--run", run, "--data", str(fit_run / "d3.npy")], "dimension 3"),
        (["--run", run, "--data", str(fit_run / "nan.npy")], "NaN"),
        (["--run", str(moons), "--data", data], "known density"),
        (["--run", str(b_only), "--data", data, "--method", "sde"], "score"),
        (["--run", run, "--data", data, "--method", "sde", "--solver", "rk4"], "--solver"),
        (["--run", run, "--data", data, "--eps", "0"], "--eps"),
    ]
    for extra, word in cases:
        try:
            rc = main(["likelihood", "--out", str(fit_run / "bad"), "--quiet", *extra])
        except SystemExit as exc:  # argparse-level errors
            rc = exc.code
        err = capsys.readouterr().err.strip()
        assert rc == 2, (extra, err)
        assert word in err and len(err.splitlines()) == 1 and "Traceback" not in err, err
    assert not (fit_run / "bad").exists()  # nothing written by a failed run
