"""The ``bridge`` command: the parser of its subcommands, dispatch, and how a run ends.

Every user error ends in one line ``bridge CMD: error: ...`` on stderr and exit status 2; a bug
in bridge ends in one line saying so and exit status 1 (``--traceback`` or
``BRIDGE_TRACEBACK=1`` prints the traceback); Ctrl-C ends with exit status 130 and SIGTERM with
143, both after the temporary files are removed (:mod:`bridge.cli.errors`). A command holds the
lock on its output until it ends (:mod:`bridge.cli.lock`). Under ``torchrun`` the training
commands (:data:`DISTRIBUTED`) join the process group that it describes (:mod:`bridge.distributed`).
"""

from __future__ import annotations

import argparse
import sys
from contextlib import contextmanager

from ..distributed import launched_world_size, process_group, resolve_backend
from ..threads import DEFAULT_THREADS, torch_threads
from . import fit, likelihood, sample, solve
from .args import OneLineParser, positive_int
from .errors import (
    EXIT_INTERRUPTED,
    EXIT_TERMINATED,
    EXIT_USAGE,
    Terminated,
    UsageError,
    report_error,
    sigterm_raises,
    traceback_requested,
    user_input,
)
from .lock import held_locks

__all__ = ["COMMANDS", "build_parser", "main"]

#: Subcommand -> its module (``add_parser(sub, parents)`` and ``run(args) -> int``), in help order.
COMMANDS = {"fit": fit, "likelihood": likelihood, "solve": solve, "sample": sample}
#: The subcommands that may run as several processes under ``torchrun`` (data-parallel training).
DISTRIBUTED = ("fit", "solve")


def _global_options() -> argparse.ArgumentParser:
    """Options every subcommand takes too, before or after its name (absent unless given)."""
    p = argparse.ArgumentParser(add_help=False)
    p.add_argument(
        "--traceback",
        action="store_true",
        default=argparse.SUPPRESS,
        help="on an error, print the full Python traceback (also: environment BRIDGE_TRACEBACK=1)",
    )
    p.add_argument(
        "--threads",
        type=positive_int,
        default=argparse.SUPPRESS,
        metavar="N",
        help=f"torch CPU threads for the whole command (default {DEFAULT_THREADS}: small networks gain little "
        "from more, and processes sharing the cores slow each other down; see bridge.threads)",
    )
    return p


def build_parser() -> argparse.ArgumentParser:
    """The ``bridge`` parser with one subparser per entry of :data:`COMMANDS`."""
    common = _global_options()
    p = OneLineParser(prog="bridge", description="Stochastic interpolants and Schrödinger bridges.", parents=[common])
    sub = p.add_subparsers(dest="command", parser_class=OneLineParser)
    for module in COMMANDS.values():
        module.add_parser(sub, parents=[common])
    return p


def main(argv=None) -> int:
    """Run ``bridge ARGV`` (default: the process's arguments); return the exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help(sys.stderr)
        return EXIT_USAGE
    prog = f"bridge {args.command}"
    try:
        with sigterm_raises(), torch_threads(getattr(args, "threads", DEFAULT_THREADS)), held_locks(), _launched(args):
            return COMMANDS[args.command].run(args)
    except KeyboardInterrupt:
        print(f"{prog}: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except Terminated:
        print(f"{prog}: terminated", file=sys.stderr)
        return EXIT_TERMINATED
    except Exception as exc:
        return report_error(prog, exc, show_traceback=traceback_requested(args))


@contextmanager
def _launched(args):
    """The block in the process group of ``torchrun``'s processes, when it started several
    (``WORLD_SIZE > 1``; the backend: :func:`bridge.distributed.resolve_backend`); as is otherwise."""
    with user_input(ValueError):
        size = launched_world_size()
        if size > 1:
            resolve_backend(args.device if args.command in DISTRIBUTED else "cpu")
    if size == 1:
        yield
        return
    if args.command not in DISTRIBUTED:
        raise UsageError(
            f"torchrun: only `bridge {'` and `bridge '.join(DISTRIBUTED)}` run as several processes; run "
            f"`bridge {args.command}` as one (WORLD_SIZE={size})"
        )
    with process_group(args.device):
        yield
