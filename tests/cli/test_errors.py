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
