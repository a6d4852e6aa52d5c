"""Tests for the numeric helpers of paper_figures/checkerboard.py: the exact checkerboard
log-density, the binned Gaussian KDE and the |log rho1 - log rho^1| metric.

Tolerances (fixed seeds):

| check                                      | tolerance             | reason                                            |
|--------------------------------------------|-----------------------|---------------------------------------------------|
| density integrates to 1 (midpoint grid)    | 1e-12                 | grid lines avoid the square edges: exact sum      |
| histogram of samples (n=64000, 256 bins)   | 5 sd per bin          | binomial sd = sqrt(n p (1-p)), p = 1/128 ~ 22     |
| binned KDE vs sklearn KernelDensity        | 1% relative           | binning adds <= dx^2/3 = h^2/300 kernel variance  |
| KDE of true samples vs exact smoothed rho1 | 5% relative (median)  | KDE sd ~ (n rho 4 pi h^2)^(-1/2) ~ 2.5%           |
| metric on true samples vs its n=inf limit  | 0.03 nats             | KDE noise adds ~ E|N(0, 0.025^2)| ~ 0.02           |
| metric for a wrong density                 | > 0.6 nats            | uniform on [-4,4]^2: KDE ~ rho1 / 2 (log 2 = 0.69) |
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy.stats import norm

from bridge.data import checkerboard
from paper_figures.checkerboard import (
    LOG_DENSITY_ON_SUPPORT,
    binned_kde,
    checkerboard_log_density,
    kde_log_density,
    log_density_errors,
)


def _samples(n: int, seed: int) -> np.ndarray:
    return checkerboard(n, generator=torch.Generator().manual_seed(seed), dtype=torch.float64).numpy()


def _smoothed_density(y: np.ndarray, h: float) -> np.ndarray:
    """rho1 convolved with N(0, h^2 I) in closed form: (1/32) sum over the 8 squares of a
    product of two 1-D Gaussian cdf differences (the infinite-sample limit of the KDE)."""
    out = np.zeros(len(y))
    for i in range(-2, 2):
        for j in range(-2, 2):
            if (i + j) % 2:
                continue
            px = norm.cdf((2 * i + 2 - y[:, 0]) / h) - norm.cdf((2 * i - y[:, 0]) / h)
            py = norm.cdf((2 * j + 2 - y[:, 1]) / h) - norm.cdf((2 * j - y[:, 1]) / h)
            out += px * py / 32.0
    return out


def test_log_density_values():
    x = np.array([[1.0, 1.0], [1.0, -1.0], [-3.0, -3.0], [-3.0, 3.0], [4.1, 0.5], [0.5, -4.5], [3.9, 3.9]])
    expected = [True, False, True, False, False, False, True]
    lp = checkerboard_log_density(x)
    assert np.array_equal(np.isfinite(lp), expected)
    assert np.allclose(lp[np.isfinite(lp)], -math.log(32))


def test_log_density_integrates_to_one():
    dx = 0.05
    mid = np.arange(-5 + dx / 2, 5, dx)  # midpoints never fall on the square edges (even integers)
    xx, yy = np.meshgrid(mid, mid, indexing="ij")
    lp = checkerboard_log_density(np.stack([xx.ravel(), yy.ravel()], 1))
    assert abs(np.exp(lp).sum() * dx * dx - 1.0) < 1e-12


def test_log_density_matches_histogram_of_generator():
    n = 64000
    x = _samples(n, 0)
    assert np.all(np.isfinite(checkerboard_log_density(x)))  # every sample is in the support
    edges = np.arange(-4, 4.01, 0.5)
    counts, _, _ = np.histogram2d(x[:, 0], x[:, 1], bins=[edges, edges])
    mids = 0.5 * (edges[1:] + edges[:-1])
    xx, yy = np.meshgrid(mids, mids, indexing="ij")
    p = np.exp(checkerboard_log_density(np.stack([xx.ravel(), yy.ravel()], 1))).reshape(xx.shape) * 0.25
    assert np.all(counts[p == 0] == 0)
    sd = np.sqrt(n * p * (1 - p))
    assert np.all(np.abs(counts - n * p)[p > 0] < 5 * sd[p > 0])


def test_binned_kde_matches_sklearn():
    # sklearn comes with the "figures" extra (.ci/run installs it); with ".[test]" alone this skips
    KernelDensity = pytest.importorskip("sklearn.neighbors").KernelDensity

    rng = np.random.default_rng(0)
    x = rng.normal(size=(500, 2)) * [1.0, 0.7] + [0.3, -0.2]
    pts = rng.normal(size=(200, 2))
    h = 0.4
    ref = np.exp(KernelDensity(bandwidth=h).fit(x).score_samples(pts))
    ours = np.exp(kde_log_density(x, pts, bandwidth=h, bins_per_h=10))
    ok = ref > 1e-3
    assert ok.sum() > 150
    assert np.max(np.abs(ours[ok] / ref[ok] - 1)) < 0.01


def test_binned_kde_total_mass():
    x = _samples(5000, 1)
    dens, nodes = binned_kde(x, bandwidth=0.2, lo=-5.5, hi=5.5, bins=221)
    dx = nodes[1] - nodes[0]
    assert abs(dens.sum() * dx * dx - 1.0) < 1e-3


def test_kde_of_true_samples_matches_smoothed_density():
    h = 0.2
    x = _samples(100_000, 2)
    y = _samples(2000, 3)
    kde = np.exp(kde_log_density(x, y, bandwidth=h))
    rel = kde / _smoothed_density(y, h) - 1
    assert np.median(np.abs(rel)) < 0.05


def test_metric_small_for_true_density_large_for_wrong_one():
    h = 0.2
    targets = _samples(5000, 4)
    limit = np.mean(np.abs(LOG_DENSITY_ON_SUPPORT - np.log(_smoothed_density(targets, h))))
    err_true, nf = log_density_errors(_samples(100_000, 5), targets, bandwidth=h)
    assert nf == 0
    assert abs(err_true.mean() - limit) < 0.03
    uniform = np.random.default_rng(6).uniform(-4, 4, size=(100_000, 2))
    err_uniform, _ = log_density_errors(uniform, targets, bandwidth=h)
    assert err_uniform.mean() > 0.6 > err_true.mean() + 0.3


def test_metric_rejects_targets_off_support():
    with pytest.raises(ValueError, match="support"):
        log_density_errors(_samples(100, 0), np.array([[1.0, -1.0]]), bandwidth=0.2)
