"""`bridge fit`: a tiny end-to-end fit, its checkpoint read back, and one-line errors on bad input."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from bridge.checkpoint import load_checkpoint
from bridge.cli import main
from bridge.fit_run import load_fit_run

from .helpers import assert_one_line, main_error, run_process

TINY = [
    "--steps",
    "30",
    "--n-train",
    "400",
    "--n-test",
    "200",
    "--sample-steps",
    "20",
    "--hidden",
    "16",
    "--batch-size",
    "64",
    "--eps",
    "0.5,1",
    "--quiet",
]


def test_fit_end_to_end(tmp_path):
    out = tmp_path / "run"
    assert main(["fit", "--out", str(out), *TINY]) == 0
    for name in ("checkpoint.pt", "metrics.json", "samples.png", "samples_ode.npy", "samples_sde_eps0.5.npy"):
        assert (out / name).is_file(), name
    m = json.loads((out / "metrics.json").read_text())
    for key in ("ode", "sde_eps0.5", "sde_eps1", "noise_floor"):
        assert {"energy_distance", "sinkhorn_divergence"} <= set(m[key]), key
        assert m[key]["finite"] and m[key]["energy_distance"] >= 0
    assert np.load(out / "samples_ode.npy").shape == (200, 2)
    state, meta = load_checkpoint(out / "checkpoint.pt")
    assert set(state) == {"b", "s"} and meta["fields"] == ["b", "s"] and meta["train"]["steps"] == 30
    # the run reloads (tensors + JSON only) into fields that reproduce the ODE samples
    from bridge.samplers import Heun, sample_ode

    fields, meta2 = load_fit_run(out)
    assert meta2 == meta
    x_start = torch.from_numpy(np.load(out / "samples_start.npy"))
    assert fields.has_drift and fields.has_score
    with torch.no_grad():
        y = sample_ode(fields.drift, x_start, steps=50, solver=Heun()).x  # bridge fit's ODE: max(50, steps/5)
    torch.testing.assert_close(y, torch.from_numpy(np.load(out / "samples_ode.npy")))
    # the PNG is a real image
    assert (out / "samples.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_fit_from_files_and_eta(tmp_path):
    g = np.random.default_rng(0)
    np.save(tmp_path / "a.npy", g.normal(size=(300, 3)))
    np.savetxt(tmp_path / "b.csv", g.normal(size=(300, 3)) + 2.0, delimiter=",", header="x,y,z", comments="")
    out = tmp_path / "run"
    rc = main(
        [
            "fit",
            "--source",
            str(tmp_path / "a.npy"),
            "--target",
            str(tmp_path / "b.csv"),
            "--out",
            str(out),
            "--fields",
            "v,eta",
            *TINY,
        ]
    )
    assert rc == 0
    assert np.load(out / "samples_sde_eps1.npy").shape[1] == 3


def test_fit_gaussian_source_takes_the_targets_dimension(tmp_path):
    """`--source gaussian` against 3-D data is N(0, I_3), recorded so that likelihoods can rebuild it."""
    np.save(tmp_path / "x3.npy", np.random.default_rng(0).normal(size=(300, 3)) + 1.0)
    out = tmp_path / "run"
    assert main(["fit", "--source", "gaussian", "--target", str(tmp_path / "x3.npy"), "--out", str(out), *TINY]) == 0
    assert np.load(out / "samples_start.npy").shape == (200, 3)
    _, meta = load_checkpoint(out / "checkpoint.pt")
    assert meta["source"] == "gaussian" and meta["dim"] == 3
    out = tmp_path / "run_d"
    assert main(["fit", "--source", "gaussian:3", "--target", "gaussian", "--out", str(out), *TINY]) == 0
    assert np.load(out / "samples_ode.npy").shape == (200, 3)


@pytest.mark.parametrize(
    "extra, message",
    [
        (["--source", "no-such-thing"], "neither a built-in data set"),
        (["--eps", "0"], "--eps"),
        (["--eps", "-1"], "--eps"),
        (["--steps", "0"], "--steps"),
        (["--fields", "b,v"], "fields"),
        (["--interpolant", "one-sided-linear", "--source", "checkerboard"], "one-sided"),
        (["--source", "gaussian:0"], "gaussian:D"),
        (["--source", "gaussian:x"], "gaussian:D"),
        (["--target", "gaussian:0"], "gaussian:D"),
        (["--interpolant", "one-sided-linear", "--source", "gaussian:x"], "gaussian:D"),
        (["--source", "gaussian:3", "--target", "moons"], "dimension 3"),
    ],
)
def test_bad_arguments_one_line_error(tmp_path, capsys, extra, message):
    args = ["fit", "--out", str(tmp_path / "o"), *TINY, *extra]
    try:
        rc = main(args)
    except SystemExit as exc:  # argparse-level errors
        rc = exc.code
    err = capsys.readouterr().err.strip()
    assert rc == 2
    assert message in err, err
    assert len(err.splitlines()) == 1, err
    assert "Traceback" not in err


def _bad_files(tmp):
    nan = np.ones((50, 2))
    nan[3, 1] = np.nan
    np.save(tmp / "nan.npy", nan)
    np.save(tmp / "d3.npy", np.ones((50, 3)))
    (tmp / "empty.csv").write_text("")
    np.save(tmp / "rank3.npy", np.ones((5, 2, 2)))
    return {"nan.npy": "NaN", "d3.npy": "dimension", "empty.csv": "empty", "rank3.npy": "rank"}


def test_bad_files_one_line_error(tmp_path, capsys):
    """In-process: exit status 2 and one line naming the file and what is wrong with it."""
    for fname, word in _bad_files(tmp_path).items():
        rc, err = main_error(["fit", "--source", str(tmp_path / fname), "--out", str(tmp_path / "o"), *TINY], capsys)
        assert_one_line(rc, err, word)
        assert fname in err


@pytest.mark.slow
def test_bad_files_one_line_error_subprocess(tmp_path):
    """Run as a real process: non-zero exit, one line on stderr, no traceback, nothing clobbered."""
    cases = _bad_files(tmp_path)
    keep = tmp_path / "o" / "metrics.json"
    keep.parent.mkdir()
    keep.write_text("{}")  # an earlier result must survive a failed run
    for fname, word in cases.items():
        r = run_process(["fit", "--source", str(tmp_path / fname), "--out", str(tmp_path / "o"), *TINY])
        err = r.stderr.strip()
        assert r.returncode == 2, (fname, err)
        assert len(err.splitlines()) == 1, err
        assert "Traceback" not in err and word.lower() in err.lower() and fname in err, err
    assert keep.read_text() == "{}"


def test_out_is_a_file(tmp_path):
    f = tmp_path / "file"
    f.write_text("x")
    r = run_process(["fit", "--out", str(f), *TINY])
    assert r.returncode == 2 and "not a directory" in r.stderr and "Traceback" not in r.stderr


def test_console_script_matches_python_m():
    script = Path(sys.executable).parent / "bridge"
    if not script.exists():
        script = shutil.which("bridge")
    if script is None or str(script) == "/usr/sbin/bridge":
        pytest.skip("bridge console script not installed in this environment")
    a = subprocess.run([str(script), "fit", "--help"], capture_output=True, text=True, timeout=120)
    b = run_process(["fit", "--help"])
    assert a.returncode == b.returncode == 0
    assert a.stdout == b.stdout and "--source" in a.stdout


def test_checkpoint_refuses_pickled_objects(tmp_path):
    class Evil:
        def __reduce__(self):
            return (os.system, ("echo pwned > " + str(tmp_path / "pwned"),))

    torch.save({"format": "bridge-checkpoint-v1", "meta_json": "{}", "state": {}, "x": Evil()}, tmp_path / "evil.pt")
    from bridge.checkpoint import CheckpointError

    with pytest.raises(CheckpointError, match="not a loadable"):
        load_checkpoint(tmp_path / "evil.pt")
    assert not (tmp_path / "pwned").exists()


def test_fit_one_sided_eta_with_denoising(tmp_path):
    out = tmp_path / "run"
    rc = main(
        ["fit", "--interpolant", "one-sided-linear", "--fields", "eta", "--target", "moons", "--out", str(out), *TINY]
    )
    assert rc == 0
    m = json.loads((out / "metrics.json").read_text())
    assert m["sampling_t_range"] == [0.0, 0.97]
    assert m["ode"]["finite"] and m["sde_eps1"]["finite"]
