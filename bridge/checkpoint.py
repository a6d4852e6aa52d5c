"""Safe, atomic checkpoints: tensors plus JSON, never arbitrary pickles.

A checkpoint is one file written by :func:`save_checkpoint`: a dict of tensor state dicts and a
JSON-serialisable metadata dict (stored as a JSON string). It is written to a temporary file
in the same folder and moved into place with :func:`os.replace`, so an interrupted write never
leaves a half-written checkpoint. :func:`load_checkpoint` uses ``torch.load(weights_only=True)``,
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
import tempfile
from pathlib import Path

import torch
from torch import Tensor

__all__ = ["save_checkpoint", "load_checkpoint", "atomic_write_bytes", "atomic_write_text", "CheckpointError"]

FORMAT = "bridge-checkpoint-v1"


class CheckpointError(ValueError):
    """A checkpoint file is missing, unreadable, unsafe or of the wrong format."""


def _default_mode() -> int:
    """``0o666`` less the process umask: the mode ``open(path, "w")`` would give a new file."""
    mask = os.umask(0)
    os.umask(mask)
    return 0o666 & ~mask


def make_temp_beside(path: Path) -> str:
    """A new empty temporary file next to ``path`` (same file system, so ``os.replace`` is atomic)
    with the permissions an ordinary new file would get (``mkstemp`` alone gives ``0o600``)."""
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    os.chmod(tmp, _default_mode())
    return tmp


def _atomic_write(path: Path, write) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = make_temp_beside(path)
    try:
        with open(tmp, "wb") as fh:
            write(fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
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
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise CheckpointError(f"{path}: not a loadable bridge checkpoint ({first})") from None
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise CheckpointError(f"{path}: not a bridge checkpoint (expected format {FORMAT})")
    try:
        meta = json.loads(payload["meta_json"])
    except (KeyError, TypeError, json.JSONDecodeError):
        raise CheckpointError(f"{path}: corrupt metadata") from None
    return payload["state"], meta
