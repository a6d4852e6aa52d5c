"""`bridge solve` / `bridge sample`: the run directory, its report, resume, and one-line errors.

Every run here is tiny (a few hundred samples, an 8-wide drift, a handful of outer steps): the
point is the contract (files, shapes, keys, exit codes, atomic writes), not the bridge's quality.
"""

import dataclasses
import json
import math
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from bridge.checkpoint import CheckpointError
from bridge.cli import main
from bridge.sb import SBConfig, solve_bridge
from bridge.sb.result import BridgeResult

EPS = 0.5
TINY = [
    "--n-train", "300",
    "--eval-points", "60",
    "--eval-per-point", "4",
    "--sde-steps", "8",
    "--batch-size", "32",
    "--plan-size", "64",
    "--warmup-steps", "2",
    "--hidden", "8",
    "--log-every", "1",
]  # fmt: skip
PNGS = ("coupling.png", "marginals.png", "coefficients.png", "history.png")


def _solve(out, *extra, steps=6):
    args = ["solve", "--source", "gaussian", "--target", "moons", "--eps", str(EPS), "--out", str(out)]
    return main([*args, "--steps", str(steps), *TINY, *extra])


def _run(args):
    env = dict(os.environ, PYTHONWARNINGS="ignore", OMP_NUM_THREADS="1")
    return subprocess.run([sys.executable, "-m", "bridge", *args], capture_output=True, text=True, env=env, timeout=300)


def _main_error(args, capsys):
    """Run main in-process; return (exit code, stderr) for parser-level and command-level errors."""
    capsys.readouterr()
    try:
        rc = main(args)
    except SystemExit as exc:
        rc = exc.code
    return rc, capsys.readouterr().err.strip()


def _one_line(rc, err, word):
    assert rc == 2, err
    assert len(err.splitlines()) == 1, err
    assert "Traceback" not in err and word.lower() in err.lower(), err


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("sb") / "run"
    assert _solve(out, "--quiet") == 0
    return out


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
    c = m["coupling"]
    assert c["available"]
    for key in ("cross_covariance_rel_error", "barycentric_map_l2_uvp", "model_transport_cost", "pot_transport_cost"):
        assert math.isfinite(c[key]), key
    assert np.array(c["model_cross_covariance"]).shape == np.array(c["pot_cross_covariance"]).shape == (2, 2)
    assert set(c["reference_floor"]) >= {"cross_covariance_rel_error", "barycentric_map_l2_uvp"}
    assert set(m["marginals_by_t"]["energy_distance"]) == {"0", "0.25", "0.5", "0.75", "1"}
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
    assert rep["timings"]["training_s"] > 0 and rep["timings"]["evaluation_s"] > 0
    assert {"torch", "pot", "geomloss", "numpy", "bridge"} <= set(rep["versions"])


def test_sample_writes_float32_n_k_d(run_dir, tmp_path):
    x0 = np.random.default_rng(0).normal(size=(7, 2))
    np.save(tmp_path / "x0.npy", x0)
    args = ["sample", "--run", str(run_dir), "--source", str(tmp_path / "x0.npy"), "--per-point", "3", "--steps", "8"]
    assert main([*args, "--out", str(tmp_path / "y.npy"), "--quiet"]) == 0
    y = np.load(tmp_path / "y.npy")
    assert y.dtype == np.float32 and y.shape == (7, 3, 2) and np.isfinite(y).all()
    # the same seed gives the same samples; what bridge sample writes is BridgeResult.sample's output
    assert main([*args, "--out", str(tmp_path / "y2.npy"), "--quiet"]) == 0
    np.testing.assert_array_equal(y, np.load(tmp_path / "y2.npy"))
    res = BridgeResult.load(run_dir / "bridge.pt")
    ref = res.sample(torch.from_numpy(x0).float(), per_point=3, steps=8, generator=torch.Generator().manual_seed(0))
    np.testing.assert_array_equal(y, ref.numpy())


def test_sample_chunks_rows_and_samples(run_dir, tmp_path, monkeypatch):
    """Memory stays bounded: with a tiny chunk the result has the same shape and is finite."""
    import bridge.cli

    monkeypatch.setattr(bridge.cli, "SAMPLE_CHUNK", 4)
    np.save(tmp_path / "x0.npy", np.zeros((5, 2)))
    args = ["sample", "--run", str(run_dir), "--source", str(tmp_path / "x0.npy"), "--per-point", "6"]
    assert main([*args, "--out", str(tmp_path / "y.npy"), "--steps", "4", "--quiet"]) == 0
    y = np.load(tmp_path / "y.npy")
    assert y.shape == (5, 6, 2) and np.isfinite(y).all() and len(np.unique(y[:, :, 0])) == 30


