"""Tests for bridge.reference.sb_mixture: the SB benchmark with a known plan (docs/math.md §7).

Independent checks: the conditional density against numerical quadrature of its definition
N(y; x, rI) g(y) / Z(x); the EOT certificate d^2/dx dy log pi(y|x) = I/r (autograd); the
one-component case against the Gaussian closed form of docs/math.md §7 (a different derivation); the
drift against autograd of log h and the backward heat equation; the drift's SDE against the
exact conditional moments and the Brownian-bridge marginals; POT's discrete plan on samples.

Tolerances:

| check                                                 | tolerance  | reason                                                          |
|-------------------------------------------------------|------------|-----------------------------------------------------------------|
| pi(y|x) vs quadrature of N(y;x,r) g(y) / Z(x), d = 1  | 1e-8       | 4001-point trapezoid on [-12, 12] of a smooth, decayed integrand |
| certificate d2/dxdy log pi(y|x) = I/r                 | 1e-8       | exact identity; float64 autograd                                |
| K = 1 against GaussianSB (C, target cov, drift)       | 1e-10      | two closed forms of the same Gaussian plan                      |
| drift = r grad log h; d_t h + (r/2) Lap h = 0          | 1e-9       | exact identities; float64 autograd                              |
| SDE (Heun, 100 steps) vs exact moments                 | |z| < 5    | 1000 paths per point, SE from 20000 exact draws; up to ~1100 z-values per case (max |z| ~ 3.5 expected); weak order 2 bias ~ 1e-3 << SE ~ 1e-2 |
| sampler vs conditional moments                         | |z| < 5    | 20000 draws; SE from the draws themselves                       |
| target_moments (Rao–Blackwell) vs plain sample moments | |z| < 5    | standard errors of the plain estimate dominate                  |
| POT out-of-sample barycentric map vs exact, d=2 r=1    | 0.8 % L2-UVP (mean of 2 seeds) | observed 0.015-0.47 % per seed at n = 1000; a factor-2 error in r gives > 1.1 % |
"""

from __future__ import annotations

import math

import pytest
import torch

from bridge.ot import entropic_plan
from bridge.reference import GaussianMixture, SBMixtureBenchmark, gaussian, gaussian_sb, make_mixture_benchmark
from bridge.samplers import StochasticHeun, sample_sde

F64 = torch.float64


def gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def random_spd(d: int, seed: int, lo: float, hi: float) -> torch.Tensor:
    g = gen(seed)
    q, _ = torch.linalg.qr(torch.randn(d, d, generator=g, dtype=F64))
    lam = lo + (hi - lo) * torch.rand(d, generator=g, dtype=F64)
    return (q * lam) @ q.T


def anisotropic_benchmark(d: int, eps: float) -> SBMixtureBenchmark:
    """A two-component source and a three-component potential with rotated, anisotropic covariances."""
    g = gen(11)
    source = GaussianMixture(
        torch.tensor([0.3, 0.7], dtype=F64),
        torch.randn(2, d, generator=g, dtype=F64),
        torch.stack([random_spd(d, 1, 0.3, 1.0), random_spd(d, 2, 0.5, 1.5)]),
    )
    potential = GaussianMixture(
        torch.tensor([0.2, 0.5, 0.3], dtype=F64),
        2 * torch.randn(3, d, generator=g, dtype=F64),
        torch.stack([random_spd(d, 3 + k, 0.05, 0.6) for k in range(3)]),
    )
    return SBMixtureBenchmark(source, potential, eps=eps)


# --------------------------------------------------------------------------------------------
# the plan
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("r", [0.1, 1.0, 10.0])
def test_conditional_density_matches_quadrature_of_its_definition(r):
    # pi(y|x) = N(y; x, r) g(y) / int N(y'; x, r) g(y') dy', evaluated on a grid in d = 1.
    bench = anisotropic_benchmark(1, r / 2)
    grid = torch.linspace(-12.0, 12.0, 4001, dtype=F64)
    g_y = bench.potential.log_prob(grid.unsqueeze(1)).exp()
    for x in (-1.5, 0.2, 2.0):
        kernel = torch.distributions.Normal(torch.tensor(x, dtype=F64), math.sqrt(r)).log_prob(grid).exp()
        dens = kernel * g_y
        dens = dens / torch.trapezoid(dens, grid)
        xs = torch.full((len(grid), 1), x, dtype=F64)
        got = bench.conditional_log_prob(xs, grid.unsqueeze(1)).exp()
        assert (got - dens).abs().max() < 1e-8
        # and the moments of the quadrature density
        mean = torch.trapezoid(grid * dens, grid)
        var = torch.trapezoid((grid - mean) ** 2 * dens, grid)
        assert bench.conditional_mean(xs[:1]).item() == pytest.approx(mean.item(), abs=1e-8)
        assert bench.conditional_cov(xs[:1]).item() == pytest.approx(var.item(), abs=1e-8)


