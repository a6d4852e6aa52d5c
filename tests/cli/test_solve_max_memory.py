"""`bridge solve --max-memory MB`: the memory budget of the report's reference plans."""

import json

import pytest

from .helpers import solve


@pytest.mark.slow
def test_max_memory_sends_the_reference_plans_to_the_chunked_solver(tmp_path):
    # 400 x 400 held-out points: a float64 plan of 1.28 MB, above a budget of 1 MiB (1.05 MB)
    assert solve(tmp_path / "run", "--eval-points", "400", "--max-memory", "1") == 0
    rep = json.loads((tmp_path / "run" / "report.json").read_text())
    pot = rep["settings"]["pot"]
    assert pot["backend"] == "chunked" and pot["memory_budget"] == 2**20
    assert pot["backend_reason"] == "400 x 400 float64 plan = 1.28 MB > memory budget 1.05 MB"
    assert pot["dtype"] == "float64" and pot["marginal_error"] <= 1e-6  # the default tolerance: float64
    assert rep["metrics"]["coupling"]["available"] and "error" not in rep["metrics"]["coupling"]["reference_floor"]


def test_without_max_memory_the_module_budget_applies(run_dir):
    pot = json.loads((run_dir / "report.json").read_text())["settings"]["pot"]
    assert pot["memory_budget"] is None and pot["backend"] == "dense"
    assert pot["backend_reason"].endswith("<= memory budget 268 MB")
