"""Server-side state of the dashboard: the Run's arrays, cached views of them, and background projection jobs.

Everything here but the drawings is read-only once built and shared by all requests; the browser only ever receives
indices and small figures. Large arrays stay memory-mapped from the Run directory. Drawings are each page's own: they
live in the page's `Scratch` (session.py), which ``drawings``, ``drawing_outputs`` and ``drawing_probs`` resolve for
the request being answered.
"""

from __future__ import annotations

import base64
import io
import re
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from functools import cached_property, lru_cache
from typing import Any

import numpy as np
import torch
from PIL import Image
from torch import nn

from layerscope.ablation import Ablation, AblationResult, evaluate_ablation, predict_ablated
from layerscope.analysis import class_mean_images, class_means, confusion, layer_values, predictions, unit_summary
from layerscope.attribution import (
    Attribution,
    RandomisationStep,
    attribute,
    gradcam_layers,
    guided_backprop,
    randomisation_check,
)
from layerscope.capture import layer_outputs
from layerscope.dashboard.session import MAX_KEPT, Scratch, Sessions
from layerscope.dashboard.unit_figures import signed_png, tile
from layerscope.drawing import NeighbourIndex
from layerscope.errors import LayerscopeError
from layerscope.featurevis import FeatureVis, cached_featurevis, unit_featurevis
from layerscope.interop.seed_json import FILE_METHOD
from layerscope.names import check_index
from layerscope.network import Connection, IncomingWeights, channel_edges, connections, incoming_weights
from layerscope.progress import Cancelled, ProgressFn, stoppable
from layerscope.projections.compute import METHODS, compute_pca, compute_projection
from layerscope.projections.place import PLACEABLE, Placement, check_placement, fit_placement
from layerscope.receptive import ReceptiveField, receptive_field
from layerscope.run import Run
from layerscope.topk import TopK, store_topk

__all__ = ["LIVE", "MAX_VERSION", "DashboardState", "Job", "check_version", "is_drawing"]

LIVE = "draw:live"  # the image key of the digit being drawn
MAX_VERSION = 2**53  # stroke versions are a browser's numbers (assets/draw.js counts from Date.now()): exact below this
_MEAN_KEY = re.compile(r"mean:(\d{1,9})")
_DRAWING_KEY = re.compile(r"draw:(live|\d{1,9})")


def is_drawing(key: Any) -> bool:
    """Whether an image key names a drawn digit ("draw:live", "draw:1", ...) rather than a dataset image."""
    return isinstance(key, str) and key.startswith("draw:")


def check_version(value: Any) -> int:
    """A stroke version from a request: a whole number from 0 below ``MAX_VERSION``, else a one-line
    ``LayerscopeError``. Why bounded: the live drawing ignores strokes older than the newest version it has shown, so
    one absurd version (10**30) would make every later stroke on that page (or of every client without a session)
    "stale" until the server restarts."""
    if isinstance(value, bool) or not isinstance(value, int):
        kind = type(value).__name__
        raise LayerscopeError(f"the stroke version is a {kind}; give a whole number from 0 to 2**53 - 1.")
    if not 0 <= value < MAX_VERSION:
        shown = str(value) if len(str(value)) <= 40 else f"of {len(str(value))} digits"
        raise LayerscopeError(f"the stroke version {shown} is out of range: give one from 0 to 2**53 - 1.")
    return value


WorkFn = Callable[[ProgressFn], object]


