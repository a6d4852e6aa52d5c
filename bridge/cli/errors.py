"""How a command ends: exit statuses, the user-error type, and the one line written on failure.

Bad user input ends in one line ``bridge CMD: error: ...`` and exit status 2; the library
reports bad input with ``ValueError``/``TypeError`` (and the file system with ``OSError``), and
the commands convert those into :class:`UsageError` where they validate or load their inputs
(:func:`user_input`). Anything else that escapes a command is a bug in bridge: one line saying
so and exit status 1. ``--traceback`` (or ``BRIDGE_TRACEBACK=1``) prints the traceback first.
SIGTERM is turned into :class:`Terminated` (:func:`sigterm_raises`), so that a terminated command
unwinds like an interrupted one: its temporary files are removed and its locks released.
"""

from __future__ import annotations

import os
import signal
import sys
import threading
import traceback
from contextlib import contextmanager

__all__ = [
    "EXIT_FAILURE",
    "EXIT_INTERRUPTED",
    "EXIT_TERMINATED",
    "EXIT_USAGE",
    "Terminated",
    "UsageError",
    "in_command_terms",
    "report_error",
    "sigterm_raises",
    "traceback_requested",
    "user_input",
]

#: A run that failed: a bug, or the machine (a full disk, out of memory).
EXIT_FAILURE = 1
#: Bad input: argparse errors and :class:`UsageError`.
EXIT_USAGE = 2
#: Ctrl-C (128 + SIGINT), as shells report it.
EXIT_INTERRUPTED = 130
#: SIGTERM (128 + 15), as shells report a process that it ended.
EXIT_TERMINATED = 143
#: Environment variable that, set to anything but ``""`` or ``"0"``, acts as ``--traceback``.
TRACEBACK_ENV = "BRIDGE_TRACEBACK"


class UsageError(Exception):
    """Bad input to a command (an option, a data file, a run directory): exit status 2."""


class Terminated(BaseException):
    """The process got SIGTERM. Like ``KeyboardInterrupt``, not an ``Exception``, so that only
    cleanup (``finally``, ``except BaseException``) sees it on the way out."""


@contextmanager
def sigterm_raises():
    """Within the block, SIGTERM raises :class:`Terminated` (in the main thread; elsewhere, and
    outside the block, the handler is left as it was)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def raise_terminated(signum, frame):
        raise Terminated()

    before = signal.signal(signal.SIGTERM, raise_terminated)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, before)


@contextmanager
def user_input(*kinds: type[BaseException]):
    """Treat ``kinds`` raised inside the block (default: ``ValueError``, ``TypeError``,
    ``OSError``, the library's and the file system's input errors) as bad user input.

    Example:
        >>> with user_input():
        ...     float("one")  # doctest: +IGNORE_EXCEPTION_DETAIL
        Traceback (most recent call last):
        UsageError: could not convert string to float: 'one'
    """
    caught = kinds or (ValueError, TypeError, OSError)
    try:
        yield
    except UsageError:
        raise
    except caught as exc:
        raise UsageError(str(exc)) from exc


def traceback_requested(args) -> bool:
    """Whether ``--traceback`` was given or ``BRIDGE_TRACEBACK`` is set."""
    return bool(getattr(args, "traceback", False)) or os.environ.get(TRACEBACK_ENV, "") not in ("", "0")


def _advice_in_flags() -> dict[str, str]:
    """The library's advice (keyword arguments) -> the same advice in the commands' flags; ``""``
    where no flag sets what it names (POT's iteration limit of the evaluation's reference plan)."""
    from ..ot import PLAN_ADVICE, POTENTIALS_ADVICE
    from ..sb.couplings import MINIBATCH_ADVICE, PLANS_ADVICE

    return {
        MINIBATCH_ADVICE: "use --coupling independent or --coupling sinkhorn",
        PLANS_ADVICE: "use a smaller --plan-size or --coupling independent",
        PLAN_ADVICE: "",
        POTENTIALS_ADVICE: "",
    }


def in_command_terms(text: str) -> str:
    """``text`` (a library message) with the library's advice in the commands' flags, or left out
    where no flag sets what it names: what a command prints never tells a user to change a
    Python keyword.

    Example:
        >>> in_command_terms("plan failed; use coupling='independent' or coupling='sinkhorn'")
        'plan failed; use --coupling independent or --coupling sinkhorn'
    """
    try:
        table = _advice_in_flags()
    except ImportError:  # a broken installation: report what there is
        return str(text)
    text = str(text)
    for library, command in table.items():
        text = text.replace(f"; {library}", f"; {command}" if command else "")
    return text


def _one_line(text: str) -> str:
    return " ".join(in_command_terms(text).split())


def _is_environment_error(exc: BaseException) -> bool:
    """Failures of the machine rather than of bridge: the file system, memory (CUDA's too)."""
    torch = sys.modules.get("torch")
    cuda_oom = (torch.cuda.OutOfMemoryError,) if torch is not None else ()
    return isinstance(exc, (OSError, MemoryError, *cuda_oom))


def report_error(prog: str, exc: BaseException, *, show_traceback: bool) -> int:
    """Write the one line for ``exc`` escaping command ``prog`` to stderr; return the exit status."""
    if show_traceback:
        traceback.print_exception(type(exc), exc, exc.__traceback__, file=sys.stderr)
    if isinstance(exc, UsageError):
        print(f"{prog}: error: {_one_line(exc)}", file=sys.stderr)
        return EXIT_USAGE
    what = f"{type(exc).__name__}: {_one_line(exc)}" if str(exc).strip() else type(exc).__name__
    if _is_environment_error(exc):
        print(f"{prog}: error: {what}", file=sys.stderr)
        return EXIT_FAILURE
    hint = "" if show_traceback else "; rerun with --traceback to see where"
    print(f"{prog}: internal error (a bug in bridge, please report it): {what}{hint}", file=sys.stderr)
    return EXIT_FAILURE
