"""The single-cell example and benchmark in quick mode on a tiny random folder with the real file
names, and their clean skip when the folder or a file is missing (CI without the data)."""

import json
import math
import os
import subprocess
import sys

import numpy as np
import pytest
import torch

from .scripts import ROOT, benchmark_script

DAYS = {2: 40, 3: 45, 4: 50, 7: 42}  # cells per day: a few, so the quick runs take seconds


@pytest.fixture(scope="module")
def bench():
    with benchmark_script("single_cell.py", "benchmarks_single_cell") as mod:
        yield mod


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    out = tmp_path_factory.mktemp("citeseq")
    rng = np.random.default_rng(0)
    for day, n in DAYS.items():
        x = rng.normal(size=(n, 50)) * 2.0 + 0.3 * day
        np.save(out / f"full_cite_pcas_50_day_{day}.npy", x.astype(np.float32))
    return out


def test_energy_score_is_the_protocols_u_statistic(bench):
    """E|X-Y| - E|X-X'|/2 - E|Y-Y'|/2 with i != j in the within-set means, computed directly."""
    g = torch.Generator().manual_seed(0)
    x, y = torch.randn(7, 3, generator=g, dtype=torch.float64), torch.randn(9, 3, generator=g, dtype=torch.float64)
    a, b = x.numpy(), y.numpy()
    d = lambda p, q: np.sqrt(((p[:, None, :] - q[None, :, :]) ** 2).sum(-1))
    xx = d(a, a).sum() / (7 * 6)
    yy = d(b, b).sum() / (9 * 8)
    assert bench.energy_score(x, y) == pytest.approx(d(a, b).mean() - xx / 2 - yy / 2, rel=1e-12)


def test_benchmark_quick_runs_every_method(bench, folder, tmp_path, capsys):
    out = tmp_path / "single_cell.json"
    assert bench.main(["--data", str(folder), "--quick", "--budget", "2", "--out", str(out)]) == 0
    rec = json.loads(out.read_text())
    assert [t["days"] for t in rec["tasks"]] == [[2, 3, 4], [3, 4, 7]]
    assert rec["argv"][:2] == ["--data", "DIR"]  # the user's path is not recorded
    for task in rec["tasks"]:
        for name, res in task["methods"].items():
            assert "error" not in res, (name, res.get("error"))
            assert math.isfinite(res["energy"]) and res["wall_s"] >= 0
            assert math.isfinite(res["end_energy"]) and (name != "independent" or abs(res["end_energy"]) < 0.5)
    assert set(rec["means"]) >= {"bridge", "lightsb", "sinkhorn", "independent"}
    assert "| LightSB (published) |" in capsys.readouterr().out


def test_bridge_set_reaches_the_solver(bench, folder, tmp_path):
    """``--bridge-set outer_steps=3`` stops the bridge at 3 outer steps; a key SBConfig lacks is refused."""
    out = tmp_path / "single_cell.json"
    argv = ["--data", str(folder), "--quick", "--methods", "bridge", "--bridge-set", "outer_steps=3", "--out", str(out)]
    assert bench.main(argv) == 0
    rec = json.loads(out.read_text())
    assert rec["bridge_set"] == {"outer_steps": 3}
    assert all(t["methods"]["bridge"]["outer_steps"] == 3 for t in rec["tasks"])
    with pytest.raises(SystemExit):
        bench.parse_args(["--bridge-set", "no_such_field=1"])


@pytest.mark.parametrize("how", ["no folder", "missing file"])
def test_benchmark_skips_cleanly(bench, folder, tmp_path, capsys, how):
    argv = ["--quick"]
    if how == "missing file":
        (tmp_path / "full_cite_pcas_50_day_2.npy").write_bytes((folder / "full_cite_pcas_50_day_2.npy").read_bytes())
        argv += ["--data", str(tmp_path)]
    assert bench.main(argv) == 0
    line = capsys.readouterr().out.strip()
    assert line.startswith("benchmarks/single_cell.py: skipped") and "\n" not in line


def _example(*args):
    env = dict(os.environ, OMP_NUM_THREADS="1")
    cmd = [sys.executable, str(ROOT / "examples" / "single_cell.py"), *args]
    return subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300, cwd=ROOT)


def test_example_quick_writes_its_figure(folder, tmp_path):
    res = _example("--data", str(folder), "--quick", "--out", str(tmp_path / "fig"))
    assert res.returncode == 0, res.stderr[-2000:]
    assert "energy distance to the real day-3 cells" in res.stdout
    assert (tmp_path / "fig" / "single_cell_day3.png").is_file()


def test_example_skips_cleanly_without_the_data(tmp_path):
    for args in ((), ("--data", str(tmp_path / "absent"))):
        res = _example("--quick", *args)
        assert res.returncode == 0 and res.stdout.strip().startswith("examples/single_cell.py: skipped")
        assert len(res.stdout.strip().splitlines()) == 1
