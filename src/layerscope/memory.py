"""How much memory the batched work over a whole dataset may hold at once: a budget, from the machine or ``--memory``.

Capture and PCA stream every image through the model in batches; how many images a batch holds, and how many of a
conv layer's flattened maps PCA may keep in memory between its passes, are sized from one budget in bytes. By
default it is half the memory the machine has available (Linux's ``MemAvailable``, no more than the cgroup's limit
where a container sets one), at most ``DEFAULT_CAP``: beyond a few GB, larger batches and more kept rows save little
time. ``--memory 4GB`` caps it. The budget covers the arrays these steps allocate, not the interpreter, torch and
the model themselves (a few hundred MB).
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from layerscope.errors import LayerscopeError

__all__ = [
    "DEFAULT_CAP",
    "DEFAULT_SHARE",
    "MIN_BUDGET",
    "MemoryBudget",
    "activation_row_bytes",
    "available_memory",
    "format_bytes",
    "memory_budget",
    "parse_memory",
]

GiB = 1024**3
DEFAULT_SHARE = 0.5  # of the available memory, by default
DEFAULT_CAP = 4 * GiB
MIN_BUDGET = 64 * 1024**2  # below this the batches of a small model are already one image

_UNITS = {
    "": 1,
    "B": 1,
    "K": 1000,
    "KB": 1000,
    "M": 1000**2,
    "MB": 1000**2,
    "G": 1000**3,
    "GB": 1000**3,
    "T": 1000**4,
    "TB": 1000**4,
    "KIB": 1024,
    "MIB": 1024**2,
    "GIB": 1024**3,
    "TIB": 1024**4,
}


def parse_memory(text: str | int) -> int:
    """Bytes from ``"4GB"``, ``"512MB"``, ``"1.5G"``, ``"4GiB"`` or a plain number of bytes. KB, MB, GB are powers of
    1000, KiB, MiB, GiB powers of 1024; case does not matter."""
    if isinstance(text, int) and not isinstance(text, bool):
        value = text
    else:
        match = re.fullmatch(r"\s*(\d+(?:\.\d*)?|\.\d+)\s*([a-zA-Z]*)\s*", str(text))
        unit = match.group(2).upper() if match else ""
        if match is None or unit not in _UNITS:
            raise LayerscopeError(f"--memory {text!r} is not an amount of memory; give one such as 4GB, 512MB or 2GiB.")
        value = int(float(match.group(1)) * _UNITS[unit])
    if value < MIN_BUDGET:
        raise LayerscopeError(
            f"--memory {text} is too small; give at least {format_bytes(MIN_BUDGET)} (e.g. --memory 1GB)."
        )
    return value


def format_bytes(n: float) -> str:
    """``1536000000`` -> ``"1.5 GB"`` (powers of 1000, as ``parse_memory`` reads them)."""
    for unit, size in (("TB", 1000**4), ("GB", 1000**3), ("MB", 1000**2), ("kB", 1000)):
        if abs(n) >= size:
            return f"{n / size:.1f} {unit}"
    return f"{int(n)} B"


def _cgroup_room() -> int | None:
    """What the cgroup (v2, then v1) this process runs in still lets it allocate, where it sets a limit."""
    for limit_file, usage_file in (
        ("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory.current"),
        ("/sys/fs/cgroup/memory/memory.limit_in_bytes", "/sys/fs/cgroup/memory/memory.usage_in_bytes"),
    ):
        try:
            limit_text = Path(limit_file).read_text().strip()
            usage = int(Path(usage_file).read_text().strip())
        except (OSError, ValueError):
            continue
        if not limit_text.isdigit() or int(limit_text) >= 2**60:  # "max", or v1's "no limit" (~2^63)
            return None
        return max(int(limit_text) - usage, 0)
    return None


def _meminfo_available() -> int | None:
    """Linux's own estimate, ``MemAvailable`` in /proc/meminfo: free memory plus the caches it can reclaim."""
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024  # kB
    except (OSError, ValueError, IndexError):
        pass
    return None


def available_memory() -> int:
    """Bytes the machine can give this process now without swapping, and no more than its cgroup allows: Linux's
    ``MemAvailable``, else psutil's ``available`` where psutil is installed, else the free pages."""
    available = _meminfo_available()
    if available is None:
        try:
            import psutil  # not a dependency: macOS and Windows have no /proc/meminfo

            available = int(psutil.virtual_memory().available)
        except ImportError:
            available = os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    room = _cgroup_room()
    return min(available, room) if room is not None else available


@dataclass(frozen=True)
class MemoryBudget:
    """At most ``bytes`` for the arrays one step holds at once; ``rows`` turns it into a batch size."""

    bytes: int

    def rows(self, bytes_per_row: int, share: float = 1.0, at_most: int | None = None) -> int:
        """How many rows of ``bytes_per_row`` fit in ``share`` of the budget: at least 1 (a row too large for the
        budget still has to be computed), at most ``at_most``."""
        fit = max(1, math.floor(self.bytes * share / max(bytes_per_row, 1)))
        return min(fit, at_most) if at_most is not None else fit

    def part(self, share: float) -> MemoryBudget:
        return MemoryBudget(max(1, int(self.bytes * share)))


def activation_row_bytes(dims: Sequence[int]) -> int:
    """Bytes one image takes while a batch streams through the model with the layers of widths ``dims`` recorded
    (float32): every layer's output and one copy of it (a channels-last map flattened, a clone of an output a later
    in-place op changes), plus, around the widest layer, four maps more: the forward pass's own intermediates and a
    consumer's working copy (PCA's shifted rows)."""
    return 4 * (2 * sum(dims) + 4 * max(dims, default=0))


def memory_budget(limit: int | str | None = None, available: int | None = None) -> MemoryBudget:
    """The budget: ``DEFAULT_SHARE`` of the ``available`` memory (measured when not given), at most ``DEFAULT_CAP``;
    with ``limit`` (``--memory``), that limit, but never more than is available."""
    available = available_memory() if available is None else available
    if limit is None:
        chosen = min(int(available * DEFAULT_SHARE), DEFAULT_CAP)
    else:
        chosen = min(parse_memory(limit), available)
    return MemoryBudget(max(chosen, MIN_BUDGET))
