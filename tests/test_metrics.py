"""Tests for bridge.metrics against independent references (scipy, POT, closed forms).

Tolerances:

| check                                         | tolerance     | reason                                                    |
|-----------------------------------------------|---------------|-----------------------------------------------------------|
| energy distance vs scipy / direct numpy       | rtol 1e-10    | same quantity, float64 summation order only               |
| W2 vs 1-D quantile formula / optimal map      | rtol 1e-9     | exact LP optimum, float64 rounding only                   |
| W2 of shifted copy                            | atol 1e-9     | translation: identity plan, cost exactly |s|^2            |
| W2^2 of independent Gaussian samples (n=800)  | atol 0.45     | empirical bias ~ +0.05, sd ~ 0.10 (12 seeds) -> bias+4 sd |
| Sinkhorn vs POT, scaling 0.95 / 0.9           | rtol 3e-4/2e-3| geomloss's annealing truncation (observed 1e-4 / 6e-4)    |
| Sinkhorn of a translation                     | atol 1e-6     | exact identity S = |s|^2/2 for any eps (see test)         |
| Gaussian W2^2 vs scipy sqrtm                  | rtol 1e-8     | two square-root routes, both float64                      |
| BW2-UVP with moment-matched samples           | rtol 1e-8     | empirical moments equal the prescribed ones exactly       |
| BW2-UVP of two samples of one Gaussian        | < 0.1 (%)     | expected ~ 100 (1/n + 1/m + O(d/n)) ~ 0.02 for n = 2e4     |
"""

from __future__ import annotations

import functools
import math

import numpy as np
import ot
import pytest
import scipy.linalg
import scipy.spatial.distance
import scipy.stats
import torch

import bridge.energy as energy
from bridge.metrics import bw2_uvp, energy_distance, gaussian_w2_squared, sinkhorn_divergence, w2

F64 = torch.float64


def gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def randn(*shape, seed=0):
    return torch.randn(*shape, generator=gen(seed), dtype=F64)


# --------------------------------------------------------------------------------------------
# energy distance
# --------------------------------------------------------------------------------------------


def test_energy_distance_matches_scipy_in_1d():
    x, y = randn(300, 1, seed=1), 0.7 * randn(200, 1, seed=2) + 0.3
    # scipy returns sqrt(2 E|X-Y| - E|X-X'| - E|Y-Y'|) of the empirical measures (V-statistic)
    ref = scipy.stats.energy_distance(x[:, 0].numpy(), y[:, 0].numpy()) ** 2
    assert energy_distance(x, y) == pytest.approx(ref, rel=1e-10)


@pytest.mark.parametrize("unbiased", [False, True])
def test_energy_distance_matches_direct_numpy_in_3d(unbiased):
    x, y = randn(120, 3, seed=1), randn(90, 3, seed=2) + 0.5
    dxy = scipy.spatial.distance.cdist(x.numpy(), y.numpy())
    dxx = scipy.spatial.distance.pdist(x.numpy())  # condensed: each unordered pair i < j once
    dyy = scipy.spatial.distance.pdist(y.numpy())
    n, m = len(x), len(y)
    nx, ny = (n * (n - 1), m * (m - 1)) if unbiased else (n * n, m * m)
    ref = 2 * dxy.mean() - 2 * dxx.sum() / nx - 2 * dyy.sum() / ny
    assert energy_distance(x, y, unbiased=unbiased) == pytest.approx(ref, rel=1e-10)


def test_energy_distance_chunking_is_exact(monkeypatch):
    x, y = randn(101, 2, seed=1), randn(77, 2, seed=2)
    full = energy_distance(x, y)
    monkeypatch.setattr(energy, "BLOCK_PAIRS", 500)  # forces many row blocks
    assert energy_distance(x, y) == pytest.approx(full, rel=1e-12)


def test_energy_distance_basic_properties():
    x = randn(50, 2)
    assert energy_distance(x, x) == pytest.approx(0.0, abs=1e-12)
    assert energy_distance(x, x + 1) > 0
    assert energy_distance(x.float(), (x + 1).numpy()) == pytest.approx(energy_distance(x, x + 1), rel=1e-6)


