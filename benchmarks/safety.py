"""What the checks of a Run, its arrays and its input files cost, beside the same work without them (a baseline
commit's layerscope, checked out into a temporary git worktree and run in the same session).

    python benchmarks/safety.py [--run DIR] [--baseline REV] [--repeats 5]

Figures, each the median of ``--repeats``, each in a fresh process per version so imports and page caches are alike:

- open the Run and read the header of every array it has (what the dashboard does on start);
- add a projection of 70,000 points to an existing Run: one update (staged array, manifest last) against the old
  write-then-manifest;
- read the bundled MNIST training images (47 MB of IDX inflated from gzip), with the size cap, against the old read.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path

from common import Table, load_average

ROOT = Path(__file__).resolve().parents[1]

WORKER = """
import json, statistics, sys, time
import numpy as np
from layerscope.run import Run
from layerscope.data.idx import read_idx
from layerscope.data.datasets import MNIST_DIR

what, path, repeats = sys.argv[1], sys.argv[2], int(sys.argv[3])

def open_and_read():
    run = Run(path)
    for info in run.layers:
        if info.kind == "dense":
            run.activations(info.name)
        if info.kind == "conv":
            run.channel_summary(info.name, "mean"); run.channel_summary(info.name, "max")
        for method in run.manifest.get("projections", {}).get(info.name, {}):
            run.projection(info.name, method)
        if info.name in (run.manifest.get("topk") or {}).get("layers", []):
            run.topk(info.name)
    run.images, run.labels, run.split, run.probs

embedding = np.random.default_rng(0).normal(size=(70_000, 2)).astype(np.float32)

def add_projection():
    run = Run(path)
    meta = {"method": "bench", "n_points": len(embedding)}
    def change(m):
        m.setdefault("projections", {}).setdefault("fc2", {})["bench"] = meta
    if hasattr(run, "update"):
        with run.update() as up:
            up.write_array("projections/fc2/bench.npy", embedding)
            up.change(change)
    else:
        run.write_array("projections/fc2/bench.npy", embedding)
        run.update_manifest(change)

def read_mnist():
    read_idx(MNIST_DIR / "train-images-idx3-ubyte.gz")

work = {"open": open_and_read, "update": add_projection, "idx": read_mnist}[what]
work()  # warm-up: page cache, lazy imports
times = []
for _ in range(repeats):
    start = time.perf_counter()
    work()
    times.append(time.perf_counter() - start)
print(json.dumps(statistics.median(times)))
"""


def _measure(src: Path, what: str, run: Path, repeats: int) -> float:
    env = {**os.environ, "PYTHONPATH": str(src)}
    proc = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(WORKER), what, str(run), str(repeats)],
        capture_output=True,
        text=True,
        env=env,
        cwd=src.parent,
        timeout=1800,
    )
    if proc.returncode != 0:
        raise SystemExit(f"{what} with {src} failed: {proc.stderr.strip().splitlines()[-1:]}")
    return float(json.loads(proc.stdout.strip().splitlines()[-1]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run", type=Path, help="a Run directory (default: the demo's MNIST Run)")
    parser.add_argument("--baseline", default="0c39475", help="the commit to compare with (default: before the checks)")
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    if args.run is None:
        from layerscope.pipeline import demo_run

        args.run = demo_run(device="cpu").path
    table = Table("safety")
    print(f"Run {args.run}; baseline {args.baseline}; {load_average()}")
    with tempfile.TemporaryDirectory() as tmp:
        baseline = Path(tmp) / "baseline"
        subprocess.run(["git", "-C", str(ROOT), "worktree", "add", "-q", "--detach", str(baseline), args.baseline])
        try:
            # each version on its own copy: updates must not meet the other version's files
            copies = {}
            for name in ("new", "baseline"):
                copies[name] = Path(shutil.copytree(args.run, Path(tmp) / f"run-{name}"))
            srcs = {"new": ROOT / "src", "baseline": baseline / "src"}
            for what, figure in (
                ("open", "open a 70,000-image Run, read every array's header"),
                ("update", "add a 70,000-point projection to a Run"),
                ("idx", "read MNIST's training images (IDX, gzip)"),
            ):
                seconds = {name: _measure(srcs[name], what, copies[name], args.repeats) for name in srcs}
                table.add(f"{figure}: checked", seconds["new"] * 1000, "ms")
                table.add(f"{figure}: {args.baseline}", seconds["baseline"] * 1000, "ms", "no checks")
                table.ratio(f"{figure}: checked / {args.baseline}", seconds["new"], seconds["baseline"])
        finally:
            subprocess.run(["git", "-C", str(ROOT), "worktree", "remove", "--force", str(baseline)])


if __name__ == "__main__":
    main()
