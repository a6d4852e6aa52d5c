"""`bridge sample`: K samples per point as float32 (n, K, d), in bounded chunks, atomically, and
one-line errors that leave earlier files alone."""

import os

import numpy as np
import pytest
import torch

import bridge.cli.sample
from bridge.checkpoint import CheckpointError
from bridge.cli import main
from bridge.sb import BridgeResult

from .helpers import assert_one_line, bad_files, main_error


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


def test_sample_from_a_builtin_source(run_dir, tmp_path):
    """`--source NAME --n N` draws the test inputs (a plain gaussian in the run's dimension), then
    samples, all from the one --seed: the same seed gives the same file."""
    from bridge.data import make_dataset

    args = ["sample", "--run", str(run_dir), "--per-point", "3", "--steps", "8", "--quiet"]
    assert main([*args, "--source", "gaussian", "--n", "5", "--out", str(tmp_path / "a.npy")]) == 0
    assert main([*args, "--source", "gaussian", "--n", "5", "--out", str(tmp_path / "b.npy")]) == 0
    assert main([*args, "--source", "gaussian", "--n", "5", "--seed", "1", "--out", str(tmp_path / "c.npy")]) == 0
    a = np.load(tmp_path / "a.npy")
    assert a.shape == (5, 3, 2) and np.isfinite(a).all()
    np.testing.assert_array_equal(a, np.load(tmp_path / "b.npy"))
    assert not np.array_equal(a, np.load(tmp_path / "c.npy"))
    assert main([*args, "--source", "moons", "--n", "4", "--out", str(tmp_path / "m.npy")]) == 0
    g = torch.Generator().manual_seed(0)
    x0 = make_dataset("moons", 4, generator=g)
    ref = BridgeResult.load(run_dir / "bridge.pt").sample(x0, per_point=3, steps=8, generator=g)
    np.testing.assert_array_equal(np.load(tmp_path / "m.npy"), ref.numpy())


def test_sample_chunks_rows_and_samples(run_dir, tmp_path, monkeypatch):
    """Memory stays bounded: with a tiny chunk the result has the same shape and is finite."""
    monkeypatch.setattr(bridge.cli.sample, "SAMPLE_CHUNK", 4)
    np.save(tmp_path / "x0.npy", np.zeros((5, 2)))
    args = ["sample", "--run", str(run_dir), "--source", str(tmp_path / "x0.npy"), "--per-point", "6"]
    assert main([*args, "--out", str(tmp_path / "y.npy"), "--steps", "4", "--quiet"]) == 0
    y = np.load(tmp_path / "y.npy")
    assert y.shape == (5, 6, 2) and np.isfinite(y).all() and len(np.unique(y[:, :, 0])) == 30


def test_sample_bad_input_one_line_and_nothing_clobbered(run_dir, tmp_path, capsys, monkeypatch):
    bad_files(tmp_path)
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
        ({"--source": "gaussian:3"}, "dimension"),
        ({"--source": "gaussian:0"}, "gaussian:D"),
        ({"--source": "gaussian:x"}, "gaussian:D"),
        ({"--source": "moons", "--n": "0"}, "--n"),
        ({"--per-point": "0"}, "--per-point"),
        ({"--out": str(tmp_path)}, "is a directory"),
        ({"--out": str(tmp_path / "y.txt")}, ".npy"),
    ]
    for change, word in cases:
        opts = {**base, **change}
        rc, err = main_error(["sample", *[a for kv in opts.items() for a in kv], "--steps", "4", "--quiet"], capsys)
        assert_one_line(rc, err, word)

    # a failure while sampling (here: a diverging SDE) leaves the earlier file and no temporary file
    def diverge(self, *a, **k):
        raise FloatingPointError("NaN/Inf at t=0.5")

    monkeypatch.setattr(BridgeResult, "sample", diverge)
    opts = [a for kv in base.items() for a in kv]
    rc, err = main_error(["sample", *opts, "--steps", "4", "--quiet"], capsys)
    assert_one_line(rc, err, "diverged")
    assert keep.read_bytes() == b"earlier result"
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


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
    rc, err = main_error([*args, "--out", str(tmp_path / "y.npy")], capsys)
    assert_one_line(rc, err, "not a loadable")
    assert not (tmp_path / "pwned").exists() and not (tmp_path / "y.npy").exists()