def test_energy_distance_input_errors():
    with pytest.raises(ValueError, match="^x has dimension 2 but y has dimension 3$"):
        energy_distance(randn(5, 2), randn(5, 3))
    with pytest.raises(ValueError, match=r"x: expected shape \(n, d\), got \(5,\)"):
        energy_distance(randn(5), randn(5, 1))
    bad = randn(5, 2)
    bad[2, 0] = float("nan")
    with pytest.raises(ValueError, match="y: NaN or Inf in 1 of 5 rows"):
        energy_distance(randn(5, 2), bad)
    with pytest.raises(ValueError, match="at least 2 sample"):
        energy_distance(randn(1, 2), randn(5, 2), unbiased=True)
    with pytest.raises(TypeError, match="x: expected a torch.Tensor"):
        energy_distance([[0.0]], randn(5, 1))


# --------------------------------------------------------------------------------------------
# W2
# --------------------------------------------------------------------------------------------


def quantile_w2_squared_1d(x: np.ndarray, y: np.ndarray) -> float:
    """W2^2 = int_0^1 (F^-1(u) - G^-1(u))^2 du for empirical measures of any sizes."""
    xs, ys = np.sort(x), np.sort(y)
    cuts = np.union1d(np.arange(len(xs) + 1) / len(xs), np.arange(len(ys) + 1) / len(ys))
    mids, widths = (cuts[1:] + cuts[:-1]) / 2, np.diff(cuts)
    qx = xs[np.minimum((mids * len(xs)).astype(int), len(xs) - 1)]
    qy = ys[np.minimum((mids * len(ys)).astype(int), len(ys) - 1)]
    return float(np.sum(widths * (qx - qy) ** 2))


@pytest.mark.parametrize("n,m", [(200, 200), (150, 97)])
def test_w2_matches_quantile_formula_in_1d(n, m):
    x, y = randn(n, 1, seed=1), 2 * randn(m, 1, seed=2) ** 3 + 1
    ref = math.sqrt(quantile_w2_squared_1d(x[:, 0].numpy(), y[:, 0].numpy()))
    assert w2(x, y) == pytest.approx(ref, rel=1e-9)


def test_w2_of_shifted_copy_is_the_shift():
    x = randn(300, 2)
    shift = torch.tensor([3.0, -4.0], dtype=F64)
    assert w2(x, x + shift) == pytest.approx(5.0, abs=1e-9)


def test_w2_under_a_linear_optimal_map():
    # x -> A x with A symmetric positive definite is the gradient of a convex function, so
    # pairing each x_i with A x_i is an optimal plan (cyclical monotonicity): W2^2 = mean |x - Ax|^2.
    x = randn(300, 2)
    A = torch.tensor([[2.0, 0.6], [0.6, 0.5]], dtype=F64)
    y = x @ A
    ref = ((x - y) ** 2).sum(1).mean().sqrt()
    assert w2(x, y) == pytest.approx(float(ref), rel=1e-9)


def test_w2_independent_gaussian_samples_near_closed_form():
    # N(0, I) vs N(0, diag(4, 1/4)): W2^2 = (2-1)^2 + (1/2-1)^2 = 1.25. Samples are centred, which
    # removes the (exact) mean term's noise; see the tolerance table for the remaining error.
    n = 800
    x = randn(n, 2, seed=10)
    y = randn(n, 2, seed=11) * torch.tensor([2.0, 0.5], dtype=F64)
    x, y = x - x.mean(0), y - y.mean(0)
    assert w2(x, y) ** 2 == pytest.approx(1.25, abs=0.45)


def test_w2_subsampling_warns_and_is_seeded():
    x, y = randn(120, 2, seed=1), randn(90, 2, seed=2) + 1
    with pytest.warns(UserWarning, match="subsampling 120 x 90 samples to at most 50"):
        a = w2(x, y, max_samples=50, generator=gen(5))
    with pytest.warns(UserWarning):
        b = w2(x, y, max_samples=50, generator=gen(5))
    assert a == b
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        w2(x, y, max_samples=None)
        w2(x, y, max_samples=120)
    with pytest.raises(ValueError, match="max_samples"):
        w2(x, y, max_samples=0)


# --------------------------------------------------------------------------------------------
# Sinkhorn divergence
# --------------------------------------------------------------------------------------------


