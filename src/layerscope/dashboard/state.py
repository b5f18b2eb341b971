"""Server-side state of the dashboard: the Run's arrays, cached views of them, and background projection jobs.

Everything here is read-only once built and shared by all requests; the browser only ever receives indices and
small figures. Large arrays stay memory-mapped from the Run directory.
"""

from __future__ import annotations

import base64
import io
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from functools import cached_property, lru_cache
from typing import Any

import numpy as np
import torch
from PIL import Image
from torch import nn

from layerscope.analysis import class_means, confusion, layer_values, predictions
from layerscope.attribution import guided_backprop
from layerscope.capture import layer_outputs
from layerscope.dashboard.unit_figures import signed_png, tile
from layerscope.featurevis import FeatureVis, cached_featurevis, unit_featurevis
from layerscope.interop.seed_json import FILE_METHOD
from layerscope.network import Connection, IncomingWeights, channel_edges, connections, incoming_weights
from layerscope.progress import ProgressFn
from layerscope.projections.compute import METHODS, compute_projection
from layerscope.receptive import ReceptiveField, receptive_field
from layerscope.run import Run
from layerscope.topk import TopK, store_topk

__all__ = ["DashboardState", "Job"]

WorkFn = Callable[[ProgressFn], object]


@dataclass
class Job:
    """Work in the background: a projection (layer, method), a feature visualisation (layer, "unit 7"), top-k."""

    layer: str
    method: str
    done: int = 0
    total: int = 1
    task: str = "queued"
    error: str | None = None
    finished: bool = False
    shown: bool = False  # the panel has redrawn since the job finished

    @property
    def percent(self) -> int:
        return int(100 * self.done / max(self.total, 1))


