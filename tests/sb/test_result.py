"""``BridgeResult.save`` / ``BridgeResult.load``: the round trip for every drift form and
interpolant family, and what they refuse."""

import dataclasses

import pytest
import torch

from bridge.sb import BridgeResult, SBConfig, solve_bridge


@pytest.mark.parametrize(
    "drift_form,interpolant",
    [("u", "fourier"), ("endpoint", "fourier"), ("b,eta", "fourier"), ("w,eta", "fourier"), ("v,eta", "neural")],
)
def test_save_load_round_trip(tmp_path, drift_form, interpolant):
    g = torch.Generator().manual_seed(0)
    x0, x1 = torch.randn(100, 3, generator=g), torch.randn(100, 3, generator=g) + 1.0
    cfg = SBConfig(
        outer_steps=3,
        warmup_steps=1,
        batch_size=16,
        hidden=8,
        log_every=1,
        plan_size=32,
        drift_form=drift_form,
        interpolant=interpolant,
        neural_hidden=8,
    )
    res = solve_bridge(x0, x1, 0.7, config=cfg, progress=lambda m: None)
    res.save(tmp_path / "b.pt")
    back = BridgeResult.load(tmp_path / "b.pt")
    t, x = torch.rand(50, generator=g), torch.randn(50, 3, generator=g)
    with torch.no_grad():
        assert torch.equal(res.drift(t, x), back.drift(t, x))
    curves, curves_back = res.coefficient_curves(t), back.coefficient_curves(t)
    assert all(torch.equal(curves[k], curves_back[k]) for k in curves)
    # the stored config is the one given, with its "auto" settings resolved
    resolved = {
        k: getattr(res.config, k)
        for k in ("coupling", "gradient_drift", "refine_rounds", "lr_inner", "lr_outer", "drift_family")
    }
    assert back.config == res.config == dataclasses.replace(cfg, **resolved) and "auto" not in resolved.values()
    assert back.eps == 0.7 and back.history == res.history and back.steps == 3
    assert back.dim == 3 and type(back.drift_net) is type(res.drift_net)
    assert back.coupling == res.coupling and back.stopped_by == res.stopped_by and back.wall_s == res.wall_s
    y1 = res.sample(x[:4], per_point=2, steps=5, generator=torch.Generator().manual_seed(1))
    y2 = back.sample(x[:4], per_point=2, steps=5, generator=torch.Generator().manual_seed(1))
    assert torch.equal(y1, y2)
    assert type(back.interpolant) is type(res.interpolant)
    x1_ = torch.randn(50, 3, generator=g)
    with torch.no_grad():  # the whole interpolant, N_phi included for the neural one
        torch.testing.assert_close(back.interpolant.interpolate(t, x, x1_), res.interpolant.interpolate(t, x, x1_))
    if interpolant == "neural":  # and training moved N_phi off its zero start, so the check has teeth
        assert res.interpolant.net.net[-1].weight.abs().sum() > 0


def test_unknown_interpolant_is_refused():
    x = torch.randn(20, 2)
    with pytest.raises(ValueError, match="interpolant"):
        solve_bridge(x, x + 1, 0.5, config=SBConfig(interpolant="spline", outer_steps=1), progress=lambda m: None)


def test_save_refuses_a_result_it_could_not_reload(tmp_path):
    from bridge.interpolants import NeuralInterpolant

    g = torch.Generator().manual_seed(0)
    x = torch.randn(50, 2, generator=g)
    cfg = SBConfig(outer_steps=1, warmup_steps=0, batch_size=8, hidden=8, coupling="independent")
    res = solve_bridge(x, x + 1, 0.5, interpolant=NeuralInterpolant(2, hidden=8), config=cfg, progress=lambda m: None)
    with pytest.raises(ValueError, match="interpolant"):
        res.save(tmp_path / "b.pt")
    assert not (tmp_path / "b.pt").exists()
