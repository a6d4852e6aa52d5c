"""Atomic writes leave no temporary file on any exit path, and a refused checkpoint says why in
the file's terms, never with torch's advice to unpickle it."""

import os
import signal
import subprocess
import sys
import textwrap

import pytest
import torch

from bridge.checkpoint import (
    CheckpointError,
    atomic_write_bytes,
    atomic_write_text,
    load_checkpoint,
    make_temp_beside,
    remove_stale_temps,
    save_checkpoint,
)


def _temps(folder):
    return sorted(p.name for p in folder.iterdir() if p.name.endswith(".tmp"))


def _dead_pid() -> int:
    p = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    return int(p.stdout)


#: A process that writes ``sys.argv[1]`` atomically and hangs before the rename (in ``fsync``),
#: with SIGTERM turned into an exception as the ``bridge`` command does.
SLOW_WRITER = textwrap.dedent(
    """
    import os, sys, time
    from bridge.checkpoint import atomic_write_bytes
    from bridge.cli.errors import Terminated, sigterm_raises

    def hang(fd):
        print("writing", flush=True)
        time.sleep(60)

    os.fsync = hang
    with sigterm_raises():
        try:
            atomic_write_bytes(sys.argv[1], b"new")
        except Terminated:
            sys.exit(143)
    """
)


def _start_writer(target):
    p = subprocess.Popen([sys.executable, "-c", SLOW_WRITER, str(target)], stdout=subprocess.PIPE, text=True)
    assert p.stdout.readline().strip() == "writing"
    return p


@pytest.mark.parametrize("exc", [OSError(28, "No space left on device"), KeyboardInterrupt()])
def test_a_failed_write_leaves_the_file_and_no_temporary(tmp_path, monkeypatch, exc):
    """An exception or Ctrl-C while writing: the earlier file is intact, the temporary file is gone."""
    path = tmp_path / "report.json"
    atomic_write_text(path, "earlier")

    def fail(fd):
        raise exc

    monkeypatch.setattr(os, "fsync", fail)
    with pytest.raises(type(exc)):
        atomic_write_text(path, "new")
    assert path.read_text() == "earlier" and _temps(tmp_path) == []


def test_sigterm_while_writing_leaves_no_temporary(tmp_path):
    target = tmp_path / "y.bin"
    atomic_write_bytes(target, b"earlier")
    p = _start_writer(target)
    assert len(_temps(tmp_path)) == 1
    p.send_signal(signal.SIGTERM)
    assert p.wait(timeout=60) == 143
    assert target.read_bytes() == b"earlier" and _temps(tmp_path) == []


def test_temporaries_of_killed_writers_are_removed_by_the_next_write(tmp_path):
    """``kill -9`` leaves a temporary file (nothing can run); the next write of the same path
    removes it, but not one whose writer still runs, nor those of other files."""
    target = tmp_path / "bridge.pt"
    orphan = tmp_path / f".bridge.pt.{_dead_pid()}.abc123.tmp"
    live = tmp_path / f".bridge.pt.{os.getpid()}.def456.tmp"
    other = tmp_path / f".state.pt.{_dead_pid()}.ghi789.tmp"
    longer = tmp_path / f".bridge.pt.7.{_dead_pid()}.jkl012.tmp"  # a writer of "bridge.pt.7"
    for p in (orphan, live, other, longer):
        p.write_bytes(b"partial")
    atomic_write_bytes(target, b"new")
    assert target.read_bytes() == b"new"
    assert not orphan.exists() and live.exists() and other.exists() and longer.exists()
    assert remove_stale_temps(tmp_path / "state.pt") == [other] and not other.exists()


def test_a_killed_writer_really_leaves_an_orphan_that_the_next_write_removes(tmp_path):
    target = tmp_path / "y.npy"
    p = _start_writer(target)
    p.send_signal(signal.SIGKILL)
    p.wait()
    assert len(_temps(tmp_path)) == 1 and f".y.npy.{p.pid}." in _temps(tmp_path)[0]
    atomic_write_bytes(target, b"done")
    assert _temps(tmp_path) == [] and target.read_bytes() == b"done"


def test_an_unwritable_folder_is_named_not_the_temporary_file(tmp_path, monkeypatch):
    import tempfile

    def refuse(*args, dir=None, **kwargs):
        raise PermissionError(13, "Permission denied", os.path.join(dir, ".bridge.pt.x1y2.tmp"))

    monkeypatch.setattr(tempfile, "mkstemp", refuse)
    with pytest.raises(PermissionError) as info:
        atomic_write_bytes(tmp_path / "bridge.pt", b"x")
    msg = str(info.value)
    assert f"cannot write bridge.pt in {tmp_path}" in msg and "Permission denied" in msg and ".tmp" not in msg
    with pytest.raises(PermissionError, match="cannot write y.npy in"):
        make_temp_beside(tmp_path / "y.npy")


def _evil(tmp_path):
    class Evil:
        def __reduce__(self):
            return (os.system, ("echo pwned > " + str(tmp_path / "pwned"),))

    path = tmp_path / "evil.pt"
    torch.save({"format": "bridge-checkpoint-v1", "meta_json": "{}", "state": {}, "x": Evil()}, path)
    return path


def test_a_pickled_object_is_refused_without_torchs_advice(tmp_path):
    with pytest.raises(CheckpointError) as info:
        load_checkpoint(_evil(tmp_path))
    msg = str(info.value)
    assert "not a loadable bridge checkpoint" in msg and "refusing to unpickle" in msg and "posix.system" in msg
    assert "weights_only" not in msg.lower() and "weights only" not in msg.lower() and "\n" not in msg
    assert not (tmp_path / "pwned").exists()


@pytest.mark.parametrize(
    "content, word",
    [(b"not a checkpoint at all", "not a PyTorch file"), (None, "truncated or corrupt"), (b"", "empty")],
)
def test_unreadable_files_say_what_they_are(tmp_path, content, word):
    path = tmp_path / "ck.pt"
    if content is None:
        save_checkpoint(path, {"b": {"w": torch.ones(3)}}, {})
        content = path.read_bytes()[:100]
    path.write_bytes(content)
    with pytest.raises(CheckpointError) as info:
        load_checkpoint(path)
    msg = str(info.value)
    assert word in msg and "weights_only" not in msg.lower() and "weights only" not in msg.lower(), msg
