"""Smoke test of benchmarks/scale.py: tiny sizes; the JSON holds every table and the auto choice."""

import json

import pytest
import torch

from .scripts import benchmark_script


@pytest.mark.slow
def test_scale_quick_writes_its_tables(tmp_path, capsys):
    with benchmark_script("scale.py", "benchmarks_scale") as mod:
        mod.main(["--quick", "--out", str(tmp_path / "scale.json")])
    rec = json.loads((tmp_path / "scale.json").read_text())
    assert [r["drift"] for r in rec["throughput"]] == ["plain", "gradient (grad_x V)"]
    assert all(r["bridge_steps_per_s"] > 0 and r["bare_steps_per_s"] > 0 for r in rec["throughput"])
    assert "autograd.grad, no graph (sampling)" in rec["gradient_ms"]
    for problem in rec["accuracy"]:
        auto = [r for r in problem["rows"] if r["choice"] == "auto"][0]
        assert auto["steps"] == auto["auto"]["steps"] >= 64 and problem["floor_mean"] > 0
    assert "time to accuracy" in capsys.readouterr().out


@pytest.mark.parametrize("method", ["euler", "srk"])
def test_sf2m_sampler_integrates_the_bridge_sde(method):
    """The torchsde column (SF2M's sampler) solves dX = c dt + sqrt(2 eps) dW on [0, 1]: from x0, X_1 is
    N(x0 + c, 2 eps) exactly for a constant drift, whatever the method. Mean and variance of 20000 paths
    within 5 standard errors (variance: sd of the sample variance sqrt(2 / n) relative)."""
    pytest.importorskip("torchsde")
    with benchmark_script("scale.py", "benchmarks_scale_sde") as mod:
        n, eps, c = 20000, 0.3, 0.7
        x0 = torch.full((n, 1), -1.0, dtype=torch.float64)
        y = mod.torchsde_sample(lambda t, x: torch.full_like(x, c), x0, eps, 20, method, seed=3)
    var = 2 * eps
    assert abs(float(y.mean()) - (-1.0 + c)) < 5 * (var / n) ** 0.5
    assert abs(float(y.var()) / var - 1) < 5 * (2 / n) ** 0.5
