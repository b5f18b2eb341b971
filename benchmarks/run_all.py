"""Run every benchmark in turn (``make bench``). Each prints its own table.

Arguments are passed to ``foundation.py`` only (e.g. ``--retrain``); the others run with their defaults.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

BENCHMARKS = [
    "foundation.py",
    "topk.py",
    "featurevis.py",
    "dashboard.py",
    "inside.py",
    "draw.py",
    "interventions.py",
    "interop.py",
]

if __name__ == "__main__":
    here = Path(__file__).parent
    for name in BENCHMARKS:
        print(f"== {name}", flush=True)
        extra = sys.argv[1:] if name == "foundation.py" else []
        code = subprocess.call([sys.executable, str(here / name), *extra])
        if code:
            sys.exit(code)
