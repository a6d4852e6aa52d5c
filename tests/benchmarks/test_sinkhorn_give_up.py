"""benchmarks/sinkhorn_give_up.py in quick mode: the early stops end sooner, and the full runs
they cut short did not converge either (so stopping lost nothing)."""

import json

import pytest

from bridge.sb import SBConfig

from .scripts import benchmark_script


@pytest.mark.slow
def test_sinkhorn_give_up_quick(tmp_path):
    with benchmark_script("sinkhorn_give_up.py", "benchmarks_give_up") as mod:
        mod.main(["--quick", "--out", str(tmp_path / "g.json")])
    runs = json.loads((tmp_path / "g.json").read_text())["runs"]
    early, full, before = (runs[f"first plan: {k}"] for k in ("early stop, cost kept (now)", "every sweep, cost kept",
                                                              "every sweep, cost recomputed (before)"))  # fmt: skip
    assert early["sweeps"] < full["sweeps"] == before["sweeps"]
    assert full["marginal_error"] > 10 * SBConfig().plan_tol  # the whole run missed what the stop predicted
    assert full["marginal_error"] == before["marginal_error"]  # keeping the cost changes no number
    ref_early, ref_full = runs["reference: early stop (now)"], runs["reference: every iteration (before)"]
    assert "stopped early" in ref_early["error"] and ref_early["iterations"] < ref_full["iterations"]
    assert ref_full["marginal_error"] > 1e-6
