"""A benchmark script (``benchmarks/FILE``) loaded as a module for a test, and forgotten after."""

import importlib.util
import sys
from contextlib import contextmanager
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


@contextmanager
def benchmark_script(filename: str, name: str):
    """``benchmarks/filename`` executed as the module ``name``, which stays in ``sys.modules`` while
    in use (dataclasses look their module up while the file executes)."""
    spec = importlib.util.spec_from_file_location(name, ROOT / "benchmarks" / filename)
    mod = importlib.util.module_from_spec(spec)
    sys.modules[name] = mod
    try:
        spec.loader.exec_module(mod)
        yield mod
    finally:
        sys.modules.pop(name, None)
