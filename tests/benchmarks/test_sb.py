"""Smoke test of benchmarks/sb.py (one tiny problem, second-long budgets) and its own minibatch plan."""

import json
import math

import pytest

from .scripts import benchmark_script


@pytest.fixture(scope="module")
def bench():
    with benchmark_script("sb.py", "benchmarks_sb") as mod:
        yield mod


TINY = ["--problems", "gauss2", "--budget", "0.5", "--n-train", "300", "--test-points", "6", "--per-point", "8"]
TINY += ["--cov-points", "300", "--sde-steps", "4", "--sf2m-impl", "own", "--threads", "0"]


@pytest.mark.slow  # three methods at their time budgets: 1 s idle, ~4 s on a busy machine
@pytest.mark.filterwarnings("ignore:solve_bridge. the time budget:RuntimeWarning")  # a 0.5 s budget on purpose
def test_one_problem_all_methods(bench, tmp_path, capsys):
    out = tmp_path / "sb.json"
    bench.main(TINY + ["--sf2m-grid", "end", "--out", str(out)])
    rec = json.loads(out.read_text())
    (prob,) = rec["problems"]
    assert set(prob["methods"]) == {"bridge", "pot", "sf2m"}
    assert prob["methods"]["sf2m"]["sde_grid"] == prob["methods"]["bridge"]["sde_grid"] == "end"
    for res in prob["methods"].values():
        assert "error" not in res, res.get("error")
        assert math.isfinite(res["cbw2_uvp"]) and math.isfinite(res["cross_cov_error"])
    assert prob["methods"]["bridge"]["cbw2_uvp_ratio_to_bridge"] == 1.0
    assert prob["floor"]["cbw2_uvp"] > 0 and prob["floor"]["cross_cov_error"] > 0
    assert "own implementation" in rec["sf2m_implementation"][0]
    table = capsys.readouterr().out
    assert "| gauss2 | exact samples (floor) |" in table and "| gauss2 | SF2M (own) |" in table


def test_failed_method_is_recorded(bench, tmp_path, capsys, monkeypatch):
    def broken(prob, args):
        raise RuntimeError("Sinkhorn did not converge")

    monkeypatch.setitem(bench.METHODS, "pot", broken)
    out = tmp_path / "sb.json"
    bench.main(TINY + ["--methods", "pot", "--out", str(out)])
    res = json.loads(out.read_text())["problems"][0]["methods"]["pot"]
    assert res == {"error": "RuntimeError: Sinkhorn did not converge"}
    assert "failed: RuntimeError: Sinkhorn did not converge" in capsys.readouterr().out


def test_gauss_plugin_approaches_the_floor_with_data(bench, tmp_path):
    """The Gaussians fitted to the training samples give the closed-form plan's cross-covariance
    back as the samples grow: its estimation error falls as 1/sqrt(n), 10x from 200 to 20000 (10^5
    inputs score it; their own noise, the floor, is below both)."""
    errors = []
    for n in ("200", "20000"):
        out = tmp_path / f"plugin_{n}.json"
        bench.main(TINY + ["--n-train", n, "--cov-points", "100000", "--methods", "gauss-plugin", "--out", str(out)])
        (prob,) = json.loads(out.read_text())["problems"]
        errors.append(prob["methods"]["gauss-plugin"]["cross_cov_error"])
    assert errors[0] > 5 * errors[1] > 5 * prob["floor"]["cross_cov_error"]
    with pytest.raises(ValueError, match="Gaussian problems only"):
        bench.run_gauss_plugin(bench.build_problem("mix2-r1", bench.parse_args(TINY)), None)


@pytest.fixture(scope="module")
def diagnose(bench):
    with benchmark_script("sb_diagnose.py", "benchmarks_sb_diagnose") as mod:
        yield mod


