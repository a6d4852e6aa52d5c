"""One process per output: a second command on an output that a live process holds is refused in
one line naming the output and the pid; a lock left by a killed process does not block."""

import os
import signal
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest

import bridge.cli.solve
from bridge.cli import main
from bridge.cli.errors import UsageError
from bridge.cli.lock import FOLDER_LOCK

from .helpers import SOLVE_TINY, assert_one_line, main_error

#: A process that holds the lock on an output (``sys.argv[1]``, a folder; with a second argument
#: ``file``, a file) the way a command does, says so on stdout and waits to be killed.
HOLDER = textwrap.dedent(
    """
    import sys, time
    from bridge.cli.lock import held_locks, lock_output
    with held_locks():
        lock_output(sys.argv[1], folder=len(sys.argv) < 3)
        print("locked", flush=True)
        time.sleep(300)
    """
)


@pytest.fixture
def holder():
    """Start a process that holds the lock on a path; yields the start function; kills it after."""
    procs = []

    def start(path, *extra):
        p = subprocess.Popen([sys.executable, "-c", HOLDER, str(path), *extra], stdout=subprocess.PIPE, text=True)
        procs.append(p)
        assert p.stdout.readline().strip() == "locked"
        return p

    yield start
    for p in procs:
        if p.poll() is None:
            p.kill()
        p.wait()


def _solve(out):
    return ["solve", "--source", "gaussian", "--target", "moons", "--eps", "0.5", "--out", str(out), "--steps", "2"]


def test_a_second_solve_on_the_same_out_is_refused(tmp_path, capsys, holder):
    out = tmp_path / "run"
    p = holder(out)
    rc, err = main_error([*_solve(out), *SOLVE_TINY, "--quiet"], capsys)
    assert_one_line(rc, err, f"--out: {out} is in use by another bridge process (pid {p.pid})")
    assert sorted(f.name for f in out.iterdir()) == [FOLDER_LOCK]  # nothing written by the refused run


@pytest.mark.slow
def test_a_second_process_is_refused_while_the_first_runs(tmp_path):
    """Two real `bridge fit` processes: the second ends at once (exit 2, one line), the first is not
    disturbed."""
    out = tmp_path / "run"
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONWARNINGS="ignore")
    args = [sys.executable, "-m", "bridge", "fit", "--out", str(out), "--n-train", "200", "--n-test", "50"]
    first = subprocess.Popen([*args, "--steps", "100000", "--time-budget", "60", "--quiet"], env=env)
    try:
        deadline = time.monotonic() + 60
        while not (out / FOLDER_LOCK).exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        second = subprocess.run([*args, "--steps", "5"], capture_output=True, text=True, env=env, timeout=120)
        err = second.stderr.strip()
        assert second.returncode == 2 and len(err.splitlines()) == 1, err
        assert f"is in use by another bridge process (pid {first.pid})" in err and str(out) in err
        assert first.poll() is None  # still running
    finally:
        # SIGTERM, not SIGINT: a process started from a non-interactive shell's background job
        # ignores SIGINT, and Python then installs no KeyboardInterrupt handler
        first.send_signal(signal.SIGTERM)
        assert first.wait(timeout=60) == 143


@pytest.mark.slow
def test_a_lock_left_by_a_killed_process_does_not_block(tmp_path, capsys, holder):
    out = tmp_path / "run"
    p = holder(out)
    p.send_signal(signal.SIGKILL)
    p.wait()
    assert (out / FOLDER_LOCK).read_text().strip() == str(p.pid)  # the file stays, the lock does not
    assert main([*_solve(out), *SOLVE_TINY, "--quiet"]) == 0
    assert (out / "bridge.pt").is_file() and not (out / FOLDER_LOCK).exists()


def test_a_stale_lock_file_with_a_dead_pid_does_not_block(tmp_path):
    out = tmp_path / "run"
    out.mkdir()
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    (out / FOLDER_LOCK).write_text(dead.stdout)
    assert main(["fit", "--out", str(out), "--n-train", "60", "--n-test", "20", "--steps", "2", "--quiet"]) == 0
    assert (out / "checkpoint.pt").is_file() and not (out / FOLDER_LOCK).exists()


def test_the_lock_is_released_when_a_command_fails(tmp_path, capsys, monkeypatch):
    def fail(*args, **kwargs):
        raise UsageError("planted")

    out = tmp_path / "run"
    with monkeypatch.context() as m:
        m.setattr(bridge.cli.solve, "_train", fail)
        rc, err = main_error([*_solve(out), *SOLVE_TINY, "--quiet"], capsys)
    assert_one_line(rc, err, "planted")
    assert out.is_dir() and not (out / FOLDER_LOCK).exists()
    assert main([*_solve(out), *SOLVE_TINY, "--quiet"]) == 0


def test_sample_and_likelihood_lock_their_outputs(run_dir, tmp_path, capsys, holder):
    np.save(tmp_path / "x0.npy", np.zeros((3, 2)))
    y = tmp_path / "y.npy"
    p = holder(y, "file")
    args = ["sample", "--run", str(run_dir), "--source", str(tmp_path / "x0.npy"), "--per-point", "1"]
    rc, err = main_error([*args, "--out", str(y), "--steps", "2", "--quiet"], capsys)
    assert_one_line(rc, err, f"--out: {y} is in use by another bridge process (pid {p.pid})")
    assert not y.exists()
    assert main([*args, "--out", str(tmp_path / "other.npy"), "--steps", "2", "--quiet"]) == 0  # another file: fine
    q = holder(tmp_path / "nll")
    args = ["likelihood", "--run", str(run_dir), "--data", "gaussian", "--n", "4", "--method", "sde", "--estimator"]
    rc, err = main_error([*args, "fk", "--paths", "2", "--steps", "2", "--out", str(tmp_path / "nll")], capsys)
    assert_one_line(rc, err, f"is in use by another bridge process (pid {q.pid})")


def test_a_read_only_out_is_one_line_naming_the_folder(tmp_path, capsys, monkeypatch):
    """A folder where no file can be created: the error names the folder, not a lock or temporary file."""
    out = tmp_path / "ro"
    out.mkdir()
    real_open = os.open

    def refuse(path, flags, *a, **k):
        if os.path.dirname(os.fspath(path)) == str(out) and flags & os.O_CREAT:
            raise PermissionError(13, "Permission denied")
        return real_open(path, flags, *a, **k)

    monkeypatch.setattr(os, "open", refuse)
    rc, err = main_error(["fit", "--out", str(out), "--n-train", "60", "--n-test", "20", "--steps", "2"], capsys)
    assert_one_line(rc, err, f"--out: cannot write in {out} (Permission denied)")
    assert ".lock" not in err and ".tmp" not in err


@pytest.mark.skipif(os.name != "posix" or os.geteuid() == 0, reason="needs a user that permissions apply to")
def test_a_read_only_out_for_real(tmp_path, capsys):
    out = tmp_path / "ro"
    out.mkdir()
    out.chmod(0o555)
    try:
        rc, err = main_error([*_solve(out), *SOLVE_TINY, "--quiet"], capsys)
    finally:
        out.chmod(0o755)
    assert_one_line(rc, err, f"--out: cannot write in {out} (Permission denied)")
