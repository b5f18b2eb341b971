"""The Ray engine of `layerscope.engine.capture_run`: forward passes on a pool of Ray Data actors that write their rows
into a compressed Zarr array by image index (`layerscope.staging`) and send back only each block's top-k per unit and
sums; the driver copies the rows into the Run's arrays at the end. And of a projection past its fitted sample
(`layerscope.projections.compute`): the other images placed by the fitted method's ``transform`` in Ray tasks.

Ray and Zarr are an optional extra (``pip install 'layerscope[ray]'``); nothing here is imported without them.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

import numpy as np

from layerscope.capture import iter_layer_batches, write_outputs
from layerscope.errors import LayerscopeError
from layerscope.progress import ProgressFn
from layerscope.run import Run
from layerscope.staging import BatchRows, StagedRows, copy_rows, create_rows
from layerscope.stats import LAYER_SUMS_PARTS, LayerSums, SumsCollector
from layerscope.topk import DEFAULT_K, TopK, TopKCollector

__all__ = ["capture_with_ray", "place_with_ray"]


class CaptureWorker:
    """A Ray Data actor: the Run's model, and the staged array to write rows into (`layerscope.staging`: a batch
    is one of its chunks). Called with a block of batch
    numbers (``{"data": [b, b + 1, ...]}``, consecutive), it captures images ``b * size`` to ``(b + 1) * size`` of
    each (the batches of a local capture, so the two give the same numbers) and returns one row: the block's top-k
    per unit and its sums (`layerscope.stats`). Per block, not per batch: a dense layer's X^T X is D x D floats
    whatever the rows, as many bytes as 2D / (rows of the block) times the block's activations."""

    def __init__(self, run_path: str, trusted: bool, rows: str, size: int, device: str) -> None:
        from layerscope.training import resolve_device

        self.run = Run(run_path, trust_model_code=trusted)
        self.device = resolve_device(device)
        self.model = self.run.load_model(self.device)
        self.dataset = self.run.dataset()
        self.layers = self.run.layers
        self.names = [info.name for info in self.layers if info.kind != "image"]
        self.rows = BatchRows(Path(rows))
        self.size = size
        self.labels = np.asarray(self.run.labels)
        # a conv map's width, which turns top-k (y, x) positions back into the accumulator's y * W + x
        self.widths = {info.name: info.shape[2] for info in self.layers if info.kind == "conv"}

    def __call__(self, rows: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        n = self.run.n_images
        numbers = np.asarray(rows["data"], dtype=np.int64)
        indices = np.concatenate([np.arange(b * self.size, min((b + 1) * self.size, n)) for b in numbers])
        batches = iter_layer_batches(
            self.model, self.dataset, self.names, indices, self.size, self.device, stop_early=False
        )
        topk = TopKCollector(self.names, DEFAULT_K)
        sums = SumsCollector(self.layers, self.labels, self.dataset.num_classes)
        for batch, outputs in batches:
            write_outputs(self.rows.batch(int(batch[0]), int(batch[-1]) + 1), self.layers, batch, outputs)
            self.rows.write()  # one compressed chunk of the staged array
            topk(batch, outputs)
            sums(batch, outputs)
        # one row: the block's top-k per unit and its sums, merged on the driver
        out: dict[str, Any] = {"first": numbers[0], "batches": len(numbers), "images": len(indices), "pid": os.getpid()}
        for name, part in topk.result().items():
            out[f"{name}|width"] = self.widths.get(name, 0)
            for key, value in _parts(part).items():
                out[f"{name}|{key}"] = value
        for name, layer_sums in sums.sums.items():
            for key, value in layer_sums.parts().items():
                out[f"{name}|sums|{key}"] = value
        return {key: np.asarray(value)[None] for key, value in out.items()}


def _parts(topk: TopK) -> dict[str, np.ndarray]:
    parts = {"values": topk.values, "indices": topk.indices}
    if topk.positions is not None:
        parts["positions"] = topk.positions
    return parts


def _bytes(path: Path) -> int:
    """What the staged array takes on disk: its chunks, compressed."""
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())


