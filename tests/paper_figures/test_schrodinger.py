"""The figure's numeric helper: the exact kinetic energy of a Gaussian interpolant path."""

import numpy as np
import pytest
import torch

from bridge.interpolants import BrownianGamma, FourierInterpolant
from bridge.reference import InterpolantOracle, gaussian, gaussian_sb
from paper_figures.schrodinger import gaussian_path_energy, gaussian_path_kinetic, running_mean

DT = torch.float64
A = torch.tensor([[1.0, 0.4], [0.4, 0.7]], dtype=DT)
B = torch.tensor([[0.6, -0.3], [-0.3, 1.5]], dtype=DT)  # does not commute with A
a = torch.tensor([0.5, -1.0], dtype=DT)
b = torch.tensor([-0.3, 2.0], dtype=DT)
EPS = 0.3


def test_sb_path_has_the_closed_form_kinetic_energy():
    # linear interpolant + gamma = sqrt(2 eps t(1-t)) + the SB plan's coupling is the SB itself (docs/math.md §5),
    # so its kinetic energy is GaussianSB.kinetic_energy (computed there from entropies, not a path integral)
    ref = gaussian_sb(a, A, b, B, eps=EPS)
    it = FourierInterpolant(4, dim=2, gamma=BrownianGamma(a=2 * EPS), learn_gamma=True)
    assert gaussian_path_kinetic(it, a, A, b, B, EPS, ref.C) == pytest.approx(ref.kinetic_energy(), rel=1e-9)
    # any other admissible path costs more: independent coupling
    assert gaussian_path_kinetic(it, a, A, b, B, EPS) > ref.kinetic_energy()


def test_energy_matches_oracle_fields_by_monte_carlo():
    # independent coupling, random per-dimension Fourier coefficients and learned gamma: E|b + eps s|^2 at
    # fixed t from the exact fields of InterpolantOracle on 40000 samples; tolerance 4 standard errors
    g = torch.Generator().manual_seed(0)
    it = FourierInterpolant(4, dim=2, gamma=BrownianGamma(a=2 * EPS), learn_gamma=True)
    with torch.no_grad():
        for p in it.parameters():
            p.copy_(0.3 * torch.randn(p.shape, generator=g, dtype=DT))
    oracle = InterpolantOracle(it, gaussian(a, A), gaussian(b, B))
    n = 40_000
    for t in (0.1, 0.7):
        tt = torch.full((n,), t, dtype=DT)
        x0 = a + torch.randn(n, 2, generator=g, dtype=DT) @ torch.linalg.cholesky(A).T
        x1 = b + torch.randn(n, 2, generator=g, dtype=DT) @ torch.linalg.cholesky(B).T
        with torch.no_grad():
            s = it.sample(tt, x0, x1, torch.randn(n, 2, generator=g, dtype=DT))
            e = ((oracle.b(tt, s.xt) + EPS * oracle.s(tt, s.xt)) ** 2).sum(-1)
        with torch.no_grad():
            exact = float(gaussian_path_energy(it, torch.tensor([t], dtype=DT), a, A, b, B, EPS)[0])
        assert abs(float(e.mean()) - exact) < 4 * float(e.std()) / n**0.5


def test_running_mean_against_a_loop():
    y = np.random.default_rng(0).normal(size=23)
    naive = [y[max(0, i - 2) : i + 3].mean() for i in range(y.size)]
    np.testing.assert_allclose(running_mean(y, 5), naive, rtol=1e-12)


def test_sb_path_is_stationary_in_the_fourier_family():
    # the SB minimises the kinetic energy over all admissible paths, so with the SB coupling the
    # linear interpolant (zero Fourier coefficients) is a minimum of the family: zero gradient
    from paper_figures.schrodinger import _kinetic_tensor

    ref = gaussian_sb(a, A, b, B, eps=EPS)
    it = FourierInterpolant(4, dim=2, gamma=BrownianGamma(a=2 * EPS), learn_gamma=True)
    _kinetic_tensor(it, a, A, b, B, EPS, ref.C, 64).backward()
    for p in it.parameters():
        assert float(p.grad.abs().max()) < 1e-9
    it.zero_grad()
    _kinetic_tensor(it, a, A, b, B, EPS, None, 64).backward()  # independent coupling: not stationary
    assert max(float(p.grad.abs().max()) for p in it.parameters()) > 1e-3
