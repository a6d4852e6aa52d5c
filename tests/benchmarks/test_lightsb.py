"""Smoke test of the LightSB peer of benchmarks/sb.py (benchmarks/lightsb.py): tiny problems, 50 steps."""

import json
import math

import pytest

from .scripts import benchmark_script


@pytest.fixture(scope="module")
def bench():
    with benchmark_script("sb.py", "benchmarks_sb_lightsb") as mod:
        yield mod


TINY = ["--problems", "gauss2,mix2-r1", "--budget", "5", "--n-train", "300", "--test-points", "6", "--per-point", "8"]
TINY += ["--cov-points", "300", "--trace-samples", "2000", "--threads", "0", "--methods", "lightsb"]


def test_lightsb_runs_beside_its_published_numbers(bench, tmp_path, capsys):
    out = tmp_path / "sb.json"
    bench.main(TINY + ["--lightsb-set", "steps=50", "--lightsb-set", "n_components=5", "--out", str(out)])
    gauss, mix = json.loads(out.read_text())["problems"]
    for rec in (gauss, mix):
        res = rec["methods"]["lightsb"]
        assert "error" not in res, res.get("error")
        assert res["train_steps"] == 50 and res["settings"]["n_components"] == 5 and res["sde_steps"] is None
        assert math.isfinite(res["cbw2_uvp"])
    assert math.isfinite(gauss["methods"]["lightsb"]["cross_cov_error"])
    printed = capsys.readouterr().out
    assert "| gauss2 | LightSB |" in printed and "| mix2-r1 | LightSB |" in printed
    assert "| mix2-r1 | " + f"{mix['methods']['lightsb']['cbw2_uvp']:.3f}" in printed  # the published table
    assert "0.05 ± 0.003" in printed and "| gauss2 | " + f"{gauss['methods']['lightsb']['cbw2_uvp']:.3f}" not in printed


def test_bad_override_is_refused(bench):
    with pytest.raises(SystemExit):
        bench.parse_args(["--methods", "lightsb", "--lightsb-set", "hidden=3"])
    args = bench.parse_args(
        ["--methods", "lightsb", "--lightsb-set", "schedule=constant", "--lightsb-set", "steps=null"]
    )
    assert args.lightsb_set == {"schedule": "constant", "steps": None}