def _bad_files(tmp):
    nan = np.ones((50, 2))
    nan[3, 1] = np.nan
    np.save(tmp / "nan.npy", nan)
    np.save(tmp / "d3.npy", np.ones((50, 3)))
    (tmp / "file").write_text("x")
    return tmp


@pytest.mark.parametrize(
    "change, word",
    [
        ({"--target": "{tmp}/d3.npy"}, "dimension"),
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
    ],
)
def test_solve_bad_input_one_line(tmp_path, capsys, change, word):
    _bad_files(tmp_path)
    opts = {"--source": "gaussian", "--target": "moons", "--eps": "0.5", "--out": str(tmp_path / "o"), "--steps": "2"}
    opts.update({k: v.format(tmp=tmp_path) for k, v in change.items()})
    rc, err = _main_error(["solve", *[a for kv in opts.items() for a in kv], *TINY, "--quiet"], capsys)
    _one_line(rc, err, word)
    assert not (tmp_path / "o").exists()  # nothing created on bad input
    assert (tmp_path / "file").read_text() == "x"


def test_solve_missing_eps_and_cuda(tmp_path, capsys):
    rc, err = _main_error(["solve", "--source", "gaussian", "--target", "moons", "--out", str(tmp_path / "o")], capsys)
    _one_line(rc, err, "--eps")
    if not torch.cuda.is_available():
        args = ["solve", "--source", "gaussian", "--target", "moons", "--eps", "1", "--out", str(tmp_path / "o")]
        rc, err = _main_error([*args, "--device", "cuda"], capsys)
        _one_line(rc, err, "cuda")


def test_sample_bad_input_one_line_and_nothing_clobbered(run_dir, tmp_path, capsys, monkeypatch):
    _bad_files(tmp_path)
    np.save(tmp_path / "x0.npy", np.zeros((4, 2)))
    keep = tmp_path / "y.npy"
    keep.write_bytes(b"earlier result")
    (tmp_path / "empty_run").mkdir()
    base = {"--run": str(run_dir), "--source": str(tmp_path / "x0.npy"), "--per-point": "2", "--out": str(keep)}
    cases = [
        ({"--run": str(tmp_path / "missing")}, "not a directory"),
        ({"--run": str(tmp_path / "empty_run")}, "bridge.pt"),
        ({"--source": str(tmp_path / "d3.npy")}, "dimension"),
        ({"--source": str(tmp_path / "nan.npy")}, "NaN"),
        ({"--per-point": "0"}, "--per-point"),
        ({"--out": str(tmp_path)}, "is a directory"),
        ({"--out": str(tmp_path / "y.txt")}, ".npy"),
    ]
    for change, word in cases:
        opts = {**base, **change}
        rc, err = _main_error(["sample", *[a for kv in opts.items() for a in kv], "--steps", "4", "--quiet"], capsys)
        _one_line(rc, err, word)

    # a failure while sampling (here: a diverging SDE) leaves the earlier file and no temporary file
    def diverge(self, *a, **k):
        raise FloatingPointError("NaN/Inf at t=0.5")

    monkeypatch.setattr(BridgeResult, "sample", diverge)
    opts = [a for kv in base.items() for a in kv]
    rc, err = _main_error(["sample", *opts, "--steps", "4", "--quiet"], capsys)
    _one_line(rc, err, "diverged")
    assert keep.read_bytes() == b"earlier result"
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


def test_resume_after_time_budget(tmp_path, capsys):
    """An interrupted run (here: stopped by --time-budget, which counts all sessions) continues
    from state.pt when rerun with the same --out: the history is extended, not restarted."""
    out = tmp_path / "run"
    assert _solve(out, "--warmup-steps", "0", "--time-budget", "1", steps=100000) == 0
    first = json.loads((out / "report.json").read_text())["training"]
    assert first["stopped_by"] == "time_budget" and not first["resumed"]
    assert BridgeResult.load(out / "bridge.pt").steps == first["outer_steps_done"]  # the result so far is saved
    capsys.readouterr()
    assert _solve(out, "--warmup-steps", "0", "--time-budget", "2", steps=100000) == 0
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
    rc, err = _main_error([*args, "--steps", "6", *TINY, "--hidden", "9", "--quiet"], capsys)  # another network
    _one_line(rc, err, "fresh --out")
    rc, err = _main_error([*args, "--steps", "6", *TINY, "--seed", "3", "--quiet"], capsys)  # other training data
    _one_line(rc, err, "fresh --out")
    assert (run_dir / "state.pt").read_bytes() == state and (run_dir / "report.json").read_text() == report


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
    # the stored config is the one given, with gradient_drift="auto" resolved
    assert back.config == res.config == dataclasses.replace(cfg, gradient_drift=res.config.gradient_drift)
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