@pytest.mark.parametrize("d,eps", [(1, 0.05), (3, 0.5), (4, 5.0)])
def test_plan_certificate_cross_derivative_is_identity_over_r(d, eps):
    # The plan is the EOT plan iff log pi(x, y) = phi(x) + psi(y) + x.y / r: the mixed second
    # derivative of log pi(y|x) (= log pi(x, y) - log p0(x)) is I/r everywhere.
    bench = anisotropic_benchmark(d, eps)
    g = gen(3)
    for _ in range(4):
        x = 1.5 * torch.randn(d, generator=g, dtype=F64)
        y = 1.5 * torch.randn(d, generator=g, dtype=F64)

        def grad_y(xx, y=y):
            yy = y.clone().requires_grad_(True)
            lp = bench.conditional_log_prob(xx.unsqueeze(0), yy.unsqueeze(0)).sum()
            return torch.autograd.grad(lp, yy, create_graph=True)[0]

        cross = torch.autograd.functional.jacobian(grad_y, x)
        assert torch.allclose(cross * bench.r, torch.eye(d, dtype=F64), atol=1e-8, rtol=0)


@pytest.mark.parametrize("d,eps", [(1, 0.5), (3, 0.2)])
def test_single_component_is_the_gaussian_closed_form(d, eps):
    # With one potential component N(mu, S) the plan is Gaussian: y | x ~ N(mu + G (x - mu), P),
    # G = S (S + rI)^{-1}; so rho1 = N(mu + G(a - mu), G A G^T + P) and Cov(x, y) = A G^T. The
    # docs/math.md §7 Gaussian formulas (Janati et al.) must give the same C and the same SB drift.
    a, A = torch.randn(d, generator=gen(1), dtype=F64), random_spd(d, 5, 0.4, 1.5)
    mu, S = torch.randn(d, generator=gen(2), dtype=F64) + 1, random_spd(d, 6, 0.2, 1.0)
    bench = SBMixtureBenchmark(gaussian(a, A), gaussian(mu, S), eps=eps)
    r = bench.r
    G = S @ torch.linalg.inv(S + r * torch.eye(d, dtype=F64))
    P = torch.linalg.inv(torch.linalg.inv(S) + torch.eye(d, dtype=F64) / r)
    b, B = mu + G @ (a - mu), G @ A @ G.T + P
    sb = gaussian_sb(a, A, b, (B + B.T) / 2, eps=eps)
    assert torch.allclose(sb.C, A @ G.T, atol=1e-10, rtol=0)
    x = torch.randn(5, d, generator=gen(3), dtype=F64)
    assert torch.allclose(bench.conditional_mean(x), sb.conditional_mean(x), atol=1e-10, rtol=0)
    assert torch.allclose(bench.conditional_cov(x)[0], sb.conditional_cov(), atol=1e-10, rtol=0)
    for t in (0.0, 0.4, 1.0):
        assert torch.allclose(bench.drift(t, x), sb.drift(t, x), atol=1e-10, rtol=0)


# --------------------------------------------------------------------------------------------
# the drift
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("t", [0.0, 0.5, 0.9, 1.0])
def test_drift_is_r_grad_log_h_and_h_solves_the_backward_heat_equation(t):
    bench = anisotropic_benchmark(3, 0.5)
    x = torch.randn(4, 3, generator=gen(4), dtype=F64).requires_grad_(True)
    grad = torch.autograd.grad(bench.log_h(t, x).sum(), x)[0]
    assert torch.allclose(bench.drift(t, x.detach()), bench.r * grad, atol=1e-9, rtol=0)
    # h(1) = g
    assert torch.allclose(bench.log_h(1.0, x.detach()), bench.potential.log_prob(x.detach()), atol=1e-12, rtol=0)
    # d_t h + (r/2) Lap h = 0: the h-transform of the reference sqrt(r) W
    for xi in x.detach():
        tt = torch.tensor(t, dtype=F64, requires_grad=True)
        xx = xi.clone().requires_grad_(True)
        h = bench.log_h(tt.expand(1), xx.unsqueeze(0)).exp()[0]
        dt_h, g = torch.autograd.grad(h, (tt, xx), create_graph=True)
        lap = sum(torch.autograd.grad(g[i], xx, retain_graph=True)[0][i] for i in range(3))
        assert abs((dt_h + bench.r / 2 * lap).item()) < 1e-9 * max(1.0, h.item())


