"""Where layerscope keeps the Runs it prepares itself (the demo's, and those of opened NN_data.json files).

Torch-free, so ``layerscope info demo`` finds the demo's Run without loading a model.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

__all__ = ["DEMO", "WEIGHTS_DIR", "default_cache_dir", "demo_run_dir"]

DEMO = "demo"  # the name that stands for the demo's Run wherever the command line takes a Run
WEIGHTS_DIR = Path(__file__).parent / "models" / "weights"  # the report's CNN, trained on the bundled MNIST


def default_cache_dir() -> Path:
    """Where prepared Runs are kept: $LAYERSCOPE_CACHE, else $XDG_CACHE_HOME/layerscope, else ~/.cache/layerscope."""
    if os.environ.get("LAYERSCOPE_CACHE"):
        return Path(os.environ["LAYERSCOPE_CACHE"])
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "layerscope"


def demo_run_dir(cache_dir: str | os.PathLike[str] | None = None) -> Path:
    """The directory of the demo's Run in the cache, named after the shipped weights (new weights, a new Run);
    it exists once ``layerscope demo`` (or ``demo --prepare``) has made it."""
    provenance = json.loads((WEIGHTS_DIR / "seed_cnn_mnist.json").read_text())
    return Path(cache_dir or default_cache_dir()) / f"mnist-seed-cnn-{provenance['sha256'][:12]}"
