"""What the command-line tests share: tiny settings, running the command, checking its errors."""

import os
import subprocess
import sys

import numpy as np

from bridge.cli import main

#: The eps of the tiny solve runs.
EPS = 0.5
#: A tiny `bridge solve`: a few hundred samples, an 8-wide drift, a handful of outer steps; the
#: point is the contract (files, shapes, keys, exit codes, atomic writes), not the bridge's quality.
SOLVE_TINY = [
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
#: The figures of a solve run.
PNGS = ("coupling.png", "marginals.png", "coefficients.png", "history.png")


def solve(out, *extra, steps=6):
    """`bridge solve` gaussian -> moons in-process with :data:`SOLVE_TINY`; the exit status."""
    args = ["solve", "--source", "gaussian", "--target", "moons", "--eps", str(EPS), "--out", str(out)]
    return main([*args, "--steps", str(steps), *SOLVE_TINY, *extra])


def run_process(args, env=None):
    """`python -m bridge ARGS` as a real process."""
    env = dict(os.environ, PYTHONWARNINGS="ignore", OMP_NUM_THREADS="1", **(env or {}))
    return subprocess.run([sys.executable, "-m", "bridge", *args], capture_output=True, text=True, env=env, timeout=300)


def main_error(args, capsys):
    """Run main in-process; return (exit code, stderr) for parser-level and command-level errors."""
    capsys.readouterr()
    try:
        rc = main(args)
    except SystemExit as exc:
        rc = exc.code
    return rc, capsys.readouterr().err.strip()


def assert_one_line(rc, err, word, code=2):
    """Exit status ``code``, one line on stderr containing ``word``, no traceback."""
    assert rc == code, err
    assert len(err.splitlines()) == 1, err
    assert "Traceback" not in err and word.lower() in err.lower(), err


def bad_files(tmp):
    """A file with a NaN, one of dimension 3, and a plain file where a directory is expected."""
    nan = np.ones((50, 2))
    nan[3, 1] = np.nan
    np.save(tmp / "nan.npy", nan)
    np.save(tmp / "d3.npy", np.ones((50, 3)))
    (tmp / "file").write_text("x")
    return tmp
