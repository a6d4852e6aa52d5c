"""`bridge solve`: the run directory, its report, resume, the solver options, and one-line errors.

Every run here is tiny (see ``helpers.SOLVE_TINY``): the point is the contract (files, shapes,
keys, exit codes, atomic writes), not the bridge's quality.
"""

import json
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from bridge.cli import main
from bridge.sb import BridgeResult

from .helpers import EPS, PNGS, SOLVE_TINY, assert_one_line, bad_files, main_error, run_process, solve


def test_solve_writes_the_run_directory(run_dir):
    for name in ("run.json", "state.pt", "bridge.pt", "report.json", *PNGS):
        assert (run_dir / name).is_file(), name
    for name in PNGS:
        assert (run_dir / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", name
    assert not list(run_dir.glob(".*.tmp"))  # no temporary files left behind
    rep = json.loads((run_dir / "report.json").read_text())
    assert {"problem", "settings", "metrics", "errors", "training", "timings", "versions", "seed", "sde_steps"} <= set(
        rep
    )
    assert rep["errors"] == {} and rep["seed"] == 0 and rep["sde_steps"] == 8
    assert rep["problem"]["eps"] == EPS and rep["problem"]["n_eval"] == [60, 60]
    m = rep["metrics"]
    for key in ("energy_distance", "sinkhorn_divergence", "w2", "bw2_uvp"):
        assert m["marginal"]["model"][key] >= 0 and m["marginal"]["noise_floor"][key] >= 0, key
        assert m["marginal"]["noise_floor_spread"][key] >= 0, key
    # the floor: 5 disjoint sets of 60 training targets, each against the same 60 held-out ones as the model
    assert m["marginal"]["sizes"] == {"model": [60, 60], "noise_floor": [60, 60]}
    assert m["marginal"]["noise_floor_sets"] == 5
    c = m["coupling"]
    assert c["available"] and c["barycentric_map_l2_uvp"] >= 0 and c["barycentric_map_l2_uvp_raw"] >= 0
    for key in ("cross_covariance_rel_error", "barycentric_map_l2_uvp", "model_transport_cost", "pot_transport_cost"):
        assert math.isfinite(c[key]), key
    assert np.array(c["model_cross_covariance"]).shape == np.array(c["pot_cross_covariance"]).shape == (2, 2)
    assert set(c["reference_floor"]) >= {"cross_covariance_rel_error", "barycentric_map_l2_uvp"}
    assert set(m["marginals_by_t"]["energy_distance"]) == {"0", "0.25", "0.5", "0.75", "1"}
    # taken at the 8-step end-refined grid's times t = 1 - (1 - k/8)^2 nearest to those
    assert m["marginals_by_t"]["times"] == {"0": 0.0, "0.25": 0.234375, "0.5": 0.4375, "0.75": 0.75, "1": 1.0}
    assert m["marginals_by_t"]["energy_distance"]["0"] == pytest.approx(0.0, abs=1e-12)  # both start at x0
    k = m["kinetic"]
    assert k["kl_path"] == pytest.approx(k["path"] / (4 * EPS)) and k["kl_last"] == pytest.approx(k["last"] / (4 * EPS))
    # the conventions of the reference (bridge.conventions): reg = 4 eps, blur = sqrt(2 eps)
    s = rep["settings"]
    assert s["pot"]["reg"] == 4 * EPS and s["pot"]["method"] == "sinkhorn_log" and s["pot"]["marginal_error"] < 1e-6
    assert s["geomloss"]["blur"] == pytest.approx(math.sqrt(2 * EPS)) and s["entropic"]["eps"] == EPS
    t = rep["training"]
    assert t["outer_steps_done"] == 6 and t["stopped_by"] == "steps" and not t["resumed"]
    assert [r["step"] for r in t["history"]] == list(range(1, 7))
    # the settings as used: no "auto" left, and why each was chosen
    assert "auto" not in (t["config"]["coupling"], t["config"]["gradient_drift"], t["config"]["refine_rounds"])
    assert set(t["auto_choices"]) == {
        "coupling",
        "gradient_drift",
        "refine_rounds",
        "lr_inner",
        "lr_outer",
        "drift_family",
    }
    assert t["family"]["family"] == t["config"]["drift_family"] == "network"  # too few samples to test the mixture
    assert t["auto_choices"]["coupling"] == t["coupling"]["reason"]
    assert rep["timings"]["training_s"] > 0 and rep["timings"]["evaluation_s"] > 0
    assert {"torch", "pot", "geomloss", "numpy", "bridge"} <= set(rep["versions"])


@pytest.mark.parametrize(
    "change, word",
    [
        ({"--source": "moons", "--target": "{tmp}/d3.npy"}, "dimension"),  # gaussian would take d = 3
        ({"--source": "{tmp}/nan.npy"}, "NaN"),
        ({"--eps": "0"}, "--eps"),
        ({"--eps": "-0.5"}, "--eps"),
        ({"--eps": "nan"}, "--eps"),
        ({"--out": "{tmp}/file"}, "not a directory"),
        ({"--source": "no-such-set"}, "neither a built-in"),
        ({"--coupling": "exact"}, "--coupling"),
        ({"--holdout": "1.5"}, "--holdout"),
        ({"--holdout": "half"}, "--holdout"),
        ({"--patience": "0"}, "--patience"),
        ({"--refine-rounds": "-1"}, "--refine-rounds"),
        ({"--refine-rounds": "once"}, "--refine-rounds"),
        ({"--min-component-count": "-1"}, "--min-component-count"),
        ({"--min-component-count": "nan"}, "--min-component-count"),
    ],
)
def test_solve_bad_input_one_line(tmp_path, capsys, change, word):
    bad_files(tmp_path)
    opts = {"--source": "gaussian", "--target": "moons", "--eps": "0.5", "--out": str(tmp_path / "o"), "--steps": "2"}
    opts.update({k: v.format(tmp=tmp_path) for k, v in change.items()})
    rc, err = main_error(["solve", *[a for kv in opts.items() for a in kv], *SOLVE_TINY, "--quiet"], capsys)
    assert_one_line(rc, err, word)
    assert not (tmp_path / "o").exists()  # nothing created on bad input
    assert (tmp_path / "file").read_text() == "x"


def test_solve_missing_eps_and_cuda(tmp_path, capsys):
    rc, err = main_error(["solve", "--source", "gaussian", "--target", "moons", "--out", str(tmp_path / "o")], capsys)
    assert_one_line(rc, err, "--eps")
    if not torch.cuda.is_available():
        args = ["solve", "--source", "gaussian", "--target", "moons", "--eps", "1", "--out", str(tmp_path / "o")]
        rc, err = main_error([*args, "--device", "cuda"], capsys)
        assert_one_line(rc, err, "cuda")


@pytest.mark.slow
def test_resume_after_time_budget(tmp_path, capsys):
    """An interrupted run (here: stopped by --time-budget, which counts all sessions) continues
    from state.pt when rerun with the same --out: the history is extended, not restarted."""
    out = tmp_path / "run"
    assert solve(out, "--warmup-steps", "0", "--time-budget", "1", steps=100000) == 0
    first = json.loads((out / "report.json").read_text())["training"]
    assert first["stopped_by"] == "time_budget" and not first["resumed"]
    assert BridgeResult.load(out / "bridge.pt").steps == first["outer_steps_done"]  # the result so far is saved
    capsys.readouterr()
    assert solve(out, "--warmup-steps", "0", "--time-budget", "2", steps=100000) == 0
    log = capsys.readouterr().err
    second = json.loads((out / "report.json").read_text())["training"]
    assert "resumed from" in log and second["resumed"] and "resumed" in second["resume_log"]
    assert second["outer_steps_done"] > first["outer_steps_done"]
    assert second["history"][: len(first["history"])] == first["history"]
    assert second["training_s_all_sessions"] >= 2.0


def test_resume_refuses_another_config_and_keeps_state(run_dir, capsys):
    state = (run_dir / "state.pt").read_bytes()
    report = (run_dir / "report.json").read_text()
    args = ["solve", "--source", "gaussian", "--target", "moons", "--eps", str(EPS), "--out", str(run_dir)]
    rc, err = main_error([*args, "--steps", "6", *SOLVE_TINY, "--hidden", "9", "--quiet"], capsys)  # another network
    assert_one_line(rc, err, "fresh --out")
    rc, err = main_error([*args, "--steps", "6", *SOLVE_TINY, "--seed", "3", "--quiet"], capsys)  # other training data
    assert_one_line(rc, err, "fresh --out")
    assert (run_dir / "state.pt").read_bytes() == state and (run_dir / "report.json").read_text() == report


def test_solve_with_the_neural_interpolant(tmp_path):
    rc = solve(
        tmp_path / "run",
        "--interpolant",
        "neural",
        "--drift-form",
        "b,eta",
        "--coupling",
        "minibatch",
        "--quiet",
        steps=3,
    )
    assert rc == 0
    back = BridgeResult.load(tmp_path / "run" / "bridge.pt")
    assert back.config.interpolant == "neural" and type(back.interpolant).__name__ == "NeuralInterpolant"
    assert (
        back.config.drift_form == "b,eta" and back.drift_net.split == "b" and back.coupling["coupling"] == "minibatch"
    )
    assert all((tmp_path / "run" / png).is_file() for png in PNGS)
    report = json.loads((tmp_path / "run" / "report.json").read_text())
    assert report["training"]["config"]["interpolant"] == "neural"


def test_solve_with_holdout_reports_the_validation(tmp_path):
    rc = solve(tmp_path / "run", "--holdout", "0.2", "--patience", "50", "--quiet", steps=4)
    assert rc == 0
    report = json.loads((tmp_path / "run" / "report.json").read_text())
    val = report["training"]["validation"]
    assert report["training"]["config"]["holdout"] == 0.2 and report["training"]["config"]["patience"] == 50
    assert val["held_out"] == [60, 60] and 1 <= val["best_step"] <= 4 and val["curve"][-1]["step"] == 4
    assert BridgeResult.load(tmp_path / "run" / "bridge.pt").validation == val


def test_solve_with_a_gradient_drift(tmp_path):
    rc = solve(tmp_path / "run", "--gradient-drift", "on", "--quiet", steps=3)
    assert rc == 0
    report = json.loads((tmp_path / "run" / "report.json").read_text())
    assert report["training"]["config"]["gradient_drift"] is True
    back = BridgeResult.load(tmp_path / "run" / "bridge.pt")
    assert back.config.gradient_drift and type(back.drift_net.first).__name__ == "GradientField"
    y = tmp_path / "y.npy"
    x0 = tmp_path / "x0.npy"
    np.save(x0, np.random.default_rng(0).normal(size=(5, 2)).astype(np.float32))
    assert (
        main(
            [
                "sample",
                "--run",
                str(tmp_path / "run"),
                "--source",
                str(x0),
                "--per-point",
                "3",
                "--out",
                str(y),
                "--steps",
                "10",
                "--quiet",
            ]
        )
        == 0
    )
    assert np.load(y).shape == (5, 3, 2)


@pytest.mark.slow
def test_solve_with_coupling_refinement(tmp_path):
    """``--refine-rounds N`` reaches the solver: the report records the rounds, when they started
    and the setting, and the saved result keeps them."""
    rc = solve(tmp_path / "run", "--coupling", "independent", "--refine-rounds", "2", "--quiet", steps=4)
    assert rc == 0
    report = json.loads((tmp_path / "run" / "report.json").read_text())
    assert report["training"]["config"]["refine_rounds"] == 2
    refine = report["training"]["coupling"]["refine"]
    assert refine["rounds"] == 2 and [r["step"] for r in refine["started"]] == [2, 3]
    assert BridgeResult.load(tmp_path / "run" / "bridge.pt").coupling["refine"] == refine
    assert (tmp_path / "run" / "history.png").is_file()


def test_python_m_and_console_script_agree(tmp_path):
    """`python -m bridge solve` behaves like `bridge solve`: same exit code and one-line error."""
    np.save(tmp_path / "d3.npy", np.ones((20, 3)))
    args = [
        "solve",
        "--source",
        "moons",  # 2-D against a 3-D target (gaussian would take the target's dimension)
        "--target",
        str(tmp_path / "d3.npy"),
        "--eps",
        "1",
        "--out",
        str(tmp_path / "o"),
    ]
    r = run_process(args)
    assert r.returncode == 2 and len(r.stderr.strip().splitlines()) == 1 and "dimension" in r.stderr, r.stderr
    script = Path(sys.executable).parent / "bridge"
    if not script.exists():
        pytest.skip("bridge console script not installed next to this Python")
    s = subprocess.run([str(script), *args], capture_output=True, text=True, timeout=300)
    assert (s.returncode, s.stderr) == (r.returncode, r.stderr)


def test_solve_with_the_mixture_family_and_exact_sampling(tmp_path):
    """`--drift-family mixture` records the family in report.json and bridge.pt; `bridge sample`
    then draws exactly (the same draws as BridgeResult.sample), and `--time` passes through."""
    args = ("--drift-family", "mixture", "--n-components", "3", "--mixture-covariance", "full", "--kl-share", "0.5")
    assert solve(tmp_path / "run", *args, "--min-component-count", "0", "--quiet", steps=3) == 0
    cfg = json.loads((tmp_path / "run" / "report.json").read_text())["training"]["config"]
    assert (cfg["drift_family"], cfg["n_components"], cfg["mixture_covariance"]) == ("mixture", 3, "full")
    assert (cfg["kl_share"], cfg["min_component_count"]) == (0.5, 0.0)
    back = BridgeResult.load(tmp_path / "run" / "bridge.pt")
    assert back.sampling_method() == "exact"
    x0 = np.random.default_rng(0).normal(size=(5, 2)).astype(np.float32)
    np.save(tmp_path / "x0.npy", x0)
    for time in ("1", "0.5"):
        y = tmp_path / f"y{time}.npy"
        base = ["sample", "--run", str(tmp_path / "run"), "--source", str(tmp_path / "x0.npy"), "--per-point", "3"]
        assert main([*base, "--out", str(y), "--time", time, "--quiet"]) == 0
        ref = back.sample(
            torch.from_numpy(x0), per_point=3, time=float(time), generator=torch.Generator().manual_seed(0)
        )
        np.testing.assert_array_equal(np.load(y), ref.numpy())


@pytest.mark.slow
def test_solve_sde_steps_auto_records_the_count_and_why(tmp_path):
    """`--sde-steps auto`: report.json holds the chosen count (never "auto") and the pilot's record."""
    assert solve(tmp_path / "run", "--sde-steps", "auto", "--quiet") == 0
    rep = json.loads((tmp_path / "run" / "report.json").read_text())
    choice = rep["settings"]["sde"]["steps_choice"]
    assert rep["sde_steps"] == rep["settings"]["sde"]["steps"] == choice["steps"] >= 64
    assert "within" in choice["reason"] or "max_steps" in choice["reason"]
