"""The solve run that the `bridge solve`, `bridge sample` and `bridge likelihood` tests share."""

import pytest

from .helpers import solve


@pytest.fixture(scope="session")
def run_dir(tmp_path_factory):
    """A finished tiny `bridge solve` run directory (treat it as read-only)."""
    out = tmp_path_factory.mktemp("sb") / "run"
    assert solve(out, "--quiet") == 0
    return out
