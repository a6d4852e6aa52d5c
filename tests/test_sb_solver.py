"""The SB max–min objective (SPEC §5, SI 3.39) and a short solve on a 1-D Gaussian problem."""

import math

import pytest
import torch

from bridge.interpolants import Linear
from bridge.reference import InterpolantOracle, gaussian
from bridge.sb import SBConfig, sb_objective, solve_bridge

DT = torch.float64


@pytest.mark.parametrize("eps", [0.25, 1.0])
def test_inner_minimiser_is_forward_drift(eps):
    """For a fixed interpolant the objective is a quadratic loss whose minimiser is b_F = b + eps s:
    objective[f] - objective[b_F] = 1/2 E|f - b_F|^2 (checked by Monte Carlo, common random numbers,
    4 standard errors of the per-sample difference)."""
    interp = Linear()
    oracle = InterpolantOracle(
        interp, gaussian([0.0, 1.0], [1.0, 0.5]), gaussian([2.0, -1.0], [[2.0, 0.5], [0.5, 1.0]])
    )
    fields = oracle.fields()
    b_f = fields.forward_drift(eps)
    h = lambda t, x: 0.3 * torch.sin(x) + 0.2 * t[:, None]
    f = lambda t, x: b_f(t, x) + h(t, x)
    g = torch.Generator().manual_seed(0)
    n = 40000
    x0 = oracle.marginal(0.0).sample(n, generator=g)
    x1 = oracle.marginal(1.0).sample(n, generator=g)
    t = 0.01 + 0.98 * torch.rand(n, generator=g, dtype=DT)
    z = torch.randn(n, 2, generator=g, dtype=DT)
    diff = sb_objective(f, interp, x0, x1, eps, t=t, z=z) - sb_objective(b_f, interp, x0, x1, eps, t=t, z=z)
    s = interp.sample(t, x0, x1, z)
    quad = 0.25 * (h(t, s.xt).pow(2).sum(-1) + h(t, s.xt_anti).pow(2).sum(-1))  # antithetic average of 1/2|h|^2
    stat = diff - quad
    se = stat.std() / math.sqrt(n)
    assert abs(float(stat.mean())) < 4 * float(se), (float(stat.mean()), float(se))
    assert float(quad.mean()) > 10 * float(se)  # the excess itself is clearly resolved


def test_solve_bridge_validates_input():
    x = torch.randn(10, 1)
    with pytest.raises(ValueError, match="eps"):
        solve_bridge(x, x, 0.0)
    with pytest.raises(ValueError, match="dimension"):
        solve_bridge(x, torch.randn(10, 2), 0.5)
    with pytest.raises(ValueError, match="NaN"):
        solve_bridge(x, torch.full((10, 1), float("nan")), 0.5)


def test_solve_bridge_runs_and_samples_shapes():
    g = torch.Generator().manual_seed(1)
    x0, x1 = torch.randn(200, 2, generator=g), torch.randn(200, 2, generator=g) + 1
    lines = []
    res = solve_bridge(
        x0,
        x1,
        0.5,
        config=SBConfig(outer_steps=3, warmup_steps=2, batch_size=32, hidden=8, log_every=1),
        progress=lines.append,
    )
    assert res.steps == 3 and len(lines) == 3 and "kinetic" in lines[0]
    y = res.sample(x0[:5], per_point=4, steps=10, generator=g)
    assert y.shape == (5, 4, 2) and torch.isfinite(y).all()
    curves = res.coefficient_curves(torch.linspace(0, 1, 5))
    assert curves["alpha"].shape == (5, 2) and bool(curves["gamma"][0].eq(0).all())
