"""Past one machine: the nearest-neighbour graph, t-SNE and UMAP over it against a baseline commit, and the fit on a
sample with the rest placed by transform.

    PYTHONPATH=. .venv/bin/python benchmarks/scale.py [--run DIR] [--layer fc2] [--baseline REV] [--parts ...]

``--parts`` (comma-separated, default all): ``neighbors`` (exact blocked search against pynndescent on the layer's
input, with recall), ``projections`` (t-SNE and UMAP of the layer over every image with this checkout and with
``--baseline``, default dbe3c46, the commit before the shared graph, checked out into a temporary git worktree and
run in a subprocess on its own hard-linked copy of the Run; same session, same Python), ``sample`` (the same fitted
on a stratified sample of 20,000 and the other 50,000 placed by transform, kNN accuracy of placed and fitted points
apart), ``pca`` (PCA of the layer with the sums the capture stored, one pass, and without, two), ``capture``
(`layerscope capture` locally and through Ray Data with ``--workers`` 1 and 2 on the same cores, images/s). Uses the
demo's Run unless ``--run`` names one.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from common import Table, load_average, machine, median_seconds

ROOT = Path(__file__).resolve().parent.parent

# run by the baseline's and this checkout's Python alike: one projection recomputed, its seconds and quality
_PROJECT = """
import json, sys, time
from layerscope.run import Run
from layerscope.projections import compute_projection
run = Run(sys.argv[1])
start = time.perf_counter()
p = compute_projection(run, sys.argv[2], sys.argv[3], recompute=True)
m = p.meta
print(json.dumps({"seconds": time.perf_counter() - start, "method_seconds": m["seconds"],
                  "knn": m["knn_accuracy"], "trust": m["trustworthiness"], "neighbors": m.get("neighbors")}))
"""


def _project(src: Path, run: Path, layer: str, method: str) -> dict[str, Any]:
    env = {**os.environ, "PYTHONPATH": str(src)}
    out = subprocess.run(
        [sys.executable, "-c", _PROJECT, str(run), layer, method], env=env, check=True, capture_output=True, text=True
    )
    return dict(json.loads(out.stdout.strip().splitlines()[-1]))


def bench_neighbors(run: Any, layer: str, table: Table) -> None:
    from layerscope.memory import memory_budget
    from layerscope.projections.compute import _method_input
    from layerscope.projections.neighbors import K, knn_graph

    x, source = _method_input(run, layer, "cpu", lambda *a: None, memory_budget())
    exact = knn_graph(x, K, method="exact")
    approximate = knn_graph(x, K, method="nndescent")
    rows = np.arange(0, len(x), max(len(x) // 2000, 1))
    recall = np.mean([len(set(approximate.indices[i]) & set(exact.indices[i])) / K for i in rows])
    what = f"{K}-NN graph of {layer} ({len(x):,} x {x.shape[1]}, {source})"
    table.add(f"{what}: exact blocked search", exact.meta["seconds"], "s", f"torch on the CPU; {load_average()}")
    table.add(f"{what}: pynndescent", approximate.meta["seconds"], "s", f"recall {recall:.5f} against exact")
    table.ratio(f"{what}: pynndescent / exact", approximate.meta["seconds"], exact.meta["seconds"], "same run")


def bench_projections(run_path: Path, layer: str, baseline: str, table: Table, tmp: Path) -> None:
    tree = tmp / "baseline"
    subprocess.run(["git", "-C", str(ROOT), "worktree", "add", "-q", "--detach", str(tree), baseline], check=True)
    try:
        copies = {}
        for name in ("baseline", "new"):  # each version on its own copy: updates must not meet the other's files
            copies[name] = Path(shutil.copytree(run_path, tmp / f"run-{name}", copy_function=os.link))
        srcs = {"baseline": tree / "src", "new": ROOT / "src"}
        # the graph first, as the dashboard's first t-SNE or UMAP computes it: then each method reads it
        graph = _project(srcs["new"], copies["new"], layer, "tsne")["neighbors"]
        table.add(
            f"{layer}: nearest-neighbour graph, once per layer",
            graph["seconds"],
            "s",
            f"{graph['method']} search, k = {graph['k']}; stored in the Run, shared by t-SNE and UMAP",
        )
        for method in ("tsne", "umap"):
            got = {name: _project(src, copies[name], layer, method) for name, src in srcs.items()}
            for name, label in (("baseline", baseline), ("new", "this checkout")):
                r = got[name]
                table.add(
                    f"{method} {layer}, 70k: {label}",
                    r["seconds"],
                    "s",
                    f"method alone {r['method_seconds']:.1f} s; kNN acc {r['knn']:.4f}, trust {r['trust']:.4f}; "
                    f"{load_average()}",
                )
            table.ratio(
                f"{method} {layer}, 70k: {baseline} / this checkout",
                got["baseline"]["seconds"],
                got["new"]["seconds"],
                "same run; this checkout reads the stored graph",
            )
    finally:
        subprocess.run(["git", "-C", str(ROOT), "worktree", "remove", "--force", str(tree)], check=False)


def bench_sample(run: Any, layer: str, table: Table, fit: int) -> None:
    from layerscope.projections import compute

    compute.FIT_MAX, compute.FIT_SAMPLE = fit - 1, fit
    for method in ("tsne", "umap"):
        start = time.perf_counter()
        m = compute.compute_projection(run, layer, method, recompute=True).meta
        table.add(
            f"{method} {layer}, 70k by sample + transform: fit {m['fit_sample']:,}, place {m['placed']:,}",
            time.perf_counter() - start,
            "s",
            f"kNN acc placed {m['placed_knn_accuracy']:.4f}, fitted {m['fitted_knn_accuracy']:.4f}, "
            f"all {m['knn_accuracy']:.4f}; {load_average()}",
        )


def bench_capture(run_path: Path, table: Table, tmp: Path, workers: list[int]) -> None:
    """``capture_run`` locally, then through Ray Data with 1 and 2 workers on the same cores: images/s and the
    ratio to local. Ray's cluster is started once, before (its start is a row of its own)."""
    import ray

    from layerscope.engine import capture_run
    from layerscope.run import Run

    run = Run(shutil.copytree(run_path, tmp / "capture", copy_function=os.link))
    n = run.n_images
    local = capture_run(run, "local", device="cpu")
    table.add(f"capture {n:,} images: local", local["images_per_second"], "images/s", f"{local['seconds']:.1f} s")
    start = time.perf_counter()
    ray.init(num_cpus=os.cpu_count(), include_dashboard=False, log_to_driver=False, logging_level="WARNING")
    table.add("Ray: start a cluster on this machine", time.perf_counter() - start, "s", f"{os.cpu_count()} CPUs")
    try:
        for count in workers:
            meta = capture_run(run, "ray", workers=count)
            table.add(
                f"capture {n:,} images: Ray, {count} worker(s)",
                meta["images_per_second"],
                "images/s",
                f"{meta['seconds']:.1f} s, of which {meta['first_result_seconds']:.1f} s to the first result (the "
                f"actors' start) and {meta.get('copy_seconds', 0):.1f} s copying the staged rows into the Run "
                f"({meta.get('staged_bytes', 0) / 2**20:.0f} MiB compressed); {load_average()}",
            )
            table.ratio(
                f"capture: Ray with {count} worker(s) / local",
                meta["images_per_second"],
                local["images_per_second"],
                "images/s, same run, same cores (goal with 2: >= 0.8)",
            )
    finally:
        ray.shutdown()


