"""Smoke test of benchmarks/scale.py: tiny sizes; the JSON holds every table and the auto choice."""

import importlib.util
import json
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_scale_quick_writes_its_tables(tmp_path, capsys):
    spec = importlib.util.spec_from_file_location("benchmarks_scale", ROOT / "benchmarks" / "scale.py")
    mod = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = mod
    try:
        spec.loader.exec_module(mod)
        mod.main(["--quick", "--out", str(tmp_path / "scale.json")])
    finally:
        sys.modules.pop(spec.name, None)
    rec = json.loads((tmp_path / "scale.json").read_text())
    assert [r["drift"] for r in rec["throughput"]] == ["plain", "gradient (grad_x V)"]
    assert all(r["bridge_steps_per_s"] > 0 and r["bare_steps_per_s"] > 0 for r in rec["throughput"])
    assert "autograd.grad, no graph (sampling)" in rec["gradient_ms"]
    for problem in rec["accuracy"]:
        auto = [r for r in problem["rows"] if r["choice"] == "auto"][0]
        assert auto["steps"] == auto["auto"]["steps"] >= 64 and problem["floor_mean"] > 0
    assert "time to accuracy" in capsys.readouterr().out
