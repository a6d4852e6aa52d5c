"""The Gaussian-mixture potential family (bridge.sb.MixturePotential, docs/math.md §5.10), each
formula against something independent: the closed-form Gaussian SB and the mixture benchmark
(both in the family), autograd (drift = r grad log phi; the backward heat equation), quadrature
(the normaliser c), torch.distributions (the conditional density), and the SDE of the drift
(the exact samples)."""

import math

import pytest
import torch
from torch.distributions import Categorical, MixtureSameFamily, MultivariateNormal

from bridge.reference import gaussian_sb, make_mixture_benchmark
from bridge.samplers import StochasticHeun, sample_sde
from bridge.sb import MixturePotential
from bridge.sb.potential import TIME_BLOCK

DT = torch.float64
TIMES = (0.0, 0.2, 0.5, 0.8, 1.0)


def _spd(d: int, g: torch.Generator, lo: float = 0.3, hi: float = 2.0) -> torch.Tensor:
    q, _ = torch.linalg.qr(torch.randn(d, d, generator=g, dtype=DT))
    return (q * (lo + (hi - lo) * torch.rand(d, generator=g, dtype=DT))) @ q.T


def random_potential(d: int, K: int, covariance: str, eps: float = 0.3, seed: int = 0) -> MixturePotential:
    g = torch.Generator().manual_seed(seed)
    weights = 0.5 + torch.rand(K, generator=g, dtype=DT)
    means = torch.randn(K, d, generator=g, dtype=DT)
    if covariance == "full":
        covs = torch.stack([_spd(d, g) for _ in range(K)])
    else:
        covs = 0.3 + 1.7 * torch.rand(K, d, generator=g, dtype=DT)
    return MixturePotential.from_components(weights, means, covs, eps)


