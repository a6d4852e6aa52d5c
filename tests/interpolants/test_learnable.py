"""Learnable interpolants (docs/math.md §5): boundary values for random parameters, time derivatives
against autograd, and gradients with respect to the parameters."""

import pytest
import torch

from bridge.interpolants import FourierInterpolant, NeuralInterpolant, QuadraticGamma, time_derivative
from bridge.losses import loss_b, loss_s

DT = torch.float64
T_GRID = torch.tensor([1e-6, 1e-3, 0.1, 0.3, 0.5, 0.5001, 0.7, 0.9, 1 - 1e-3, 1 - 1e-6], dtype=DT)
T_ENDS = torch.tensor([0.0, 1.0], dtype=DT)


def _randomised(interp, seed=0, scale=0.5):
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in interp.parameters():
            p.copy_(scale * torch.randn(p.shape, generator=g, dtype=p.dtype))
    return interp


FOURIER = [
    dict(n_modes=4),
    dict(n_modes=4, dim=3),
    dict(n_modes=3, learn_gamma=True),
    dict(n_modes=3, dim=3, learn_gamma=True, gamma=QuadraticGamma()),
]


@pytest.mark.parametrize("kw", FOURIER, ids=str)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_fourier_boundary_values_exact_for_random_parameters(kw, dtype):
    for seed in range(3):
        interp = _randomised(FourierInterpolant(**kw), seed)
        t = T_ENDS.to(dtype)
        a, b, g = interp.alpha(t), interp.beta(t), interp.gamma(t)
        assert a[0].eq(1).all() and a[1].eq(0).all()
        assert b[0].eq(0).all() and b[1].eq(1).all()
        assert g.eq(0).all()
        x0, x1, z = (torch.randn(2, 3, dtype=dtype) for _ in range(3))
        xt = interp.x_t(t, x0, x1, z)
        assert torch.equal(xt[0], x0[0]) and torch.equal(xt[1], x1[1])


@pytest.mark.parametrize("kw", FOURIER, ids=str)
def test_fourier_derivatives_match_autograd(kw):
    interp = _randomised(FourierInterpolant(**kw), 7)
    for value, dot in (
        (interp.alpha, interp.alpha_dot),
        (interp.beta, interp.beta_dot),
        (interp.gamma, interp.gamma_dot),
    ):
        torch.testing.assert_close(dot(T_GRID[2:-2]), time_derivative(value, T_GRID[2:-2]))
    ref = time_derivative(lambda t: 0.5 * interp.gamma(t) ** 2, T_GRID)
    torch.testing.assert_close(interp.gamma_gamma_dot(T_GRID), ref)
    assert torch.isfinite(interp.gamma_gamma_dot(T_ENDS)).all()


def test_fourier_starts_as_linear_and_gets_parameter_gradients():
    interp = FourierInterpolant(n_modes=3, dim=2, learn_gamma=True)
    t = T_GRID
    torch.testing.assert_close(interp.alpha(t), (1 - t).unsqueeze(-1).expand(-1, 2))
    g = torch.Generator().manual_seed(0)
    x0, x1 = torch.randn(64, 2, generator=g, dtype=DT), torch.randn(64, 2, generator=g, dtype=DT) + 1
    f = lambda t, x: 0.3 * x + 1.0
    (loss_b(f, interp, x0, x1, generator=g).mean() + loss_s(f, interp, x0, x1, generator=g).mean()).backward()
    for name, p in interp.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, name


def test_fourier_parameter_gradient_of_derivative_against_finite_differences():
    interp = _randomised(FourierInterpolant(n_modes=2, dim=2, learn_gamma=True), 3)
    t = torch.tensor([0.2, 0.6], dtype=DT)

    # a functional form for gradcheck: point the schedules at the inputs, then restore them
    def functional(a, b, c):
        interp.alpha_schedule.w, interp.beta_schedule.w, interp.gamma_schedule.w = a, b, c
        try:
            return torch.cat(
                [interp.alpha_dot(t).flatten(), interp.beta_dot(t).flatten(), interp.gamma_gamma_dot(t).flatten()]
            )
        finally:
            interp.alpha_schedule.w, interp.beta_schedule.w, interp.gamma_schedule.w = interp.a, interp.b, interp.c

    inputs = tuple(p.detach().clone().requires_grad_(True) for p in (interp.a, interp.b, interp.c))
    assert torch.autograd.gradcheck(functional, inputs)


def test_fourier_validation():
    with pytest.raises(ValueError, match="n_modes"):
        FourierInterpolant(0)
    with pytest.raises(ValueError, match="dim"):
        FourierInterpolant(2, dim=0)


