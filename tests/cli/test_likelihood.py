"""`bridge likelihood` on a `bridge solve` run (its fit-run side is tested with the estimators,
in tests/likelihood)."""

import json
import math

import numpy as np

from bridge.cli import main

from .helpers import EPS, assert_one_line, main_error


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
    rc, err = main_error([*like, "--out", str(tmp_path / "a"), "--method", "ode"], capsys)
    assert_one_line(rc, err, "probability-flow drift b")
    rc, err = main_error([*like, "--out", str(tmp_path / "b"), "--method", "sde", "--estimator", "ito"], capsys)
    assert_one_line(rc, err, "score s")
    rc, err = main_error(
        [*like, "--out", str(tmp_path / "c"), "--method", "sde", "--estimator", "fk", "--eps", "1"], capsys
    )
    assert_one_line(rc, err, "omit --eps")
    assert not (tmp_path / "a").exists() and not (tmp_path / "c").exists()
