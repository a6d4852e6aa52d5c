"""`bridge solve` at an eps far from the data's scale says so on stderr and in report.json."""

import json

from .helpers import SOLVE_TINY, main_error


def test_solve_at_a_huge_eps_warns_that_the_bridge_is_the_independent_coupling(tmp_path, capsys):
    out = tmp_path / "run"
    args = ["solve", "--source", "gaussian", "--target", "moons", "--eps", "1e6", "--out", str(out), "--steps", "2"]
    rc, err = main_error([*args, *SOLVE_TINY], capsys)
    assert rc == 0, err
    warned = [line for line in err.splitlines() if line.startswith("[solve] warning: eps = 1e+06")]
    assert len(warned) == 1 and "almost the independent coupling" in warned[0], err
    scale = json.loads((out / "report.json").read_text())["training"]["coupling"]["eps_scale"]
    assert scale["verdict"] == "independent" and scale["correlation"] < 1e-5 and scale["reg"] == 4e6


def test_solve_at_a_moderate_eps_records_the_scale_without_a_warning(run_dir):
    scale = json.loads((run_dir / "report.json").read_text())["training"]["coupling"]["eps_scale"]
    assert scale["verdict"] == "entropic" and scale["message"] is None
