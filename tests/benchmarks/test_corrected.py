"""Smoke test of benchmarks/corrected.py: one 2-D problem and one mixture problem, 1-s fits."""

import json
import math

import pytest

from .scripts import benchmark_script


@pytest.fixture(scope="module")
def bench():
    with benchmark_script("corrected.py", "benchmarks_corrected") as mod:
        yield mod


TINY = ["--budget", "0.5", "--n-train", "300", "--test-points", "100", "--kl-points", "50", "--kl-draws", "16"]
TINY += ["--mix-test-points", "4", "--mix-per-point", "8", "--components", "3", "--corrected-components", "3"]
TINY += ["--threads", "0", "--proposals", "4"]


@pytest.mark.slow
def test_benchmark_writes_one_record_per_problem(bench, tmp_path, capsys):
    bench.main(TINY + ["--problems", "moons-eps0.5,mix2-r1", "--modes", "frozen,logmean", "--out-dir", str(tmp_path)])
    moons = json.loads((tmp_path / "corrected_moons-eps0.5.json").read_text())
    mix = json.loads((tmp_path / "corrected_mix2-r1.json").read_text())
    assert set(moons["methods"]) == {"mix-3", "corr-3-frozen", "corr-3-logmean"}
    assert math.isfinite(moons["methods"]["corr-3-frozen"]["energy"]) and moons["floor"] >= 0
    assert 0 < moons["methods"]["corr-3-logmean"]["ess_fraction"] <= 1
    assert math.isfinite(mix["methods"]["corr-3-frozen"]["cbw2_uvp"])
    assert "| moons-eps0.5 |" in capsys.readouterr().out


def test_bad_problem_names_are_refused(bench):
    with pytest.raises(ValueError, match="--problems"):
        bench.parse_problem("spirals-eps0.1")