def pot_entropic_ot(x: np.ndarray, y: np.ndarray, reg: float) -> float:
    """min_P <P, C> + reg KL(P | a b^T), C = |x - y|^2 / 2, uniform a, b (geomloss's OT_eps).

    POT's sinkhorn returns the plan of the same problem (its entropy differs from the KL by a
    constant on the transport polytope); we evaluate the full objective, entropy term included.
    """
    a, b = np.full(len(x), 1 / len(x)), np.full(len(y), 1 / len(y))
    cost = ot.dist(x, y) / 2
    plan, log = ot.sinkhorn(a, b, cost, reg, method="sinkhorn_log", numItermax=5000, stopThr=1e-12, log=True)
    assert log["err"][-1] < 1e-10  # marginals matched: the reference is converged
    ab = np.outer(a, b)
    pos = plan > 0
    return float((plan * cost).sum() + reg * (plan[pos] * np.log(plan[pos] / ab[pos])).sum())


SINKHORN_X = randn(150, 2, seed=1)
SINKHORN_Y = 0.7 * randn(120, 2, seed=2) + torch.tensor([1.0, 0.5], dtype=F64)


@functools.lru_cache
def pot_sinkhorn_divergence(blur: float) -> float:
    xn, yn, reg = SINKHORN_X.numpy(), SINKHORN_Y.numpy(), blur**2  # geomloss: eps = blur^p, p = 2
    return pot_entropic_ot(xn, yn, reg) - pot_entropic_ot(xn, xn, reg) / 2 - pot_entropic_ot(yn, yn, reg) / 2


@pytest.mark.parametrize("blur", [1.0, 0.5])
@pytest.mark.parametrize("scaling,rtol", [(0.95, 3e-4), (0.9, 2e-3)])
def test_sinkhorn_divergence_matches_pot(blur, scaling, rtol):
    # rtol: geomloss stops its annealing at eps = blur^2 after one step (observed 1e-4 / 6e-4 at
    # 0.95 / 0.9 here); a wrong eps or cost convention moves S by ~3% between these two blurs.
    got = sinkhorn_divergence(SINKHORN_X, SINKHORN_Y, blur=blur, scaling=scaling)
    assert got == pytest.approx(pot_sinkhorn_divergence(blur), rel=rtol)


def test_sinkhorn_divergence_of_a_translation_is_half_the_squared_shift():
    # cost(x_i, x_j + s) = |x_i - x_j|^2/2 - s.(x_i - x_j) + |s|^2/2, and the middle term sums to
    # s.(mean x - mean x) = 0 under any plan, so OT_eps(x, x+s) = OT_eps(x, x) + |s|^2/2 and
    # S_eps = |s|^2 / 2 exactly, whatever eps: a check of the |x-y|^2/2 cost convention.
    x = randn(60, 2)
    shift = torch.tensor([3.0, 4.0], dtype=F64)
    assert sinkhorn_divergence(x, x + shift, blur=0.05) == pytest.approx(12.5, abs=1e-6)
    assert sinkhorn_divergence(x, x, blur=0.05) == pytest.approx(0.0, abs=1e-8)


def test_sinkhorn_divergence_argument_errors():
    x = randn(10, 2)
    for bad in (0.0, -1.0, float("nan")):
        with pytest.raises(ValueError, match="blur"):
            sinkhorn_divergence(x, x, blur=bad)
    for bad in (0.0, 1.0):
        with pytest.raises(ValueError, match="scaling"):
            sinkhorn_divergence(x, x, scaling=bad)
    with pytest.raises(ValueError, match="x has dimension 2 but y has dimension 1"):
        sinkhorn_divergence(x, randn(10, 1))


# --------------------------------------------------------------------------------------------
# Gaussian W2 and BW2-UVP
# --------------------------------------------------------------------------------------------


def random_spd(d: int, seed: int) -> np.ndarray:
    w = np.random.default_rng(seed).normal(size=(d, d))
    return w @ w.T / d + 0.1 * np.eye(d)


def scipy_gaussian_w2_squared(m1, S1, m2, S2) -> float:
    """Independent route: tr (S1^{1/2} S2 S1^{1/2})^{1/2} = tr (S1 S2)^{1/2} (similar matrices)."""
    cross = np.trace(scipy.linalg.sqrtm(S1 @ S2)).real
    return float(np.sum((m1 - m2) ** 2) + np.trace(S1) + np.trace(S2) - 2 * cross)


def test_gaussian_w2_squared_vs_scipy():
    d = 4
    rng = np.random.default_rng(0)
    m1, m2 = rng.normal(size=d), rng.normal(size=d)
    S1, S2 = random_spd(d, 1), random_spd(d, 2)
    ref = scipy_gaussian_w2_squared(m1, S1, m2, S2)
    got = gaussian_w2_squared(torch.from_numpy(m1), torch.from_numpy(S1), torch.from_numpy(m2), torch.from_numpy(S2))
    assert got == pytest.approx(ref, rel=1e-8)


