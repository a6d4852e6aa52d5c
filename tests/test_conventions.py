"""Tests for bridge.conventions: eps <-> r <-> POT reg <-> geomloss blur, and the SB KL.

The central test solves one entropic OT problem with POT at ``reg = pot_reg(eps)`` on
``ot.dist`` (cost |x-y|^2) and with geomloss at ``blur = geomloss_blur(eps)`` (cost |x-y|^2/2,
temperature blur^2 = 2 eps): the two objectives differ by a factor 2, so the plans agree, the
values differ by exactly 2 and the potentials by 2 (after POT's ``reg log a`` shift).

Tolerances:

| check                                         | tolerance           | reason                                                  |
|-----------------------------------------------|---------------------|---------------------------------------------------------|
| conversions and round trips                    | exact / 1e-15       | one multiplication or square root in float64            |
| POT value = 2 x geomloss value                 | rel 2e-5            | geomloss stops its eps-scaling at blur^2 after a few sweeps (scaling 0.99: observed <= 2e-6) |
| plans (L1); centred potentials (mean / max)    | 1e-2; 0.02 / 0.1 reg | same truncation; observed at eps = 0.05: 4e-3; 9e-3 / 7e-2 reg (an outlying point with little mass) |
| mis-converted settings (factor 2 in eps)        | > 100 x the tolerance | observed 3-15 % value error: the agreement is not automatic |
| KL = kinetic / (4 eps) vs Gaussian closed form | rel 1e-12           | two closed forms (entropies vs the 1/(4 eps) factor)    |
"""

from __future__ import annotations

import math

import ot
import pytest
import torch

from bridge.conventions import (
    EntropicSettings,
    check_eps,
    eps_from_geomloss_blur,
    eps_from_pot_reg,
    eps_from_reference_variance,
    geomloss_blur,
    kinetic_energy_from_sb_kl,
    pot_reg,
    reference_variance,
    resolve_eps,
    sb_kl_from_kinetic_energy,
)
from bridge.reference import gaussian_sb

F64 = torch.float64


@pytest.mark.parametrize("eps", [0.05, 0.5, 1.0, 3.7])
def test_conversions_and_round_trips(eps):
    assert reference_variance(eps) == 2 * eps
    assert pot_reg(eps) == 4 * eps
    assert geomloss_blur(eps) == math.sqrt(2 * eps)
    assert eps_from_reference_variance(reference_variance(eps)) == pytest.approx(eps, rel=1e-15)
    assert eps_from_pot_reg(pot_reg(eps)) == pytest.approx(eps, rel=1e-15)
    assert eps_from_geomloss_blur(geomloss_blur(eps)) == pytest.approx(eps, rel=1e-15)
    s = EntropicSettings.from_eps(eps)
    assert (s.eps, s.r, s.pot_reg, s.geomloss_blur, s.geomloss_eps) == (
        eps,
        2 * eps,
        4 * eps,
        math.sqrt(2 * eps),
        2 * eps,
    )
    for other in (
        EntropicSettings.from_reference_variance(2 * eps),
        EntropicSettings.from_pot_reg(4 * eps),
        EntropicSettings.from_geomloss_blur(math.sqrt(2 * eps)),
    ):
        assert other.eps == pytest.approx(eps, rel=1e-15)
    assert set(s.as_dict()) == {"eps", "r", "pot_reg", "geomloss_blur", "geomloss_eps"}


def test_resolve_eps_and_errors():
    assert resolve_eps(eps=0.5) == 0.5 and resolve_eps(r=0.5) == 0.25
    assert check_eps(torch.tensor(0.5, dtype=F64)) == 0.5
    with pytest.raises(ValueError, match="^eps, r: expected exactly one of eps or r = 2 eps"):
        resolve_eps()
    with pytest.raises(ValueError, match="^eps, r: expected exactly one"):
        resolve_eps(eps=1.0, r=2.0)
    for bad in (0.0, -1.0, float("nan"), float("inf")):
        with pytest.raises(ValueError, match="^eps: expected a finite number > 0"):
            check_eps(bad)
    for bad in ("0.5", None, True):
        with pytest.raises(TypeError, match="^eps: expected a number > 0"):
            check_eps(bad)
    with pytest.raises(ValueError, match="^reg: expected a finite number > 0"):
        eps_from_pot_reg(0)
    with pytest.raises(ValueError, match="^blur: expected a finite number > 0"):
        eps_from_geomloss_blur(-1.0)
    with pytest.raises(ValueError, match="^kinetic_energy: expected a finite number >= 0"):
        sb_kl_from_kinetic_energy(-1.0, 0.5)


