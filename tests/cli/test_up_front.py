"""Data a run cannot use is refused before any training: within a second or two, in one line that
says the minimum and what to change, with nothing written."""

import time

import numpy as np
import pytest

from .helpers import assert_one_line, main_error

#: Caps the damage when a check is missing: without it these runs would train (for minutes).
BUDGET = ["--time-budget", "5"]


def _files(tmp_path, n, d=2):
    rng = np.random.default_rng(0)
    np.save(tmp_path / "a.npy", rng.normal(size=(n, d)).astype(np.float32))
    np.save(tmp_path / "b.npy", (rng.normal(size=(n, d)) + 2).astype(np.float32))
    return str(tmp_path / "a.npy"), str(tmp_path / "b.npy")


def _command(which, src, tgt, out, *extra):
    if which == "solve":
        return ["solve", "--source", src, "--target", tgt, "--eps", "0.5", "--out", str(out), *BUDGET, *extra]
    return ["fit", "--source", src, "--target", tgt, "--out", str(out), *BUDGET, *extra]


def _refused_at_once(args, capsys, word, out):
    t0 = time.perf_counter()
    rc, err = main_error(args, capsys)
    assert time.perf_counter() - t0 < 3.0, "the check came after training started"
    assert_one_line(rc, err, word)
    written = sorted(p.name for p in out.iterdir()) if out.exists() else []
    assert written == [], written  # no bridge.pt, state.pt, checkpoint.pt, run.json


@pytest.mark.parametrize("which", ["solve", "fit"])
def test_four_points_per_side_are_refused_up_front(tmp_path, capsys, which):
    src, tgt = _files(tmp_path, 4)
    out = tmp_path / "run"
    _refused_at_once(_command(which, src, tgt, out), capsys, "1 held-out point", out)
    _, err = main_error(_command(which, src, tgt, out), capsys)
    assert "at least 2 per side" in err and "give at least 8 samples" in err


@pytest.mark.parametrize("which", ["solve", "fit"])
def test_a_transposed_array_is_refused_up_front(tmp_path, capsys, which):
    """An (8, 100000) array: fewer samples than dimensions, most likely transposed."""
    src, tgt = _files(tmp_path, 8, d=100_000)
    out = tmp_path / "run"
    _refused_at_once(_command(which, src, tgt, out), capsys, "8 samples of dimension 100000", out)
    _, err = main_error(_command(which, src, tgt, out), capsys)
    assert "fewer samples than dimensions" in err and "transposed" in err


@pytest.mark.parametrize(
    "which, option, value, word",
    [
        ("solve", "--eval-points", "1", "--eval-points: the evaluation needs at least 2 held-out points per side"),
        ("fit", "--n-test", "1", "--n-test: the evaluation needs at least 2 held-out points per side"),
        ("solve", "--n-train", "1", "--n-train: training needs at least 2 samples per side, got 1"),
        ("fit", "--n-train", "1", "--n-train: training needs at least 2 samples per side, got 1"),
    ],
)
def test_too_few_built_in_points_name_the_option(tmp_path, capsys, which, option, value, word):
    out = tmp_path / "run"
    _refused_at_once(_command(which, "gaussian", "moons", out, option, value), capsys, word, out)