def _reason(error: BaseException) -> str:
    """What went wrong in a worker, in a line: the exception it raised (a ``RayTaskError``'s cause), else the last
    line of the traceback Ray reports."""
    cause = getattr(error, "cause", None)
    if isinstance(cause, BaseException):
        return f"{type(cause).__name__}: {str(cause).strip().splitlines()[0] if str(cause).strip() else ''}"
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    return lines[-1] if lines else type(error).__name__


def _connect(address: str | None) -> bool:
    """Join the cluster at ``address`` (or the one this process runs in); else start one on this machine. Whether
    it was started here (and is shut down after)."""
    try:
        import ray
        import zarr  # noqa: F401  (the workers' staged rows)
    except ImportError as e:
        raise LayerscopeError(
            f"the Ray engine needs Ray and Zarr ({e}): pip install 'layerscope[ray]' (or capture with --engine local)."
        ) from e
    if ray.is_initialized():
        return False
    # Ray's C++ core logs to this process's stderr, e.g. that an actor pool's constructor arguments are in the object
    # store, which its restarts depend on (Ray Data's own wrapping, ray-project/ray#53727): not a layerscope user's
    # concern, and what fails is reported in one line anyway. RAY_BACKEND_LOG_LEVEL=info brings them back.
    os.environ.setdefault("RAY_BACKEND_LOG_LEVEL", "fatal")
    kwargs: dict[str, Any] = {"include_dashboard": False, "log_to_driver": False, "logging_level": "WARNING"}
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
    staging: Path,
    batch: int,
    collector: TopKCollector,
    sums: SumsCollector,
    address: str | None,
    workers: int | None,
    gpus_per_worker: float,
    device: str,
    progress: ProgressFn,
) -> tuple[list[str], dict[str, Any]]:
    """Capture ``run`` into ``out_dir`` on a Ray actor pool, its workers writing their rows into a Zarr array in
    ``staging`` (an empty directory they all see), copied into ``out_dir``'s ``.npy`` files once every batch is in;
    merge each block's top-k into ``collector`` and its sums into ``sums``. Returns the files written (by the Run's
    names) and what the manifest records of the engine."""
    # Ray's tqdm replaces builtins.print for good the first time it draws a bar in this process, which breaks
    # numba's compilation of code that prints (pynndescent's) later in the same process
    os.environ.setdefault("RAY_TQDM_PATCH_PRINT", "0")
    started = _connect(address)
    import builtins
    import logging

    import ray
    import ray.data  # sets up Ray Data's loggers, which the next line quietens

    # layerscope draws its own progress bar; Ray Data's would interleave with it (and says so once turned off)
    logging.getLogger("ray.data").setLevel(logging.ERROR)
    context = ray.data.DataContext.get_current()
    context.enable_progress_bars = False
    context.use_ray_tqdm = False
    printer = builtins.print

    try:
        n = run.n_images
        dataset = run.dataset()
        rows = staging / "rows.zarr"
        create_rows(rows, run.layers, n, dataset.num_classes, batch)
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
        # (a block is one actor call: its results come back, and a restarted worker runs it again, whole)
        blocks = np.array_split(np.arange(batches, dtype=np.int64), min(batches, max(workers * 8, batches // 8)))
        source = ray.data.from_numpy(blocks)  # column "data"; renaming it would be a task of its own
        results = source.map_batches(
            CaptureWorker,
            fn_constructor_kwargs={
                "run_path": str(run.path),
                "trusted": run.trust_model_code,
                "rows": str(rows),
                "size": batch,
                "device": "cuda" if gpus_per_worker else ("cpu" if device == "auto" else device),
            },
            batch_size=None,  # a whole block of batch numbers per call
            concurrency=workers,
            num_cpus=cpus_each,
            num_gpus=gpus_per_worker or None,
            batch_format="numpy",
        )
        merged: set[int] = set()
        pids: set[int] = set()
        progress("capture", 0, n)
        start, first, done, images = time.perf_counter(), None, 0, 0
        try:
            for row in results.iter_rows():
                first = first if first is not None else time.perf_counter() - start
                block = int(row["first"])
                pids.add(int(row["pid"]))
                if block in merged:  # a retried block whose first result also arrived
                    continue
                merged.add(block)
                done += int(row["batches"])
                seen = int(row["images"])
                for name, accumulator in collector.accumulators.items():
                    part = TopK(row[f"{name}|values"], row[f"{name}|indices"], row.get(f"{name}|positions"))
                    accumulator.merge(part, int(row[f"{name}|width"]), seen)
                merging = time.perf_counter()
                sums.merge(
                    {
                        name: LayerSums.from_parts({key: row[f"{name}|sums|{key}"] for key in LAYER_SUMS_PARTS})
                        for name in sums.sums
                    }
                )
                sums.seconds += time.perf_counter() - merging
                images += seen
                progress("capture", images, n)
        except ray.exceptions.RayError as e:
            raise LayerscopeError(f"the Ray capture failed: {_reason(e)}") from e
        if done != batches:
            raise LayerscopeError(f"the Ray capture returned {done} of {batches} batches; run it again.")
        staged = StagedRows(rows)
        staged.check_complete()
        copying = time.perf_counter()
        files = copy_rows(staged, out_dir, run.layers, dataset.num_classes)
        copied = time.perf_counter() - copying
        extra = {
            "workers": workers,
            "worker_processes": len(pids),
            "gpus_per_worker": gpus_per_worker,
            "cluster_cpus": cpus,
            # the actors' start (import, model, first forward pass) and the first block's batches
            "first_result_seconds": round(first or 0.0, 3),
            # the staged rows copied into the Run's arrays, on the driver
            "copy_seconds": round(copied, 3),
            "staged_bytes": _bytes(rows),
            **({"address": address} if address else {}),
        }
        return files, extra
    finally:
        builtins.print = printer
        if started:
            ray.shutdown()


def _place(model: Any, rows: np.ndarray) -> np.ndarray:
    """A Ray task: ``rows`` placed by the fitted ``model``'s transform, (n, 2) float32."""
    return np.asarray(model.transform(rows), dtype=np.float32)


def place_with_ray(
    model: Any,
    x: np.ndarray,
    rows: np.ndarray,
    chunk: int,
    address: str | None,
    progress: ProgressFn,
    label: str,
) -> np.ndarray:
    """Rows ``rows`` of ``x`` placed by ``model.transform`` (a t-SNE or UMAP fitted on a sample), ``chunk`` rows a
    Ray task on the cluster at ``address`` (or one started on this machine): (len(rows), 2) float32 in their order.
    The fitted model goes to the object store once; each task gets its rows and sends back their 2-D places, so the
    driver holds what it held before, the layer's projection input and the embedding."""
    import ray
    from ray.exceptions import RayError

    started = _connect(address)
    try:
        model_ref = ray.put(model)
        task = ray.remote(num_cpus=1, max_retries=2)(_place)
        parts = {}
        for start in range(0, len(rows), chunk):
            part = np.arange(start, min(start + chunk, len(rows)))
            parts[task.remote(model_ref, np.ascontiguousarray(x[rows[part]]))] = part
        placed = np.empty((len(rows), 2), np.float32)
        pending, done = list(parts), 0
        progress(label, 0, len(rows))
        while pending:
            ready, pending = ray.wait(pending, num_returns=1)
            for ref in ready:
                placed[parts[ref]] = ray.get(ref)
                done += len(parts[ref])
                progress(label, done, len(rows))
        return placed
    except RayError as e:
        raise LayerscopeError(f"placing the images on Ray failed: {_reason(e)}") from None
    finally:
        if started:
            ray.shutdown()
