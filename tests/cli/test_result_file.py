"""``bridge.pt``, the result `bridge solve` writes and `bridge sample` reads: the
:class:`~bridge.sb.BridgeResult` save/load round trip, what it refuses, and the report's
handling of a failed reference."""

import pytest
import torch

from bridge.checkpoint import CheckpointError
from bridge.sb import BridgeResult

from .helpers import PNGS


def test_load_refuses_other_checkpoints(run_dir, tmp_path):
    with pytest.raises(CheckpointError, match="not a saved bridge result"):
        BridgeResult.load(run_dir / "state.pt")  # the training state, not a result


def test_reference_failure_is_reported_not_raised(run_dir, tmp_path, monkeypatch):
    """POT's Sinkhorn raising ConvergenceError ends up in the report; the figures still render."""
    import bridge.ot
    import bridge.ot_backend
    from bridge.sb.report import evaluate_bridge, write_figures

    def fail(*a, **k):
        raise bridge.ot.ConvergenceError("entropic_plan: Sinkhorn did not converge (test)")

    monkeypatch.setattr(bridge.ot_backend, "entropic_plan", fail)  # the dense backend's solver
    res = BridgeResult.load(run_dir / "bridge.pt")
    g = torch.Generator().manual_seed(0)
    x0, x1 = torch.randn(20, 2, generator=g), torch.randn(20, 2, generator=g)
    ev = evaluate_bridge(res, x0, x1, per_point=2, sde_steps=4, generator=g)
    assert "did not converge" in ev.errors["reference"] and ev.metrics["coupling"] == {"available": False}
    assert ev.metrics["marginal"]["model"]["energy_distance"] >= 0  # the rest is still computed
    assert write_figures(ev, res, tmp_path) == list(PNGS) and all((tmp_path / p).is_file() for p in PNGS)
