"""Progress lines for long stages: a throttled reporter that says how much is done and how long is left.

A stage that knows how much work it has (samples to draw, points to score, training steps)
makes one :class:`Progress` and calls :meth:`Progress.update` as the work gets done; at most one
line per ``every_s`` seconds goes to ``say``::

    [sample] 3000/10000 samples (30%), 12.3 s, ~28 s left

The time left is the elapsed time scaled by the work still to do (a constant rate). The
library's long functions (the samplers, the likelihood estimators, :func:`bridge.sb.evaluate_bridge`)
take an optional ``progress`` callback and are silent without one; a callback ``(done, total)``
for a part of a larger task is :meth:`Progress.part`.

Example:
    >>> lines = []
    >>> clock = iter([0.0, 5.0, 12.0, 30.0]).__next__  # a fake clock: start, then one reading per update
    >>> p = Progress(100, "sample", lines.append, unit="samples", every_s=10.0, clock=clock)
    >>> p.update(10)  # 5 s in: too soon for a line
    >>> p.update(40)  # 12 s in
    >>> p.update(100)  # 30 s in, done
    >>> lines
    ['[sample] 40/100 samples (40%), 12.0 s, ~18 s left', '[sample] 100/100 samples (100%), 30.0 s, done']
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable

__all__ = ["EVERY_S", "Progress", "ProgressCallback", "format_seconds"]

#: Seconds between two progress lines when a :class:`Progress` is made without ``every_s``
#: (read when it is made, so a test can set it to 0 to see every update).
EVERY_S = 10.0

#: A library function's progress callback: called with the work done so far and the total.
ProgressCallback = Callable[[int, int], None]


def format_seconds(s: float) -> str:
    """A duration for a progress line: ``"12.3 s"`` below a minute, ``"4 min 05 s"`` above.

    Example:
        >>> format_seconds(12.34), format_seconds(245.0)
        ('12.3 s', '4 min 05 s')
    """
    if not math.isfinite(s):
        return "?"
    if s < 60:
        return f"{s:.1f} s"
    m, r = divmod(int(round(s)), 60)
    return f"{m} min {r:02d} s"


class Progress:
    """At most one progress line per ``every_s`` seconds: work done, elapsed time, time left.

    Args:
        total: the amount of work (samples, points, steps), ``> 0``.
        label: the stage's tag, printed in brackets (``"sample"`` -> ``"[sample] ..."``).
        say: where the lines go (e.g. a function that prints to stderr).
        unit: what the work is counted in (``"samples"``), printed after the counts.
        every_s: least seconds between two lines (default :data:`EVERY_S`); the first line comes
            ``every_s`` after the start.
        clock: seconds as a float (``time.perf_counter``; a fake clock in tests).
        budget_s: optional cap on the whole stage (a training time budget): the time left is
            at most what remains of it.
    """

    def __init__(
        self,
        total: float,
        label: str,
        say: Callable[[str], None],
        *,
        unit: str = "",
        every_s: float | None = None,
        clock: Callable[[], float] = time.perf_counter,
        budget_s: float | None = None,
    ):
        if not total > 0:
            raise ValueError(f"total: expected an amount of work > 0, got {total!r}")
        self.total, self.label, self.say, self.unit = total, label, say, unit
        self.every_s = float(EVERY_S if every_s is None else every_s)
        self.clock, self.budget_s = clock, budget_s
        self.start = clock()
        self.last = self.start

    def elapsed(self) -> float:
        """Seconds since the reporter was made."""
        return self.clock() - self.start

    def update(self, done: float) -> None:
        """Record ``done`` units of work; print a line if ``every_s`` has passed since the last one."""
        now = self.clock()
        if now - self.last < self.every_s:
            return
        self.last = now
        self.say(self.line(done, now - self.start))

    def touch(self) -> None:
        """A line was just printed another way (e.g. a loss record): wait ``every_s`` from now."""
        self.last = self.clock()

    def part(self, start: float, size: float) -> ProgressCallback:
        """A ``(done, total)`` callback for a part of the work covering units ``start`` to
        ``start + size`` of this reporter (e.g. one chunk of samples, reported step by step)."""

        def report(done: int, total: int) -> None:
            self.update(start + size * done / max(total, 1))

        return report

    def line(self, done: float, elapsed: float) -> str:
        """The progress line for ``done`` units after ``elapsed`` seconds."""
        unit = f" {self.unit}" if self.unit else ""
        share = min(max(done / self.total, 0.0), 1.0)
        counts = f"{_count(done)}/{_count(self.total)}{unit} ({100 * share:.0f}%)"
        head = f"[{self.label}] {counts}, {format_seconds(elapsed)}"
        if share >= 1.0:
            return f"{head}, done"
        if share <= 0.0:
            return f"{head}, time left unknown"
        left = elapsed * (1.0 - share) / share
        if self.budget_s is not None:
            left = min(left, max(self.budget_s - elapsed, 0.0))
        return f"{head}, ~{format_seconds(left) if left >= 60 else f'{left:.0f} s'} left"


def _count(x: float) -> str:
    """A count of work for a line: whole units (a part-done sample counts as not done)."""
    return str(int(x))
