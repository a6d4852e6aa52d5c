"""A command that ends early leaves no temporary file and no lock: SIGTERM unwinds like Ctrl-C
(exit status 143), and what ``kill -9`` leaves behind is removed by the next run on that output."""

import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from bridge.sb import BridgeResult

from .helpers import main_error


def _hidden(folder):
    return sorted(p.name for p in folder.iterdir() if p.name.startswith("."))


def test_sigterm_exits_143_without_temporary_files(run_dir, tmp_path, capsys, monkeypatch):
    np.save(tmp_path / "x0.npy", np.zeros((3, 2)))
    keep = tmp_path / "y.npy"
    keep.write_bytes(b"earlier result")

    def terminated(self, *args, **kwargs):
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(30)  # the handler raises before this ends

    monkeypatch.setattr(BridgeResult, "sample", terminated)
    args = ["sample", "--run", str(run_dir), "--source", str(tmp_path / "x0.npy"), "--per-point", "2"]
    before, t0 = signal.getsignal(signal.SIGTERM), time.monotonic()
    rc, err = main_error([*args, "--out", str(keep), "--steps", "2", "--quiet"], capsys)
    assert rc == 143 and err == "bridge sample: terminated" and time.monotonic() - t0 < 20
    assert keep.read_bytes() == b"earlier result" and _hidden(tmp_path) == []
    assert signal.getsignal(signal.SIGTERM) == before  # the command's handler is gone with it


@pytest.mark.slow
def test_a_killed_sample_leaves_an_orphan_that_the_next_run_removes(run_dir, tmp_path):
    np.save(tmp_path / "x0.npy", np.zeros((50, 2)))
    out = tmp_path / "y.npy"
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONWARNINGS="ignore")
    args = [sys.executable, "-m", "bridge", "sample", "--run", str(run_dir), "--source", str(tmp_path / "x0.npy")]
    big = subprocess.Popen([*args, "--per-point", "4000", "--steps", "2000", "--out", str(out), "--quiet"], env=env)
    try:
        deadline = time.monotonic() + 120
        while not any(n.endswith(".tmp") for n in _hidden(tmp_path)) and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        big.send_signal(signal.SIGKILL)
        big.wait()
    assert [n for n in _hidden(tmp_path) if n.endswith(".tmp")] != [], "the killed run left no temporary file"
    small = subprocess.run([*args, "--per-point", "2", "--steps", "4", "--out", str(out)], env=env, capture_output=True)
    assert small.returncode == 0, small.stderr
    assert _hidden(tmp_path) == [] and np.load(out).shape == (50, 2, 2)
