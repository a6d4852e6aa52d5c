"""Safe, atomic checkpoints: tensors plus JSON, never arbitrary pickles.

A checkpoint is one file written by :func:`save_checkpoint`: a dict of tensor state dicts and a
JSON-serialisable metadata dict (stored as a JSON string). It is written to a temporary file
in the same folder and moved into place with :func:`os.replace`, so an interrupted write never
leaves a half-written checkpoint. The temporary file goes on every exit path that runs code (an
exception, Ctrl-C, SIGTERM where it raises, as in the ``bridge`` command); one that a killed
process (``kill -9``) left behind carries that process's pid in its name
(``.NAME.PID.XXXX.tmp``) and is removed by the next write of the same file
(:func:`remove_stale_temps`). :func:`load_checkpoint` uses ``torch.load(weights_only=True)``,
which refuses to unpickle arbitrary objects: a checkpoint from someone else cannot run code.

Example:
    >>> import torch, tempfile, os
    >>> path = os.path.join(tempfile.mkdtemp(), "ck.pt")
    >>> save_checkpoint(path, {"b": {"w": torch.ones(2)}}, {"note": "demo"})
    >>> state, meta = load_checkpoint(path)
    >>> meta["note"], state["b"]["w"].tolist()
    ('demo', [1.0, 1.0])
"""

from __future__ import annotations

import json
import os
import pickle
import re
import tempfile
from contextlib import suppress
from pathlib import Path

import torch
from torch import Tensor

__all__ = [
    "save_checkpoint",
    "load_checkpoint",
    "atomic_write_bytes",
    "atomic_write_text",
    "CheckpointError",
    "make_temp_beside",
    "remove_stale_temps",
]

FORMAT = "bridge-checkpoint-v1"


class CheckpointError(ValueError):
    """A checkpoint file is missing, unreadable, unsafe or of the wrong format."""


def _default_mode() -> int:
    """``0o666`` less the process umask: the mode ``open(path, "w")`` would give a new file."""
    mask = os.umask(0)
    os.umask(mask)
    return 0o666 & ~mask


def _writer_pid(name: str, target: str) -> int | None:
    """The pid in a temporary file name ``.TARGET.PID.XXXX.tmp``, or None for any other name."""
    head, tail = f".{target}.", ".tmp"
    if not (name.startswith(head) and name.endswith(tail)):
        return None
    parts = name[len(head) : -len(tail)].split(".")  # PID and mkstemp's random part (no dots)
    return int(parts[0]) if len(parts) == 2 and parts[0].isdigit() else None


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # e.g. another user's process
        return True
    return True


def remove_stale_temps(path) -> list[Path]:
    """Remove the temporary files that killed writers of ``path`` left next to it: those named
    ``.NAME.PID.XXXX.tmp`` whose process ``PID`` no longer runs. Returns what was removed."""
    path = Path(path)
    removed = []
    try:
        names = [e.name for e in os.scandir(path.parent)]
    except OSError:
        return removed
    for name in names:
        pid = _writer_pid(name, path.name)
        if pid is not None and not _alive(pid):
            with suppress(FileNotFoundError):
                os.unlink(path.parent / name)
                removed.append(path.parent / name)
    return removed


def make_temp_beside(path: Path) -> str:
    """A new empty temporary file ``.NAME.PID.XXXX.tmp`` next to ``path`` (same file system, so
    ``os.replace`` is atomic) with the permissions an ordinary new file would get (``mkstemp``
    alone gives ``0o600``); temporary files of killed earlier writers of ``path`` are removed first.

    Raises:
        OSError: the folder cannot be written; the message names the folder, not the temporary file.
    """
    path = Path(path)
    remove_stale_temps(path)
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.{os.getpid()}.", suffix=".tmp", dir=path.parent)
    except OSError as exc:
        raise OSError(exc.errno, f"cannot write {path.name} in {path.parent}: {exc.strerror}") from None
    try:
        os.close(fd)
        os.chmod(tmp, _default_mode())
    except BaseException:
        _remove(tmp)
        raise
    return tmp


def _remove(tmp: str | None) -> None:
    if tmp is not None:
        with suppress(OSError):
            os.unlink(tmp)


def _atomic_write(path: Path, write) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = None
    try:
        tmp = make_temp_beside(path)
        with open(tmp, "wb") as fh:
            write(fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:  # an error, Ctrl-C, SIGTERM turned into an exception: no temporary file stays
        _remove(tmp)
        raise


def atomic_write_bytes(path, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically (temporary file + ``os.replace``)."""
    _atomic_write(Path(path), lambda fh: fh.write(data))


def atomic_write_text(path, text: str) -> None:
    """Write ``text`` (UTF-8) to ``path`` atomically."""
    atomic_write_bytes(path, text.encode("utf-8"))


def save_checkpoint(path, state: dict[str, dict[str, Tensor]], meta: dict) -> None:
    """Atomically save tensor state dicts and JSON metadata to ``path``.

    Args:
        path: destination file.
        state: ``{name: {param_name: tensor}}`` (e.g. ``{"b": net.state_dict()}``).
        meta: JSON-serialisable metadata (configuration, history, versions).
    """
    for name, sd in state.items():
        for k, v in sd.items():
            if not isinstance(v, Tensor):
                raise TypeError(f"state[{name!r}][{k!r}]: expected a tensor, got {type(v).__name__}")
    payload = {
        "format": FORMAT,
        "meta_json": json.dumps(meta),
        "state": {n: {k: v.detach().cpu() for k, v in sd.items()} for n, sd in state.items()},
    }
    _atomic_write(Path(path), lambda fh: torch.save(payload, fh))


def load_checkpoint(path, *, map_location="cpu") -> tuple[dict[str, dict[str, Tensor]], dict]:
    """Load a checkpoint written by :func:`save_checkpoint` without unpickling objects.

    Raises:
        CheckpointError: missing file, unsafe or corrupt content, or not a bridge checkpoint.
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: checkpoint not found")
    try:
        payload = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as exc:  # torch raises UnpicklingError, RuntimeError, EOFError, ...
        raise CheckpointError(f"{path}: not a loadable bridge checkpoint: {_why_unloadable(path, exc)}") from None
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise CheckpointError(f"{path}: not a bridge checkpoint (expected format {FORMAT})")
    try:
        meta = json.loads(payload["meta_json"])
    except (KeyError, TypeError, json.JSONDecodeError):
        raise CheckpointError(f"{path}: corrupt metadata") from None
    return payload["state"], meta


#: The first bytes of what ``torch.save`` writes (a zip archive).
_ZIP_MAGIC = b"PK\x03\x04"


def _why_unloadable(path: Path, exc: Exception) -> str:
    """Why ``torch.load(weights_only=True)`` refused ``path``, in the file's terms: never torch's own
    text, which advises loading with ``weights_only=False``, the one thing not to do with a file
    from elsewhere."""
    with open(path, "rb") as fh:
        head = fh.read(4)
    if not head:
        return "the file is empty"
    if head != _ZIP_MAGIC:
        return "not a PyTorch file (torch.save writes a zip archive)"
    if isinstance(exc, pickle.UnpicklingError):
        found = re.search(r"GLOBAL ([\w.]+)", str(exc))
        what = f" ({found.group(1)})" if found else ""
        return (
            f"it holds Python objects{what}, not only tensors and plain data; refusing to unpickle it, "
            "since unpickling can run code"
        )
    return "the archive is truncated or corrupt"
