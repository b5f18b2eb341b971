"""Server-side state of the dashboard: the Run's arrays, cached views of them, and background projection jobs.

Everything here is read-only once built and shared by all requests; the browser only ever receives indices and
small figures. Large arrays stay memory-mapped from the Run directory.
"""

from __future__ import annotations

import base64
import io
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

import numpy as np
from PIL import Image

from layerscope.analysis import class_means, confusion, layer_values, predictions
from layerscope.projections.compute import METHODS, compute_projection
from layerscope.run import Run

__all__ = ["DashboardState", "Job"]


@dataclass
class Job:
    """A projection computing in the background."""

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
        # class-mean images: the proxy instances of the report (section 5.3.2)
        means = np.zeros((len(self.class_names), *self.images.shape[1:]), np.float64)
        for k in range(len(self.class_names)):
            means[k] = self.images[self.labels == k].mean(0) if (self.labels == k).any() else 0
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

    @lru_cache(maxsize=32)  # noqa: B019 - one state per app, lives as long as the server
    def projection(self, layer: str, method: str) -> np.ndarray:
        return np.asarray(self.run.projection(layer, method), dtype=np.float32)

    def projection_meta(self, layer: str, method: str) -> dict[str, Any]:
        return self.run.projection_meta(layer, method) or {}

    def start_projection(self, layer: str, method: str) -> Job:
        """Compute a missing projection in a background thread (one at a time); returns its job."""
        if method not in METHODS:
            raise ValueError(method)
        key = (layer, method)
        with self._lock:
            job = self.jobs.get(key)
            if job is not None and (not job.finished or job.error is None):
                return job
            job = Job(layer, method)
            self.jobs[key] = job

        def progress(task: str, done: int, total: int) -> None:
            job.task, job.done, job.total = task, done, total

        def work() -> None:
            try:
                compute_projection(Run(self.run.path), layer, method, progress=progress)
                self.run = Run(self.run.path)  # re-read the manifest with the new projection
            except Exception as e:  # shown in the panel; the page stays usable
                job.error = f"{type(e).__name__}: {e}"
            finally:
                job.finished = True

        self._pool.submit(work)
        return job

    # -- activations ----------------------------------------------------------------------------------------------
    @lru_cache(maxsize=16)  # noqa: B019
    def class_means(self, layer: str) -> np.ndarray:
        return class_means(self.run, layer)

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
        split = "train" if self.split[index] == 0 else "test"
        return f"{split}-{index}"