def test_gaussian_w2_squared_closed_forms():
    # commuting (diagonal) covariances: B^2 = |S1^{1/2} - S2^{1/2}|_F^2
    s1, s2 = torch.tensor([1.0, 4.0, 9.0], dtype=F64), torch.tensor([4.0, 1.0, 0.0], dtype=F64)
    z = torch.zeros(3, dtype=F64)
    ref = float(((s1.sqrt() - s2.sqrt()) ** 2).sum())  # the singular S2 is fine
    assert gaussian_w2_squared(z, torch.diag(s1), z, torch.diag(s2)) == pytest.approx(ref, rel=1e-12)
    # 1-D: (m1 - m2)^2 + (sigma1 - sigma2)^2
    one = torch.ones(1, dtype=F64)
    assert gaussian_w2_squared(0 * one, 4 * one.view(1, 1), 3 * one, 9 * one.view(1, 1)) == pytest.approx(10.0)
    # a covariance against itself
    S = torch.from_numpy(random_spd(5, 3))
    assert gaussian_w2_squared(torch.zeros(5), S, torch.zeros(5), S) == pytest.approx(0.0, abs=1e-10)


def test_gaussian_w2_squared_shape_errors():
    with pytest.raises(ValueError, match=r"S2: expected a covariance of shape \(2, 2\)"):
        gaussian_w2_squared(torch.zeros(2), torch.eye(2), torch.zeros(2), torch.eye(3))
    with pytest.raises(ValueError, match="m1 has dimension 2 but m2 has dimension 3"):
        gaussian_w2_squared(torch.zeros(2), torch.eye(2), torch.zeros(3), torch.eye(3))


def samples_with_exact_moments(n: int, mean: np.ndarray, cov: np.ndarray, seed: int) -> torch.Tensor:
    """n points whose sample mean and (n-1)-normalised covariance are exactly ``mean``, ``cov``."""
    z = np.random.default_rng(seed).normal(size=(n, len(mean)))
    z -= z.mean(0)
    z = z @ np.linalg.inv(np.linalg.cholesky(np.cov(z.T))).T  # whiten: cov(z) = I
    return torch.from_numpy(mean + z @ np.linalg.cholesky(cov).T)


def test_bw2_uvp_against_closed_form():
    d = 3
    rng = np.random.default_rng(0)
    mp, mq = rng.normal(size=d), rng.normal(size=d)
    Sp, Sq = random_spd(d, 1), random_spd(d, 2)
    xp = samples_with_exact_moments(400, mp, Sp, seed=1)
    xq = samples_with_exact_moments(300, mq, Sq, seed=2)
    ref = 100 * scipy_gaussian_w2_squared(mp, Sp, mq, Sq) / np.trace(Sq)
    assert bw2_uvp(xp, xq) == pytest.approx(ref, rel=1e-8)


def test_bw2_uvp_same_gaussian():
    x = randn(500, 3)
    assert bw2_uvp(x, x) < 1e-10
    a, b = randn(20000, 2, seed=1), randn(20000, 2, seed=2)
    assert 0 <= bw2_uvp(a, b) < 0.1


def test_bw2_uvp_in_1d_and_errors():
    x = torch.tensor([[0.0], [2.0]], dtype=F64)  # mean 1, variance 2
    y = torch.tensor([[1.0], [5.0]], dtype=F64)  # mean 3, variance 8
    assert bw2_uvp(x, y) == pytest.approx(100 * (4 + (math.sqrt(2) - math.sqrt(8)) ** 2) / 8)
    with pytest.raises(ValueError, match="x_ref: all samples are identical"):
        bw2_uvp(x, torch.ones(4, 1, dtype=F64))
    with pytest.raises(ValueError, match="x_model: expected at least 2 sample"):
        bw2_uvp(x[:1], y)


