"""Interpolant schedules and families against autograd and exact boundary values (docs/math.md §1)."""

import math

import pytest
import torch

from bridge.interpolants import (
    BrownianGamma,
    CosDown,
    EncoderDecoder,
    FunctionGamma,
    FunctionSchedule,
    Linear,
    LinearDown,
    LinearUp,
    Mirror,
    OneSidedLinear,
    OneSidedTrig,
    OneSidedVP,
    QuadraticGamma,
    SigmoidGamma,
    SinSquaredGamma,
    SinUp,
    SpatiallyLinearInterpolant,
    SqrtOneMinusSquare,
    Trig,
    ZeroGamma,
    time_derivative,
)

DT = torch.float64
# t-grid with points close to both ends, where sqrt-type schedules are stiff
T_GRID = torch.tensor([1e-6, 1e-4, 1e-2, 0.1, 0.3, 0.5, 0.7, 0.9, 0.99, 1 - 1e-4, 1 - 1e-6], dtype=DT)
T_ENDS = torch.tensor([0.0, 1.0], dtype=DT)

GAMMAS = [BrownianGamma(), BrownianGamma(a=2.5), QuadraticGamma(), SinSquaredGamma(), SigmoidGamma(), ZeroGamma()]
COEFFS = [LinearDown(), LinearUp(), CosDown(), SinUp()]


def _autograd_dot(fn, t):
    """Derivative by reverse-mode autograd, one scalar at a time (independent of time_derivative)."""
    out = []
    for ti in t:
        ti = ti.clone().requires_grad_(True)
        y = fn(ti.reshape(1)).sum()
        out.append(torch.autograd.grad(y, ti)[0] if y.requires_grad else torch.zeros_like(ti))
    return torch.stack(out)


@pytest.mark.parametrize("sched", COEFFS + GAMMAS, ids=repr)
def test_schedule_derivative_matches_autograd(sched):
    got = sched.dot(T_GRID)
    ref = _autograd_dot(sched.value, T_GRID)
    torch.testing.assert_close(got, ref, rtol=1e-9, atol=1e-9)


@pytest.mark.parametrize("sched", GAMMAS, ids=repr)
def test_gamma_gamma_dot_is_half_derivative_of_gamma_squared(sched):
    # d/dt (gamma^2 / 2) = gamma * gamma_dot
    ref = _autograd_dot(lambda s: 0.5 * sched.value(s) ** 2, T_GRID)
    torch.testing.assert_close(sched.gamma_gamma_dot(T_GRID), ref, rtol=1e-9, atol=1e-9)
    # ... and finite at the ends even where gamma_dot is not: continuous up to t = 0 and t = 1
    ends = sched.gamma_gamma_dot(T_ENDS)
    near = sched.gamma_gamma_dot(torch.tensor([1e-12, 1 - 1e-12], dtype=DT))
    assert torch.isfinite(ends).all()
    torch.testing.assert_close(ends, near, rtol=0, atol=1e-9)


def test_vp_alpha_derivative():
    s = SqrtOneMinusSquare()
    t = T_GRID[T_GRID < 0.999]
    torch.testing.assert_close(s.dot(t), _autograd_dot(s.value, t))


@pytest.mark.parametrize("sched", GAMMAS, ids=repr)
def test_gamma_boundary_values_exact(sched):
    assert sched(T_ENDS).tolist() == [0.0, 0.0]
    assert sched(T_ENDS.float()).tolist() == [0.0, 0.0]


FAMILIES = [
    Linear(),
    Linear(QuadraticGamma()),
    Linear(SigmoidGamma()),
    Linear(ZeroGamma()),
    Trig(),
    Trig(QuadraticGamma()),
    EncoderDecoder(),
    OneSidedLinear(),
    OneSidedTrig(),
    OneSidedVP(),
    Mirror(),
]


@pytest.mark.parametrize("interp", FAMILIES, ids=repr)
def test_boundary_values_exact(interp):
    for dtype in (torch.float32, torch.float64):
        t = T_ENDS.to(dtype)
        if interp.mirror:
            assert interp.alpha(t).tolist() == [0.0, 0.0] and interp.beta(t).tolist() == [1.0, 1.0]
        else:
            assert interp.alpha(t).tolist() == [1.0, 0.0]
            assert interp.beta(t).tolist() == [0.0, 1.0]
        assert interp.gamma(t).tolist() == [0.0, 0.0]


@pytest.mark.parametrize("interp", FAMILIES, ids=repr)
def test_xt_endpoints_and_time_derivative(interp):
    g = torch.Generator().manual_seed(0)
    n, d = len(T_GRID), 3
    x0, x1, z = (torch.randn(n, d, generator=g, dtype=DT) for _ in range(3))
    if not interp.mirror:
        assert torch.equal(interp.x_t(torch.zeros(n, dtype=DT), x0, x1, z), x0)
    assert torch.equal(interp.x_t(torch.ones(n, dtype=DT), x0, x1, z), x1)
    t = T_GRID if not isinstance(interp, OneSidedVP) else T_GRID.clamp(max=0.99)
    # d/dt x_t = d/dt I + gamma_dot z (SI 2.10), against autograd of x_t
    s = interp.sample(t, x0, x1, z)
    got = s.drift_even + s.drift_odd
    ref = time_derivative(lambda tt: interp.x_t(tt, s.noise if interp.one_sided else x0, x1, z), t)
    torch.testing.assert_close(got, ref, rtol=1e-8, atol=1e-8)
    # the velocity target is d/dt I alone
    ref_v = time_derivative(lambda tt: interp.interpolate(tt, x0, x1), t)
    torch.testing.assert_close(s.velocity_even + s.velocity_odd, ref_v, rtol=1e-8, atol=1e-8)


