"""The training timeline: what keeping snapshots costs a training of the seed CNN on MNIST, and the aligned PCA of
one layer across them.

    PYTHONPATH=. .venv/bin/python benchmarks/timeline.py [--snapshots 10] [--preset default] [--epochs N]
    PYTHONPATH=. .venv/bin/python benchmarks/timeline.py --run RUN --methods pca,tsne,umap

Two trainings of the seed CNN on the bundled MNIST (70,000 images), same seed, same preset, in the same process one
after the other: ``train_run`` without snapshots, and with ``--snapshots`` of them (each a Run of all 70,000 images:
capture, top images and the PCA of every layer). Rows: the wall time of each and their ratio (goal <= 1.3x), the
disk the snapshots take, and the aligned PCA of fc2 over them (``timeline.aligned_pca``: each snapshot's stored PCA
turned onto the previous one), with how far the images move from snapshot to snapshot, aligned and not; with
``--methods pca,tsne,umap`` also the t-SNE chain and AlignedUMAP (displacement on embeddings scaled to unit spread).
With ``--run`` the timelines are timed on a copy of a Run trained with snapshots, with no training.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from common import Table, load_average, machine

RATIO_GOAL = 1.3


def _trainings(table: Table, work: Path, data: Any, config: Any, snapshots: int, where: str) -> Any:
    """Train without and with ``snapshots`` snapshots: the rows of their times, ratio and disk; the Run with them."""
    from layerscope.pipeline import train_run

    t0 = time.perf_counter()
    train_run(work / "plain", data, config)
    plain = time.perf_counter() - t0
    table.add("train without snapshots (train + capture + PCA)", plain, "s", where)
    t0 = time.perf_counter()
    run = train_run(work / "snapshots", data, config, snapshots=snapshots)
    kept = time.perf_counter() - t0
    table.add(f"train with {snapshots} snapshots", kept, "s", where)
    verdict = "met" if kept / plain <= RATIO_GOAL else "MISSED"
    table.ratio("with snapshots / without (wall time)", kept, plain, f"goal <= {RATIO_GOAL}: {verdict}")
    sizes = run.disk_usage()["snapshots"]
    where_kept = f"{len(sizes)} snapshot Runs (the last snapshot is the Run itself)"
    table.add("disk of the snapshots", sum(sizes.values()) / 1e6, "MB", where_kept)
    return run


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--snapshots", type=int, default=10)
    parser.add_argument("--preset", default="default", help="training preset (default: the demo's training)")
    parser.add_argument("--epochs", type=int, help="epochs instead of the preset's")
    parser.add_argument("--layer", default="fc2")
    parser.add_argument(
        "--methods", default="pca", help="timelines to time, of pca, tsne, umap (t-SNE and UMAP take minutes each)"
    )
    parser.add_argument("--run", help="time the timelines on a copy of this Run (trained with snapshots); no training")
    args = parser.parse_args()
    from layerscope.data import load_mnist
    from layerscope.run import Run
    from layerscope.timeline import timeline
    from layerscope.training import PRESETS, TrainConfig

    print(machine())
    print(load_average())
    table = Table("timeline")
    config = TrainConfig(device="cpu", **PRESETS[args.preset])  # type: ignore[arg-type]
    if args.epochs:
        config = replace(config, epochs=args.epochs)
    data = load_mnist()
    where = f"seed CNN, preset {args.preset}, {config.epochs} epochs, {len(data):,} images"
    work = Path(tempfile.mkdtemp(prefix="layerscope-bench-timeline-"))
    try:
        if args.run:
            shutil.copytree(args.run, work / "copy", copy_function=os.link)  # what it adds is new files
            run = Run(work / "copy")
            print(f"  timelines of a copy of {args.run}: {len(run.snapshots)} snapshots, {run.n_images:,} images")
        else:
            run = _trainings(table, work, data, config, args.snapshots, where)
        methods = [m.strip() for m in args.methods.split(",") if m.strip()]
        for method in methods:
            t0 = time.perf_counter()
            line = timeline(run, args.layer, method, recompute=True)
            label = {"pca": "aligned PCA", "tsne": "t-SNE chain", "umap": "AlignedUMAP"}[method]
            table.add(f"{label} of {args.layer} over {len(run.snapshots)} snapshots", time.perf_counter() - t0, "s")
            moved = [e for e in line.meta["snapshots"] if "displacement" in e]
            table.add(f"{label}: mean displacement between snapshots", np.mean([e["displacement"] for e in moved]), "")
            if method == "pca":
                unaligned = np.mean([e["unaligned_displacement"] for e in moved])
                table.add("PCA: mean displacement between the snapshots' own PCAs", unaligned, "", "not aligned")
        accuracy = ", ".join(f"{e['test_accuracy']:.3f}" for e in run.snapshots)
        print(f"  test accuracy at the snapshots: {accuracy}")
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print(load_average())


if __name__ == "__main__":
    sys.exit(main())