@dataclass(eq=False)  # hashed by identity: its methods are lru-cached
class DashboardState:
    run: Run
    jobs: dict[tuple[str, str], Job] = field(default_factory=dict)
    unit_jobs: dict[tuple[str, str], Job] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.labels = np.asarray(self.run.labels)
        self.split = np.asarray(self.run.split)
        self.predicted, self.confidence = predictions(self.run)
        self.probs = self.run.probs
        self.images = self.run.images  # (N, C, H, W) uint8, memory-mapped
        self.class_names = self.run.class_names
        self.n = len(self.labels)
        self.wrong = self.predicted != self.labels
        self.confusion = confusion(self.run)
        self._lock = threading.Lock()
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="layerscope-projection")
        self._unit_pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="layerscope-units")
        # forward hooks are per module: requests that run the shared model take turns
        self._model_lock = threading.Lock()
        self.names = np.asarray(self.run.names)
        self.has_model = self.run.has_model
        self.has_probabilities = self.run.manifest["dataset"].get("probabilities", "model") != "none"
        self.aggregates = self.run.aggregates
        # class-mean images: the proxy instances of the report (section 5.3.2); a file's own averages when it has them
        means = np.zeros((len(self.class_names), *self.images.shape[1:]), np.float64)
        for k in range(len(self.class_names)):
            own = self.aggregates.of_class(k) if self.aggregates is not None else None
            if own is not None:
                means[k] = self.aggregates.images[own]  # type: ignore[union-attr]
            elif (self.labels == k).any():
                means[k] = np.rint(self.images[self.labels == k].mean(0))
        self.mean_images = means.astype(np.uint8)

    # -- layers and projections --------------------------------------------------------------------------------
    @property
    def layers(self) -> list[str]:
        return self.run.layer_names

    @property
    def activation_layers(self) -> list[str]:
        return [info.name for info in self.run.layers if info.kind in ("dense", "conv")]

    def available(self, layer: str, method: str) -> bool:
        return self.run.projection_meta(layer, method) is not None

    def computable(self, layer: str) -> bool:
        """Whether projections of ``layer`` can be computed here: its values are stored, or the model recomputes
        them (a layer an NN_data.json file only projects has neither)."""
        kind = self.run.layer(layer).kind
        return kind in ("image", "dense") or (kind == "conv" and self.has_model)

    def methods(self, layer: str) -> list[str]:
        """The projection methods that can be shown for ``layer``: a file's own, then those layerscope computes."""
        own = [FILE_METHOD] if self.available(layer, FILE_METHOD) else []
        return own + (list(METHODS) if self.computable(layer) else [])

    @lru_cache(maxsize=32)  # noqa: B019
    def projected(self, layer: str, method: str) -> np.ndarray:
        """(N,) bool: the images the projection places (a file's projection may cover some instances only)."""
        return np.isfinite(self.projection(layer, method)).all(1)

    @lru_cache(maxsize=32)  # noqa: B019 - one state per app, lives as long as the server
    def projection(self, layer: str, method: str) -> np.ndarray:
        return np.asarray(self.run.projection(layer, method), dtype=np.float32)

    def projection_meta(self, layer: str, method: str) -> dict[str, Any]:
        return self.run.projection_meta(layer, method) or {}

    def _start(
        self, jobs: dict[tuple[str, str], Job], pool: ThreadPoolExecutor, key: tuple[str, str], work: WorkFn
    ) -> Job:
        """Run ``work(progress)`` in ``pool`` unless it is running or has succeeded; returns its job."""
        with self._lock:
            job = jobs.get(key)
            if job is not None and (not job.finished or job.error is None):
                return job
            job = Job(*key)
            jobs[key] = job

        def progress(task: str, done: int, total: int) -> None:
            job.task, job.done, job.total = task, done, total

        def run() -> None:
            try:
                work(progress)
                self.run = Run(self.run.path)  # re-read the manifest with what the work added
            except Exception as e:  # shown where the result would be; the page stays usable
                job.error = f"{type(e).__name__}: {e}"
            finally:
                job.finished = True

        pool.submit(run)
        return job

    def start_projection(self, layer: str, method: str) -> Job:
        """Compute a missing projection in a background thread (one at a time); returns its job."""
        if method not in METHODS:
            raise ValueError(method)
        return self._start(
            self.jobs,
            self._pool,
            (layer, method),
            lambda progress: compute_projection(Run(self.run.path), layer, method, progress=progress),
        )

    # -- activations ----------------------------------------------------------------------------------------------
    @lru_cache(maxsize=16)  # noqa: B019
    def class_means(self, layer: str) -> np.ndarray:
        """(K, units) the "average k" rows: a file's own average instance where it has one, else the class mean."""
        means = class_means(self.run, layer)
        own = self.aggregates.activations.get(layer) if self.aggregates is not None else None
        if own is not None:
            for k in range(len(means)):
                i = self.aggregates.of_class(k)  # type: ignore[union-attr]
                if i is not None and np.isfinite(own[i]).all():
                    means[k] = own[i]
        return means

    def values(self, layer: str) -> np.ndarray:
        return layer_values(self.run, layer)

    # -- images ----------------------------------------------------------------------------------------------------
    def image_array(self, key: int | str) -> np.ndarray:
        """(H, W) or (H, W, 3) uint8 of image ``key``: an index, or "mean:k" for class k's mean image."""
        if isinstance(key, str) and key.startswith("mean:"):
            image = self.mean_images[int(key.split(":")[1])]
        else:
            image = self.images[int(key)]
        return image[0] if image.shape[0] == 1 else image.transpose(1, 2, 0)

    @lru_cache(maxsize=20_000)  # noqa: B019
    def thumbnail(self, key: int | str, size: int = 56) -> str:
        """A data-URI PNG of image ``key``, scaled to ``size`` pixels with sharp pixels."""
        image = Image.fromarray(self.image_array(key)).resize((size, size), Image.Resampling.NEAREST)
        buffer = io.BytesIO()
        image.save(buffer, format="PNG", optimize=False)
        return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")

    def name(self, index: int) -> str:
        return str(self.names[index])

    # -- inside the network: the model itself ----------------------------------------------------------------------
    @cached_property
    def model(self) -> nn.Module:
        """The Run's model on the CPU, loaded on first use (the page works without it until then)."""
        return self.run.load_model("cpu")

    @property
    def conv_layers(self) -> list[str]:
        return [info.name for info in self.run.layers if info.kind == "conv"]

    def pixels(self, key: int | str) -> torch.Tensor:
        """(1, C, H, W) float32 in [0, 1] of image ``key`` (an index or "mean:k"), as the model sees it."""
        if isinstance(key, str) and key.startswith("mean:"):
            image = self.mean_images[int(key.split(":")[1])]
        else:
            image = self.images[int(key)]
        return torch.from_numpy(np.asarray(image, dtype=np.float32) / 255.0)[None]

    @lru_cache(maxsize=64)  # noqa: B019
    def feature_maps(self, key: int | str) -> dict[str, np.ndarray]:
        """Every conv layer's full output for one image, {layer: (C, H, W)}: recomputed, never stored."""
        with self._model_lock:
            outputs = layer_outputs(self.model, self.pixels(key), self.conv_layers)
        return {name: outputs[name][0].float().numpy() for name in self.conv_layers}

    @cached_property
    def connections(self) -> dict[str, Connection]:
        """The connection into each layer, keyed by the layer it ends in."""
        with self._model_lock:
            return {c.dst: c for c in connections(self.model, self.run.layers)}

    def edges(self, layer: str) -> np.ndarray | None:
        """(units of ``layer``, units of the layer before) signed weights, or None when they cannot be shown."""
        connection = self.connections.get(layer)
        return None if connection is None or connection.kind == "none" else channel_edges(connection)

    @lru_cache(maxsize=16)  # noqa: B019
    def kernel_thumbs(self, layer: str) -> tuple[str, ...] | None:
        """Per output channel of a conv layer, its kernels tiled (one per input channel) as a signed PNG."""
        connection = self.connections.get(layer)
        if connection is None or connection.kind != "conv":
            return None
        weight = np.asarray(connection.weight)  # (C_out, C_in, kh, kw)
        scale = max(1, 48 // (int(np.ceil(np.sqrt(weight.shape[1]))) * (weight.shape[2] + 1)))
        return tuple(signed_png(tile(w), scale) for w in weight)

    def incoming(self, layer: str, unit: int) -> IncomingWeights:
        with self._model_lock:
            return incoming_weights(self.model, self.run.layers, layer, unit)

    @lru_cache(maxsize=16)  # noqa: B019
    def unit_values(self, layer: str) -> np.ndarray:
        """(N, units) each unit's activation per image: dense values, conv spatial maxima (as top-k ranks them)."""
        return layer_values(self.run, layer, "max")

    @lru_cache(maxsize=16)  # noqa: B019
    def unit_class_means(self, layer: str) -> np.ndarray:
        return class_means(self.run, layer, "max")

    @lru_cache(maxsize=16)  # noqa: B019
    def receptive_field(self, layer: str) -> ReceptiveField:
        with self._model_lock:
            return receptive_field(self.model, layer, tuple(self.images.shape[1:]))

    @lru_cache(maxsize=256)  # noqa: B019
    def guided(self, key: int | str, layer: str, unit: int, method: str) -> np.ndarray:
        """(C, H, W) guided backprop ("guided") or deconvolution ("deconv") of one unit for image ``key``."""
        with self._model_lock:
            return guided_backprop(self.model, self.pixels(key)[0], layer, unit, method=method)

    # -- inside the network: results computed in the background and kept in the Run -------------------------------
    def topk(self, layer: str) -> TopK | None:
        """The top images of every unit of ``layer``, or None while they are computed (started on first ask)."""
        if layer in self.run.manifest.get("topk", {}).get("layers", []):
            return self._topk(layer)
        self._start(
            self.unit_jobs, self._unit_pool, ("*", "topk"), lambda p: store_topk(Run(self.run.path), progress=p)
        )
        return None

    @lru_cache(maxsize=16)  # noqa: B019
    def _topk(self, layer: str) -> TopK:
        return self.run.topk(layer)

    def featurevis(self, layer: str, unit: int) -> FeatureVis | None:
        """The unit's feature visualisation, or None while it is computed (started on first ask)."""
        cached = cached_featurevis(self.run, layer, unit)
        if cached is not None:
            return cached

        def work(progress: ProgressFn) -> None:
            # a model of its own: optimisation takes seconds and must not hold the shared model's lock
            unit_featurevis(Run(self.run.path), layer, unit, model=self.run.load_model("cpu"), progress=progress)

        self._start(self.unit_jobs, self._unit_pool, (layer, f"unit {unit}"), work)
        return None

    def unit_job(self, layer: str, what: str) -> Job | None:
        return self.unit_jobs.get((layer, what))

    @property
    def units_busy(self) -> bool:
        return any(not job.finished for job in self.unit_jobs.values())