# --------------------------------------------------------------------------------------------
# coupling metrics: cBW2-UVP, cross-covariance, barycentric map, kinetic energy
#
# | check                                              | tolerance   | reason                                                  |
# |----------------------------------------------------|-------------|---------------------------------------------------------|
# | cBW2-UVP vs per-point scipy Bures formula          | rel 1e-8    | two square-root routes, float64                         |
# | cBW2-UVP: a common shift delta adds 100|delta|^2/tr | rel 1e-10   | the covariances are unchanged: exact identity           |
# | cBW2-UVP noise floor of exact samples              | rel 15%     | predicted 100(1+(d+1)/4) tr S/(K tr); observed within 5% |
# | cross-covariance vs numpy.cov of the pairs         | 1e-12       | same quantity, divisor n (bias=True)                    |
# | unbiased barycentric error of exact samples        | |.| < 1.0   | mean 0, SE ~0.2 (% units) for 2000 points, K = 10       |
# | kinetic energy of the Gaussian SB along SDE paths  | rel 2.5%    | 4000 Heun paths, 100 steps: observed <= 0.6% (4 seeds)   |
# --------------------------------------------------------------------------------------------


def test_cbw2_uvp_against_per_point_closed_form():
    from bridge.metrics import cbw2_uvp

    N, K, d = 4, 50, 3
    y = randn(N, K, d, seed=3) * 0.7 + 0.2
    means = randn(N, d, seed=4)
    covs = torch.stack([torch.from_numpy(random_spd(d, 10 + i)) for i in range(N)])
    ref = np.mean(
        [
            scipy_gaussian_w2_squared(y[i].mean(0).numpy(), np.cov(y[i].numpy().T), means[i].numpy(), covs[i].numpy())
            for i in range(N)
        ]
    )
    assert cbw2_uvp(y, means, covs, 2.5) == pytest.approx(100 * ref / 2.5, rel=1e-8)
    # a common shift only moves the mean term
    delta = torch.tensor([0.3, -0.1, 0.2], dtype=F64)
    shifted = cbw2_uvp(y + delta, means, covs, 2.5)
    plain = cbw2_uvp(y, means, covs, 2.5)
    dm = y.mean(1) - means
    extra = 100 * float(((dm + delta) ** 2).sum(1).mean() - (dm**2).sum(1).mean()) / 2.5
    assert shifted - plain == pytest.approx(extra, rel=1e-10)
    # one input: BW2-UVP of the fitted Gaussians (model covariance with divisor K - 1)
    one = cbw2_uvp(y[:1], means[:1], covs[:1], float(torch.trace(covs[0])))
    assert one == pytest.approx(
        100 * gaussian_w2_squared(y[0].mean(0), torch.cov(y[0].T), means[0], covs[0]) / float(torch.trace(covs[0])),
        rel=1e-10,
    )


def test_cbw2_uvp_noise_floor_of_exact_samples():
    from bridge.metrics import cbw2_uvp

    d, N, K, s2, total = 4, 300, 200, 0.5, 10.0
    y = math.sqrt(s2) * randn(N, K, d, seed=5)
    got = cbw2_uvp(y, torch.zeros(N, d, dtype=F64), s2 * torch.eye(d, dtype=F64).expand(N, d, d), total)
    predicted = 100 * (1 + (d + 1) / 4) * d * s2 / (K * total)
    assert got == pytest.approx(predicted, rel=0.15)


def test_cbw2_uvp_errors():
    from bridge.metrics import cbw2_uvp

    y = randn(3, 5, 2)
    m, S = torch.zeros(3, 2, dtype=F64), torch.eye(2, dtype=F64).expand(3, 2, 2)
    with pytest.raises(ValueError, match=r"^model_samples: expected shape \(N, K, d\), got \(3, 5\)"):
        cbw2_uvp(y[:, :, 0], m, S, 1.0)
    with pytest.raises(ValueError, match="K >= 2"):
        cbw2_uvp(y[:, :1], m, S, 1.0)
    with pytest.raises(ValueError, match=r"^true_means: expected shape \(3, 2\) to match model_samples"):
        cbw2_uvp(y, m[:2], S, 1.0)
    with pytest.raises(ValueError, match=r"^true_covs: expected shape \(3, 2, 2\)"):
        cbw2_uvp(y, m, S[:, :1], 1.0)
    with pytest.raises(ValueError, match="^target_cov_trace: expected a finite number > 0"):
        cbw2_uvp(y, m, S, 0.0)
    bad = y.clone()
    bad[0, 0, 0] = float("inf")
    with pytest.raises(ValueError, match="^model_samples: contains NaN or Inf"):
        cbw2_uvp(bad, m, S, 1.0)


