"""``bridge.pt``, the result `bridge solve` writes and `bridge sample` reads: the
:class:`~bridge.sb.BridgeResult` save/load round trip, what it refuses, and the report's
handling of a failed reference."""

import dataclasses

import pytest
import torch

from bridge.checkpoint import CheckpointError
from bridge.sb import BridgeResult, SBConfig, solve_bridge

from .helpers import PNGS


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
    resolved = {k: getattr(res.config, k) for k in ("coupling", "gradient_drift", "refine_rounds")}
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


def test_load_refuses_other_checkpoints(run_dir, tmp_path):
    with pytest.raises(CheckpointError, match="not a saved bridge result"):
        BridgeResult.load(run_dir / "state.pt")  # the training state, not a result


def test_reference_failure_is_reported_not_raised(run_dir, tmp_path, monkeypatch):
    """POT's Sinkhorn raising ConvergenceError ends up in the report; the figures still render."""
    import bridge.ot
    from bridge.sb.report import evaluate_bridge, write_figures

    def fail(*a, **k):
        raise bridge.ot.ConvergenceError("entropic_plan: Sinkhorn did not converge (test)")

    monkeypatch.setattr(bridge.ot, "entropic_plan", fail)
    res = BridgeResult.load(run_dir / "bridge.pt")
    g = torch.Generator().manual_seed(0)
    x0, x1 = torch.randn(20, 2, generator=g), torch.randn(20, 2, generator=g)
    ev = evaluate_bridge(res, x0, x1, per_point=2, sde_steps=4, generator=g)
    assert "did not converge" in ev.errors["reference"] and ev.metrics["coupling"] == {"available": False}
    assert ev.metrics["marginal"]["model"]["energy_distance"] >= 0  # the rest is still computed
    assert write_figures(ev, res, tmp_path) == list(PNGS) and all((tmp_path / p).is_file() for p in PNGS)
