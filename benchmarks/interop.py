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
import tempfile
import time
from pathlib import Path

from common import Table, load_average, median_seconds
from layerscope.dashboard import create_app
from layerscope.interop import export_nn_data, import_nn_data, read_nn_data
from layerscope.pipeline import demo_run
from layerscope.projections.compute import compute_projection
from layerscope.run import Run, open_run


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run", type=Path, help="a Run directory (default: the demo's MNIST Run)")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    table = Table("interop")
    run = Run(args.run) if args.run else demo_run(device="cpu")
    print(f"Run {run.path}: {len(run.labels):,} images; {load_average()}")
    start = time.perf_counter()
    for info in run.layers:
        if info.kind != "image" and run.projection_meta(info.name, "pca") is None:
            compute_projection(run, info.name, "pca")
            run = Run(run.path)
    print(f"one-time PCA of the layers the Run lacked: {time.perf_counter() - start:.1f} s (not timed below)")

    n = args.repeats
    with tempfile.TemporaryDirectory() as tmp:
        target = Path(tmp) / "NN_data.json"
        export, _ = median_seconds(lambda: export_nn_data(run, target), n)
        summary = export_nn_data(run, target)
        data = json.loads(target.read_text())
        dump, _ = median_seconds(lambda: json.dumps(data, separators=(",", ":")), n)
        load, _ = median_seconds(lambda: json.loads(target.read_bytes()), n)
        read, _ = median_seconds(lambda: read_nn_data(target), n)
        counter = iter(range(10_000))
        imported, _ = median_seconds(lambda: import_nn_data(target, Path(tmp) / f"run-{next(counter)}"), n)
        # the first open of a file imports it into the cache: a fresh cache each time
        first, _ = median_seconds(lambda: open_run(target, cache_dir=Path(tmp) / f"cache-{next(counter)}"), n)
        cache = Path(tmp) / "cache"
        open_run(target, cache_dir=cache)
        cached, _ = median_seconds(lambda: open_run(target, cache_dir=cache), n)
        back = open_run(target, cache_dir=cache)
        app, _ = median_seconds(lambda: create_app(back), n)

    print(
        f"file: {summary['bytes'] / 1e6:.1f} MB, {summary['instances']:,} instances "
        f"({summary['misclassified']:,} misclassified), {summary['aggregates']} averages, "
        f"activations of {len(summary['activation_layers'])} layers, projections of "
        f"{len(summary['projection_layers'])} layers"
    )
    table.add(
        "NN_data.json, the report's sample",
        summary["bytes"] / 1e6,
        "MB",
        f"{summary['instances']:,} instances ({summary['misclassified']:,} misclassified), "
        f"{summary['aggregates']} averages",
    )
    every = f"median of {n}"
    table.add("json.dumps of the same data (export's floor)", dump, "s", every)
    table.add("json.loads of the file (import's floor)", load, "s", every)
    adds = "what validation and conversion add"
    for figure, seconds, floor, what, meaning in (
        ("export-json (report's sample, 70,000 -> file)", export, dump, "json.dumps", adds),
        ("read + validate NN_data.json", read, load, "json.loads", adds),
        ("import-json (file -> Run)", imported, load, "json.loads", adds),
        ("serve NN_data.json, first open (imports)", first, load, "json.loads", adds),
        ("serve NN_data.json, later opens (cached)", cached, load, "json.loads", "the cache against parsing the file"),
    ):
        table.add(figure, seconds, "s", every)
        table.ratio(f"{figure} / {what}", seconds, floor, meaning)
    table.add("create_app on the imported Run", app, "s", every)
    print(load_average())


if __name__ == "__main__":
    main()
