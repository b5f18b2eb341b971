"""Keep freed tensor memory in the process instead of handing it back to the OS after every batch.

glibc's ``malloc`` serves large blocks (a batch of feature maps is 1-40 MB) with ``mmap`` and returns them with
``munmap`` when freed, so every batch of every forward and backward pass pays for fresh zeroed pages: on a 2-core
laptop-class CPU that page faulting was a third of a training step and half of an inference pass (benchmarks/
README.md, "allocator"). Raising glibc's mmap and trim thresholds lets freed blocks be reused instead. The process
then keeps up to ``TRIM_BYTES`` of freed memory for later batches.

Applied once when layerscope is imported, on Linux with glibc only; ``LAYERSCOPE_MALLOC=system`` leaves ``malloc`` as
the system set it.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import sys

__all__ = ["MMAP_THRESHOLD_BYTES", "TRIM_BYTES", "keep_freed_memory", "tuned"]

MMAP_THRESHOLD_BYTES = 256 << 20  # blocks below this come from the heap, and are reused once freed
TRIM_BYTES = 512 << 20  # free memory kept at the top of the heap before it is returned to the OS
_TOP_PAD_BYTES = 64 << 20  # grow the heap in steps of this much
# mallopt parameters, from glibc's <malloc.h>
_M_TRIM_THRESHOLD, _M_TOP_PAD, _M_MMAP_THRESHOLD = -1, -2, -3

_tuned = False


def keep_freed_memory() -> bool:
    """Tune glibc ``malloc`` as described above; True when it was (or already had been) tuned."""
    global _tuned
    if _tuned:
        return True
    if not sys.platform.startswith("linux") or os.environ.get("LAYERSCOPE_MALLOC", "") == "system":
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):  # musl and other C libraries have no mallopt
        return False
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    _tuned = all(
        mallopt(param, value)
        for param, value in (
            (_M_MMAP_THRESHOLD, MMAP_THRESHOLD_BYTES),
            (_M_TRIM_THRESHOLD, TRIM_BYTES),
            (_M_TOP_PAD, _TOP_PAD_BYTES),
        )
    )
    return _tuned


def tuned() -> bool:
    """Whether ``keep_freed_memory`` has tuned this process's ``malloc``."""
    return _tuned