@pytest.mark.slow  # every diagnostic part at its time budget: ~8 s
@pytest.mark.filterwarnings("ignore:solve_bridge. the time budget:RuntimeWarning")
def test_diagnose_runs_every_part(diagnose, tmp_path, capsys):
    out = tmp_path / "diag.json"
    args = ["--problem", "gauss2", "--budget", "0.6", "--budgets", "0.3", "--steps", "4,30", "--main-steps", "4"]
    args += ["--n-train", "400", "--test-points", "6", "--per-point", "8", "--cov-points", "4000", "--out", str(out)]
    args += ["--sf2m-impl", "own", "--oracle-pairs", "700"]
    diagnose.main(args)
    rec = json.loads(out.read_text())
    parts = [r["part"] for r in rec["rows"]]
    assert parts == ["exact", "exact", "learned", "learned", "oracle", "budget", "sf2m", "sf2m"]
    assert all(math.isfinite(r["cbw2_uvp"]) and math.isfinite(r["cross_cov_error"]) for r in rec["rows"])
    assert {r["sde_grid"] for r in rec["rows"] if r["part"] != "sf2m"} == {"end"}  # exact and learned alike
    oracle = next(r for r in rec["rows"] if r["part"] == "oracle")
    assert oracle["coupling"] == "paired" and oracle["what"] == "bridge on 700 exact-plan pairs"
    # the exact SB drift through 30 Heun steps reproduces the closed-form cross-covariance up to the
    # sampling noise of 4000 pairs (the floor's own error); a wrong drift or eps would be far off
    exact30 = next(r for r in rec["rows"] if r["part"] == "exact" and r["sde_steps"] == 30)
    assert exact30["cross_cov_error"] < 3 * rec["floor"]["cross_cov_error"]  # fractions: 0.05 = 5%
    assert "| floor | exact conditional samples |" in capsys.readouterr().out
    learned = [r for r in rec["rows"] if r["part"] in ("learned", "oracle", "budget")]
    assert all(math.isfinite(r["drift_mse"]) and math.isfinite(r["crn_cross_cov_error"]) for r in learned)


def test_drift_errors_of_known_drifts(diagnose, bench):
    """drift_errors on drifts with a known error: the exact SB drift (float32 round-off only) and the
    exact drift plus a constant 0.1 per coordinate (mean squared error 0.1^2 * d exactly; the shift
    moves the mean, not the cross-covariance, beyond the noise that the common increments leave)."""
    from types import SimpleNamespace

    ns = bench.parse_args(["--problems", "gauss2", "--n-train", "50", "--test-points", "2", "--cov-points", "3000"])
    prob = bench.build_problem("gauss2", ns)
    exact = diagnose.drift_errors(prob, SimpleNamespace(drift_net=prob.ref.drift), steps=20)
    assert exact["drift_mse"] < 1e-9 and exact["crn_cross_cov_error"] < 1e-5
    shifted = diagnose.drift_errors(prob, SimpleNamespace(drift_net=lambda t, x: prob.ref.drift(t, x) + 0.1), steps=20)
    assert abs(shifted["drift_mse"] - 0.02) < 1e-6 and abs(shifted["drift_mse_t_below_0.1"] - 0.02) < 1e-6
    assert shifted["crn_cross_cov_error"] < 1e-3


@pytest.mark.parametrize("name", ["gauss2", "mix2-r1"])
def test_more_training_data_keeps_the_test_inputs(bench, monkeypatch, name):
    """Samples beyond FIRST_TRAIN are drawn after the test inputs: a run with more training data is
    scored on the same inputs and truth as the smaller run, and its first samples are the same."""
    monkeypatch.setattr(bench, "FIRST_TRAIN", 40)
    small, large = (
        bench.build_problem(name, bench.parse_args(["--problems", name, "--n-train", str(n), "--test-points", "5",
                                                     "--cov-points", "30", "--trace-samples", "500"]))
        for n in (40, 70)
    )  # fmt: skip
    assert large.x0_train.shape[0] == large.x1_train.shape[0] == 70
    for key in ("x_test", "true_means", "true_covs"):
        assert getattr(large, key).equal(getattr(small, key)), key
    assert large.target_trace == small.target_trace
    assert large.x0_train[:40].equal(small.x0_train) and large.x1_train[:40].equal(small.x1_train)
    assert not large.x0_train[40:].equal(large.x0_train[:30])  # new draws, not repeats


def test_mixture_with_components_off_is_scored_with_all_on_too(bench, tmp_path):
    """Where the solver switched components off, the record holds the same potential's score with
    every component on, and the switched-off components' share at the test sources."""
    out = tmp_path / "sb.json"
    args = ["--problems", "mix2-r1", "--methods", "bridge-mixture", "--budget", "1", "--n-train", "300"]
    args += ["--test-points", "6", "--per-point", "8", "--threads", "0", "--bridge-set", "n_components=6"]
    bench.main(args + ["--bridge-set", "min_component_count=100", "--out", str(out)])
    res = json.loads(out.read_text())["problems"][0]["methods"]["bridge-mixture"]
    assert 0 < res["family"]["pruned"]["switched_off"] < 6
    every = res["all_components"]
    assert math.isfinite(every["cbw2_uvp"]) and 0 <= every["off_share_max"] <= 1
    assert 0 <= every["test_sources_off_share_over_1pct"] <= 6
    assert every["variance_range_off"][0] <= every["variance_range_off"][1]
