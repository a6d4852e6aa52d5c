"""`bridge likelihood` on a `bridge solve` run (its fit-run side is tested with the estimators,
in tests/likelihood)."""

import json
import math

import numpy as np
import pytest

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


# ----------------------------------------------------------------------------------------------
# fit runs in any dimension: the source N(0, I_d) is the one density the estimators take as known

#: A 3-D Gaussian target N(M, A A^T) with correlated coordinates, far from the source N(0, I_3).
M = np.array([1.0, -2.0, 0.5])
A = np.array([[1.0, 0.0, 0.0], [0.6, 0.8, 0.0], [-0.3, 0.4, 0.5]])
#: A small fit (a few seconds): what the end-to-end accuracy test trains.
FIT_SMALL = ["--steps", "800", "--hidden", "64", "--depth", "2", "--batch-size", "256", "--n-test", "200",
             "--sample-steps", "20", "--eps", "1", "--quiet"]  # fmt: skip
#: The tiny fit of the contract tests (accuracy is not their point).
FIT_TINY = ["--steps", "20", "--hidden", "8", "--n-test", "50", "--sample-steps", "10", "--eps", "1", "--quiet"]


def _gaussian_3d(n, seed):
    return np.random.default_rng(seed).normal(size=(n, 3)) @ A.T + M


def _exact_nll(x):
    """-log N(x; M, A A^T) per point."""
    z = np.linalg.solve(A, (x - M).T).T
    return 0.5 * (z**2).sum(1) + np.log(np.abs(np.diag(A))).sum() + 1.5 * math.log(2 * math.pi)


@pytest.fixture(scope="module")
def runs_3d(tmp_path_factory):
    """Tiny fit runs on 3-D data: source gaussian (plain), gaussian:3, and a sample file."""
    root = tmp_path_factory.mktemp("likelihood_3d")
    np.save(root / "x.npy", _gaussian_3d(400, 0))
    np.save(root / "x0.npy", np.random.default_rng(1).normal(size=(400, 3)))
    for name, source in (("plain", "gaussian"), ("d3", "gaussian:3"), ("file", str(root / "x0.npy"))):
        assert (
            main(["fit", "--source", source, "--target", str(root / "x.npy"), "--out", str(root / name), *FIT_TINY])
            == 0
        )
    return root


@pytest.mark.parametrize("name", ["plain", "d3"])
def test_likelihood_of_a_3d_fit_run(runs_3d, name):
    """A run whose source is gaussian (taking the target's dimension) or gaussian:3 has a log-density."""
    out = runs_3d / f"nll_{name}"
    args = ["likelihood", "--run", str(runs_3d / name), "--data", str(runs_3d / "x.npy"), "--n", "5"]
    assert main([*args, "--out", str(out), "--steps", "4", "--quiet"]) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["dim"] == 3 and np.load(out / "nll.npy").shape == (400,)
    assert summary["source_density"].startswith("N(0, I_3)")
    # a built-in --data: a plain gaussian takes the run's dimension
    assert main([*args[:4], "gaussian", "--n", "5", "--out", str(out), "--steps", "4", "--quiet"]) == 0
    assert np.load(out / "nll.npy").shape == (5,)


def test_likelihood_refuses_a_source_of_unknown_density(runs_3d, capsys):
    args = ["likelihood", "--run", str(runs_3d / "file"), "--data", str(runs_3d / "x.npy")]
    rc, err = main_error([*args, "--out", str(runs_3d / "refused")], capsys)
    assert_one_line(rc, err, "density")
    assert "x0.npy" in err and "gaussian" in err
    assert not (runs_3d / "refused").exists()


def test_likelihood_3d_gaussian_matches_the_entropy(tmp_path):
    r"""Fit N(0, I_3) -> N(M, S) on samples, then the mean NLL of fresh points is near the entropy.

    | check                          | tolerance (nats/dim) | reason                                      |
    |--------------------------------|----------------------|---------------------------------------------|
    | mean exact NLL vs H, 500 points| (not asserted)       | sd sqrt(d/2)/sqrt(500)/d = 0.018            |
    | ODE: mean NLL vs H             | 0.1                  | 4 sd of sampling (0.07) + training of a     |
    |                                |                      | small run (measured 0.004-0.03)             |
    | ODE: mean NLL - exact NLL      | 0.05                 | same points: training and integration only  |
    | SDE (ito, eps 1): vs H         | -0.1 .. 0.2          | an upper bound: score error adds (measured  |
    |                                |                      | 0.04-0.1 for this small run)                |

    A wrong log rho0 (another dimension's normalising constant: 0.31 nats/dim, or none: 0.92)
    fails every row.
    """
    np.save(tmp_path / "train.npy", _gaussian_3d(2000, 0))
    test = _gaussian_3d(500, 1)
    np.save(tmp_path / "test.npy", test)
    d, entropy = 3, 0.5 * np.linalg.slogdet(2 * math.pi * math.e * A @ A.T)[1]
    run = tmp_path / "run"
    assert (
        main(["fit", "--source", "gaussian", "--target", str(tmp_path / "train.npy"), "--out", str(run), *FIT_SMALL])
        == 0
    )
    nll = {}
    for method in ("ode", "sde"):
        out = tmp_path / method
        args = ["likelihood", "--run", str(run), "--data", str(tmp_path / "test.npy"), "--out", str(out)]
        assert main([*args, "--method", method, "--steps", "20", "--paths", "4", "--quiet"]) == 0
        nll[method] = np.load(out / "nll.npy")
    assert abs(nll["ode"].mean() - entropy) / d < 0.1
    assert abs(nll["ode"].mean() - _exact_nll(test).mean()) / d < 0.05
    assert -0.1 < (nll["sde"].mean() - entropy) / d < 0.2