def _neural(seed=0):
    g = torch.Generator().manual_seed(seed)
    it = NeuralInterpolant(2, hidden=16, depth=2, generator=g).double()
    with torch.no_grad():  # a non-trivial N_phi (the last layer starts at zero)
        it.net.net[-1].weight.copy_(torch.randn(it.net.net[-1].weight.shape, generator=g, dtype=DT))
    return it


def test_neural_boundary_values_and_start():
    it0 = NeuralInterpolant(2, hidden=8, depth=1)
    x0, x1 = torch.randn(5, 2), torch.randn(5, 2)
    t = torch.rand(5)
    torch.testing.assert_close(it0.interpolate(t, x0, x1), (1 - t)[:, None] * x0 + t[:, None] * x1)
    it = _neural()
    x0, x1 = torch.randn(4, 2, dtype=DT), torch.randn(4, 2, dtype=DT)
    assert torch.equal(it.interpolate(torch.zeros(4, dtype=DT), x0, x1), x0)
    assert torch.equal(it.interpolate(torch.ones(4, dtype=DT), x0, x1), x1)


def test_neural_time_derivative_against_reverse_mode_autograd():
    it = _neural(1)
    g = torch.Generator().manual_seed(2)
    n = len(T_GRID)
    x0, x1 = torch.randn(n, 2, generator=g, dtype=DT), torch.randn(n, 2, generator=g, dtype=DT)
    # reverse-mode, one column at a time: independent of the jvp used by interpolate_dot
    ref = torch.stack([time_derivative(lambda s, j=j: it.interpolate(s, x0, x1)[:, j], T_GRID) for j in range(2)], 1)
    torch.testing.assert_close(it.interpolate_dot(T_GRID, x0, x1), ref)


def test_neural_parameter_gradients_gradcheck():
    it = _neural(3)
    g = torch.Generator().manual_seed(4)
    x0, x1 = torch.randn(3, 2, generator=g, dtype=DT), torch.randn(3, 2, generator=g, dtype=DT)
    t = torch.tensor([0.2, 0.5, 0.8], dtype=DT)
    params = dict(it.net.named_parameters())
    name = next(k for k in params if k.endswith("weight") and params[k].shape[0] == 2)  # the last layer

    def fc(weight):
        p = dict(params, **{name: weight})
        it._n = lambda s, a, b: torch.func.functional_call(it.net, p, (s, torch.cat([a, b], dim=-1)))
        try:
            return it.interpolate_dot(t, x0, x1)
        finally:
            del it._n

    assert torch.autograd.gradcheck(fc, (params[name].detach().clone().requires_grad_(True),))


def test_neural_loss_gradients_reach_phi():
    it = _neural(5)
    g = torch.Generator().manual_seed(6)
    x0, x1 = torch.randn(32, 2, generator=g, dtype=DT), torch.randn(32, 2, generator=g, dtype=DT)
    loss_b(lambda t, x: -x, it, x0, x1, generator=g).mean().backward()
    assert all(p.grad is not None for p in it.parameters())
    assert it.net.net[0].weight.grad.abs().sum() > 0


def test_neural_learned_gamma_keeps_boundaries_and_matches_autograd():
    it = NeuralInterpolant(2, hidden=8, depth=1, learn_gamma=True, n_modes=3, gamma=QuadraticGamma()).double()
    _randomised(it, 8)  # N_phi and the gamma factor both away from their starting point
    x0, x1, z = (torch.randn(2, 2, dtype=DT) for _ in range(3))
    xt = it.x_t(T_ENDS, x0, x1, z)
    assert torch.equal(xt[0], x0[0]) and torch.equal(xt[1], x1[1])
    assert it.gamma(T_ENDS).eq(0).all()
    t = T_GRID[2:-2]
    torch.testing.assert_close(it.gamma_dot(t), time_derivative(it.gamma, t))
    ref = time_derivative(lambda s: 0.5 * it.gamma(s) ** 2, T_GRID)
    torch.testing.assert_close(it.gamma_gamma_dot(T_GRID), ref)
    g = torch.Generator().manual_seed(9)
    a, b = torch.randn(32, 2, generator=g, dtype=DT), torch.randn(32, 2, generator=g, dtype=DT)
    loss_s(lambda t, x: -x, it, a, b, generator=g).mean().backward()
    assert it.c.grad is not None and it.c.grad.abs().sum() > 0  # the gamma factor is learnable


def test_neural_gamma_factor_follows_dtype_casts():
    it = NeuralInterpolant(2, hidden=8, depth=1, learn_gamma=True).float()
    assert it.gamma_schedule.w is it.c and it.c.dtype == torch.float32


def test_neural_validation():
    with pytest.raises(ValueError, match="dim"):
        NeuralInterpolant(0)
    with pytest.raises(ValueError, match="n_modes"):
        NeuralInterpolant(2, learn_gamma=True, n_modes=0)
