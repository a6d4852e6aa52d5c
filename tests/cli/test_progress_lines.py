"""Long stages say how far they are and how long is left: `bridge sample`, `bridge likelihood`,
`bridge fit` (training and sampling) and `bridge solve`'s evaluation.

``bridge.progress.EVERY_S`` is set to 0 here, so every update prints a line: the tests are fast
and do not depend on the clock.
"""

import re

import numpy as np
import pytest

import bridge.cli.sample
import bridge.progress
from bridge.cli import main

from .helpers import solve

#: ``[label] done/total unit (p%), elapsed, ~left left`` (or ``done``, or ``time left unknown``).
LINE = re.compile(r"^\[(\w+)\] (\d+)/(\d+) (.*) \((\d+)%\), [\d.]+ s(?: |, ).*(left|done|unknown)$")


@pytest.fixture
def every_update(monkeypatch):
    monkeypatch.setattr(bridge.progress, "EVERY_S", 0.0)


def progress_lines(err: str, label: str, unit: str) -> list[tuple[int, int]]:
    """``(done, total)`` of the progress lines of ``label`` counting ``unit``."""
    out = []
    for line in err.splitlines():
        m = LINE.match(line)
        if m and m.group(1) == label and m.group(4) == unit:
            out.append((int(m.group(2)), int(m.group(3))))
    return out


def test_sample_reports_inside_each_chunk(run_dir, tmp_path, capsys, every_update, monkeypatch):
    """One line per SDE step, so a chunk that takes minutes is not silent; the counts grow to the total."""
    monkeypatch.setattr(bridge.cli.sample, "SAMPLE_CHUNK", 6)  # 2 rows x 3 samples a chunk: 3 chunks
    np.save(tmp_path / "x0.npy", np.random.default_rng(0).normal(size=(5, 2)).astype(np.float32))
    args = ["sample", "--run", str(run_dir), "--source", str(tmp_path / "x0.npy"), "--per-point", "3", "--steps", "8"]
    capsys.readouterr()
    assert main([*args, "--out", str(tmp_path / "y.npy")]) == 0
    err = capsys.readouterr().err
    seen = progress_lines(err, "sample", "samples")
    assert len(seen) == 3 * 8 and {t for _, t in seen} == {15}
    assert [d for d, _ in seen] == sorted(d for d, _ in seen) and seen[-1] == (15, 15)
    assert "left" in err.splitlines()[1]


def test_likelihood_reports_inside_each_batch(run_dir, tmp_path, capsys, every_update):
    like = ["likelihood", "--run", str(run_dir), "--data", "moons", "--n", "6", "--steps", "5", "--paths", "4"]
    capsys.readouterr()
    assert (
        main([*like, "--out", str(tmp_path / "nll"), "--method", "sde", "--estimator", "fk", "--batch-size", "4"]) == 0
    )
    seen = progress_lines(capsys.readouterr().err, "likelihood", "points")
    assert len(seen) == 2 * 5 and seen[-1] == (6, 6)


def test_fit_reports_training_and_sampling(tmp_path, capsys, every_update):
    tiny = ["--steps", "40", "--n-train", "300", "--n-test", "100", "--sample-steps", "6", "--hidden", "8"]
    capsys.readouterr()
    assert main(["fit", "--out", str(tmp_path / "run"), *tiny, "--batch-size", "32", "--eps", "1"]) == 0
    err = capsys.readouterr().err
    train = progress_lines(err, "train", "steps")
    # a loss record every 40 // 10 = 4 steps, and a progress line at each step between them
    assert [d for d, _ in train] == [k for k in range(2, 41) if k % 4] and all(t == 40 for _, t in train)
    assert len(progress_lines(err, "fit", "SDE steps (eps=1)")) == 6
    assert len(progress_lines(err, "fit", "ODE steps")) == 50  # the ODE takes max(50, steps / 5)


def test_solve_evaluation_reports_its_sde_samples(tmp_path, capsys, every_update):
    capsys.readouterr()
    assert solve(tmp_path / "run", steps=2) == 0
    seen = progress_lines(capsys.readouterr().err, "solve", "evaluation SDE samples")
    # 60 held-out points, 1 path each then 4 samples each, 8 steps per SDE run
    assert len(seen) == 2 * 8 and {t for _, t in seen} == {60 * 5} and seen[-1] == (300, 300)
