"""How many CPU threads torch uses: one policy for the training functions and every command.

bridge's networks are small (batches of a few thousand rows through MLPs of a few hundred units):
more intra-op threads speed one process up a little on an idle machine, but processes that each
start torch's default (one thread per core) wait on each other, and a single busy neighbour makes
them many times slower; one thread per process keeps its speed (benchmarks/README.md §15).
So :func:`~bridge.sb.solve_bridge`, :func:`~bridge.train.train_fields` and every ``bridge``
command use :data:`DEFAULT_THREADS` = 1 thread unless told otherwise (``SBConfig.threads``,
``train_fields(threads=...)``, ``bridge --threads N``), and restore torch's setting when they
return. The other library functions (samplers, likelihood estimators) leave torch's setting to
the caller.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch

__all__ = ["DEFAULT_THREADS", "check_threads", "torch_threads"]

#: torch intra-op threads of the training functions and the commands, unless told otherwise.
DEFAULT_THREADS = 1


def check_threads(threads: int | None, name: str = "threads") -> int | None:
    """``threads`` if it is None or an int >= 1, else a ``ValueError`` naming ``name``."""
    if threads is not None and (isinstance(threads, bool) or not isinstance(threads, int) or threads < 1):
        raise ValueError(f"{name}: expected None or an int >= 1, got {threads!r}")
    return threads


@contextmanager
def torch_threads(threads: int | None) -> Iterator[None]:
    """Run the block with ``threads`` torch intra-op threads (None: leave torch's setting), then
    restore the previous setting.

    Example:
        >>> before = torch.get_num_threads()
        >>> with torch_threads(1):
        ...     torch.get_num_threads()
        1
        >>> torch.get_num_threads() == before
        True
    """
    before = torch.get_num_threads()
    if check_threads(threads) is not None:
        torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(before)
