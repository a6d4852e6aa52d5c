"""argparse pieces shared by the subcommands: the one-line-error parser and the option types."""

from __future__ import annotations

import argparse
import math

from .errors import EXIT_USAGE

__all__ = [
    "OneLineParser",
    "eps_list",
    "fraction_or_auto",
    "holdout_fraction",
    "nonnegative_int",
    "positive_float",
    "positive_int",
    "refine_rounds",
]


class OneLineParser(argparse.ArgumentParser):
    """argparse with one-line errors (no multi-line usage dump)."""

    def error(self, message):
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def _finite_float(s: str, ok, what: str) -> float:
    try:
        v = float(s)
    except ValueError:
        v = math.nan
    if not (math.isfinite(v) and ok(v)):
        raise argparse.ArgumentTypeError(f"expected {what}, got {s!r}")
    return v


def positive_float(s: str) -> float:
    """A finite number > 0."""
    return _finite_float(s, lambda v: v > 0, "a positive number")


def nonnegative_float(s: str) -> float:
    """A finite number >= 0."""
    return _finite_float(s, lambda v: v >= 0, "a number >= 0")


def _int_at_least(s: str, low: int, what: str) -> int:
    try:
        v = int(s)
    except ValueError:
        v = low - 1
    if v < low:
        raise argparse.ArgumentTypeError(f"expected {what}, got {s!r}")
    return v


def positive_int(s: str) -> int:
    """An integer >= 1."""
    return _int_at_least(s, 1, "a positive integer")


def steps_or_auto(s: str) -> int | str:
    """SDE steps: an integer >= 1, or ``auto`` (chosen from a measured error, :mod:`bridge.samplers.steps`)."""
    return "auto" if s == "auto" else _int_at_least(s, 1, "a positive integer or auto")


def nonnegative_int(s: str) -> int:
    """An integer >= 0."""
    return _int_at_least(s, 0, "an integer >= 0")


def holdout_fraction(s: str) -> float:
    """A fraction in [0, 1)."""
    try:
        v = float(s)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a fraction in [0, 1), got {s!r}") from None
    if not 0 <= v < 1:
        raise argparse.ArgumentTypeError(f"expected a fraction in [0, 1), got {s!r}")
    return v


def fraction_or_auto(s: str) -> float | str:
    """``"auto"`` or a fraction in [0, 1)."""
    return s if s == "auto" else holdout_fraction(s)


def refine_rounds(s: str) -> int | str:
    """``"auto"`` or an integer >= 0."""
    if s == "auto":
        return s
    try:
        v = int(s)
    except ValueError:
        v = -1
    if v < 0:
        raise argparse.ArgumentTypeError(f"expected 'auto' or an int >= 0, got {s!r}")
    return v


def eps_list(s: str) -> list[float]:
    """Comma-separated finite numbers > 0, e.g. ``"0.5,1,2.5"``."""
    out = []
    for part in s.split(","):
        part = part.strip()
        try:
            v = float(part)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected comma-separated numbers > 0, got {s!r}") from None
        if not (math.isfinite(v) and v > 0):
            raise argparse.ArgumentTypeError(f"expected comma-separated numbers > 0, got {s!r}")
        out.append(v)
    return out
