"""The training timeline: what keeping snapshots costs a training of the seed CNN on MNIST, and the aligned PCA of
one layer across them.

    PYTHONPATH=. .venv/bin/python benchmarks/timeline.py [--snapshots 10] [--preset default] [--epochs N]
    PYTHONPATH=. .venv/bin/python benchmarks/timeline.py --run RUN --methods pca,tsne,umap [--browser]

Two trainings of the seed CNN on the bundled MNIST (70,000 images), same seed, same preset, in the same process one
after the other: ``train_run`` without snapshots, and with ``--snapshots`` of them (each a Run of all 70,000 images:
capture, top images and the PCA of every layer). Rows: the wall time of each and their ratio (goal <= 1.3x), the
disk the snapshots take, and the aligned PCA of fc2 over them (``timeline.aligned_pca``: each snapshot's stored PCA
turned onto the previous one), with how far the images move from snapshot to snapshot, aligned and not; with
``--methods pca,tsne,umap`` also the t-SNE chain and AlignedUMAP (displacement on embeddings scaled to unit spread).
With ``--run`` the timelines are timed on a copy of a Run trained with snapshots, with no training. ``--browser``
adds the dashboard's timeline in headless chromium (1440x900): a step of the slider through every snapshot, from the
click to both projections' 70,000 points at the snapshot (``data-snapshot``, assets/timeline.js), and the time each
animation frame took to draw (goal <= 200 ms a frame). The timeline is new: there is no figure of main beside these.
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


FRAME_GOAL_MS = 200.0
SHOWN = """k => Array.from(document.querySelectorAll('.proj-graph .js-plotly-plot'))
    .every(gd => gd.dataset.snapshot === String(k))"""


def _browser(table: Table, run: Any) -> None:
    """The dashboard's slider stepped back through every snapshot, from the trained network to the untrained one:
    seconds from a click to both projections there, and each animation frame's draw."""
    from dashboard import browsing
    from layerscope.dashboard import create_app

    steps: list[float] = []
    frames: list[float] = []
    with browsing(create_app(run)) as (context, url):
        page = context.new_page()
        page.set_viewport_size({"width": 1440, "height": 900})
        page.goto(url)
        page.wait_for_selector(".thumb", timeout=300_000)
        page.click("#tl-back")  # the first step fetches the panels' timelines (computed before: stored in the Run)
        page.wait_for_function(SHOWN, arg=len(run.snapshots) - 2, timeout=300_000)
        for k in range(len(run.snapshots) - 3, -1, -1):
            start = time.perf_counter()
            page.click("#tl-back")
            page.wait_for_function(SHOWN, arg=k, timeout=300_000, polling=10)
            steps.append(time.perf_counter() - start)
            for ms in page.evaluate(
                "() => Array.from(document.querySelectorAll('.proj-graph .js-plotly-plot'))"
                ".map(gd => gd.dataset.frameMs)"
            ):
                frames += [float(x) for x in ms.split(",") if x]
        page.close()
    where = f"{run.n_images:,} points in each of 2 projections, headless chromium, software WebGL"
    table.add("timeline step: click to both projections at the snapshot, median", np.median(steps), "s", where)
    table.add("timeline step: click to both projections at the snapshot, max", max(steps), "s")
    verdict = "met" if max(frames) <= FRAME_GOAL_MS else "MISSED"
    table.add("timeline animation frame (70,000 points moved), median", float(np.median(frames)), "ms")
    table.add("timeline animation frame, max", max(frames), "ms", f"goal <= {FRAME_GOAL_MS:.0f} ms: {verdict}")


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
    parser.add_argument("--browser", action="store_true", help="also the dashboard's timeline in headless chromium")
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
        if args.browser:
            _browser(table, run)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print(load_average())


if __name__ == "__main__":
    sys.exit(main())
