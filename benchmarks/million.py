"""The scale test: 1,000,000 28x28 images (MNIST's, shifted and rotated at random) as an IDX dataset, a Run of the
shipped CNN over it, and what each step costs at that size.

    PYTHONPATH=. .venv/bin/python benchmarks/million.py [--dir DIR] [--n 1000000] [--parts ...]

``--dir`` holds the dataset and the Run (default: a temporary directory, removed after; a directory given is kept
and reused, so parts can be run one at a time). ``--parts`` (comma-separated, default all): ``capture`` (the Run made
by ``create_run``, then ``layerscope capture`` locally and through Ray with 1 and 2 workers: images/s), ``pca`` (PCA
of fc2 over every image), ``tsne`` and ``umap`` (fitted on a stratified sample of 50,000 and the rest placed by
transform: time, and the kNN accuracy of placed and fitted points apart).
"""

from __future__ import annotations

import argparse
import os
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from common import Table, load_average, machine

MAX_SHIFT = 3  # pixels, each way
MAX_ROTATION = 20  # degrees, each way
CHUNK = 20_000


def jitter(images: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """(n, 28, 28) uint8 -> the same digits, each rotated by up to MAX_ROTATION degrees and shifted by up to
    MAX_SHIFT pixels at random (bilinear, zero padding)."""
    n, h, w = images.shape
    angle = np.deg2rad(rng.uniform(-MAX_ROTATION, MAX_ROTATION, n))
    shift = rng.uniform(-MAX_SHIFT, MAX_SHIFT, (n, 2)) * 2 / np.array([w, h])  # in grid units ([-1, 1] across)
    theta = np.zeros((n, 2, 3), np.float32)
    theta[:, 0, 0], theta[:, 0, 1], theta[:, 0, 2] = np.cos(angle), -np.sin(angle), shift[:, 0]
    theta[:, 1, 0], theta[:, 1, 1], theta[:, 1, 2] = np.sin(angle), np.cos(angle), shift[:, 1]
    x = torch.from_numpy(images).float()[:, None]
    grid = F.affine_grid(torch.from_numpy(theta), list(x.shape), align_corners=False)
    out = F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
    return out[:, 0].round().clamp(0, 255).to(torch.uint8).numpy()


def make_dataset(directory: Path, n: int, seed: int = 0) -> Path:
    """The four IDX files of ``n`` jittered MNIST images, train and test in MNIST's proportion (6:1), each drawn
    from its own split."""
    from layerscope.data import load_mnist
    from layerscope.data.datasets import TRAIN
    from layerscope.data.idx import write_idx

    if (directory / "t10k-labels-idx1-ubyte").is_file():
        return directory
    directory.mkdir(parents=True, exist_ok=True)
    mnist = load_mnist()
    images, labels, split = np.asarray(mnist.images)[:, 0], np.asarray(mnist.labels), np.asarray(mnist.split)
    rng = np.random.default_rng(seed)
    n_train = n * 6 // 7
    for name, count, source in (("train", n_train, split == TRAIN), ("t10k", n - n_train, split != TRAIN)):
        pool = np.flatnonzero(source)
        picked = rng.choice(pool, size=count, replace=True)
        out = np.empty((count, 28, 28), np.uint8)
        for start in range(0, count, CHUNK):
            part = picked[start : start + CHUNK]
            out[start : start + len(part)] = jitter(images[part], rng)
        write_idx(directory / f"{name}-images-idx3-ubyte", out)
        write_idx(directory / f"{name}-labels-idx1-ubyte", labels[picked].astype(np.uint8))
    return directory


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dir", type=Path, default=None)
    parser.add_argument("--n", type=int, default=1_000_000)
    parser.add_argument("--parts", default="capture,pca,tsne,umap")
    parser.add_argument("--workers", default="1,2")
    args = parser.parse_args()
    parts = set(args.parts.split(","))
    from layerscope.data.idx import MAX_BYTES

    # a million training images are 672 MB in one IDX file, past what layerscope reads from one by default
    os.environ.setdefault("LAYERSCOPE_MAX_IDX_BYTES", str(max(args.n * 28 * 28, MAX_BYTES)))
    print(machine())
    table = Table("million")
    tmp = None
    if args.dir is None:
        tmp = tempfile.mkdtemp(prefix="layerscope-million-")
        args.dir = Path(tmp)
    try:
        start = time.perf_counter()
        data_dir = make_dataset(args.dir / "data", args.n)
        table.add(f"generate {args.n:,} jittered MNIST images (IDX)", time.perf_counter() - start, "s", str(data_dir))
        from layerscope.data.datasets import load_idx_dir
        from layerscope.run import Run

        run_dir = args.dir / "run"
        if not (run_dir / "manifest.json").is_file():
            from layerscope.models.pretrained import pretrained_seed_cnn
            from layerscope.pipeline import create_run

            model, spec, provenance = pretrained_seed_cnn()
            start = time.perf_counter()
            data = load_idx_dir(data_dir, name="mnist-jitter-1m")
            run = create_run(run_dir, data, model, spec, device="cpu", provenance=provenance, pca_kinds=())
            table.add(
                f"Run of the shipped CNN over {args.n:,} images (load, capture, top-k)",
                time.perf_counter() - start,
                "s",
                f"test accuracy {run.manifest['metrics']['test_accuracy']:.4f} (trained on unjittered MNIST)",
            )
        run = Run(run_dir)
        if "capture" in parts:
            from scale import bench_capture

            bench_capture(run_dir, table, args.dir, [int(w) for w in args.workers.split(",")])
            shutil.rmtree(args.dir / "capture", ignore_errors=True)
        if "pca" in parts:
            from layerscope.projections import compute_pca

            start = time.perf_counter()
            m = compute_pca(run, ["fc2"])["fc2"].meta
            table.add(
                f"PCA of fc2 over {args.n:,} images",
                time.perf_counter() - start,
                "s",
                f"{m['solver']}, {m['passes']} pass(es); kNN acc {m['knn_accuracy']:.4f}; {load_average()}",
            )
        for method in ("tsne", "umap"):
            if method not in parts:
                continue
            from layerscope.projections import compute_projection

            start = time.perf_counter()
            m = compute_projection(run, "fc2", method, recompute=True).meta
            if "fit_sample" in m:
                how = f"fit {m['fit_sample']:,}, place {m['placed']:,}"
                quality = f"kNN acc placed {m['placed_knn_accuracy']:.4f}, fitted {m['fitted_knn_accuracy']:.4f}"
            else:
                how, quality = "every image fitted", f"kNN acc {m['knn_accuracy']:.4f}"
            table.add(
                f"{method} of fc2 over {args.n:,}: {how}",
                time.perf_counter() - start,
                "s",
                f"{quality}; graph {m['neighbors']['seconds']:.1f} s; {load_average()}",
            )
    finally:
        if tmp is not None:
            shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
