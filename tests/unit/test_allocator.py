"""glibc malloc tuning on import, and the switch that leaves it alone."""

from __future__ import annotations

import os
import platform
import subprocess
import sys

import pytest

import layerscope
from layerscope import allocator

glibc = pytest.mark.skipif(
    not sys.platform.startswith("linux") or platform.libc_ver()[0] != "glibc", reason="mallopt is glibc's"
)

PROBE = "import layerscope.allocator as a, layerscope; print(a.tuned())"


@glibc
def test_importing_layerscope_tunes_malloc() -> None:
    assert layerscope.allocator.tuned()
    assert allocator.keep_freed_memory()  # a second call is a no-op that reports the same


@glibc
def test_layerscope_malloc_system_leaves_malloc_alone() -> None:
    env = {**os.environ, "LAYERSCOPE_MALLOC": "system"}
    out = subprocess.run([sys.executable, "-c", PROBE], env=env, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
    env.pop("LAYERSCOPE_MALLOC")
    out = subprocess.run([sys.executable, "-c", PROBE], env=env, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "True"