@dataclass(eq=False)  # hashed by identity: a page's Scratch remembers the jobs it has shown
class Job:
    """Work in the background: a projection (layer, method), a feature visualisation (layer, "unit 7"), top-k."""

    layer: str
    method: str
    done: int = 0
    total: int = 1
    task: str = "queued"
    error: str | None = None
    finished: bool = False
    ended: float = 0.0  # time.monotonic() when it finished: a page opened later has nothing to wait for
    cancel: bool = False  # asked to stop: the next progress report stops it (progress.stoppable)
    cancelled: bool = False  # it stopped on request (then `error` says so too)
    task_started: float = field(default_factory=time.monotonic)  # when `task` began, for its ETA

    @property
    def percent(self) -> int:
        return int(100 * self.done / max(self.total, 1))

    def report(self, task: str, done: int, total: int) -> None:
        """A progress report (``ProgressFn``): a new task restarts the clock its ETA is measured on."""
        if task != self.task:
            self.task_started = time.monotonic()
        self.task, self.done, self.total = task, done, total

    @property
    def eta(self) -> float | None:
        """Seconds left in the current task at its pace so far; None until a tenth of it is done (too early to say)."""
        if self.finished or self.total <= 0 or self.done < 0.1 * self.total or self.done >= self.total:
            return None
        elapsed = time.monotonic() - self.task_started
        return elapsed / self.done * (self.total - self.done)

    def describe(self) -> str:
        """ "42% (tsne), about 1 min 10 s left" for a status line."""
        text = f"{self.percent}% ({self.task})"
        eta = self.eta
        if eta is not None:
            text += f", about {_duration(eta)} left"
        return text


def _duration(seconds: float) -> str:
    """12 s, 1 min 5 s, 1 h 3 min."""
    s = int(round(seconds))
    if s < 60:
        return f"{s} s"
    if s < 3600:
        return f"{s // 60} min {s % 60} s"
    return f"{s // 3600} h {s % 3600 // 60} min"


def _uint8(digit: np.ndarray) -> np.ndarray:
    """A drawn digit, floats in [0, 1], as the uint8 image it is kept as."""
    return np.round(np.clip(digit, 0, 1) * 255).astype(np.uint8)


