"""The report's reference check at sizes where nothing n x n may be held: the plans' memory budget
and tolerance are the caller's, and the energy distances reuse the target's own term.

| check                                                     | tolerance     | reason                                            |
|-----------------------------------------------------------|---------------|---------------------------------------------------|
| cached energy distance = bridge.metrics.energy_distance   | 1e-12 rel.    | the same sums, one of them computed once           |
| float32 chunked reference vs the dense one: cross-cov.    | 2e-3 abs.     | marginal error 1e-4 moves entries of size ~1 little |
| chunked plan's marginal error                             | reference_tol | what the solver is asked for                       |
"""

import pytest
import torch

import bridge.energy as energy
from bridge.metrics import energy_distance
from bridge.sb import SBConfig, solve_bridge
from bridge.sb.evaluation import _energy, evaluate_bridge


@pytest.fixture(scope="module")
def tiny():
    """A barely trained bridge between N(0, I) and N((1, 1), I), and held-out points of both."""
    g = torch.Generator().manual_seed(0)
    x0, x1 = torch.randn(500, 2, generator=g), torch.randn(500, 2, generator=g) + 1
    cfg = SBConfig(outer_steps=2, inner_steps=1, warmup_steps=2, batch_size=32, hidden=8, depth=2, log_every=0)
    res = solve_bridge(x0[:200], x1[:200], 0.5, config=cfg, progress=lambda m: None)
    return res, x0[200:], x1[200:]


def _evaluate(res, x0, x1, **kw):
    opts = dict(per_point=2, sde_steps=10, sinkhorn_points=30, generator=torch.Generator().manual_seed(0))
    return evaluate_bridge(res, x0, x1, **{**opts, **kw})


@pytest.mark.parametrize("exact_pairs", [energy.EXACT_PAIRS, 100])
def test_cached_energy_distance_is_the_energy_distance(monkeypatch, exact_pairs):
    monkeypatch.setattr(energy, "EXACT_PAIRS", exact_pairs)  # 100: every sum through the float32 tiles
    g = torch.Generator().manual_seed(1)
    x, y = torch.randn(130, 3, generator=g, dtype=torch.float64), torch.randn(90, 3, generator=g, dtype=torch.float64)
    y_mean = energy.distance_sum(y, y) / 90**2
    assert _energy(x, y, y_mean) == pytest.approx(energy_distance(x, y), rel=1e-12)
    assert _energy(x, y) == pytest.approx(energy_distance(x, y), rel=1e-12)


def test_reference_plans_follow_plan_memory_and_reference_tol(tiny):
    res, x0, x1 = tiny
    dense = _evaluate(res, x0, x1, x1_floor=x1)
    chunked = _evaluate(res, x0, x1, x1_floor=x1, plan_memory=1000, reference_tol=1e-4)
    pd, pc = dense.settings["pot"], chunked.settings["pot"]
    assert (pd["backend"], pd["dtype"], pd["tol_marginal_l1"], pd["memory_budget"]) == ("dense", "float64", 1e-6, None)
    assert (pc["backend"], pc["dtype"], pc["tol_marginal_l1"], pc["memory_budget"]) == (
        "chunked",
        "float32",
        1e-4,
        1000,
    )
    assert "> memory budget 0.001 MB" in pc["backend_reason"] and pc["marginal_error"] <= 1e-4
    want = torch.tensor(dense.metrics["coupling"]["pot_cross_covariance"])
    got = torch.tensor(chunked.metrics["coupling"]["pot_cross_covariance"])
    assert torch.allclose(got, want, atol=2e-3, rtol=0)
    assert "error" not in chunked.metrics["coupling"]["reference_floor"]  # the floor's plan is solved the same way
    assert (
        chunked.settings["energy"]["backend"] == "exact"
        and "EXACT_PAIRS" in chunked.settings["energy"]["backend_reason"]
    )
    # the report's energy distance is the library's, with the target's own term computed once
    model = chunked.metrics["marginal"]["model"]["energy_distance"]
    assert model == pytest.approx(energy_distance(chunked.model_x1, chunked.x1), rel=1e-12)


@pytest.mark.parametrize(
    ("kw", "name"),
    [
        ({"plan_memory": 0}, "plan_memory"),
        ({"plan_memory": 1.5}, "plan_memory"),
        ({"reference_tol": 0.0}, "reference_tol"),
    ],
)
def test_bad_plan_options_are_named(tiny, kw, name):
    res, x0, x1 = tiny
    with pytest.raises(ValueError, match=name):
        _evaluate(res, x0, x1, **kw)