def gaussian_problem(d: int = 3, eps: float = 0.3, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    a, A = torch.randn(d, generator=g, dtype=DT), _spd(d, g, 0.5, 2.0)
    b, B = torch.randn(d, generator=g, dtype=DT), _spd(d, g, 0.5, 2.0)
    return gaussian_sb(a, A, b, B, eps=eps)


def gaussian_sb_potential(sb) -> MixturePotential:
    """K = 1: x1 | x0 ~ N(b + S (x0 - a), r S) with S = A^{-1} C (symmetric), so mu = b - S a."""
    S = torch.linalg.solve(sb.A, sb.C)
    S = (S + S.mT) / 2
    return MixturePotential.from_components(torch.ones(1, dtype=DT), (sb.b - S @ sb.a)[None], S[None], sb.eps)


def benchmark_potential(bench) -> MixturePotential:
    """The benchmark's exact potential (checked against the benchmark's own conditional and drift below)."""
    return MixturePotential.from_mixture_benchmark(bench)


# -- the family contains the two closed forms ---------------------------------------------------
def test_gaussian_sb_is_in_the_family():
    sb = gaussian_problem()
    pot = gaussian_sb_potential(sb)
    x = torch.randn(7, 3, generator=torch.Generator().manual_seed(1), dtype=DT)
    cond = pot.conditional(x)
    torch.testing.assert_close(cond.mean(), sb.conditional_mean(x), atol=1e-10, rtol=0)
    torch.testing.assert_close(cond.cov(), sb.conditional_cov().expand(7, 3, 3), atol=1e-10, rtol=0)
    for t in TIMES:
        torch.testing.assert_close(pot.drift(t, x), sb.drift(t, x), atol=1e-10, rtol=0)
    t_rows = torch.rand(7, generator=torch.Generator().manual_seed(2), dtype=DT)
    torch.testing.assert_close(pot.drift(t_rows, x), sb.drift(t_rows, x), atol=1e-10, rtol=0)


@pytest.mark.parametrize("d", [2, 5])
def test_mixture_benchmark_is_in_the_family(d):
    bench = make_mixture_benchmark(d, r=1.0, generator=torch.Generator().manual_seed(0))
    pot = benchmark_potential(bench)
    x = 1.5 * torch.randn(9, d, generator=torch.Generator().manual_seed(1), dtype=DT)
    cond = pot.conditional(x)
    torch.testing.assert_close(cond.mean(), bench.conditional_mean(x), atol=1e-10, rtol=0)
    torch.testing.assert_close(cond.cov(), bench.conditional_cov(x), atol=1e-10, rtol=0)
    for t in TIMES:
        torch.testing.assert_close(pot.drift(t, x), bench.drift(t, x), atol=1e-10, rtol=0)


# -- the closed forms against autograd and quadrature -------------------------------------------
@pytest.mark.parametrize("covariance", ["diagonal", "full"])
def test_drift_is_r_grad_log_phi(covariance):
    pot = random_potential(3, 4, covariance)
    x = torch.randn(6, 3, generator=torch.Generator().manual_seed(1), dtype=DT, requires_grad=True)
    for t in TIMES:
        (grad,) = torch.autograd.grad(pot.log_phi(t, x).sum(), x)
        torch.testing.assert_close(pot.drift(t, x), pot.r * grad, atol=1e-10, rtol=1e-10)


@pytest.mark.parametrize("covariance", ["diagonal", "full"])
def test_log_phi_solves_the_backward_heat_equation(covariance):
    """phi_t = E phi_1(x + sqrt(r) (W_1 - W_t)) solves d/dt phi + eps Laplacian phi = 0, i.e.
    d/dt log phi + eps (Laplacian log phi + |grad log phi|^2) = 0."""
    pot, d = random_potential(3, 4, covariance), 3
    x = torch.randn(6, d, generator=torch.Generator().manual_seed(1), dtype=DT, requires_grad=True)
    for t in (0.0, 0.3, 0.7, 0.95):
        tt = torch.full((6,), t, dtype=DT, requires_grad=True)
        grad_x, grad_t = torch.autograd.grad(pot.log_phi(tt, x).sum(), (x, tt), create_graph=True)
        lap = sum(torch.autograd.grad(grad_x[:, i].sum(), x, retain_graph=True)[0][:, i] for i in range(d))
        residual = grad_t + pot.eps * (lap + (grad_x * grad_x).sum(-1))
        assert residual.abs().max() < 1e-10, (t, residual)


@pytest.mark.parametrize("covariance", ["diagonal", "full"])
def test_log_phi_at_the_ends(covariance):
    """phi_1(y) = e^{|y|^2/(2r)} v(y) and phi_0(x) = (2 pi r)^{-d/2} e^{-|x|^2/(2r)} c(x)."""
    pot, d = random_potential(3, 4, covariance), 3
    x = torch.randn(6, d, generator=torch.Generator().manual_seed(1), dtype=DT)
    half_sq = (x * x).sum(-1) / (2 * pot.r)
    torch.testing.assert_close(pot.log_phi(1.0, x), pot.log_v(x) + half_sq, atol=1e-10, rtol=0)
    log_norm = 0.5 * d * math.log(2 * math.pi * pot.r)
    torch.testing.assert_close(pot.log_phi(0.0, x), pot.log_c(x) - half_sq - log_norm, atol=1e-10, rtol=0)


@pytest.mark.parametrize("covariance", ["diagonal", "full"])
def test_log_c_by_quadrature(covariance):
    """c(x) = int e^{<x, y>/r} v(y) dy on a fine 2-D grid (the integrand is smooth and decays)."""
    pot = random_potential(2, 3, covariance, eps=0.5)
    x = 0.5 * torch.randn(4, 2, generator=torch.Generator().manual_seed(1), dtype=DT)
    h = 0.02
    u = torch.arange(-9.0, 9.0 + h / 2, h, dtype=DT)
    grid = torch.cartesian_prod(u, u)
    log_v = pot.log_v(grid).detach()
    log_int = torch.logsumexp(grid @ x.T / pot.r + log_v[:, None], dim=0) + 2 * math.log(h)
    torch.testing.assert_close(pot.log_c(x).detach(), log_int, atol=1e-8, rtol=0)


@pytest.mark.parametrize("covariance", ["diagonal", "full"])
def test_conditional_is_the_normalised_plan(covariance):
    """log pi(x1 | x0) = <x0, x1>/r + log v(x1) - log c(x0) (LightSB's plan), against the
    conditional's mixture density evaluated by torch.distributions."""
    pot, d = random_potential(3, 4, covariance), 3
    g = torch.Generator().manual_seed(1)
    x0, x1 = torch.randn(8, d, generator=g, dtype=DT), 2 * torch.randn(8, d, generator=g, dtype=DT)
    cond = pot.conditional(x0)
    comp = MultivariateNormal(cond.means, scale_tril=cond.scale_tril.expand(8, -1, -1, -1))
    mixture = MixtureSameFamily(Categorical(logits=cond.log_weights), comp)
    expected = (x0 * x1).sum(-1) / pot.r + pot.log_v(x1) - pot.log_c(x0)
    torch.testing.assert_close(mixture.log_prob(x1), expected, atol=1e-10, rtol=0)


# -- exact samples against the SDE of the drift --------------------------------------------------
#: Statistical tolerances: |estimate - truth| < Z standard errors, per coordinate or covariance
#: entry, with fixed seeds; ~40 comparisons at Z = 4 leave ~0.3% for a chance failure (none at
#: these seeds). The SDE's weak error (Heun, 200 steps, a smooth drift) is ~1e-4, far below the SE.
Z = 4.0
PATHS = 4000


def _moments_close(y: torch.Tensor, mean: torch.Tensor, cov: torch.Tensor) -> None:
    """Sample mean and covariance of ``y`` (n, d) within Z standard errors of ``mean``, ``cov``."""
    n = y.shape[0]
    m_hat = y.mean(0)
    assert ((m_hat - mean).abs() < Z * torch.sqrt(torch.diagonal(cov) / n)).all(), (m_hat, mean)
    dy = y - m_hat
    prods = dy[:, :, None] * dy[:, None, :]  # (n, d, d)
    se = prods.std(0) / math.sqrt(n)
    assert ((prods.mean(0) - cov).abs() < Z * se).all(), (prods.mean(0), cov)


def _sde_from(pot: MixturePotential, x0: torch.Tensor, t1: float, seed: int) -> torch.Tensor:
    xs = x0.repeat_interleave(PATHS, 0)
    with torch.no_grad():
        res = sample_sde(
            pot.drift, xs, eps=pot.eps, t1=t1, steps=int(200 * t1), solver=StochasticHeun(),
            generator=torch.Generator().manual_seed(seed),
        )  # fmt: skip
    return res.x.reshape(x0.shape[0], PATHS, -1)


@pytest.mark.parametrize("covariance", ["diagonal", "full"])
def test_exact_samples_match_the_sde(covariance):
    pot = random_potential(2, 3, covariance, eps=0.5)
    x0 = torch.tensor([[0.3, -0.5], [-1.0, 1.2]], dtype=DT)
    cond = pot.conditional(x0)
    mean, cov = cond.mean().detach(), cond.cov().detach()
    exact = pot.sample(x0, PATHS, generator=torch.Generator().manual_seed(1))
    sde = _sde_from(pot, x0, 1.0, seed=2)
    for i in range(2):
        _moments_close(exact[i], mean[i], cov[i])
        _moments_close(sde[i], mean[i], cov[i])


def test_exact_bridge_samples_match_the_sde_at_half_time():
    """X_t | x0 at t = 1/2 has mean (1-t) x0 + t m and covariance t^2 Sigma + r t(1-t) I (the
    Brownian bridge between x0 and x1 | x0); both sample_at and the SDE must agree with them."""
    pot, t = random_potential(2, 3, "full", eps=0.5), 0.5
    x0 = torch.tensor([[0.3, -0.5], [-1.0, 1.2]], dtype=DT)
    cond = pot.conditional(x0)
    mean = ((1 - t) * x0 + t * cond.mean()).detach()
    cov = (t**2 * cond.cov() + pot.r * t * (1 - t) * torch.eye(2, dtype=DT)).detach()
    exact = pot.sample_at(t, x0, PATHS, generator=torch.Generator().manual_seed(3))
    sde = _sde_from(pot, x0, t, seed=4)
    for i in range(2):
        _moments_close(exact[i], mean[i], cov[i])
        _moments_close(sde[i], mean[i], cov[i])


# -- construction, dtypes, errors ---------------------------------------------------------------
@pytest.mark.parametrize("covariance", ["diagonal", "full"])
def test_initial_state(covariance):
    means = torch.randn(5, 3, generator=torch.Generator().manual_seed(0))
    pot = MixturePotential(3, 5, eps=0.25, covariance=covariance, means=means, scale=0.4)
    assert pot.r == 0.5
    torch.testing.assert_close(pot.log_weights().exp(), torch.full((5,), 0.2))
    torch.testing.assert_close(pot.cov_matrix(), 0.4 * torch.eye(3).expand(5, 3, 3))
    torch.testing.assert_close(pot.means.detach(), means)
    assert len(list(pot.parameters())) == 3


def test_float32_potential_on_float64_inputs():
    pot = random_potential(2, 3, "full").float()
    x = torch.randn(4, 2, dtype=DT)
    assert pot.drift(0.5, x).dtype == DT and pot.log_c(x).dtype == DT
    assert pot.sample(x, 3).dtype == DT and pot(torch.full((4,), 0.5, dtype=DT), x).shape == (4, 2)


def test_sample_in_blocks_is_the_same_law():
    """Inputs are split into row blocks (memory); the result has one row per input, in order."""
    pot = random_potential(2, 3, "diagonal")
    x0 = torch.randn(3, 2, dtype=DT)
    y = pot.sample(x0.repeat_interleave(2000, 0), 1)[:, 0].reshape(3, 2000, 2)
    for i in range(3):
        _moments_close(
            y[i], pot.conditional(x0[i : i + 1]).mean()[0].detach(), pot.conditional(x0[i : i + 1]).cov()[0].detach()
        )


@pytest.mark.parametrize(
    "call, match",
    [
        (lambda: MixturePotential(2, 3, 0.5, covariance="dense"), "covariance"),
        (lambda: MixturePotential(0, 3, 0.5), "dim"),
        (lambda: MixturePotential(2, 3, -1.0), "eps"),
        (lambda: MixturePotential(2, 3, 0.5, scale=0.0), "scale"),
        (lambda: MixturePotential(2, 3, 0.5, means=torch.zeros(3, 4)), "means"),
        (lambda: MixturePotential(2, 3, 0.5).drift(1.5, torch.zeros(2, 2)), "t"),
        (lambda: MixturePotential(2, 3, 0.5).drift(torch.zeros(3), torch.zeros(2, 2)), "t"),
        (lambda: MixturePotential(2, 3, 0.5).log_c(torch.zeros(2, 3)), "x"),
        (lambda: MixturePotential(2, 3, 0.5).sample(torch.zeros(2, 2), 0), "per_point"),
        (lambda: MixturePotential.from_components(torch.ones(2), torch.zeros(2, 2), torch.ones(3, 2), 0.5), "covs"),
    ],
)
def test_bad_input_is_refused(call, match):
    with pytest.raises(ValueError, match=match):
        call()


def test_drift_on_time_blocks_matches_the_benchmark_drift():
    """Times in equal runs (as the solver draws them for this family, antithetic halves included)
    take the matrix-product path: the same drift as the benchmark's closed form, and as rows."""
    bench = make_mixture_benchmark(4, r=0.5, generator=torch.Generator().manual_seed(2))
    truth = MixturePotential.from_mixture_benchmark(bench)
    S = truth.cov_matrix().diagonal(dim1=-2, dim2=-1)
    pot = MixturePotential.from_components(truth.log_weights().exp(), truth.means.detach(), S, bench.eps)
    g = torch.Generator().manual_seed(3)
    runs = torch.rand(4, generator=g, dtype=DT).repeat_interleave(TIME_BLOCK)
    t = torch.cat([runs, runs])  # the antithetic layout: the first value recurs after its run
    x = torch.randn(t.shape[0], 4, generator=g, dtype=DT)
    assert pot._time_blocks(t, x) is not None and pot._time_blocks(0.3, x) is not None
    torch.testing.assert_close(pot.drift(t, x), bench.drift(t, x), atol=1e-10, rtol=0)
    torch.testing.assert_close(pot.drift(0.3, x), bench.drift(torch.full_like(t, 0.3), x), atol=1e-10, rtol=0)
    rows = torch.rand(t.shape[0], generator=g, dtype=DT)
    assert pot._time_blocks(rows, x) is None  # one time per row: the per-row path
    torch.testing.assert_close(pot.drift(rows, x), bench.drift(rows, x), atol=1e-10, rtol=0)


def test_full_covariance_blocks_in_training_match_the_rows():
    """Full S_k with their gradient wanted (training): one Cholesky factor per block of rows gives
    the benchmark's drift, and the same parameter gradients as the per-row solves."""
    bench = make_mixture_benchmark(4, r=0.5, generator=torch.Generator().manual_seed(2))
    pot = MixturePotential.from_mixture_benchmark(bench).requires_grad_(True)
    g = torch.Generator().manual_seed(3)
    runs = torch.rand(4, generator=g, dtype=DT).repeat_interleave(TIME_BLOCK)
    t = torch.cat([runs, runs])
    x = torch.randn(t.shape[0], 4, generator=g, dtype=DT)
    assert pot._time_blocks(t, x) is not None
    with torch.no_grad():
        assert pot._time_blocks(t, x) is None  # sampling: the per-row eigenvector path
    u = pot.drift(t, x)
    torch.testing.assert_close(u, bench.drift(t, x), atol=1e-10, rtol=0)
    terms, g_rows, _ = pot._phi_terms_solve(pot._time(t, x), x)
    rows = (torch.softmax(terms, dim=-1).unsqueeze(-1) * g_rows).sum(1)
    params = [p for p in pot.parameters() if p.requires_grad]
    by_blocks = torch.autograd.grad(u.square().sum(), params)
    by_rows = torch.autograd.grad(rows.square().sum(), params)
    for a, b in zip(by_blocks, by_rows, strict=True):
        torch.testing.assert_close(a, b, atol=1e-10, rtol=1e-10)