def test_sample_time_option(run_dir, tmp_path, capsys):
    """`--time T` gives BridgeResult.sample(time=T)'s draws; a time outside (0, 1] is a usage error."""
    x0 = np.random.default_rng(1).normal(size=(4, 2))
    np.save(tmp_path / "x0.npy", x0)
    args = ["sample", "--run", str(run_dir), "--source", str(tmp_path / "x0.npy"), "--per-point", "2", "--steps", "8"]
    assert main([*args, "--out", str(tmp_path / "y.npy"), "--time", "0.5", "--quiet"]) == 0
    res = BridgeResult.load(run_dir / "bridge.pt")
    ref = res.sample(
        torch.from_numpy(x0).float(), per_point=2, steps=8, time=0.5, generator=torch.Generator().manual_seed(0)
    )
    np.testing.assert_array_equal(np.load(tmp_path / "y.npy"), ref.numpy())
    with pytest.raises(SystemExit):
        main([*args, "--out", str(tmp_path / "z.npy"), "--time", "1.5", "--quiet"])
    assert "--time" in capsys.readouterr().err


def test_sample_steps_auto_is_the_pilots_choice(run_dir, tmp_path, capsys):
    """`--steps auto` (the default) is BridgeResult.choose_steps on the source, then that many steps,
    from one generator; the log says what was chosen and why."""
    x0 = np.random.default_rng(2).normal(size=(6, 2))
    np.save(tmp_path / "x0.npy", x0)
    args = ["sample", "--run", str(run_dir), "--source", str(tmp_path / "x0.npy"), "--per-point", "2"]
    assert main([*args, "--out", str(tmp_path / "y.npy")]) == 0
    err = capsys.readouterr().err
    assert "--steps auto:" in err and "cBW2-UVP" in err
    res = BridgeResult.load(run_dir / "bridge.pt")
    g = torch.Generator().manual_seed(0)
    xs = torch.from_numpy(x0).float()
    choice = res.choose_steps(xs, generator=g)
    assert f"{choice.steps} Heun steps" in err
    ref = res.sample(xs, per_point=2, steps=choice.steps, generator=g)
    np.testing.assert_array_equal(np.load(tmp_path / "y.npy"), ref.numpy())
    rc, err = main_error([*args, "--out", str(tmp_path / "z.npy"), "--steps", "fast"], capsys)
    assert rc == 2 and "--steps" in err


def test_sample_max_memory_sizes_the_chunks(run_dir, tmp_path, monkeypatch):
    """`--max-memory MB`: chunks of MB / path_bytes paths, i.e. the draws of that many paths per chunk."""
    import bridge.sb.sde

    np.save(tmp_path / "x0.npy", np.zeros((5, 2)))
    args = ["sample", "--run", str(run_dir), "--source", str(tmp_path / "x0.npy"), "--per-point", "6", "--steps", "4"]
    monkeypatch.setattr(bridge.cli.sample, "SAMPLE_CHUNK", 4)
    assert main([*args, "--out", str(tmp_path / "four.npy"), "--quiet"]) == 0
    monkeypatch.setattr(bridge.cli.sample, "SAMPLE_CHUNK", 65536)
    assert main([*args, "--out", str(tmp_path / "one.npy"), "--quiet"]) == 0
    monkeypatch.setattr(bridge.sb.sde, "path_bytes", lambda *a, **k: 2**18)  # 1 MB holds 4 paths
    assert main([*args, "--out", str(tmp_path / "mem.npy"), "--max-memory", "1", "--quiet"]) == 0
    four, one, mem = (np.load(tmp_path / f"{name}.npy") for name in ("four", "one", "mem"))
    np.testing.assert_array_equal(mem, four)
    assert not np.array_equal(mem, one)
