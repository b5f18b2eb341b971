"""The Ray engine of `layerscope.engine.capture_run`: forward passes on a pool of Ray Data actors that write their rows
straight into the capture's memory-mapped arrays and send back only each batch's top-k per unit.

Ray is an optional extra (``pip install 'layerscope[ray]'``); nothing here is imported without it.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

from layerscope.capture import iter_layer_batches, open_outputs, write_outputs
from layerscope.errors import LayerscopeError
from layerscope.layers import LayerInfo
from layerscope.progress import ProgressFn
from layerscope.run import Run
from layerscope.topk import DEFAULT_K, TopK, TopKCollector

__all__ = ["capture_with_ray"]

RETRIES = 3  # a dead worker is restarted, and its batch run again, this many times before the capture fails


class CaptureWorker:
    """A Ray Data actor: the Run's model, and its capture arrays opened to write rows into. Called with batches of
    one row, ``{"data": [b]}``, it captures images ``b * size`` to ``(b + 1) * size`` (the batches of a local
    capture, so the two give the same numbers) and returns their top-k per unit."""

    def __init__(
        self, run_path: str, trusted: bool, out_dir: str, size: int, device: str, layers: list[dict[str, Any]]
    ) -> None:
        from layerscope.training import resolve_device

        self.run = Run(run_path, trust_model_code=trusted)
        self.device = resolve_device(device)
        self.model = self.run.load_model(self.device)
        self.dataset = self.run.dataset()
        self.layers = [LayerInfo.from_dict(d) for d in layers]
        self.names = [info.name for info in self.layers if info.kind != "image"]
        self.arrays = open_outputs(Path(out_dir), self.layers, self.run.n_images, self.dataset.num_classes, "r+")
        self.size = size

    def __call__(self, rows: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        out: dict[str, list[Any]] = {"batch": [], "pid": []}
        n = self.run.n_images
        for b in np.asarray(rows["data"]).tolist():
            indices = np.arange(b * self.size, min((b + 1) * self.size, n))
            collector = TopKCollector(self.names, DEFAULT_K)
            widths = {}
            for batch, outputs in iter_layer_batches(
                self.model, self.dataset, self.names, indices, len(indices), self.device, stop_early=False
            ):
                write_outputs(self.arrays, self.layers, batch, outputs)
                collector(batch, outputs)
                widths = {name: out.shape[3] if out.ndim == 4 else 0 for name, out in outputs.items()}
            for array in self.arrays.values():
                if isinstance(array, np.memmap):
                    array.flush()
            out["batch"].append(np.int64(b))
            out["pid"].append(np.int64(os.getpid()))
            for name, topk in collector.result().items():
                # a conv map's width, which turns (y, x) positions back into the accumulator's y * W + x
                out.setdefault(f"{name}|width", []).append(np.int64(widths[name]))
                for part, value in _parts(topk).items():
                    out.setdefault(f"{name}|{part}", []).append(value)
        return {key: np.stack(values) for key, values in out.items()}


def _parts(topk: TopK) -> dict[str, np.ndarray]:
    parts = {"values": topk.values, "indices": topk.indices}
    if topk.positions is not None:
        parts["positions"] = topk.positions
    return parts


def _connect(address: str | None, workers: int | None) -> bool:
    """Join the cluster at ``address`` (or the one this process runs in); else start one on this machine. Whether
    it was started here (and is shut down after)."""
    try:
        import ray
    except ImportError as e:
        raise LayerscopeError(
            "the Ray engine needs Ray: pip install 'layerscope[ray]' (or capture with --engine local)."
        ) from e
    if ray.is_initialized():
        return False
    kwargs: dict[str, Any] = {"include_dashboard": False, "log_to_driver": False, "configure_logging": False}
    try:
        if address is None:
            ray.init(num_cpus=os.cpu_count(), **kwargs)
        else:
            ray.init(address=address, **kwargs)
    except ConnectionError as e:
        raise LayerscopeError(
            f"no Ray cluster at {address!r} ({e}); start one with 'ray start --head', or leave --address out to use "
            "this machine's cores."
        ) from e
    return True


def capture_with_ray(
    run: Run,
    out_dir: Path,
    batch: int,
    collector: TopKCollector,
    address: str | None,
    workers: int | None,
    gpus_per_worker: float,
    device: str,
    progress: ProgressFn,
) -> tuple[list[str], dict[str, Any]]:
    """Capture ``run`` into ``out_dir`` on a Ray actor pool; merge each batch's top-k into ``collector``. Returns the
    files written (by the Run's names) and what the manifest records of the engine."""
    started = _connect(address, workers)
    import ray

    try:
        n = run.n_images
        dataset = run.dataset()
        arrays = open_outputs(out_dir, run.layers, n, dataset.num_classes, "w+")
        files = list(arrays)
        del arrays  # created; the workers write them
        cpus = float(ray.cluster_resources().get("CPU", 1))
        if gpus_per_worker and float(ray.cluster_resources().get("GPU", 0)) < gpus_per_worker:
            raise LayerscopeError(
                f"--gpus-per-worker {gpus_per_worker:g} but the Ray cluster has "
                f"{ray.cluster_resources().get('GPU', 0):g} GPUs; lower it, or leave it out to run on CPUs."
            )
        if workers is None:
            gpus = float(ray.cluster_resources().get("GPU", 0))
            workers = int(gpus // gpus_per_worker) if gpus_per_worker else max(int(cpus), 1)
        batches = max(-(-n // batch), 1)
        workers = max(min(workers, batches), 1)
        cpus_each = max(cpus // workers, 1) if not gpus_per_worker else 1
        # the batch numbers, put in the object store from here: a read task would wait for a CPU the actors hold
        # (several blocks: a block goes to one actor at a time)
        blocks = np.array_split(np.arange(batches, dtype=np.int64), min(batches, workers * 4))
        source = ray.data.from_numpy(blocks)  # column "data"; renaming it would be a task of its own
        results = source.map_batches(
            CaptureWorker,
            fn_constructor_kwargs={
                "run_path": str(run.path),
                "trusted": run.trust_model_code,
                "out_dir": str(out_dir),
                "size": batch,
                "device": "cuda" if gpus_per_worker else ("cpu" if device == "auto" else device),
                "layers": [info.to_dict() for info in run.layers],
            },
            batch_size=1,
            concurrency=workers,
            num_cpus=cpus_each,
            num_gpus=gpus_per_worker or None,
            max_restarts=RETRIES,
            max_task_retries=RETRIES,
            batch_format="numpy",
        )
        merged: set[int] = set()
        pids: set[int] = set()
        progress("capture", 0, n)
        for row in results.iter_rows():
            b = int(row["batch"])
            pids.add(int(row["pid"]))
            if b in merged:  # a retried batch whose first result also arrived
                continue
            merged.add(b)
            for name, accumulator in collector.accumulators.items():
                positions = row.get(f"{name}|positions")
                part = TopK(row[f"{name}|values"], row[f"{name}|indices"], positions)
                accumulator.merge(part, int(row[f"{name}|width"]), min(batch, n - b * batch))
            progress("capture", min(len(merged) * batch, n), n)
        if len(merged) != batches:
            raise LayerscopeError(f"the Ray capture returned {len(merged)} of {batches} batches; run it again.")
        extra = {
            "workers": workers,
            "worker_processes": len(pids),
            "gpus_per_worker": gpus_per_worker,
            "cluster_cpus": cpus,
            **({"address": address} if address else {}),
        }
        return files, extra
    finally:
        if started:
            ray.shutdown()