@dataclass(eq=False)  # hashed by identity: its methods are lru-cached
class DashboardState:
    run: Run
    jobs: dict[tuple[str, str], Job] = field(default_factory=dict)
    unit_jobs: dict[tuple[str, str], Job] = field(default_factory=dict)
    device: str = "cpu"  # where work over the whole dataset runs; one image at a time stays on the CPU

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
        means = class_mean_images(self.images, self.labels, len(self.class_names))
        for k in range(len(self.class_names)):
            own = self.aggregates.of_class(k) if self.aggregates is not None else None
            if own is not None:
                means[k] = self.aggregates.images[own]  # type: ignore[union-attr]
        self.mean_images = means
        # each page's drawings and what it has shown (session.py); the Run's results are everyone's
        self.sessions = Sessions()
        self.draw_jobs: dict[tuple[str, str], Job] = {}

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

        def run() -> None:
            try:
                work(stoppable(job.report, lambda: job.cancel))
                self.run = self.run.reopen()  # re-read the manifest with what the work added
            except Cancelled:
                job.cancelled, job.error = True, "cancelled"
            except Exception as e:  # shown where the result would be; the page stays usable
                job.error = f"{type(e).__name__}: {e}"
            finally:
                job.ended = time.monotonic()
                job.finished = True

        pool.submit(run)
        return job

    def cancel_projection(self, layer: str, method: str) -> bool:
        """Ask the running projection (layer, method) to stop; False when none runs. A projection belongs to the Run,
        so every page waiting on it sees it stopped (and may start it again)."""
        job = self.jobs.get((layer, method))
        if job is None or job.finished:
            return False
        job.cancel = True
        return True

    def start_projection(self, layer: str, method: str) -> Job:
        """Compute a missing projection in a background thread (one at a time); returns its job."""
        if method not in METHODS:
            raise ValueError(method)
        return self._start(
            self.jobs,
            self._pool,
            (layer, method),
            lambda progress: compute_projection(
                self.run.reopen(), layer, method, device=self.device, progress=progress
            ),
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
    def image_key(self, key: Any) -> int | str:
        """``key`` if it names an image this page has: an index 0 .. N - 1, "mean:k" for a class k, the live drawing
        or a kept one ("draw:N"); else a one-line ``LayerscopeError``. Requests name images with such keys, and an
        index of -1 must not quietly show the last image."""
        if isinstance(key, np.integer):
            key = int(key)
        if isinstance(key, str):
            mean = _MEAN_KEY.fullmatch(key)
            if mean is not None:
                return f"mean:{check_index(int(mean.group(1)), len(self.class_names), 'class')}"
            if _DRAWING_KEY.fullmatch(key) and (key == LIVE or key in self.drawings):
                return key
            shown = repr(key) if len(key) <= 40 else repr(key[:37] + "...")
            raise LayerscopeError(f"there is no image {shown}; choose one in the gallery or a projection.")
        return check_index(key, self.n, "image index")

    def image_array(self, key: int | str) -> np.ndarray:
        """(H, W) or (H, W, 3) uint8 of image ``key``: an index, "mean:k" for class k's mean image, or a drawing."""
        key = self.image_key(key)
        if is_drawing(key):
            return self.drawing_image(str(key))
        if isinstance(key, str) and key.startswith("mean:"):
            image = self.mean_images[int(key.split(":")[1])]
        else:
            image = self.images[int(key)]
        return image[0] if image.shape[0] == 1 else image.transpose(1, 2, 0)

    def thumbnail(self, key: int | str, size: int = 56) -> str:
        """A data-URI PNG of image ``key``, scaled to ``size`` pixels with sharp pixels."""
        key = self.image_key(key)  # a drawing is the page's own: never cached across pages
        return self._thumbnail(key, size) if not is_drawing(key) else self._thumbnail.__wrapped__(self, key, size)

    @lru_cache(maxsize=20_000)  # noqa: B019
    def _thumbnail(self, key: int | str, size: int = 56) -> str:
        image = Image.fromarray(self.image_array(key)).resize((size, size), Image.Resampling.NEAREST)
        buffer = io.BytesIO()
        image.save(buffer, format="PNG", optimize=False)
        return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")

    def name(self, index: int | str) -> str:
        index = self.image_key(index)
        if is_drawing(index):
            return "your drawing" if index == LIVE else f"drawing {str(index).split(':')[1]}"
        return str(self.names[int(index)])

    # -- drawn digits: the page's own ----------------------------------------------------------------------------------
    @property
    def scratch(self) -> Scratch:
        """The scratch of the page whose request is being answered (`Sessions.current`)."""
        return self.sessions.current()

    @property
    def drawings(self) -> dict[str, np.ndarray]:
        """This page's drawn digits ("draw:live" while drawing, "draw:1", ... once kept): (H, W) uint8 as MNIST made
        its digits."""
        return self.scratch.drawings

    @property
    def drawing_outputs(self) -> dict[str, dict[str, np.ndarray]]:
        """Every layer's full output for each of this page's drawings."""
        return self.scratch.outputs

    @property
    def drawing_probs(self) -> dict[str, np.ndarray]:
        return self.scratch.probs

    def drawing_image(self, key: str) -> np.ndarray:
        """(H, W) uint8 of a drawing; an empty field once the live drawing is cleared."""
        image = self.scratch.drawings.get(key)
        return image if image is not None else np.zeros(self.images.shape[2:], np.uint8)

    def set_drawing(self, key: str, digit: np.ndarray | None) -> None:
        """Store drawing ``key`` ((H, W) float in [0, 1], or None to drop it) with every layer's output for it."""
        scratch = self.scratch
        if digit is None:
            for table in (scratch.drawings, scratch.outputs, scratch.probs):
                table.pop(key, None)
            return
        image = _uint8(digit)
        x = torch.from_numpy(image.astype(np.float32) / 255.0)[None, None]
        with self._model_lock:
            outputs = layer_outputs(self.model, x, self.layers)
            with torch.inference_mode():
                logits = self.model(x)
        scratch.outputs[key] = {name: value[0].numpy() for name, value in outputs.items()}
        scratch.probs[key] = torch.softmax(logits.float(), dim=1)[0].numpy()
        scratch.drawings[key] = image

    def set_live(self, digit: np.ndarray | None, version: int) -> bool:
        """`set_drawing` of the live drawing, unless a newer stroke version already set it: the Draw panel's fast
        path and its Dash callback both set it, and a slow request must not bring back strokes undone since.
        Returns whether the live drawing is now ``digit``; a ``version`` that is not one (`check_version`) is a
        one-line ``LayerscopeError``."""
        version = check_version(version)
        scratch = self.scratch
        with scratch.lock:
            if version < scratch.live_version:  # older strokes: fine only if they draw what is shown anyway
                shown = scratch.drawings.get(LIVE)
                return digit is not None and shown is not None and np.array_equal(shown, _uint8(digit))
            scratch.live_version = version
            shown = scratch.drawings.get(LIVE)
            if digit is None or shown is None or not np.array_equal(shown, _uint8(digit)):
                # the same image again (the Dash callback after the fast path drew it) keeps its outputs: no second
                # forward pass, and the placements cached for those arrays stay valid
                self.set_drawing(LIVE, digit)
            return True

    @property
    def live_version(self) -> int:
        """The stroke version this page's live drawing shows (-1 before the first)."""
        return self.scratch.live_version

    def keep_drawing(self) -> str | None:
        """Copy this page's live drawing to a new kept one, "draw:N" (numbered per page); returns its key (None when
        nothing is drawn). A page keeps at most ``MAX_KEPT``: one more is a one-line ``LayerscopeError``."""
        scratch = self.scratch
        with scratch.lock:
            if LIVE not in scratch.drawings:
                return None
            if scratch.kept >= MAX_KEPT:
                raise LayerscopeError(
                    f"this page has kept {MAX_KEPT} drawings, the most it keeps; reload the page to start afresh."
                )
            scratch.kept += 1
            key = f"draw:{scratch.kept}"
            scratch.outputs[key] = scratch.outputs[LIVE]
            scratch.probs[key] = scratch.probs[LIVE]
            scratch.drawings[key] = scratch.drawings[LIVE].copy()
        return key

    def drawing_values(self, key: str, layer: str) -> np.ndarray | None:
        """A drawing's values of ``layer`` as `values` gives them for dataset images: dense whole, conv per-channel
        spatial means; None when there is no such drawing."""
        outputs = self.drawing_outputs.get(key)
        if outputs is None:
            return None
        return unit_summary(outputs[layer], self.run.layer(layer).kind)

    def neighbour_index(self, layer: str) -> NeighbourIndex | None:
        """The training images in ``layer``'s space, or None while the fitted PCA a conv layer needs is missing
        (`start_conv_pca` computes it)."""
        return None if layer in self.missing_pca() else self._neighbour_index(layer)

    def missing_pca(self) -> list[str]:
        """The conv layers whose nearest images need a PCA map the Run does not have yet."""
        features = self.run.path / "features"
        return [name for name in self.conv_layers if not (features / f"{name}.pca_components.npy").is_file()]

    def start_conv_pca(self) -> Job:
        """Fit the PCA of every conv layer that lacks one, in the background (minutes over 70,000 images)."""
        missing = self.missing_pca()
        return self._start(
            self.draw_jobs,
            self._pool,
            ("*", "pca"),
            lambda p: compute_pca(
                self.run.reopen(), missing, model=self.run.load_model(self.device), device=self.device, progress=p
            ),
        )

    @lru_cache(maxsize=16)  # noqa: B019
    def _neighbour_index(self, layer: str) -> NeighbourIndex:
        return NeighbourIndex(self.run, layer)

    # -- drawings placed into the projections (layerscope.projections.place) ---------------------------------------
    # PCA places with its stored map at once; LDA, Isomap, t-SNE and UMAP first rebuild from the Run's arrays what
    # their transform needs (seconds to a minute over 70,000 images), in a background job of `jobs` keyed
    # (layer, "place <method>"): beside the projections' own jobs, so the page polls (JOBS_INTERVAL) while one runs.
    _PLACE_LABELS = {"pca": "PCA", "tsne": "t-SNE", "umap": "UMAP", "lda": "LDA", "isomap": "Isomap"}
    PLACING_PREFIXES = ("preparing to place", "cannot place")  # how the texts of a running or failed job begin

    @cached_property
    def _placements(self) -> dict[tuple[str, str], Placement]:
        """Ready placements by (layer, method), kept while the server runs (each holds its method's input)."""
        return {}

    @cached_property
    def _place_lock(self) -> threading.Lock:
        return threading.Lock()

    @cached_property
    def _place_pool(self) -> ThreadPoolExecutor:
        # a thread of its own: a placement is prepared while a projection or the conv layers' PCA is computed
        return ThreadPoolExecutor(max_workers=1, thread_name_prefix="layerscope-place")

    def place_job(self, layer: str, method: str) -> Job | None:
        """The background preparation of placing drawings into the ``method`` projection of ``layer``, if started."""
        return self.jobs.get((layer, f"place {method}"))

    def _place_problem(self, layer: str, method: str) -> str | None:
        """Why drawings cannot be placed into this projection now (None: they can, perhaps after a rebuild)."""
        label = f"the {self._PLACE_LABELS.get(method, method)} of {layer}"
        if method == FILE_METHOD:
            return "a drawing cannot be placed in a file's own projection (it comes without the map that made it)"
        if method not in PLACEABLE:
            return f"a drawing cannot be placed in {label}"
        if not self.available(layer, method):
            return f"a drawing is placed once {label} is computed"
        try:
            check_placement(self.run, layer, method)
        except LayerscopeError as e:
            if layer in self.missing_pca():
                return f"placing a drawing in {label} needs the PCA of the conv layers (the Draw card's button)"
            return str(e)
        return None

    def placement(self, layer: str, method: str) -> Placement | None:
        """The ready placement into the ``method`` projection of ``layer``, or None: while it is rebuilt in the
        background (started on first ask) or when it cannot be (`placing` says why). Never blocks on a rebuild."""
        ready = self._placements.get((layer, method))
        if ready is not None or self._place_problem(layer, method) is not None:
            return ready
        if method == "pca":  # the stored map: two small arrays, read now
            placement = fit_placement(self.run, layer, method)
            self._placements[(layer, method)] = placement
            return placement
        job = self.place_job(layer, method)
        if job is not None and job.error is not None:
            return None  # not retried on every poll: `placing` shows the error

        def work(progress: ProgressFn) -> None:
            self._placements[(layer, method)] = fit_placement(self.run.reopen(), layer, method, progress=progress)

        self._start(self.jobs, self._place_pool, (layer, f"place {method}"), work)
        return self._placements.get((layer, method))

    def placing(self, layer: str, method: str) -> str:
        """What stands between a drawing and its star in the ``method`` projection of ``layer``, said plainly: how far
        its background preparation is, why it failed, or why drawings cannot be placed there; "" once they can."""
        if (layer, method) in self._placements:
            return ""
        problem = self._place_problem(layer, method)
        if problem is not None:
            return problem
        job = self.place_job(layer, method)
        label = f"the {self._PLACE_LABELS.get(method, method)} of {layer}"
        if job is None:
            return f"a drawing is placed in {label} once drawn" if method != "pca" else ""
        if job.error is not None:
            return f"cannot place drawings in {label}: {job.error}"
        if not job.finished:
            return f"preparing to place drawings in {label}… {job.percent}% ({job.task})"
        return ""

    def placements_shown(self, views: Sequence[tuple[str, str]]) -> None:
        """Count the finished preparations of projections no panel shows now (``views``: (layer, method) pairs) as
        shown: the page polls while any job is unfinished or unshown, and no panel will show these."""
        scratch = self.scratch
        for (layer, what), job in list(self.jobs.items()):
            method = what.removeprefix("place ")
            if method != what and job.finished and (layer, method) not in views:
                scratch.mark_seen(job)

    def place(self, key: str, layer: str, method: str = "pca") -> tuple[float, float] | None:
        """Drawing ``key``'s (x, y) in the ``method`` projection of ``layer``; None when there is no such drawing or
        it cannot be placed there yet (a rebuild it needs is started in the background: `placing` tells how far)."""
        scratch = self.scratch
        outputs = scratch.outputs.get(key)
        if outputs is None:
            return None
        placement = self.placement(layer, method)
        if placement is None:
            return None
        values = outputs[layer]  # the layer's full output, e.g. (64,) or (C, H, W)
        # placed once per stroke though the star of each panel and the Draw card's note all ask (t-SNE's transform
        # takes ~0.1-0.5 s)
        with self._place_lock:
            cached = scratch.placed.get((key, layer, method))
            if cached is not None and cached[0] is values:  # a new stroke makes new arrays
                return cached[1]
            point = placement.transform(values.reshape(1, -1))[0]
            where = (float(point[0]), float(point[1])) if np.isfinite(point).all() else None
            scratch.placed[(key, layer, method)] = (values, where)
        return where

    # -- inside the network: the model itself ----------------------------------------------------------------------
    @cached_property
    def model(self) -> nn.Module:
        """The Run's model on the CPU, loaded on first use (the page works without it until then)."""
        return self.run.load_model("cpu")

    @property
    def conv_layers(self) -> list[str]:
        return [info.name for info in self.run.layers if info.kind == "conv"]

    @cached_property
    def gradcam_layers(self) -> list[str]:
        """Grad-CAM's layers, the last one the default, as ``layerscope attribute`` chooses them."""
        c, h, w = self.images.shape[1:]
        return gradcam_layers(self.model, (c, h, w), conv=self.conv_layers)

    def pixels(self, key: int | str) -> torch.Tensor:
        """(1, C, H, W) float32 in [0, 1] of image ``key`` (an index, "mean:k" or a drawing), as the model sees it."""
        key = self.image_key(key)
        if is_drawing(key):
            image = self.drawing_image(str(key))[None]
        elif isinstance(key, str) and key.startswith("mean:"):
            image = self.mean_images[int(key.split(":")[1])]
        else:
            image = self.images[int(key)]
        return torch.from_numpy(np.asarray(image, dtype=np.float32) / 255.0)[None]

    def feature_maps(self, key: int | str) -> dict[str, np.ndarray]:
        """Every conv layer's full output for one image, {layer: (C, H, W)}: recomputed, never stored."""
        key = self.image_key(key)
        outputs = self.drawing_outputs.get(str(key)) if is_drawing(key) else None
        if outputs is not None:
            return {name: outputs[name] for name in self.conv_layers}
        return self._feature_maps(key) if not is_drawing(key) else self._feature_maps.__wrapped__(self, key)

    @lru_cache(maxsize=64)  # noqa: B019
    def _feature_maps(self, key: int | str) -> dict[str, np.ndarray]:
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

    def guided(self, key: int | str, layer: str, unit: int, method: str) -> np.ndarray:
        """(C, H, W) guided backprop ("guided") or deconvolution ("deconv") of one unit for image ``key``."""
        key = self.image_key(key)
        if is_drawing(key):  # the page's own, and the live one changes with every stroke
            return self._guided.__wrapped__(self, key, layer, unit, method)
        return self._guided(key, layer, unit, method)

    @lru_cache(maxsize=256)  # noqa: B019
    def _guided(self, key: int | str, layer: str, unit: int, method: str) -> np.ndarray:
        with self._model_lock:
            return guided_backprop(self.model, self.pixels(key)[0], layer, unit, method=method)

    # -- inside the network: results computed in the background and kept in the Run -------------------------------
    def topk(self, layer: str) -> TopK | None:
        """The top images of every unit of ``layer``, or None while they are computed (started on first ask)."""
        if layer in self.run.manifest.get("topk", {}).get("layers", []):
            return self._topk(layer)
        self._start(
            self.unit_jobs,
            self._unit_pool,
            ("*", "topk"),
            lambda p: store_topk(self.run.reopen(), device=self.device, progress=p),
        )
        return None

    @lru_cache(maxsize=16)  # noqa: B019
    def _topk(self, layer: str) -> TopK:
        return self.run.topk(layer)

    def featurevis(self, layer: str, unit: int) -> FeatureVis | None:
        """The unit's feature visualisation if the Run has it, else None. Never computes: viewing a unit card must not
        write into the Run; `start_featurevis` does, when the user asks."""
        return cached_featurevis(self.run, layer, unit)

    def start_featurevis(self, layer: str, unit: int) -> Job:
        """Compute the unit's feature visualisation in the background and keep it in the Run; returns its job."""

        def work(progress: ProgressFn) -> None:
            # a model of its own: optimisation takes seconds and must not hold the shared model's lock
            unit_featurevis(self.run.reopen(), layer, unit, model=self.run.load_model(self.device), progress=progress)

        return self._start(self.unit_jobs, self._unit_pool, (layer, f"unit {unit}"), work)

    def unit_job(self, layer: str, what: str) -> Job | None:
        return self.unit_jobs.get((layer, what))

    @property
    def units_busy(self) -> bool:
        return any(not job.finished for job in self.unit_jobs.values())

    # -- interventions: ablations and attributions (dashboard/interventions.py) -------------------------------------
    def _intervention(self, key: tuple[str, str], work: Callable[[ProgressFn], Any]) -> tuple[Job, Any]:
        """(job, result or None): ``work``'s result, computed in the interventions' own thread on first ask.

        Results are kept (the last 24); a result let go is computed again when asked for again.
        """
        with self._lock:
            if "_interventions" not in self.__dict__:
                pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="layerscope-interventions")
                self._interventions: tuple[ThreadPoolExecutor, dict[tuple[str, str], Job], dict[Any, Any]] = (
                    pool,
                    {},
                    {},
                )
            pool, jobs, results = self._interventions
            if key in results:
                return jobs[key], results[key]
            job = jobs.get(key)
            if job is not None and job.finished and job.error is None:  # its result was let go
                del jobs[key]
            while len(results) >= 24:
                oldest = next(iter(results))
                del results[oldest]
                jobs.pop(oldest, None)

        def store(progress: ProgressFn) -> None:
            results[key] = work(progress)

        job = self._start(jobs, pool, key, store)
        return job, results.get(key)

    @cached_property
    def _ablation_model(self) -> nn.Module:
        """A model of its own for ablation passes (only the interventions' thread uses it): seconds of hooked passes
        must not hold the shared model's lock."""
        return self.run.load_model("cpu")

    def ablation_result(self, ablations: Sequence[Ablation]) -> tuple[Job, AblationResult | None]:
        """The test set re-evaluated with ``ablations`` (started in the background on first ask): (job, result)."""
        ablations = tuple(ablations)
        key = ("ablation", "; ".join(f"{a.layer}:{','.join(map(str, a.units))}*{a.scale!r}" for a in ablations))

        def work(progress: ProgressFn) -> AblationResult:
            return evaluate_ablation(self.run, ablations, model=self._ablation_model, progress=progress)

        return self._intervention(key, work)

    def ablated_probs(self, key: Any, ablations: Sequence[Ablation]) -> tuple[np.ndarray, np.ndarray] | None:
        """(K,) class probabilities of image ``key`` before and after ``ablations``; None for a key without pixels."""
        try:
            pixels = self.pixels(key)
        except Exception:
            return None
        with self._model_lock:
            before = predict_ablated(self.model, pixels, [])[0]
            after = predict_ablated(self.model, pixels, tuple(ablations))[0]
        return before, after

    def attribution(self, key: int | str, method: str, target: int | None, layer: str | None) -> Attribution:
        """One attribution map of image ``key`` (an index or "mean:k"); ``target`` None: the predicted class."""
        key = self.image_key(key)
        if isinstance(key, str) and key.startswith("draw:"):  # a drawing changes under its key: never cached
            return self._attribution(key, method, target, layer)
        return self._cached_attribution(key, method, target, layer)

    def _attribution(self, key: int | str, method: str, target: int | None, layer: str | None) -> Attribution:
        pixels = self.pixels(key)[0]
        with self._model_lock:
            return attribute(self.model, pixels, method, target, layer)

    @lru_cache(maxsize=128)  # noqa: B019
    def _cached_attribution(self, key: int | str, method: str, target: int | None, layer: str | None) -> Attribution:
        return self._attribution(key, method, target, layer)

    def randomisation(
        self, key: int | str, method: str, target: int | None, layer: str | None
    ) -> tuple[Job, list[RandomisationStep] | None]:
        """The model-randomisation check of one attribution (started in the background on first ask)."""

        pixels = self.pixels(key)[0]

        def work(progress: ProgressFn) -> list[RandomisationStep]:
            progress("randomisation", 0, 1)
            with self._model_lock:  # the check copies the model; only the trained model's map runs on it
                steps = randomisation_check(self.model, pixels, method, target, layer=layer)
            progress("randomisation", 1, 1)
            return steps

        # the pixels' hash in the key: a drawing's pixels change under the same key
        what = f"{key!r}|{hash(pixels.numpy().tobytes())}|{method}|{target}|{layer}"
        return self._intervention(("randomisation", what), work)
