"""NN_data.json: export a 70,000-image MNIST Run as the report chose, import it back, open it in the dashboard.

    python benchmarks/interop.py [--run DIR] [--repeats 3]

With the shipped weights (the demo's Run unless ``--run``). Projections a Run lacks are computed once before timing
(conv-layer PCA over 70,000 images takes minutes; that is the PCA benchmark's business, not this one's). Each figure is
a median of ``--repeats`` runs, and sits beside its floor: ``json.load`` of the same file for the import, ``json.dump``
of the same data for the export, so the ratio is what validation and conversion add.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import torch

from layerscope import __version__
from layerscope.dashboard import create_app
from layerscope.interop import export_nn_data, import_nn_data, read_nn_data
from layerscope.pipeline import demo_run, open_run
from layerscope.projections.compute import compute_projection
from layerscope.run import Run


def median_seconds(work: Callable[[], object], repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        work()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run", type=Path, help="a Run directory (default: the demo's MNIST Run)")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    run = Run(args.run) if args.run else demo_run(device="cpu")
    print(f"layerscope {__version__}, torch {torch.__version__}, {platform.machine()}, {os.cpu_count()} CPUs")
    print(f"Run {run.path}: {len(run.labels):,} images; load average {os.getloadavg()[0]:.2f}")
    start = time.perf_counter()
    for info in run.layers:
        if info.kind != "image" and run.projection_meta(info.name, "pca") is None:
            compute_projection(run, info.name, "pca")
            run = Run(run.path)
    print(f"one-time PCA of the layers the Run lacked: {time.perf_counter() - start:.1f} s (not timed below)")

    with tempfile.TemporaryDirectory() as tmp:
        target = Path(tmp) / "NN_data.json"
        export = median_seconds(lambda: export_nn_data(run, target), args.repeats)
        summary = export_nn_data(run, target)
        data = json.loads(target.read_text())
        dump = median_seconds(lambda: json.dumps(data, separators=(",", ":")), args.repeats)
        load = median_seconds(lambda: json.loads(target.read_bytes()), args.repeats)
        read = median_seconds(lambda: read_nn_data(target), args.repeats)
        counter = iter(range(10_000))
        imported = median_seconds(lambda: import_nn_data(target, Path(tmp) / f"run-{next(counter)}"), args.repeats)
        cache = Path(tmp) / "cache"
        first = median_seconds(lambda: open_run(target, cache_dir=cache), 1)
        cached = median_seconds(lambda: open_run(target, cache_dir=cache), args.repeats)
        back = open_run(target, cache_dir=cache)
        app = median_seconds(lambda: create_app(back), args.repeats)

    rows = [
        ("export-json (report's sample, 70,000 -> file)", export, dump, "json.dumps of the same data"),
        ("read + validate NN_data.json", read, load, "json.loads of the file"),
        ("import-json (file -> Run)", imported, load, "json.loads of the file"),
        ("serve NN_data.json, first open (imports)", first, load, "json.loads of the file"),
        ("serve NN_data.json, later opens (cached)", cached, load, "json.loads of the file"),
        ("create_app on the imported Run", app, None, ""),
    ]
    print(
        f"\nfile: {summary['bytes'] / 1e6:.1f} MB, {summary['instances']:,} instances "
        f"({summary['misclassified']:,} misclassified), {summary['aggregates']} averages, "
        f"activations of {len(summary['activation_layers'])} layers, projections of "
        f"{len(summary['projection_layers'])} layers"
    )
    print(f"{'':<48} {'seconds':>8} {'floor':>8} {'ratio':>6}  floor is")
    for name, seconds, floor, what in rows:
        ratio = f"{seconds / floor:6.2f}" if floor else f"{'':>6}"
        floor_text = f"{floor:8.3f}" if floor else f"{'':>8}"
        print(f"{name:<48} {seconds:8.3f} {floor_text} {ratio}  {what}")
    print(f"load average after: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