def solve_both(x, y, eps, *, blur=None):
    """POT (reg = pot_reg(eps), cost ot.dist) and geomloss (blur = geomloss_blur(eps)) on one problem."""
    from geomloss import SamplesLoss

    n, m = len(x), len(y)
    a, b = torch.full((n,), 1 / n, dtype=F64), torch.full((m,), 1 / m, dtype=F64)
    reg, M = pot_reg(eps), ot.dist(x, y)
    P, log = ot.sinkhorn(a, b, M, reg=reg, method="sinkhorn_log", numItermax=100_000, stopThr=1e-12, log=True)
    assert float((P.sum(0) - b).abs().sum()) < 1e-10  # POT converged: it is the reference
    kl = (P * torch.log(P / (a[:, None] * b[None, :]))).sum()
    value_pot = float((P * M).sum() + reg * kl)
    blur = geomloss_blur(eps) if blur is None else blur
    F, G = SamplesLoss("sinkhorn", p=2, blur=blur, debias=False, scaling=0.99, potentials=True)(x, y)
    value_gl = float(a @ F.reshape(-1) + b @ G.reshape(-1))  # geomloss's value (debias=False) is this dual value
    # geomloss: P = a b exp((F + G - |x-y|^2/2) / blur^2); POT: P = exp((f + g - |x-y|^2) / reg)
    f_gl = 2 * F.reshape(-1) + reg * torch.log(a)
    g_gl = 2 * G.reshape(-1) + reg * torch.log(b)
    return P, value_pot, reg * log["log_u"], reg * log["log_v"], value_gl, f_gl, g_gl, M, reg


@pytest.mark.parametrize("eps", [0.05, 0.5, 2.0])
def test_pot_and_geomloss_agree_at_the_converted_settings(eps):
    g = torch.Generator().manual_seed(0)
    x = torch.randn(200, 2, generator=g, dtype=F64)
    y = 0.7 * torch.randn(160, 2, generator=g, dtype=F64) + torch.tensor([1.0, 0.5], dtype=F64)
    P, v_pot, f, gg, v_gl, f_gl, g_gl, M, reg = solve_both(x, y, eps)
    assert v_pot == pytest.approx(2 * v_gl, rel=2e-5)
    P_gl = torch.exp((f_gl[:, None] + g_gl[None, :] - M) / reg)
    assert float((P - P_gl).abs().sum()) < 1e-2
    shift = float((f - f_gl).mean())
    assert float((f - f_gl - shift).abs().mean()) < 2e-2 * reg
    assert float((f - f_gl - shift).abs().max()) < 1e-1 * reg
    assert float((gg - g_gl + shift).abs().max()) < 1e-1 * reg
    if eps == 0.5:  # a factor-2 slip in the conversion (blur = sqrt(eps) or sqrt(4 eps)) breaks it
        for wrong_blur in (math.sqrt(eps), math.sqrt(4 * eps)):
            _, _, _, _, v_wrong, *_ = solve_both(x, y, eps, blur=wrong_blur)
            assert abs(v_pot - 2 * v_wrong) / v_pot > 100 * 2e-5


@pytest.mark.parametrize("eps", [0.1, 1.0])
def test_kl_helper_matches_the_gaussian_path_space_kl(eps):
    # KL(P_SB || W) from the Gaussian entropies (GaussianSB.kl_to_reference) equals the kinetic
    # energy / (4 eps); the kinetic energy's closed form is checked against quadrature in
    # tests/reference/test_gaussian_sb.py.
    A = torch.tensor([[1.0, 0.3], [0.3, 0.5]], dtype=F64)
    B = torch.tensor([[2.0, -0.6], [-0.6, 1.0]], dtype=F64)
    sb = gaussian_sb(torch.zeros(2, dtype=F64), A, torch.ones(2, dtype=F64), B, eps=eps)
    assert sb_kl_from_kinetic_energy(sb.kinetic_energy(), eps) == pytest.approx(sb.kl_to_reference(), rel=1e-12)
    assert kinetic_energy_from_sb_kl(sb.kl_to_reference(), eps) == pytest.approx(sb.kinetic_energy(), rel=1e-12)
