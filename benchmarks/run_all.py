"""Run every benchmark in turn (``make bench``). Each prints its own table."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

BENCHMARKS = ["foundation.py", "dashboard.py"]

if __name__ == "__main__":
    here = Path(__file__).parent
    for name in BENCHMARKS:
        print(f"== {name}", flush=True)
        code = subprocess.call([sys.executable, str(here / name), *sys.argv[1:]])
        if code:
            sys.exit(code)