@pytest.mark.parametrize("interp", [Linear(), Trig(), OneSidedLinear(), Mirror()], ids=repr)
def test_antithetic_partner_has_flipped_noise(interp):
    g = torch.Generator().manual_seed(1)
    x0, x1, z = (torch.randn(5, 2, generator=g, dtype=DT) for _ in range(3))
    t = torch.full((5,), 0.3, dtype=DT)
    s = interp.sample(t, x0, x1, z)
    noise = x0 if interp.one_sided else z
    torch.testing.assert_close(s.xt_anti, interp.x_t(t, -x0, x1, z) if interp.one_sided else interp.x_t(t, x0, x1, -z))
    assert torch.equal(s.noise, noise)


def test_zero_gamma_has_no_antithetic_partner():
    x = torch.randn(4, 2, dtype=DT)
    assert Linear(ZeroGamma()).sample(torch.rand(4, dtype=DT), x, x).xt_anti is None


def test_trig_rejects_gamma_reaching_one():
    with pytest.raises(ValueError, match="gamma"):
        Trig(BrownianGamma(a=4.0))  # max sqrt(4/4) = 1


def test_one_sided_rejects_latent_noise_and_mirror_needs_it():
    with pytest.raises(ValueError, match="one-sided"):
        SpatiallyLinearInterpolant(LinearDown(), LinearUp(), BrownianGamma(), one_sided=True)
    with pytest.raises(ValueError, match="mirror"):
        Mirror(ZeroGamma())


def test_user_supplied_coefficients_autograd():
    # alpha = cos^2(pi t / 2), beta = sin^2(pi t / 2): derivatives from autograd
    interp = SpatiallyLinearInterpolant(
        lambda t: torch.cos(0.5 * math.pi * t) ** 2, lambda t: torch.sin(0.5 * math.pi * t) ** 2, BrownianGamma()
    )
    t = T_GRID
    exact = -0.5 * math.pi * torch.sin(math.pi * t)
    torch.testing.assert_close(interp.alpha_dot(t), exact)
    torch.testing.assert_close(interp.beta_dot(t), -exact)


def test_user_gamma_with_closed_form_product():
    g = FunctionGamma(lambda t: torch.sqrt(2 * t * (1 - t)), ggdot=lambda t: 1 - 2 * t)
    torch.testing.assert_close(g.gamma_gamma_dot(T_ENDS), torch.tensor([1.0, -1.0], dtype=DT))
    torch.testing.assert_close(g.dot(T_GRID[3:-3]), BrownianGamma(a=2.0).dot(T_GRID[3:-3]))


def test_per_dimension_coefficients():
    d = 3
    scale = torch.tensor([0.5, 1.0, 2.0], dtype=DT)
    alpha = FunctionSchedule(lambda t: (1 - t).unsqueeze(-1) * torch.exp(-scale * t.unsqueeze(-1)))
    beta = FunctionSchedule(lambda t: t.unsqueeze(-1) * (1 + scale * (1 - t.unsqueeze(-1))))
    interp = SpatiallyLinearInterpolant(alpha, beta, BrownianGamma())
    g = torch.Generator().manual_seed(2)
    n = len(T_GRID)
    x0, x1, z = (torch.randn(n, d, generator=g, dtype=DT) for _ in range(3))
    assert interp.alpha(T_GRID).shape == (n, d)
    assert torch.equal(interp.x_t(torch.zeros(n, dtype=DT), x0, x1, z), x0)
    assert torch.equal(interp.x_t(torch.ones(n, dtype=DT), x0, x1, z), x1)
    # per-column derivative by independent scalar autograd
    for j in range(d):
        ref = _autograd_dot(lambda s, j=j: alpha.value(s)[..., j], T_GRID)
        torch.testing.assert_close(interp.alpha_dot(T_GRID)[:, j], ref)
    s = interp.sample(T_GRID, x0, x1, z)
    ref = time_derivative(lambda tt: interp.x_t(tt, x0, x1, z), T_GRID)
    torch.testing.assert_close(s.drift_even + s.drift_odd, ref)


def test_time_derivative_keeps_parameter_gradients():
    p = torch.nn.Parameter(torch.tensor(2.0, dtype=DT))
    sched = FunctionSchedule(lambda t: torch.sin(p * t))
    t = torch.tensor([0.3], dtype=DT)
    sched.dot(t).sum().backward()
    # d/dp [p' cos(p t)] with p' = d/dt: d/dp (p cos(p t)) = cos(p t) - p t sin(p t)
    torch.testing.assert_close(p.grad, torch.cos(p * 0.3) - 0.3 * p * torch.sin(p * 0.3))


def test_bad_inputs():
    interp = Linear()
    x = torch.randn(4, 2)
    with pytest.raises(ValueError, match="shapes differ"):
        interp.sample(torch.rand(4), x, torch.randn(4, 3))
    with pytest.raises(ValueError, match="t: expected shape"):
        interp.sample(torch.rand(5), x, x)
    with pytest.raises(ValueError, match=r"\(n, d\)"):
        interp.sample(torch.rand(4), x[:, 0], x[:, 0])
    with pytest.raises(TypeError, match="GammaSchedule"):
        Linear(gamma=lambda t: t)
    with pytest.raises(ValueError, match="a:"):
        BrownianGamma(a=-1.0)