def test_solve_with_the_neural_interpolant(tmp_path):
    rc = _solve(
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
    rc = _solve(tmp_path / "run", "--holdout", "0.2", "--patience", "50", "--quiet", steps=4)
    assert rc == 0
    report = json.loads((tmp_path / "run" / "report.json").read_text())
    val = report["training"]["validation"]
    assert report["training"]["config"]["holdout"] == 0.2 and report["training"]["config"]["patience"] == 50
    assert val["held_out"] == [60, 60] and 1 <= val["best_step"] <= 4 and val["curve"][-1]["step"] == 4
    assert BridgeResult.load(tmp_path / "run" / "bridge.pt").validation == val


def test_solve_with_a_gradient_drift(tmp_path):
    rc = _solve(tmp_path / "run", "--gradient-drift", "on", "--quiet", steps=3)
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


def test_load_refuses_pickled_objects(tmp_path, capsys):
    class Evil:
        def __reduce__(self):
            return (os.system, ("echo pwned > " + str(tmp_path / "pwned"),))

    run = tmp_path / "run"
    run.mkdir()
    payload = {"format": "bridge-checkpoint-v1", "meta_json": '{"kind": "bridge-result"}', "state": {}, "x": Evil()}
    torch.save(payload, run / "bridge.pt")
    with pytest.raises(CheckpointError, match="not a loadable"):
        BridgeResult.load(run / "bridge.pt")
    np.save(tmp_path / "x0.npy", np.zeros((3, 2)))
    args = ["sample", "--run", str(run), "--source", str(tmp_path / "x0.npy"), "--per-point", "1"]
    rc, err = _main_error([*args, "--out", str(tmp_path / "y.npy")], capsys)
    _one_line(rc, err, "not a loadable")
    assert not (tmp_path / "pwned").exists() and not (tmp_path / "y.npy").exists()


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


def test_python_m_and_console_script_agree(tmp_path):
    """`python -m bridge solve` behaves like `bridge solve`: same exit code and one-line error."""
    np.save(tmp_path / "d3.npy", np.ones((20, 3)))
    args = [
        "solve",
        "--source",
        "gaussian",
        "--target",
        str(tmp_path / "d3.npy"),
        "--eps",
        "1",
        "--out",
        str(tmp_path / "o"),
    ]
    r = _run(args)
    assert r.returncode == 2 and len(r.stderr.strip().splitlines()) == 1 and "dimension" in r.stderr, r.stderr
    script = Path(sys.executable).parent / "bridge"
    if not script.exists():
        pytest.skip("bridge console script not installed next to this Python")
    s = subprocess.run([str(script), *args], capture_output=True, text=True, timeout=300)
    assert (s.returncode, s.stderr) == (r.returncode, r.stderr)


def test_likelihood_of_a_solve_run(run_dir, tmp_path, capsys):
    """`bridge likelihood` uses a solve run's SDE (Feynman-Kac) and says which field is missing otherwise."""
    like = ["likelihood", "--run", str(run_dir), "--data", "moons", "--n", "6", "--steps", "5", "--paths", "4"]
    out = tmp_path / "nll"
    assert main([*like, "--out", str(out), "--method", "sde", "--estimator", "fk", "--quiet"]) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["eps"] == EPS and "u dt" in summary["model"] and summary["fields"] == ["u"]
    nll = np.load(out / "nll.npy")
    assert nll.shape == (6,) and np.isfinite(nll).all()
    assert math.isclose(summary["nll_nats"], float(nll.mean()), rel_tol=1e-9)
    rc, err = _main_error([*like, "--out", str(tmp_path / "a"), "--method", "ode"], capsys)
    _one_line(rc, err, "probability-flow drift b")
    rc, err = _main_error([*like, "--out", str(tmp_path / "b"), "--method", "sde", "--estimator", "ito"], capsys)
    _one_line(rc, err, "score s")
    rc, err = _main_error(
        [*like, "--out", str(tmp_path / "c"), "--method", "sde", "--estimator", "fk", "--eps", "1"], capsys
    )
    _one_line(rc, err, "omit --eps")
    assert not (tmp_path / "a").exists() and not (tmp_path / "c").exists()


def test_solve_with_coupling_refinement(tmp_path):
    """``--refine-rounds N`` reaches the solver: the report records the rounds, when they started
    and the setting, and the saved result keeps them."""
    rc = _solve(tmp_path / "run", "--coupling", "independent", "--refine-rounds", "2", "--quiet", steps=4)
    assert rc == 0
    report = json.loads((tmp_path / "run" / "report.json").read_text())
    assert report["training"]["config"]["refine_rounds"] == 2
    refine = report["training"]["coupling"]["refine"]
    assert refine["rounds"] == 2 and [r["step"] for r in refine["started"]] == [2, 3]
    assert BridgeResult.load(tmp_path / "run" / "bridge.pt").coupling["refine"] == refine
    assert (tmp_path / "run" / "history.png").is_file()
