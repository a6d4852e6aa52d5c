"""The figure framework (paper_figures/_common.py, __main__.py): cache, record, --replot, errors."""

import json
import sys
import types

import numpy as np
import pytest

from paper_figures import FIGURES
from paper_figures import __main__ as pf_main
from paper_figures._common import run_figure


def _fake_module(calls):
    mod = types.ModuleType("fake_fig")
    mod.NAME, mod.PAPER = "fake", "new"

    def compute(args, log):
        calls.append("compute")
        return {"y": np.arange(3.0) + args.seed}, {"config": {"quick": args.quick}, "findings": {"ok": True}}

    def plot(arrays, record, out_dir):
        calls.append(("plot", float(arrays["y"].sum()), record["seed"]))
        return []

    mod.compute, mod.plot = compute, plot
    return mod


def test_run_figure_caches_records_and_replots(tmp_path):
    calls = []
    mod = _fake_module(calls)
    rec = run_figure(mod, ["--quick", "--out", str(tmp_path), "--seed", "2"])
    assert calls == ["compute", ("plot", 9.0, 2)]
    saved = json.loads((tmp_path / "fake_quick.json").read_text())
    assert saved == json.loads(json.dumps(rec))
    assert saved["seed"] == 2 and saved["quick"] is True and saved["findings"] == {"ok": True}
    assert saved["wall_s"] >= 0 and saved["versions"]["numpy"] == np.__version__
    with np.load(tmp_path / "fake_quick.npz") as f:
        assert f["y"].tolist() == [2.0, 3.0, 4.0]
    calls.clear()
    run_figure(mod, ["--quick", "--out", str(tmp_path), "--replot"])  # no compute, same data
    assert calls == [("plot", 9.0, 2)]


def test_replot_without_a_cache_is_a_one_line_error(tmp_path):
    with pytest.raises(SystemExit, match="^error: --replot needs .*fake.npz"):
        run_figure(_fake_module([]), ["--out", str(tmp_path), "--replot"])


def test_all_rejects_an_unknown_figure(capsys):
    assert pf_main.main(["nosuch"]) == 2
    assert "unknown figure 'nosuch'" in capsys.readouterr().err


def test_every_listed_figure_is_a_module_with_the_contract():
    import importlib

    for name in FIGURES:
        mod = importlib.import_module(f"paper_figures.{name}")
        assert mod.NAME == name and isinstance(mod.PAPER, str)
        assert callable(mod.compute) and callable(mod.plot)


def test_all_goes_on_after_a_failing_figure(monkeypatch, tmp_path, capsys):
    """A figure that stops with a one-line error (e.g. scikit-learn missing) does not stop the others."""
    calls = []
    good, bad = _fake_module(calls), _fake_module([])
    good.NAME, bad.NAME = "densities", "paths"

    def fail(args, log):
        raise SystemExit("error: needs something")

    bad.compute = fail
    monkeypatch.setattr(pf_main, "FIGURES", ("densities", "paths"))
    monkeypatch.setitem(sys.modules, "paper_figures.densities", good)
    monkeypatch.setitem(sys.modules, "paper_figures.paths", bad)
    assert pf_main.main(["all", "--out", str(tmp_path)]) == 1
    captured = capsys.readouterr()
    assert "FAILED: error: needs something" in captured.err and "densities" in captured.out
    assert calls and calls[0] == "compute"
