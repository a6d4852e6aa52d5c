"""One process per output: a lock on the folder (or the file) that a command writes.

A command takes :func:`lock_output` on its output before it writes there. The lock is an
``fcntl.flock`` on a lock file (``.bridge.lock`` in an output folder, ``.NAME.lock`` next to an
output file) that holds the owner's pid. The operating system releases a ``flock`` when its
process ends, however it ends (``kill -9`` included), so a lock file left behind by a killed
run never blocks a later one: only a live process holds the lock. A second command on the same
output is refused in one line naming the output and the pid that holds it.

:func:`held_locks` (around each command in :func:`bridge.cli.app.main`) releases the locks
taken inside it and removes their files. Removing is safe: a process that opened a lock file
just before it was removed finds, once it holds the lock, that the path no longer leads to the
file it locked, and starts over.

Example:
    >>> import tempfile
    >>> out = tempfile.mkdtemp()
    >>> with held_locks():
    ...     _ = lock_output(out)
    ...     lock_output(out)  # doctest: +IGNORE_EXCEPTION_DETAIL
    Traceback (most recent call last):
    UsageError: --out: ... is in use by another bridge process (pid ...)
"""

from __future__ import annotations

import os
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from .errors import UsageError

try:
    import fcntl
except ImportError:  # not a POSIX system: no locks
    fcntl = None

__all__ = ["FOLDER_LOCK", "held_locks", "lock_output"]

#: The lock file inside an output folder.
FOLDER_LOCK = ".bridge.lock"
#: Locks this process holds, innermost :func:`held_locks` block last.
_HELD: list[list[_Lock]] = []


@dataclass
class _Lock:
    path: Path
    fd: int

    def release(self) -> None:
        """Remove the lock file (if it is still this lock's), then let go of the lock."""
        try:
            if _same_file(self.fd, self.path):
                os.unlink(self.path)
        except OSError:
            pass
        os.close(self.fd)


def _same_file(fd: int, path: Path) -> bool:
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return False
    own = os.fstat(fd)
    return (st.st_dev, st.st_ino) == (own.st_dev, own.st_ino)


def _holder(fd: int) -> str:
    """`` (pid N)`` from the lock file, or ``""`` while the holder has not written it yet."""
    text = os.pread(fd, 32, 0).decode("ascii", errors="replace").strip()
    return f" (pid {text})" if text.isdigit() else ""


def _acquire(lock_file: Path, shown: Path, option: str) -> _Lock:
    while True:
        try:
            fd = os.open(lock_file, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as exc:
            raise UsageError(f"{option}: cannot write in {lock_file.parent} ({exc.strerror})") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _holder(fd)
            os.close(fd)
            raise UsageError(
                f"{option}: {shown} is in use by another bridge process{holder}; wait until it ends or choose "
                f"another {option}"
            ) from None
        if _same_file(fd, lock_file):
            break
        os.close(fd)  # removed by its last holder after we opened it: lock the new file instead
    os.ftruncate(fd, 0)
    os.write(fd, f"{os.getpid()}\n".encode())
    return _Lock(lock_file, fd)


def lock_output(path, *, option: str = "--out", folder: bool = True) -> Path:
    """Lock the output ``path`` (a folder, created if needed, or with ``folder=False`` a file in
    an existing folder) until the enclosing :func:`held_locks` block ends; returns ``path``.

    Raises:
        UsageError: another process holds the lock, or the folder cannot be written.
    """
    out = Path(path)
    lock_file = out / FOLDER_LOCK if folder else out.parent / f".{out.name}.lock"
    if folder:
        try:
            out.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise UsageError(f"{option}: cannot create {out} ({exc.strerror})") from None
    if fcntl is None:
        return out
    lock = _acquire(lock_file, out, option)
    if _HELD:
        _HELD[-1].append(lock)
    return out


@contextmanager
def held_locks():
    """Release the locks that :func:`lock_output` takes inside the block when it ends."""
    _HELD.append([])
    try:
        yield
    finally:
        for lock in reversed(_HELD.pop()):
            lock.release()
