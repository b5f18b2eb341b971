"""Foundation figures on the full bundled MNIST (70,000 images): training, capture, and every projection.

    python benchmarks/foundation.py [--run runs/mnist] [--retrain] [--methods pca,tsne,umap,lda,isomap]

Trains the default Run first when ``--run`` does not exist (or with ``--retrain``), then times capture of all layers
and each projection method over all 70,000 images, recomputing them into the Run. Prints one table.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import sklearn
import torch

from layerscope import __version__
from layerscope.capture import capture_dataset
from layerscope.data import load_mnist
from layerscope.pipeline import train_run
from layerscope.projections import compute_pca, compute_projection
from layerscope.run import Run
from layerscope.training import TrainConfig


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--run", type=Path, default=Path("runs/mnist"))
    parser.add_argument("--retrain", action="store_true", help="train a fresh default Run into --run first")
    parser.add_argument("--methods", default="pca,tsne,umap,lda,isomap")
    parser.add_argument("--layer", default="fc2", help="layer for the non-linear methods")
    args = parser.parse_args()

    rows: list[tuple[str, str, str]] = []

    def row(name: str, value: str, note: str = "") -> None:
        rows.append((name, value, note))
        print(f"  {name:<38} {value:>14}  {note}", flush=True)

    print(
        f"layerscope {__version__} | torch {torch.__version__} ({torch.get_num_threads()} threads) | numpy "
        f"{np.__version__} | scikit-learn {sklearn.__version__} | {os.cpu_count()} cores, {platform.machine()}"
    )
    if args.retrain or not (args.run / "manifest.json").is_file():
        start = time.perf_counter()
        run = train_run(args.run, load_mnist(), TrainConfig(device="cpu"), force=True)
        row("train + capture + PCA (whole Run)", f"{time.perf_counter() - start:.1f} s")
    run = Run(args.run)
    t = run.manifest["training"]
    history = run.manifest["history"]
    row(
        "training (default preset)",
        f"{t['seconds']:.1f} s",
        f"{t['epochs']} epochs, {t['seconds'] / t['epochs']:.1f} s/epoch",
    )
    first_99 = next((r["epoch"] for r in history if r["test_accuracy"] >= 0.99), None)
    row("test accuracy", f"{run.manifest['metrics']['test_accuracy']:.4f}", f"first epoch >= 0.99: {first_99}")

    model = run.load_model()
    with tempfile.TemporaryDirectory() as tmp:
        captured = capture_dataset(model, run.dataset(), run.layers, tmp)
    row("capture, all layers, 70k images", f"{captured.seconds:.1f} s", f"{captured.images_per_second:,.0f} images/s")

    methods = args.methods.split(",")
    if "pca" in methods:
        for layer in run.layer_names:
            start = time.perf_counter()
            result = compute_pca(run, [layer], model=model)[layer]
            m = result.meta
            row(
                f"pca {layer} ({run.layer(layer).dims:,}-d)",
                f"{time.perf_counter() - start:.1f} s",
                f"{m['solver']}, kNN acc {m['knn_accuracy']:.3f}, trust {m['trustworthiness']:.3f}",
            )
        start = time.perf_counter()
        compute_pca(run, model=model)
        row("pca, all layers sharing passes", f"{time.perf_counter() - start:.1f} s", "as `train` does it")
    for method in [m for m in methods if m != "pca"]:
        start = time.perf_counter()
        result = compute_projection(run, args.layer, method, recompute=True)
        m = result.meta
        row(
            f"{method} {args.layer}, 70k points",
            f"{time.perf_counter() - start:.1f} s",
            f"kNN acc {m['knn_accuracy']:.3f}, trust {m['trustworthiness']:.3f} (method alone {m['seconds']:.1f} s)",
        )
    print("\nfigure | value | note")
    for name, value, note in rows:
        print(f"{name} | {value} | {note}")


if __name__ == "__main__":
    sys.exit(main())
