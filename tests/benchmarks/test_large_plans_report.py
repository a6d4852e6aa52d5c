"""Smoke test of ``benchmarks/large_plans.py --report``: the whole reference check at a tiny size,
in-process; its record has every stage, the peak memory, and the numbers of an exact bridge."""

import pytest

from .scripts import benchmark_script


@pytest.mark.slow
def test_report_check_records_stages_memory_and_settings():
    with benchmark_script("large_plans.py", "benchmarks_large_plans") as mod:
        run = mod.report_check({"n": 300, "d": 3, "eps": 0.5, "seed": 0, "threads": 1, "reference_tol": 1e-4})
    assert run["errors"] == {} and run["peak_mb"] >= run["peak_mb_before_check"] > 0
    assert run["stages"][-1]["line"].endswith("evaluation: done") and run["wall_s"] >= run["stages"][-1]["s"]
    assert run["settings"]["pot"]["backend"] == "dense" and run["settings"]["energy"]["backend"] == "exact"
    # the closed-form drift is the exact bridge: its coupling is as close to POT's plan as POT's plan
    # to an independent target sample, within a factor for one draw of 300 points
    assert run["cross_covariance_rel_error_model_vs_pot"] < 3 * run["reference_floor"]["cross_covariance_rel_error"]
    assert run["energy_distance_by_t"]["0"] == pytest.approx(0.0, abs=1e-6)
