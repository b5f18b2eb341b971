"""Capture a Run's layers again, on this machine (``engine="local"``) or on a Ray cluster (``engine="ray"``).

Both write the same arrays: ``probs.npy``, every layer's ``activations/``, the top-k images per unit and the dense
layers' sums for PCA and class means (`layerscope.stats`), into a temporary directory inside the Run, then commit
them to the Run in one update (`Run.update`), so a capture that fails or is stopped leaves the Run as it was.

The Ray engine runs the forward passes through Ray Data: the batches of image indices are a dataset, the model is
held by a pool of actors (``map_batches`` with a callable class, ``--gpus-per-worker`` GPUs each), and each actor
writes its batches' rows into a compressed Zarr array by image index in a staging directory (``--staging``, default
inside the Run; `layerscope.staging`), so no activation travels back through Ray. What does travel back is small:
each block of batches' top-k per unit and sums, merged on the driver (top-k ties to the lower index, as one pass
gives them). Once every batch is in, the driver copies the staged rows into the Run's arrays, a bounded number at a
time. A worker whose process dies is restarted and its batches run again (Ray Data's actor fault tolerance: their
chunks are simply written again); a block whose result arrives twice is merged once. An exception in a worker (a
corrupt image, a model that fails) is not retried: the capture stops with it, in one line. The workers read the
Run (its model and images) and write the staging directory: both must be on storage they see.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from layerscope.atomic import remove_leftovers, temp_prefix
from layerscope.capture import CAPTURE_BATCH, capture_batch_size, capture_dataset
from layerscope.errors import LayerscopeError
from layerscope.memory import MemoryBudget, memory_budget
from layerscope.progress import ProgressFn, no_progress
from layerscope.run import Run, now
from layerscope.stats import SumsCollector, stage_sums
from layerscope.topk import DEFAULT_K, TopKCollector, stage_topk

__all__ = ["ENGINES", "capture_run"]

ENGINES = ("local", "ray")


def capture_run(
    run: Run,
    engine: str = "local",
    *,
    address: str | None = None,
    workers: int | None = None,
    gpus_per_worker: float = 0.0,
    staging: str | os.PathLike[str] | None = None,
    device: str = "auto",
    batch_size: int | None = None,
    memory: int | str | MemoryBudget | None = None,
    progress: ProgressFn = no_progress,
) -> dict[str, Any]:
    """Capture every layer of ``run`` over all its images again with ``engine`` and commit the arrays, top-k and
    metrics to the Run in one update; returns the manifest's new ``capture`` entry (seconds, images/s, engine).

    ``address``, ``workers``, ``gpus_per_worker`` and ``staging`` are the Ray engine's: the cluster to join (None:
    the running one, else a local one on this machine's cores; "auto": the one ``ray start`` began), how many actors
    hold the model (default: one per CPU, or per GPU with ``gpus_per_worker``), the GPUs each takes, and the
    directory the workers write their rows into (`layerscope.staging`; default: inside the Run), which they and
    this machine must share."""
    if engine not in ENGINES:
        raise LayerscopeError(f"unknown capture engine {engine!r}; choose one of {', '.join(ENGINES)}.")
    if engine == "local" and (address is not None or workers is not None or gpus_per_worker or staging is not None):
        raise LayerscopeError(
            "--address, --workers, --gpus-per-worker and --staging are the Ray engine's; add --engine ray."
        )
    if staging is not None and not Path(staging).is_dir():
        raise LayerscopeError(f"--staging {staging}: no such directory; give one every Ray worker can write to.")
    if workers is not None and workers < 1:
        raise LayerscopeError(f"--workers must be at least 1 (got {workers}).")
    if not run.has_model:
        run.load_model()  # its one-line error: a Run imported from a file has no model to capture with
    layers = run.layers
    budget = memory if isinstance(memory, MemoryBudget) else memory_budget(memory)
    batch = batch_size or capture_batch_size(layers, budget, CAPTURE_BATCH)
    names = [info.name for info in layers if info.kind != "image"]
    collector = TopKCollector(names, DEFAULT_K)
    labels = np.asarray(run.labels)
    sums = SumsCollector(layers, labels, len(run.class_names))
    tmp = Path(tempfile.mkdtemp(prefix=temp_prefix("capture"), suffix=".tmp", dir=run.path))
    try:
        start = time.perf_counter()
        if engine == "local":
            from layerscope.training import resolve_device

            dev = resolve_device(device)
            model = run.load_model(dev)

            def on_batch(indices: np.ndarray, outputs: dict[str, torch.Tensor]) -> None:
                collector(indices, outputs)
                sums(indices, outputs)

            captured = capture_dataset(
                model, run.dataset(), layers, tmp, batch_size=batch, device=dev, progress=progress, on_batch=on_batch
            )
            files, extra = captured.files, dict[str, Any]()
        else:
            from layerscope.ray_engine import capture_with_ray

            if staging is not None:  # what killed captures left there, then a directory of this one's own
                remove_leftovers(staging, "capture-rows")
            rows = Path(tempfile.mkdtemp(prefix=temp_prefix("capture-rows"), suffix=".tmp", dir=staging or tmp))
            try:
                files, extra = capture_with_ray(
                    run, tmp, rows, batch, collector, sums, address, workers, gpus_per_worker, device, progress
                )
            finally:
                shutil.rmtree(rows, ignore_errors=True)
        seconds = time.perf_counter() - start
        n = run.n_images
        meta = {
            "engine": engine,
            "seconds": round(seconds, 3),
            "images_per_second": round(n / max(seconds, 1e-9)),
            "batch_size": batch,
            "memory_budget": budget.bytes,
            "computed": now(),
            **extra,
        }
        topk = collector.result()
        probs = np.load(tmp / "probs.npy", mmap_mode="r")
        from layerscope.pipeline import _metrics

        metrics = _metrics(np.asarray(probs), labels, np.asarray(run.split))
        del probs
        with run.update() as up:
            for relpath in files:
                up.adopt(relpath, tmp / relpath)
            stage_topk(up, topk, DEFAULT_K, collector.seconds)
            of = {name: f"activations/{name}.npy" for name in sums.sums}
            stage_sums(up, sums.sums, {name: up.files.get(rel, rel) for name, rel in of.items()}, sums.seconds)

            def change(manifest: dict[str, Any]) -> None:
                manifest["capture"] = meta
                manifest.setdefault("metrics", {}).update(metrics)

            up.change(change)
        return meta
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
