"""Figures densities, paths, likelihood: their numeric helpers against closed forms, and a
smoke run of each ``--quick`` compute (finite arrays, boolean findings)."""

from __future__ import annotations

import argparse
import math

import numpy as np
import pytest
import torch

from bridge.data import EIGHT_GAUSSIANS_RADIUS, EIGHT_GAUSSIANS_STD, eight_gaussians
from paper_figures import densities, likelihood, paths


def _two_bumps(x, mu, sigma=1.0):
    return np.exp(-((x - mu) ** 2) / (2 * sigma**2)) + np.exp(-((x + mu) ** 2) / (2 * sigma**2))


# An equal-weight mixture of N(-mu, s^2) and N(mu, s^2) is bimodal iff mu > s (closed form).
@pytest.mark.parametrize("mu, expected", [(0.9, 1), (1.1, 2), (3.0, 2)])
def test_count_modes_1d_two_gaussians(mu, expected):
    x = np.linspace(-8, 8, 4001)
    assert densities.count_modes_1d(_two_bumps(x, mu)) == expected


def test_count_modes_1d_plateau_tails_and_three_modes():
    assert densities.count_modes_1d(np.array([0.0, 1.0, 1.0, 1.0, 0.0])) == 1  # a plateau counts once
    assert densities.count_modes_1d(np.array([0.0, 0.0, 0.0])) == 0
    x = np.linspace(-8, 8, 2001)
    p = sum(np.exp(-((x - m) ** 2) / 0.5) for m in (-4.0, 0.0, 4.0))
    assert densities.count_modes_1d(p) == 3
    # a maximum far below the floor (tail rounding) is not a mode
    q = p.copy()
    q[10] = 1e-12
    assert densities.count_modes_1d(q) == 3


# The same closed form along the axis joining two isotropic 2-D components; and a maximum exactly
# halfway between two grid points (a tie) counts once.
@pytest.mark.parametrize("mu, expected", [(0.9, 1), (1.1, 2)])
def test_count_modes_2d_two_gaussians(mu, expected):
    g = np.linspace(-5, 5, 401)
    X, Y = np.meshgrid(g, g)
    p = np.exp(-((X - mu) ** 2 + Y**2) / 2) + np.exp(-((X + mu) ** 2 + Y**2) / 2)
    assert densities.count_modes_2d(p) == expected


def test_count_modes_2d_ties_and_four_blobs():
    g = np.linspace(-3, 3, 61)  # spacing 0.1; centre 0.05 lies halfway between grid points
    X, Y = np.meshgrid(g, g)
    assert densities.count_modes_2d(np.exp(-((X - 0.05) ** 2 + (Y - 0.05) ** 2))) == 1
    blobs = sum(np.exp(-((X - a) ** 2 + (Y - b) ** 2) / 0.1) for a in (-1.5, 1.5) for b in (-1.5, 1.5))
    assert densities.count_modes_2d(blobs) == 4


def test_mixture_cdf_1d_matches_integrated_density():
    rho0, rho1 = paths.endpoints()
    x = np.linspace(-8, 8, 20001)
    for rho in (rho0, rho1):
        dens = rho.log_prob(torch.tensor(x[:, None])).exp().numpy()
        integral = np.concatenate([[0.0], np.cumsum(0.5 * (dens[1:] + dens[:-1]) * np.diff(x))])
        np.testing.assert_allclose(paths.mixture_cdf_1d(rho, x), integral, atol=1e-6)


def test_eight_gaussians_mixture_is_the_dataset_law():
    mix = likelihood.eight_gaussians_mixture()
    # E|x|^2 = r^2 + 2 sigma^2, in closed form
    assert float(torch.trace(mix.cov())) == pytest.approx(EIGHT_GAUSSIANS_RADIUS**2 + 2 * EIGHT_GAUSSIANS_STD**2)
    # the dataset's samples have the mixture's mean log-density (its negative entropy) to a few SE
    g = torch.Generator().manual_seed(0)
    n = 20000
    lp_data = mix.log_prob(eight_gaussians(n, generator=g, dtype=torch.float64))
    lp_mix = mix.log_prob(mix.sample(n, generator=g))
    se = math.hypot(float(lp_data.std()), float(lp_mix.std())) / math.sqrt(n)
    assert abs(float(lp_data.mean() - lp_mix.mean())) < 4 * se
    # every dataset point lies near one of the 8 centres: the nearest-centre residual has std sigma
    x = eight_gaussians(n, generator=g, dtype=torch.float64)
    d = torch.cdist(x, mix.means).min(dim=1).values
    assert float(d.pow(2).mean() / 2) ** 0.5 == pytest.approx(EIGHT_GAUSSIANS_STD, rel=0.03)


@pytest.mark.parametrize("module", [densities, paths, likelihood], ids=lambda m: m.NAME)
def test_quick_compute_is_finite(module, tmp_path):
    args = argparse.Namespace(quick=True, seed=0, out=tmp_path, replot=False)
    arrays, record = module.compute(args, lambda msg: None)
    assert arrays, "no arrays"
    for key, a in arrays.items():
        assert isinstance(a, np.ndarray), key
        assert np.all(np.isfinite(a)), key
    assert record["findings"] and all(isinstance(v, bool) for v in record["findings"].values())