def test_cross_covariance_and_error():
    from bridge.metrics import cross_covariance, cross_covariance_error

    x0 = randn(100, 2, seed=1)
    x1 = x0 @ torch.tensor([[1.0, 0.5], [-0.3, 2.0]], dtype=F64) + 0.1 * randn(100, 2, seed=2)
    ref = np.cov(np.concatenate([x0.numpy(), x1.numpy()], 1).T, bias=True)[:2, 2:]
    assert np.allclose(cross_covariance(x0, x1).numpy(), ref, atol=1e-12)
    # K partners per input: all pairs count
    y = torch.stack([x1, x1 + 1.0, x1 - 1.0], 1)  # (n, 3, d)
    pairs0, pairs1 = x0.repeat_interleave(3, 0), y.reshape(-1, 2)
    assert torch.allclose(cross_covariance(x0, y), cross_covariance(pairs0, pairs1), atol=1e-12)
    C = cross_covariance(x0, x1)
    assert cross_covariance_error(x0, x1, C) == pytest.approx(0.0, abs=1e-12)
    assert cross_covariance_error(x0, x1, 2 * C) == pytest.approx(0.5, rel=1e-12)
    with pytest.raises(ValueError, match=r"^x1: expected shape \(100, 2\) to pair with x0"):
        cross_covariance(x0, x1[:50])
    with pytest.raises(ValueError, match="^reference: is the zero matrix"):
        cross_covariance_error(x0, x1, torch.zeros(2, 2))


def test_barycentric_map_error_and_its_unbiased_version():
    from bridge.metrics import barycentric_map_error

    n, K, d = 2000, 10, 3
    y = randn(n, K, d, seed=7)  # exact samples of N(0, I) around the reference map 0
    ref = torch.zeros(n, d, dtype=F64)
    biased = barycentric_map_error(y, ref, 3.0)
    assert biased == pytest.approx(100 * d / K / 3.0, rel=0.05)  # E|mean of K|^2 = d / K
    assert abs(barycentric_map_error(y, ref, 3.0, unbiased=True)) < 1.0
    assert barycentric_map_error(y.mean(1), ref, 3.0) == pytest.approx(biased, rel=1e-12)
    with pytest.raises(ValueError, match="^unbiased: needs model_samples of shape"):
        barycentric_map_error(y.mean(1), ref, 3.0, unbiased=True)
    with pytest.raises(ValueError, match="do not match reference_map"):
        barycentric_map_error(y, ref[:10], 3.0)


def test_kinetic_energy_of_the_gaussian_sb_along_sde_paths():
    from bridge.metrics import compare_kinetic_energy, kinetic_energy
    from bridge.reference import gaussian_sb
    from bridge.samplers import StochasticHeun, sample_sde

    A = torch.tensor([[1.0, 0.3], [0.3, 0.5]], dtype=F64)
    B = torch.tensor([[2.0, -0.6], [-0.6, 1.0]], dtype=F64)
    sb = gaussian_sb(torch.zeros(2, dtype=F64), A, torch.ones(2, dtype=F64), B, eps=0.5)
    x0 = sb.sample_plan(4000, generator=gen(0))[0]
    out = sample_sde(sb.drift, x0, eps=sb.eps, steps=100, solver=StochasticHeun(), generator=gen(10), trajectory=True)
    cmp = compare_kinetic_energy(kinetic_energy(sb.drift, out.trajectory, out.t), sb.kinetic_energy(), eps=sb.eps)
    assert abs(cmp.relative_error) < 0.025
    assert cmp.kl_reference == pytest.approx(sb.kl_to_reference(), rel=1e-12)
    assert cmp.kl_estimate == pytest.approx(cmp.estimate / (4 * sb.eps), rel=1e-15)


def test_kinetic_energy_quadrature_and_errors():
    from bridge.metrics import kinetic_energy

    paths = torch.zeros(11, 5, 1, dtype=F64)
    t = torch.linspace(0, 1, 11, dtype=F64)
    # |u|^2 = t: the trapezoidal rule is exact for linear integrands
    assert kinetic_energy(lambda tt, x: tt.sqrt().unsqueeze(1) + 0 * x, paths, t) == pytest.approx(0.5, rel=1e-12)
    with pytest.raises(ValueError, match=r"^times: expected shape \(11,\)"):
        kinetic_energy(lambda tt, x: x, paths, t[:5])
    with pytest.raises(ValueError, match="^times: expected strictly increasing"):
        kinetic_energy(lambda tt, x: x, paths, t.flip(0))
    with pytest.raises(TypeError, match="^drift: expected a callable"):
        kinetic_energy(None, paths, t)
