"""Tests for bridge.ot: POT / geomloss entropic plans in the SB convention (reg = 4 eps).

Independent references: the closed-form plan of a 2 x 2 problem, the defining formula of the
plan from its potentials, the two solvers against each other, and limits (eps -> infinity).
The Gaussian closed form against POT is in tests/reference/test_gaussian_sb.py and the mixture
benchmark against POT in tests/reference/test_sb_mixture.py.

Tolerances:

| check                                              | tolerance | reason                                                     |
|----------------------------------------------------|-----------|------------------------------------------------------------|
| 2 x 2 plan vs closed form                           | 1e-9      | converged to marginal error 1e-12; float64                 |
| plan = exp((f + g - M)/reg); rows of the conditional | 1e-12     | same numbers, two float64 routes                           |
| marginals of a converged plan                       | tol       | the solver's own guarantee, re-measured here               |
| POT vs geomloss+refinement: plans (L1), potentials  | 1e-5      | both stop at marginal L1 error <= 1e-7; plan error ~ 10x it |
| conditional_sample frequencies                      | |z| < 5   | binomial standard errors, 20000 draws                      |
| eps -> infinity: barycentric map -> target mean      | 1e-3      | reg = 4e4: first-order deviation ~ Var/reg ~ 1e-4          |
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from bridge.ot import ConvergenceError, EntropicPlanResult, entropic_plan, entropic_potentials

F64 = torch.float64


def gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def clouds(n=150, m=120, d=2, seed=0):
    g = gen(seed)
    x0 = torch.randn(n, d, generator=g, dtype=F64)
    x1 = 0.7 * torch.randn(m, d, generator=g, dtype=F64) + torch.tensor([1.0, 0.5][:d] + [0.0] * (d - 2), dtype=F64)
    return x0, x1


@pytest.mark.parametrize("eps", [0.1, 0.5, 2.0])
def test_two_point_plan_matches_closed_form(eps):
    # x = (0, 1), y = (0, 2), uniform weights: P = [[p, 1/2 - p], [1/2 - p, p]] and the product
    # form gives (p / (1/2 - p))^2 = exp(Delta / reg), Delta = M12 + M21 - M11 - M22 = 4.
    x0 = torch.tensor([[0.0], [1.0]], dtype=F64)
    x1 = torch.tensor([[0.0], [2.0]], dtype=F64)
    res = entropic_plan(x0, x1, eps, tol=1e-12)
    s = math.exp(4.0 / (2 * 4 * eps))
    p = 0.5 * s / (1 + s)
    want = torch.tensor([[p, 0.5 - p], [0.5 - p, p]], dtype=F64)
    assert torch.allclose(res.plan, want, atol=1e-9, rtol=0)
    assert res.reg == 4 * eps and res.solver == "pot" and res.converged


def test_plan_potentials_and_conditionals_are_consistent():
    x0, x1 = clouds()
    res = entropic_plan(x0, x1, 0.25, tol=1e-9)
    n, m = res.plan.shape
    assert res.marginal_error <= 1e-9
    assert float((res.plan.sum(1) - 1 / n).abs().sum()) <= 1e-9
    assert float((res.plan.sum(0) - 1 / m).abs().sum()) <= 1e-9
    # the plan is exp((f_i + g_j - |x_i - y_j|^2)/reg) with the returned potentials
    M = torch.cdist(x0, x1) ** 2
    assert torch.allclose(res.plan, torch.exp((res.f[:, None] + res.g[None, :] - M) / res.reg), atol=1e-12, rtol=0)
    assert torch.allclose(res.plan_matrix(), res.plan, atol=1e-12, rtol=0)
    # out of sample at the training points: pi(y_j | x_i) = P_ij / a_i (row marginal exact)
    cond = res.log_conditional(x0).exp()
    assert torch.allclose(cond, res.plan * n, atol=1e-10, rtol=0)
    assert torch.allclose(res.barycentric_map(), res.plan @ x1 * n, atol=1e-10, rtol=0)
    assert torch.allclose(res.barycentric_map(x0), res.barycentric_map(), atol=1e-12, rtol=0)
    # a new point: rows are probability vectors
    x_new = torch.randn(5, 2, generator=gen(9), dtype=F64)
    assert torch.allclose(res.log_conditional(x_new).exp().sum(1), torch.ones(5, dtype=F64), atol=1e-12, rtol=0)
    # cross-covariance and cost from the plan
    xc, yc = x0 - x0.mean(0), x1 - x1.mean(0)
    assert torch.allclose(res.cross_covariance(), xc.T @ res.plan @ yc, atol=1e-12, rtol=0)
    assert res.transport_cost() == pytest.approx(float((res.plan * M).sum()), rel=1e-12)


def test_large_eps_is_the_independent_plan_and_the_mean_map():
    x0, x1 = clouds()
    res = entropic_plan(x0, x1, 1e4)
    assert torch.allclose(res.plan, torch.full_like(res.plan, 1 / res.plan.numel()), rtol=1e-3, atol=0)
    x_new = torch.randn(4, 2, generator=gen(2), dtype=F64)
    assert torch.allclose(res.barycentric_map(x_new), x1.mean(0).expand(4, 2), atol=1e-3, rtol=0)


def test_non_convergence_raises_instead_of_returning_a_bad_plan():
    # A 2 x 2 problem at small eps: Sinkhorn contracts by ~tanh(Delta / 4 reg), essentially 1,
    # so it cannot converge in 50 iterations.
    x0 = torch.tensor([[0.0], [1.0]], dtype=F64)
    x1 = x0 + 1.0
    with pytest.raises(
        ConvergenceError, match=r"marginal error .* > tol 1e-06 after \d+ iterations at reg = 4 eps = 0.04"
    ):
        entropic_plan(x0, x1, 0.01, max_iter=50)
    res = entropic_plan(x0, x1, 0.01, max_iter=50, check=False)
    assert not res.converged and res.marginal_error > 1e-6
    assert not torch.allclose(res.plan, torch.full_like(res.plan, 0.25))  # never the independent plan
    # geomloss's eps-scaling start solves this one (what the error message recommends) ...
    assert entropic_potentials(x0, x1, 0.01).converged
    # ... and its refinement reports failure the same way
    with pytest.raises(ConvergenceError, match="^entropic_potentials: marginal error .* after 1 Sinkhorn sweeps"):
        entropic_potentials(*clouds(), 0.01, max_iter=1, tol=1e-12)


@pytest.mark.parametrize("start", ["geomloss", "anneal"])
@pytest.mark.parametrize("eps", [0.05, 0.5])
def test_geomloss_potentials_agree_with_pot(eps, start):
    x0, x1 = clouds(seed=3)
    pot = entropic_plan(x0, x1, eps, tol=1e-7, max_iter=100_000)
    gl = entropic_potentials(x0, x1, eps, tol=1e-7, start=start, max_iter=20_000)
    assert gl.solver == start and gl.converged and gl.marginal_error <= 1e-7
    P = gl.plan_matrix()
    # the reported marginal error is the plan's (recomputed here)
    err = max(float((P.sum(1) - 1 / 150).abs().sum()), float((P.sum(0) - 1 / 120).abs().sum()))
    assert err <= 1.01e-7
    assert float((P - pot.plan).abs().sum()) < 1e-5
    shift = float((pot.f - gl.f).mean())
    assert float((pot.f - gl.f - shift).abs().max()) < 1e-5 * pot.reg
    assert float((pot.g - gl.g + shift).abs().max()) < 1e-5 * pot.reg
    x_new = torch.randn(20, 2, generator=gen(4), dtype=F64)
    assert torch.allclose(gl.barycentric_map(x_new), pot.barycentric_map(x_new), atol=1e-5, rtol=0)


def test_conditional_sample_frequencies():
    x0, x1 = clouds(n=40, m=30)
    res = entropic_plan(x0, x1, 0.5)
    x = torch.tensor([[0.3, -0.2]], dtype=F64)
    draws = res.conditional_sample(x, 20_000, generator=gen(1))[0]
    assert draws.shape == (20_000, 2)
    idx = torch.cdist(draws, x1).argmin(1)  # draws are target samples
    assert torch.equal(x1[idx], draws)
    freq = torch.bincount(idx, minlength=30).to(F64) / 20_000
    p = res.log_conditional(x).exp()[0]
    z = (freq - p) / (p * (1 - p) / 20_000).clamp_min(1e-300).sqrt()
    assert float(z[p > 1e-4].abs().max()) < 5
    assert torch.equal(res.conditional_sample(x, 7, generator=gen(3)), res.conditional_sample(x, 7, generator=gen(3)))


def test_inputs_are_validated_and_converted():
    x0, x1 = clouds(n=20, m=15)
    res = entropic_plan(x0.float(), x1.numpy(), 0.5)
    assert isinstance(res, EntropicPlanResult) and res.plan.dtype == F64
    with pytest.raises(ValueError, match="^eps: expected a finite number > 0"):
        entropic_plan(x0, x1, 0.0)
    with pytest.raises(TypeError, match="^eps: expected a number > 0"):
        entropic_plan(x0, x1, "1")
    with pytest.raises(ValueError, match="^x0 has dimension 2 but x1 has dimension 3$"):
        entropic_plan(x0, torch.zeros(4, 3, dtype=F64), 0.5)
    bad = x1.clone()
    bad[0, 0] = float("nan")
    with pytest.raises(ValueError, match="^x1: NaN or Inf in 1 of 15 rows"):
        entropic_plan(x0, bad, 0.5)
    with pytest.raises(ValueError, match="^max_iter: expected a positive int"):
        entropic_plan(x0, x1, 0.5, max_iter=0)
    with pytest.raises(ValueError, match="^tol: expected a finite number > 0"):
        entropic_plan(x0, x1, 0.5, tol=-1.0)
    with pytest.raises(ValueError, match=r"^scaling: expected a number in \(0, 1\)"):
        entropic_potentials(x0, x1, 0.5, scaling=1.0)
    with pytest.raises(ValueError, match="start"):
        entropic_potentials(x0, x1, 0.5, start="keops")
    with pytest.raises(ValueError, match=r"^x: expected shape \(N, 2\), got \(3, 3\)"):
        res.barycentric_map(torch.zeros(3, 3, dtype=F64))
    with pytest.raises(ValueError, match="^k: expected a positive int"):
        res.conditional_sample(torch.zeros(1, 2, dtype=F64), 0)
    assert np.isfinite(res.value())


def test_minibatch_log_plan_matches_pot():
    """The dense log-domain minibatch solver against POT's log-domain Sinkhorn (entropic_plan), at
    a tight tolerance; and at a moderate eps where the annealed start matters."""
    from bridge.ot import entropic_plan, minibatch_log_plan

    g = torch.Generator().manual_seed(0)
    x0, x1 = torch.randn(40, 3, generator=g, dtype=torch.float64), torch.randn(50, 3, generator=g, dtype=torch.float64)
    for eps in (0.25, 0.02):
        res = minibatch_log_plan(x0, x1 + 2.0, eps, tol=1e-9, max_iter=20000)
        ref = entropic_plan(x0, x1 + 2.0, eps, tol=1e-9, max_iter=200000)
        assert res.marginal_error <= 1e-9
        torch.testing.assert_close(res.log_plan.exp(), ref.plan, rtol=0, atol=1e-9)
    with pytest.raises(ValueError, match="eps"):
        minibatch_log_plan(x0, x1, 0.0)


def test_minibatch_warm_start_matches_pot(monkeypatch):
    """A plan started warm from another minibatch's source potential is the same plan (against
    POT), and at a loose tolerance it needs fewer sweeps than the cold start."""
    from bridge.ot import entropic_plan, minibatch_log_plan

    g = torch.Generator().manual_seed(1)
    draw = lambda n: torch.randn(n, 2, generator=g, dtype=torch.float64) * torch.tensor([1.0, 0.3], dtype=F64)
    xp, yp, x0, x1 = draw(60), draw(60) + 1.5, draw(50), draw(40) + 1.5
    eps = 0.02
    f_prev = minibatch_log_plan(xp, yp, eps, tol=1e-6, max_iter=5000).potential
    res = minibatch_log_plan(x0, x1, eps, tol=1e-9, max_iter=20000, warm=(xp, f_prev))
    ref = entropic_plan(x0, x1, eps, tol=1e-9, max_iter=200000)
    assert res.marginal_error <= 1e-9
    torch.testing.assert_close(res.log_plan.exp(), ref.plan, rtol=0, atol=1e-9)

    def half_sweeps(warm):  # logsumexp passes, annealing included
        calls = []
        real = torch.logsumexp
        monkeypatch.setattr(torch, "logsumexp", lambda *a, **k: calls.append(1) or real(*a, **k))
        assert minibatch_log_plan(x0, x1, eps, tol=1e-2, max_iter=500, warm=warm).marginal_error <= 1e-2
        monkeypatch.undo()
        return len(calls)

    assert half_sweeps((xp, f_prev)) < half_sweeps(None)
    with pytest.raises(ValueError, match=r"^warm: expected"):
        minibatch_log_plan(x0, x1, eps, warm=(xp[:, :1], f_prev))
