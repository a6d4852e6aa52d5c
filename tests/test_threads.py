"""One thread policy: the training functions and every command run with bridge.threads'
DEFAULT_THREADS unless told otherwise, and give torch its setting back afterwards."""

import pytest
import torch

from bridge import Linear, SBConfig, solve_bridge, train_fields
from bridge.cli import app
from bridge.threads import DEFAULT_THREADS, torch_threads


@pytest.fixture
def three_threads():
    before = torch.get_num_threads()
    torch.set_num_threads(3)  # a caller's own setting, different from the default
    yield
    torch.set_num_threads(before)


def test_torch_threads_sets_and_restores(three_threads):
    with torch_threads(2):
        assert torch.get_num_threads() == 2
    assert torch.get_num_threads() == 3
    with torch_threads(None):
        assert torch.get_num_threads() == 3
    with pytest.raises(ValueError, match="threads"):
        with torch_threads(0):
            pass


def test_training_functions_use_the_default_and_restore(three_threads):
    seen = []
    x = torch.randn(64, 2)
    spy = lambda m: seen.append(torch.get_num_threads())  # noqa: E731
    train_fields(Linear(), x, x + 1, steps=2, batch_size=8, hidden=8, depth=1, log_every=1, progress=spy)
    cfg = SBConfig(outer_steps=1, warmup_steps=1, batch_size=8, hidden=8, depth=1, log_every=1, coupling="independent")
    solve_bridge(x, x + 1, 0.5, config=cfg, progress=spy)
    assert seen and set(seen) == {DEFAULT_THREADS} and torch.get_num_threads() == 3
    seen.clear()
    train_fields(Linear(), x, x + 1, steps=1, batch_size=8, hidden=8, depth=1, log_every=1, progress=spy, threads=2)
    assert set(seen) == {2} and torch.get_num_threads() == 3


@pytest.mark.parametrize(
    "argv, expected",
    [
        (["fit", "--out", "o"], DEFAULT_THREADS),
        (["--threads", "2", "fit", "--out", "o"], 2),
        (["fit", "--out", "o", "--threads", "2"], 2),
    ],
)
def test_the_command_runs_with_its_threads(monkeypatch, three_threads, argv, expected):
    seen = []
    monkeypatch.setattr(app.COMMANDS["fit"], "run", lambda args: seen.append(torch.get_num_threads()) or 0)
    assert app.main(argv) == 0
    assert seen == [expected] and torch.get_num_threads() == 3


def test_bad_threads_is_a_usage_error(capsys):
    with pytest.raises(SystemExit) as e:
        app.main(["--threads", "0", "fit"])
    assert e.value.code == 2 and "--threads" in capsys.readouterr().err
