"""How a command ends: bad input in one line with exit status 2, a bug in one line saying so with
exit status 1, the traceback on request (``--traceback``, ``BRIDGE_TRACEBACK=1``), Ctrl-C 130."""

import errno

import pytest

import bridge.cli.fit
import bridge.cli.solve
from bridge.cli import main

from .helpers import assert_one_line, main_error, run_process

BUG_LINE = (
    "bridge solve: internal error (a bug in bridge, please report it): ZeroDivisionError: division by zero; "
    "rerun with --traceback to see where"
)


def _solve_args(tmp_path, *extra):
    """A solve that gets as far as training (built-in data, a few points) before the planted failure."""
    out = str(tmp_path / "o")
    return ["solve", "--source", "gaussian", "--target", "moons", "--eps", "0.5", "--out", out, *extra]


def _fail_with(exc):
    def fail(*args, **kwargs):
        raise exc

    return fail


@pytest.fixture
def buggy_solve(monkeypatch):
    """`bridge solve` with a bug planted where it trains."""
    monkeypatch.delenv("BRIDGE_TRACEBACK", raising=False)
    monkeypatch.setattr(bridge.cli.solve, "_train", _fail_with(ZeroDivisionError("division by zero")))


def test_a_bug_exits_1_with_one_line_saying_so(tmp_path, capsys, buggy_solve):
    rc, err = main_error(_solve_args(tmp_path, "--n-train", "40", "--eval-points", "10", "--quiet"), capsys)
    assert rc == 1 and err == BUG_LINE


@pytest.mark.parametrize("where", ["before", "after"])
def test_traceback_option_before_or_after_the_command(tmp_path, capsys, buggy_solve, where):
    args = _solve_args(tmp_path, "--n-train", "40", "--eval-points", "10", "--quiet")
    args = ["--traceback", *args] if where == "before" else [*args, "--traceback"]
    rc, err = main_error(args, capsys)
    assert rc == 1
    assert err.startswith("Traceback (most recent call last):")
    assert "raise exc" in err and "ZeroDivisionError: division by zero" in err
    assert err.splitlines()[-1] == BUG_LINE.split("; rerun")[0]


@pytest.mark.parametrize("value, shown", [("1", True), ("0", False), ("", False)])
def test_traceback_from_the_environment(tmp_path, capsys, buggy_solve, monkeypatch, value, shown):
    monkeypatch.setenv("BRIDGE_TRACEBACK", value)
    rc, err = main_error(_solve_args(tmp_path, "--n-train", "40", "--eval-points", "10", "--quiet"), capsys)
    assert rc == 1 and ("Traceback (most recent call last):" in err) == shown
    assert "internal error (a bug in bridge" in err.splitlines()[-1]


def test_type_and_value_errors_past_the_inputs_are_bugs(tmp_path, capsys, monkeypatch):
    """A TypeError or ValueError raised after the inputs were checked is not called bad input."""
    monkeypatch.delenv("BRIDGE_TRACEBACK", raising=False)
    args = ["fit", "--out", str(tmp_path / "o"), "--n-train", "40", "--n-test", "10", "--quiet"]
    for exc in (TypeError("unsupported operand type(s)"), ValueError("too many values to unpack")):
        monkeypatch.setattr(bridge.cli.fit, "_train", _fail_with(exc))
        rc, err = main_error(args, capsys)
        assert_one_line(rc, err, f"internal error (a bug in bridge, please report it): {type(exc).__name__}", code=1)


def test_bad_input_is_one_line_exit_2_and_its_traceback_on_request(tmp_path, capsys, monkeypatch):
    monkeypatch.delenv("BRIDGE_TRACEBACK", raising=False)
    bad = tmp_path / "d3.npy"
    bad.write_bytes(b"not numpy")
    args = ["solve", "--source", str(bad), "--target", "moons", "--eps", "0.5", "--out", str(tmp_path / "o")]
    rc, err = main_error(args, capsys)
    assert_one_line(rc, err, "not a readable NumPy file")
    assert err.startswith("bridge solve: error: ") and "bug" not in err
    rc, err = main_error([*args, "--traceback"], capsys)
    assert rc == 2 and "Traceback (most recent call last):" in err
    assert err.splitlines()[-1].startswith("bridge solve: error: ")


def test_machine_failures_exit_1_without_blaming_bridge(tmp_path, capsys, monkeypatch):
    monkeypatch.delenv("BRIDGE_TRACEBACK", raising=False)
    monkeypatch.setattr(bridge.cli.solve, "_train", _fail_with(OSError(errno.ENOSPC, "No space left on device")))
    rc, err = main_error(_solve_args(tmp_path, "--n-train", "40", "--eval-points", "10", "--quiet"), capsys)
    assert_one_line(rc, err, "bridge solve: error: OSError: [Errno 28] No space left on device", code=1)
    assert "bug" not in err


