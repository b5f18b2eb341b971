"""Run against Run: ``compare_runs`` of two seed-CNN Runs on all 70,000 MNIST images, every layer of one with every
layer of the other.

    PYTHONPATH=. .venv/bin/python benchmarks/compare.py [--a RUN] [--b RUN] [--repeats 3]

Without ``--a``, Run A is made from the shipped weights (as ``layerscope demo`` prepares it); without ``--b``, Run B
is a second seed CNN trained here with another seed for one epoch (the demo's training has three) on the same
70,000 images, so the two differ the way two trainings do. Rows:

- the whole comparison (the images' hash, agreement, the CKA of all layer pairs; the conv layers' PCA scores, which
  both Runs compute on their first comparison, are there after the first call and not timed): the median of
  ``--repeats`` calls, and its pace in images/s;
- the memory the CKA sums hold (float64 cross-products of every pair, and each layer with itself), and the peak
  resident set of the process, against the size of the activations it reads.
"""

from __future__ import annotations

import argparse
import atexit
import resource
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from common import Table, load_average, machine, median_seconds
from dashboard import bench_run


def second_run(table: Table):
    """A seed CNN trained with another seed for one epoch, as a Run of every image, in a temporary directory."""
    from layerscope.data import load_mnist
    from layerscope.pipeline import train_run
    from layerscope.training import TrainConfig

    out = Path(tempfile.mkdtemp(prefix="layerscope-bench-b-")) / "mnist-seed1"
    atexit.register(shutil.rmtree, out.parent, ignore_errors=True)
    t0 = time.perf_counter()
    run = train_run(out, load_mnist(), TrainConfig(seed=1, epochs=1, device="cpu"))
    table.add("Run B: seed CNN, seed 1, 1 epoch (train + capture + PCA)", time.perf_counter() - t0, "s", "setup")
    return run


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--a", type=Path, help="Run A (default: made from the shipped weights)")
    parser.add_argument("--b", type=Path, help="Run B on the same images (default: a seed CNN trained here)")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    from layerscope.compare import compare_runs
    from layerscope.run import Run

    print(machine())
    print(load_average())
    table = Table("compare")
    a = bench_run(args.a, table)
    b = Run(args.b) if args.b else second_run(table)
    t0 = time.perf_counter()
    first = compare_runs(a, b)  # the conv layers' PCA scores, where a Run lacks them, are computed now
    table.add("first comparison (with any missing PCA scores)", time.perf_counter() - t0, "s", "once")
    seconds, _ = median_seconds(lambda: compare_runs(a, b), args.repeats)
    pairs = len(first.layers_a) * len(first.layers_b)
    n = first.n_images
    note = f"{n:,} images, {len(first.layers_a)} x {len(first.layers_b)} layers"
    table.add("compare_runs: agreement + CKA of every layer pair", seconds, "s", f"median of {args.repeats}; {note}")
    table.add("compare_runs pace", n / seconds, "images/s", f"{pairs} pairs")
    widths_a, widths_b = list(first.widths["a"].values()), list(first.widths["b"].values())
    sums = 8 * (sum(p * q for p in widths_a for q in widths_b) + sum(p * p for p in widths_a + widths_b))
    table.add("CKA sums held (float64)", sums / 1e6, "MB", f"widths A {widths_a}")
    read = 4 * n * (sum(widths_a) + sum(widths_b))
    table.add("activations read (float32, every image)", read / 1e6, "MB", "streamed 4,096 images at a time")
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    table.add("peak RSS of this process", peak, "MB", "the Runs' arrays are memory-mapped")
    diagonal = np.diag(first.cka) if first.cka.shape[0] == first.cka.shape[1] else []
    print(
        f"  agreement {first.agreement:.4f}; only A right {len(first.a_only)}, only B right {len(first.b_only)}; "
        f"CKA of each layer with its namesake: {', '.join(f'{v:.3f}' for v in diagonal)}"
    )
    print(load_average())


if __name__ == "__main__":
    sys.exit(main())