def bench_pca(run_path: Path, layer: str, table: Table, tmp: Path, repeats: int = 5) -> None:
    """PCA of ``layer`` over every image with the sums the capture stored (one pass: the projection) and without them
    (two: X^T X, then the projection), on one Run captured once; median seconds of ``repeats`` fits each, the
    quality figures left out (they are the same work either way)."""
    from layerscope.engine import capture_run
    from layerscope.projections.compute import compute_pca
    from layerscope.run import Run
    from layerscope.stats import stored_sums

    run = Run(shutil.copytree(run_path, tmp / "pca-sums", copy_function=os.link))
    if stored_sums(run, layer) is None:  # a Run made before captures summed: capture it again
        capture_run(run, "local", device="cpu")
        run = Run(run.path)
    rows = Run(shutil.copytree(run.path, tmp / "pca-rows", copy_function=os.link))
    rows.update_manifest(lambda m: m.pop("stats"))
    n = run.n_images
    got = {}
    for name, target in (("stored sums", run), ("no sums", rows)):
        seconds, _ = median_seconds(lambda target=target: compute_pca(target, [layer], quality=False), repeats)
        meta = Run(target.path).projection_meta(layer, "pca") or {}
        got[name] = seconds
        table.add(
            f"PCA of {layer}, {n:,} images: {name}",
            seconds,
            "s",
            f"median of {repeats}; {meta.get('passes')} pass(es) over {layer}; {load_average()}",
        )
    table.ratio(f"PCA of {layer}: no sums / stored sums", got["no sums"], got["stored sums"], "same Run")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--run", type=Path, help="a Run directory (default: the demo's MNIST Run)")
    parser.add_argument("--layer", default="fc2")
    parser.add_argument(
        "--baseline", default="dbe3c46", help="the commit t-SNE and UMAP are compared with (default: before the graph)"
    )
    parser.add_argument("--parts", default="neighbors,projections,sample,pca,capture")
    parser.add_argument("--workers", default="1,2", help="Ray workers of the 'capture' part")
    parser.add_argument("--fit-sample", type=int, default=20_000, help="the sample of the 'sample' part")
    args = parser.parse_args()
    parts = set(args.parts.split(","))
    from layerscope.run import Run

    if args.run is None:
        from layerscope.pipeline import demo_run

        args.run = demo_run(device="cpu").path
    print(machine())
    table = Table("scale")
    with tempfile.TemporaryDirectory() as name:
        tmp = Path(name)
        work = Path(shutil.copytree(args.run, tmp / "run", copy_function=os.link))
        if "neighbors" in parts:
            bench_neighbors(Run(work), args.layer, table)
        if "projections" in parts:
            bench_projections(Path(args.run), args.layer, args.baseline, table, tmp)
        if "sample" in parts:
            bench_sample(Run(work), args.layer, table, args.fit_sample)
        if "pca" in parts:
            bench_pca(Path(args.run), args.layer, table, tmp)
        if "capture" in parts:
            bench_capture(Path(args.run), table, tmp, [int(w) for w in args.workers.split(",")])


if __name__ == "__main__":
    main()
