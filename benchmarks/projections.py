"""Projections over the full bundled MNIST (70,000 images): PCA of every layer, t-SNE, UMAP, LDA and Isomap.

    python benchmarks/projections.py [--run DIR] [--layer fc2] [--methods pca,tsne,umap,lda,isomap] [--repeats 1]

Uses the Run at ``--run``, or makes one from the shipped weights in a temporary directory as ``layerscope demo``
does (capture, PCA of the input and dense layers). Every projection is recomputed into that Run. Figures are medians
of ``--repeats`` (default 1: most of them take tens of seconds); see benchmarks/README.md for what each one means.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from common import Table, machine, median_seconds
from layerscope.capture import iter_layer_batches
from layerscope.projections import compute_pca, compute_projection, knn_accuracy, trustworthiness
from layerscope.projections.compute import BATCH, TRUST_SAMPLE
from layerscope.projections.tsne import TSNE
from layerscope.run import Run

TSNE_SAMPLE = 10_000


def load() -> str:
    return "load average " + " ".join(f"{v:.1f}" for v in os.getloadavg())


def make_run(path: Path | None, table: Table) -> Run:
    """The Run at ``path``, or one made from the shipped weights as ``layerscope demo`` prepares it."""
    if path is not None:
        return Run(path)
    from layerscope.data import load_mnist
    from layerscope.models.pretrained import pretrained_seed_cnn
    from layerscope.pipeline import create_run

    model, spec, provenance = pretrained_seed_cnn()
    out = Path(tempfile.mkdtemp(prefix="layerscope-bench-")) / "mnist"
    start = time.perf_counter()
    run = create_run(out, load_mnist(), model, spec, provenance=provenance, pca_kinds=("image", "dense"))
    table.add("Run from the shipped weights (capture + top-k + PCA)", time.perf_counter() - start, "s", str(out))
    return run


def quality(x: np.ndarray, embedding: np.ndarray, labels: np.ndarray, seed: int = 0) -> str:
    """kNN (k = 10) label accuracy of the 2-D embedding and trustworthiness on a sample, as compute.py reports them."""
    rng = np.random.default_rng(seed)
    sample = np.sort(rng.choice(len(x), size=min(TRUST_SAMPLE, len(x)), replace=False))
    knn = knn_accuracy(embedding, labels, k=10, random_state=seed)
    trust = trustworthiness(x[sample], embedding[sample], k=10)
    return f"kNN acc {knn:.4f}, trust {trust:.4f}"


def meta_quality(meta: dict[str, Any]) -> str:
    return f"kNN acc {meta['knn_accuracy']:.4f}, trust {meta['trustworthiness']:.4f}"


def bench_pca(run: Run, table: Table, repeats: int) -> None:
    model = run.load_model()
    n = len(run.labels)
    result: dict[str, Any] = {}

    def pca(layers: list[str], **kwargs: Any) -> Any:
        def work() -> None:
            result["value"] = compute_pca(run, layers, model=model, **kwargs)

        return median_seconds(work, repeats)[0], result["value"]

    # the floor of a conv layer's PCA: the forward pass that recomputes it
    start = time.perf_counter()
    for _ in iter_layer_batches(model, run.dataset(), ["pool"], batch_size=BATCH):
        pass
    floor = time.perf_counter() - start
    table.add("forward pass to pool alone, 70k (floor of pool's PCA)", floor, "s", f"batch {BATCH}, once, {load()}")

    after = 0.0
    for layer in run.layer_names:
        seconds, projections = pca([layer])
        m = projections[layer].meta
        kept = ", rows kept in memory" if m.get("rows_in_memory") else ""
        evr = "+".join(f"{v:.3f}" for v in m["explained_variance_ratio"])
        table.add(
            f"pca {layer} ({run.layer(layer).dims:,}-d)",
            seconds,
            "s",
            f"{m['solver']}, {m.get('passes', '?')} pass(es){kept}, fit alone {m['seconds']:.1f} s; EVR {evr}; "
            f"{meta_quality(m)}",
        )
        if layer == "pool":
            after = seconds
    if "pool" in run.layer_names:
        seconds, projections = pca(["pool"], keep_rows_bytes=0)
        m = projections["pool"].meta
        evr = "+".join(f"{v:.3f}" for v in m["explained_variance_ratio"])
        table.add(
            "pca pool, streamed on every pass (before)",
            seconds,
            "s",
            f"{m['solver']}, {m['passes']} forward passes, fit alone {m['seconds']:.1f} s; EVR {evr}; "
            f"{meta_quality(m)}",
        )
        table.ratio("pca pool: before / after", seconds, after, "same run; after = rows kept, one forward pass")
        compute_pca(run, ["pool"], model=model)  # leave the Run with the default fit
    seconds, _ = pca(run.layer_names)
    table.add("pca, all layers sharing passes", seconds, "s", f"as `train` does it, {n:,} images")


def bench_tsne_sample(run: Run, layer: str, table: Table, repeats: int) -> None:
    """openTSNE (layerscope's wrapper) against scikit-learn's TSNE on the same 10k rows, same schedule."""
    from sklearn.manifold import TSNE as SkTSNE

    x_all = tsne_input(run, layer)
    labels_all = np.asarray(run.labels)
    rng = np.random.default_rng(0)
    idx = np.sort(rng.choice(len(x_all), size=min(TSNE_SAMPLE, len(x_all)), replace=False))
    x, labels = x_all[idx], labels_all[idx]
    out: dict[str, np.ndarray] = {}
    # scikit-learn always exaggerates for 250 iterations; max_iter counts them: 250 + 500, openTSNE's defaults
    runs = {
        "opentsne": lambda: TSNE(random_state=0, n_iter=500, early_exaggeration_iter=250).fit_transform(x),
        "sklearn": lambda: SkTSNE(
            perplexity=30, max_iter=750, init="pca", learning_rate="auto", random_state=0, n_jobs=-1
        ).fit_transform(x),
        "opentsne_default": lambda: TSNE(random_state=0).fit_transform(x),
    }
    seconds = {}
    for name, fit in runs.items():

        def work(fit: Any = fit, name: str = name) -> None:
            out[name] = np.asarray(fit(), np.float32)

        seconds[name] = median_seconds(work, repeats)[0]
    what = f"{len(x):,} {layer} rows"
    threads = f"perplexity 30, PCA init, {os.cpu_count()} threads"
    table.add(
        f"t-SNE {what}: openTSNE, 250 + 500 iterations",
        seconds["opentsne"],
        "s",
        f"FFT, {threads}; {quality(x, out['opentsne'], labels)}",
    )
    table.add(
        f"t-SNE {what}: scikit-learn, 250 + 500 iterations",
        seconds["sklearn"],
        "s",
        f"Barnes-Hut, {threads}; {quality(x, out['sklearn'], labels)}",
    )
    table.ratio(f"t-SNE {what}: scikit-learn / openTSNE", seconds["sklearn"], seconds["opentsne"], "same run")
    table.add(
        f"t-SNE {what}: openTSNE, layerscope's 125 + 250",
        seconds["opentsne_default"],
        "s",
        quality(x, out["opentsne_default"], labels),
    )


def tsne_input(run: Run, layer: str) -> np.ndarray:
    """What compute_projection feeds t-SNE: the activations of narrow layers, else the 50 PCA scores."""
    from layerscope.projections.compute import _method_input

    return _method_input(run, layer, "cpu", lambda *a: None)[0]


def bench_tsne_full(run: Run, layer: str, table: Table, repeats: int) -> None:
    x = tsne_input(run, layer)
    labels = np.asarray(run.labels)
    out: dict[str, np.ndarray] = {}

    def before() -> None:
        out["before"] = TSNE(random_state=0, n_iter=500, early_exaggeration_iter=250).fit_transform(x)

    seconds_before = median_seconds(before, repeats)[0]
    table.add(
        f"t-SNE {layer}, 70k points, 250 + 500 iterations (before)",
        seconds_before,
        "s",
        f"openTSNE's schedule, as layerscope ran it before; {quality(x, out['before'], labels)}",
    )
    result: dict[str, Any] = {}

    def after() -> None:
        result["p"] = compute_projection(run, layer, "tsne", recompute=True)

    seconds_after = median_seconds(after, repeats)[0]
    m = result["p"].meta
    table.add(
        f"t-SNE {layer}, 70k points (compute_projection)",
        seconds_after,
        "s",
        f"125 + 250 iterations; {meta_quality(m)} (method alone {m['seconds']:.1f} s), {load()}",
    )
    table.ratio(f"t-SNE {layer}, 70k: before / after", seconds_before, seconds_after, "same run")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--run", type=Path, default=None, help="a Run to use (default: one from the shipped weights)")
    parser.add_argument("--layer", default="fc2", help="layer for t-SNE, UMAP, LDA and Isomap")
    parser.add_argument("--methods", default="pca,tsne,umap,lda,isomap")
    parser.add_argument("--repeats", type=int, default=1, help="median of this many runs of each figure")
    args = parser.parse_args()
    methods = args.methods.split(",")

    table = Table("projections")
    print(machine())
    print(load())
    run = make_run(args.run, table)
    if "pca" in methods:
        bench_pca(run, table, args.repeats)
    if "tsne" in methods:
        bench_tsne_sample(run, args.layer, table, args.repeats)
        bench_tsne_full(run, args.layer, table, args.repeats)
    result: dict[str, Any] = {}
    for method in [m for m in methods if m not in ("pca", "tsne")]:

        def work(method: str = method) -> None:
            result["p"] = compute_projection(run, args.layer, method, recompute=True)

        seconds = median_seconds(work, args.repeats)[0]
        m = result["p"].meta
        table.add(
            f"{method} {args.layer}, 70k points",
            seconds,
            "s",
            f"{meta_quality(m)} (method alone {m['seconds']:.1f} s)",
        )
    print(load())


if __name__ == "__main__":
    sys.exit(main())
