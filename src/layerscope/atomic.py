"""Atomic file writes: write to a temporary name in the same directory, then rename over the target.

A reader never sees a half-written file, and an interrupted write leaves the previous file (if any) untouched.

A temporary name carries the writer's process id, ``.<target>.<pid>.<random>.tmp``, so what a killed process left
behind can be told apart from what a live one is still writing: ``remove_leftovers`` deletes the first kind only.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

__all__ = ["atomic_write", "pid_alive", "remove_leftovers", "temp_prefix"]

# .<target>.<pid>.<random>.tmp (files) and .<target>.<pid>.<random>.tmp (staging directories of a new Run)
_TEMP = re.compile(r"\.(?P<target>.+)\.(?P<pid>[0-9]+)\.[A-Za-z0-9_]+\.tmp")


def temp_prefix(target: str) -> str:
    """The prefix of this process's temporary names for ``target``."""
    return f".{target}.{os.getpid()}."


def pid_alive(pid: int) -> bool:
    """True if a process with this id runs (or may: one we are not allowed to signal counts as running)."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def remove_leftovers(directory: str | os.PathLike[str], target: str | None = None, recursive: bool = False) -> int:
    """Delete the temporary files and directories that processes which no longer run left in ``directory`` (for
    ``target`` only, when given; through subdirectories with ``recursive``). Returns how many were removed; what
    cannot be removed (a read-only Run) is left, silently."""
    directory = Path(directory)
    removed = 0
    try:
        entries = list(directory.rglob(".*.tmp") if recursive else directory.glob(".*.tmp"))
    except OSError:
        return 0
    for entry in entries:
        match = _TEMP.fullmatch(entry.name)
        if match is None or (target is not None and match["target"] != target) or pid_alive(int(match["pid"])):
            continue
        try:
            if entry.is_dir():
                shutil.rmtree(entry)
            else:
                entry.unlink()
            removed += 1
        except OSError:
            pass
    return removed


@contextlib.contextmanager
def atomic_write(path: str | os.PathLike[str], mode: str = "wb") -> Iterator[IO[Any]]:
    """``with atomic_write(path) as f: f.write(...)``; the file appears at ``path`` only if the block succeeds.

    What a killed earlier writer of the same ``path`` left behind is removed first."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    remove_leftovers(path.parent, path.name)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=temp_prefix(path.name), suffix=".tmp")
    try:
        with os.fdopen(fd, mode) as f:
            yield f
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
