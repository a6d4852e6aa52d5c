"""Where eps sits against the data's scale: the Gaussian plan's correlation against the closed form
of docs/math.md §7, the verdicts at eps with known answers, and no random draws."""

import math

import pytest
import torch

from bridge.reference import gaussian_sb
from bridge.sb.scale import RHO_INDEPENDENT, ROW_ESS_OT, eps_scale, gaussian_plan_correlation


def _spd(d, g):
    m = torch.randn(d, d, generator=g, dtype=torch.float64)
    return m @ m.T + 0.3 * torch.eye(d, dtype=torch.float64)


def _sqrtm_inv(a):
    w, v = torch.linalg.eigh(a)
    return v @ torch.diag(w.rsqrt()) @ v.T


@pytest.mark.parametrize("eps", [1e-3, 0.1, 1.0, 30.0, 1e4])
def test_the_largest_canonical_correlation_of_the_closed_form_plan(eps):
    """rho_max = f(eps / s), s^2 = lambda_max(A B), against the singular values of A^-1/2 C B^-1/2
    from gaussian_sb's cross-covariance C (non-commuting A, B)."""
    g = torch.Generator().manual_seed(1)
    a, b = _spd(3, g), _spd(3, g)
    sb = gaussian_sb(torch.zeros(3, dtype=torch.float64), a, torch.ones(3, dtype=torch.float64), b, eps=eps)
    rho = torch.linalg.svdvals(_sqrtm_inv(a) @ sb.C @ _sqrtm_inv(b)).max()
    s = math.sqrt(float(torch.linalg.eigvals(a @ b).real.max()))
    # the closed form's C = (... - r I) / 2 loses digits to cancellation as eps grows: rel 1e-7
    assert gaussian_plan_correlation(eps, s) == pytest.approx(float(rho), rel=1e-7)


def test_correlation_limits():
    assert gaussian_plan_correlation(1e-12, 1.0) == pytest.approx(1.0)
    assert gaussian_plan_correlation(1e6, 1.0) == pytest.approx(0.5e-6, rel=1e-9)  # s / (2 eps), no cancellation
    assert gaussian_plan_correlation(1.0, 0.0) == 0.0


def _gaussians(n=600, d=2, shift=3.0, seed=0):
    g = torch.Generator().manual_seed(seed)
    x0 = torch.randn(n, d, generator=g, dtype=torch.float64)
    x1 = 1.5 * torch.randn(n, d, generator=g, dtype=torch.float64) + shift
    return x0, x1


def test_the_spread_is_the_covariances_scale_and_ignores_the_means():
    """N(0, I) and N(shift, 2.25 I): s = 1.5, up to the sampling error of the covariances
    (relative standard error about sqrt(2 / n) each; 500 rows are used)."""
    x0, x1 = _gaussians()
    r = eps_scale(x0, x1, 1.0)
    assert r.spread == pytest.approx(1.5, rel=4 * math.sqrt(2 / 500))
    assert eps_scale(x0, x1 + 100.0, 1.0).spread == pytest.approx(r.spread, rel=1e-9)


def test_huge_eps_is_the_independent_coupling():
    x0, x1 = _gaussians()
    r = eps_scale(x0, x1, 1e6)
    assert r.verdict == "independent" and r.correlation == pytest.approx(r.spread / 2e6, rel=1e-6)
    assert r.row_ess == pytest.approx(r.points, rel=1e-6)  # every row spreads evenly over all targets
    assert "independent coupling" in r.message and "1e+06" in r.message
    assert eps_scale(x0, x1, 10 * 1.5 * 1.2).verdict == "independent"  # rho < 0.05 from eps ~ 10 s on
    assert eps_scale(x0, x1, 5 * 1.5).verdict == "entropic"  # rho ~ 0.1


def test_tiny_eps_is_the_ot_assignment_of_the_samples():
    x0, x1 = _gaussians()
    r = eps_scale(x0, x1, 1e-6)
    assert r.verdict == "ot" and r.row_ess < ROW_ESS_OT and r.correlation > 1 - 1e-5
    assert "OT assignment" in r.message and r.points == 500


@pytest.mark.parametrize("eps", [0.05, 0.5, 2.0])
def test_moderate_eps_is_neither(eps):
    x0, x1 = _gaussians()
    r = eps_scale(x0, x1, eps)
    assert r.verdict == "entropic" and r.message is None
    assert RHO_INDEPENDENT < r.correlation < 1 and r.row_ess >= ROW_ESS_OT


def test_no_random_draws_and_a_single_point_side():
    x0, x1 = _gaussians(n=2000, d=3)
    state = torch.random.get_rng_state()
    assert eps_scale(x0, x1, 0.3) == eps_scale(x0, x1, 0.3)
    assert torch.equal(torch.random.get_rng_state(), state)
    point = eps_scale(x0, torch.ones(50, 3, dtype=torch.float64), 0.3)
    assert point.verdict == "independent" and "single point" in point.message


def test_solve_bridge_warns_and_records_the_scale():
    """At eps = 1e6 on data of unit scale the solve says so (a warning line) and its result keeps
    the measurement; at eps = 0.5 it records it without a warning."""
    from bridge.sb import SBConfig, solve_bridge

    x0, x1 = _gaussians(n=300)
    cfg = SBConfig(outer_steps=1, warmup_steps=1, batch_size=32, hidden=8, depth=1, plan_size=64, log_every=0)
    for eps, verdict in ((1e6, "independent"), (0.5, "entropic")):
        lines = []
        res = solve_bridge(x0.float(), x1.float(), eps, config=cfg, progress=lines.append)
        warned = [m for m in lines if m.startswith("[solve] warning: ") and "independent coupling" in m]
        assert res.coupling["eps_scale"]["verdict"] == verdict and len(warned) == (verdict != "entropic"), lines