def z_max(samples: torch.Tensor, mean: torch.Tensor, cov: torch.Tensor, reference: torch.Tensor) -> float:
    """Largest |z| of the sample mean and covariance entries of ``samples`` against the exact
    ``mean``, ``cov``. Standard errors: ``sqrt(diag(cov) / n)`` for the mean and, for covariance
    entries, the sd of the products ``(y_i - m_i)(y_j - m_j)`` over ``reference``, a large set of
    exact draws (the samples' own sd is unreliable for mixtures with rare components)."""
    n = samples.shape[0]
    zm = (samples.mean(0) - mean) / (torch.diagonal(cov) / n).sqrt()
    c = samples - samples.mean(0)
    rc = reference - mean
    se = (rc.unsqueeze(2) * rc.unsqueeze(1)).std(0) / math.sqrt(n)
    zc = ((c.unsqueeze(2) * c.unsqueeze(1)).sum(0) / (n - 1) - cov) / se
    return float(torch.cat([zm.abs(), zc.abs().flatten()]).max())


@pytest.mark.parametrize(
    "d,r", [(2, 0.1), (2, 1.0), (2, 10.0), pytest.param(16, 1.0, marks=pytest.mark.slow)]
)  # d = 16: ~1.5 s
def test_sde_with_the_drift_reproduces_the_plan(d, r):
    # dX = u dt + sqrt(r) dW from fixed x0: X_1 must have the exact conditional moments of
    # y | x0, and X_0.5 the Brownian-bridge moments (1-t) x0 + t m(x0), t^2 Cov(y|x0) + r t(1-t) I.
    bench = make_mixture_benchmark(d, r=r, generator=gen(0))
    n_x, paths, steps = (3, 1000, 100) if d == 2 else (2, 1000, 100)
    xs = bench.sample_source(n_x, generator=gen(1))
    x = xs.repeat_interleave(paths, 0)
    out = sample_sde(
        bench.drift, x, eps=bench.eps, steps=steps, solver=StochasticHeun(), generator=gen(2), trajectory=True
    )
    y1 = out.x.view(n_x, paths, d)
    yh = out.trajectory[steps // 2].view(n_x, paths, d)
    m, C = bench.conditional_mean(xs), bench.conditional_cov(xs)
    eye = torch.eye(d, dtype=F64)
    ref = bench.sample_conditional(xs, 20_000, generator=gen(3))  # exact draws, for the standard errors
    ref_h = 0.5 * xs.unsqueeze(1) + 0.5 * ref + math.sqrt(r / 4) * torch.randn(ref.shape, generator=gen(4), dtype=F64)
    for i in range(n_x):
        assert z_max(y1[i], m[i], C[i], ref[i]) < 5
        assert z_max(yh[i], 0.5 * xs[i] + 0.5 * m[i], 0.25 * C[i] + 0.25 * r * eye, ref_h[i]) < 5


# --------------------------------------------------------------------------------------------
# samplers
# --------------------------------------------------------------------------------------------


def test_conditional_sampler_matches_the_exact_moments():
    bench = anisotropic_benchmark(3, 0.5)
    x = torch.randn(3, 3, generator=gen(5), dtype=F64)
    y = bench.sample_conditional(x, 20_000, generator=gen(6))
    m, C = bench.conditional_mean(x), bench.conditional_cov(x)
    for i in range(3):
        assert z_max(y[i], m[i], C[i], y[i]) < 5
    assert torch.equal(
        bench.sample_conditional(x, 4, generator=gen(1)), bench.sample_conditional(x, 4, generator=gen(1))
    )


def test_target_moments_match_target_samples():
    bench = make_mixture_benchmark(2, r=1.0, generator=gen(0))
    m, S = bench.target_moments(50_000, generator=gen(1))
    y = bench.sample_target(50_000, generator=gen(2))
    assert z_max(y, m, S, y) < 5
    xt = bench.sample_marginal(1.0, 20_000, generator=gen(3))  # t = 1: the target
    assert z_max(xt, m, S, y) < 5
    x0 = bench.sample_marginal(0.0, 20_000, generator=gen(4))  # t = 0: the source N(0, I)
    assert z_max(x0, torch.zeros(2, dtype=F64), torch.eye(2, dtype=F64), x0) < 5


def test_pot_plan_on_samples_recovers_the_exact_conditional_mean():
    # POT's discrete EOT plan (reg = 4 eps = 2r) between source and target samples, used out of
    # sample through its potentials, against the exact E[y|x]: an independent solver.
    bench = make_mixture_benchmark(2, r=1.0, generator=gen(0))
    _, S = bench.target_moments(20_000, generator=gen(9))
    tr = float(torch.trace(S))
    xt = bench.sample_source(300, generator=gen(5))
    exact = bench.conditional_mean(xt)
    errs = []
    for seed in (0, 1):
        g = gen(seed)
        x0, x1 = bench.sample_source(1000, generator=g), bench.sample_target(1000, generator=g)
        res = entropic_plan(x0, x1, bench.eps)
        errs.append(100 * float(((res.barycentric_map(xt) - exact) ** 2).sum(1).mean()) / tr)
    assert sum(errs) / len(errs) < 0.8
    for factor in (0.5, 2.0):  # a factor-2 slip in r is caught
        wrong = SBMixtureBenchmark(bench.source, bench.potential, eps=factor * bench.eps)
        assert 100 * float(((wrong.conditional_mean(xt) - exact) ** 2).sum(1).mean()) / tr > 1.1


# --------------------------------------------------------------------------------------------
# the generator
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("d", [2, 16, 64])
@pytest.mark.parametrize("r", [0.1, 1.0, 10.0])
def test_make_mixture_benchmark_grid(d, r):
    bench = make_mixture_benchmark(d, r=r, generator=gen(0))
    assert bench.dim == d and bench.r == r and bench.eps == r / 2
    p = bench.potential
    assert p.n_components == 5
    # Latin grid: every coordinate is a permutation of the same 5 values; unit scale overall
    sorted_cols = p.means.sort(dim=0).values
    assert torch.allclose(sorted_cols, sorted_cols[:, :1].expand(5, d))
    assert float((p.means**2).mean() + 0.1) == pytest.approx(1.0, abs=1e-12)
    x0, x1 = bench.sample_plan(64, generator=gen(1))
    assert x1.shape == (64, d) and bool(torch.isfinite(x1).all())
    for t in (0.0, 0.5, 1.0):
        assert bool(torch.isfinite(bench.drift(t, x0)).all())
    assert bool(torch.isfinite(bench.conditional_cov(x0[:8])).all())
    # seeded: same generator seed, same benchmark
    again = make_mixture_benchmark(d, eps=r / 2, generator=gen(0))
    assert torch.equal(again.potential.means, p.means) and torch.equal(again.potential.weights, p.weights)


def test_input_errors():
    with pytest.raises(ValueError, match="exactly one of eps or r"):
        make_mixture_benchmark(2)
    with pytest.raises(ValueError, match="^r: expected a finite number > 0"):
        make_mixture_benchmark(2, r=-1.0)
    with pytest.raises(ValueError, match="^d: expected a positive int"):
        make_mixture_benchmark(0, r=1.0)
    with pytest.raises(ValueError, match=r"^component_var: expected a number in \(0, 1\)"):
        make_mixture_benchmark(2, r=1.0, component_var=1.0)
    with pytest.raises(TypeError, match="^potential: expected a GaussianMixture"):
        SBMixtureBenchmark(gaussian([0.0], 1.0), "g", eps=0.5)
    with pytest.raises(ValueError, match="^potential: dimension 2 does not match the source dimension 1"):
        SBMixtureBenchmark(gaussian([0.0], 1.0), gaussian([0.0, 0.0], 1.0), eps=0.5)
    bench = make_mixture_benchmark(2, r=1.0, generator=gen(0))
    with pytest.raises(ValueError, match=r"^x: expected shape \(n, 2\), got \(3,\)"):
        bench.drift(0.5, torch.zeros(3, dtype=F64))
    with pytest.raises(ValueError, match="^y: expected 3 rows to pair with x, got 2"):
        bench.conditional_log_prob(torch.zeros(3, 2, dtype=F64), torch.zeros(2, 2, dtype=F64))
    with pytest.raises(ValueError, match="^t: expected a number or shape"):
        bench.drift(torch.zeros(2, dtype=F64), torch.zeros(3, 2, dtype=F64))
    with pytest.raises(ValueError, match="^k: expected a positive int"):
        bench.sample_conditional(torch.zeros(3, 2, dtype=F64), 0)