def test_ctrl_c_exits_130_quietly(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(bridge.cli.solve, "_train", _fail_with(KeyboardInterrupt()))
    rc, err = main_error(_solve_args(tmp_path, "--n-train", "40", "--eval-points", "10"), capsys)
    assert rc == 130 and err.splitlines()[-1] == "bridge solve: interrupted" and "Traceback" not in err


def test_no_command_prints_the_help_and_exits_2(capsys):
    assert main([]) == 2
    assert "usage: bridge" in capsys.readouterr().err


def test_a_process_reads_the_environment(tmp_path):
    """`BRIDGE_TRACEBACK=1 python -m bridge ...` on bad input: the traceback, then the one line, exit 2."""
    args = ["solve", "--source", "no-such-set", "--target", "moons", "--eps", "1", "--out", str(tmp_path / "o")]
    r = run_process(args, env={"BRIDGE_TRACEBACK": "1"})
    err = r.stderr.strip()
    assert r.returncode == 2 and err.startswith("Traceback (most recent call last):"), err
    assert err.splitlines()[-1].startswith("bridge solve: error: ") and "neither a built-in" in err.splitlines()[-1]


# ----------------------------------------------------------------------------------------------
# advice in the command's own terms

#: Python keywords of the library's advice that a command's messages must not show.
PYTHON_ADVICE = ("coupling='", "plan_size", "max_iter", "entropic_potentials", "weights_only")


def _no_python_advice(text):
    return not any(word in text for word in PYTHON_ADVICE)


@pytest.mark.parametrize(
    "coupling, advice",
    [
        ("minibatch", "use --coupling independent or --coupling sinkhorn"),
        ("sinkhorn", "use a smaller --plan-size or --coupling independent"),
    ],
)
def test_a_coupling_that_fails_at_tiny_eps_advises_flags(tmp_path, capsys, coupling, advice):
    """Sinkhorn plans that do not converge at eps = 1e-5 stop the solve with advice in flags."""
    args = _solve_args(tmp_path, "--eps", "1e-5", "--coupling", coupling, "--steps", "2", "--quiet")
    small = ["--n-train", "200", "--eval-points", "20", "--plan-size", "64", "--batch-size", "32"]
    rc, err = main_error([*args, *small, "--warmup-steps", "1", "--refine-rounds", "0"], capsys)
    assert_one_line(rc, err, advice)
    assert _no_python_advice(err), err


def test_auto_coupling_falls_back_where_plans_fail(tmp_path, capsys):
    """At eps = 1e-5 no plan converges: "auto" takes the independent coupling, says why in the
    command's terms, and the solve finishes."""
    args = _solve_args(tmp_path, "--eps", "1e-5", "--steps", "2", "--n-train", "200", "--eval-points", "20")
    small = ["--plan-size", "64", "--batch-size", "32", "--warmup-steps", "1", "--refine-rounds", "0"]
    rc, err = main_error([*args, *small, "--hidden", "8", "--sde-steps", "4", "--eval-per-point", "2"], capsys)
    assert rc == 0, err
    assert "did not converge" in err and "using the independent coupling" in err and _no_python_advice(err), err


def test_a_failed_reference_plan_is_reported_without_python_advice(tmp_path, capsys, monkeypatch):
    """POT's plan of the evaluation fails (here: after 2 iterations): the warning line and
    report.json keep the diagnosis but not the advice to raise ``max_iter``, which no flag sets."""
    import json

    import bridge.ot
    import bridge.ot_backend

    real = bridge.ot.entropic_plan  # the dense backend, as the evaluation's plan size picks it
    monkeypatch.setattr(bridge.ot_backend, "entropic_plan", lambda *a, **k: real(*a, **{**k, "max_iter": 2}))
    args = _solve_args(tmp_path, "--n-train", "200", "--eval-points", "20", "--steps", "2", "--warmup-steps", "1")
    rc, err = main_error([*args, "--hidden", "8", "--sde-steps", "4", "--eval-per-point", "2"], capsys)
    assert rc == 0
    lines = [line for line in err.splitlines() if "did not converge" in line]
    assert lines and all(_no_python_advice(line) for line in lines), lines
    report = (tmp_path / "o" / "report.json").read_text()
    assert "did not converge" in json.loads(report)["errors"]["reference"]
    assert "max_iter" not in report and "entropic_potentials" not in report  # (plan_size is a setting there)


def test_every_library_advice_has_its_command_wording():
    """Each advice the library's ConvergenceErrors give is reworded (or left out) by the CLI."""
    from bridge import ot
    from bridge.cli.errors import in_command_terms
    from bridge.sb import couplings

    for advice in (ot.PLAN_ADVICE, ot.POTENTIALS_ADVICE, couplings.MINIBATCH_ADVICE, couplings.PLANS_ADVICE):
        worded = in_command_terms(f"Sinkhorn failed; {advice}")
        assert worded.startswith("Sinkhorn failed") and _no_python_advice(worded), worded
