"""Server-side state of the dashboard: the Run's arrays, cached views of them, the model for one image at a time,
and the background work that writes into the Run.

What belongs to the Run is read-only once built and shared by every page: arrays (memory-mapped from the Run
directory), projections, thumbnails, top-k. The work that computes what the Run lacks runs in `jobs.Runner` threads;
drawings placed into the projections are `placing.Placements`, ablations and attributions `intervening.Interventions`.
Drawings are each page's own: they live in the page's `Scratch` (session.py), which ``drawings``, ``drawing_outputs``
and ``drawing_probs`` resolve for the request being answered. The browser only ever receives indices and small
figures.

The model side (torch and the parts of layerscope built on it) is imported where it is first used, not with this
module: the first page needs none of it, and importing torch is most of a server's start. ``warm_up`` imports it in
the background once the server answers.
"""

from __future__ import annotations

import base64
import io
import re
import secrets
import threading
from dataclasses import dataclass, field
from functools import cached_property, lru_cache
from typing import TYPE_CHECKING, Any

import numpy as np
from PIL import Image

from layerscope.analysis import (
    class_means,
    confusion,
    layer_values,
    placed,
    predictions,
    unit_summary,
)
from layerscope.dashboard.intervening import Interventions
from layerscope.dashboard.jobs import Job, Runner
from layerscope.dashboard.placing import Placements
from layerscope.dashboard.session import MAX_KEPT, Scratch, Sessions
from layerscope.dashboard.unit_figures import signed_png, tile
from layerscope.errors import LayerscopeError
from layerscope.interop.seed_json import FILE_METHOD
from layerscope.names import check_index
from layerscope.progress import ProgressFn
from layerscope.projections import METHODS
from layerscope.run import Run

if TYPE_CHECKING:
    import torch
    from torch import nn

    from layerscope.compare import Comparison
    from layerscope.drawing import NeighbourIndex
    from layerscope.featurevis import FeatureVis
    from layerscope.network import Connection, IncomingWeights
    from layerscope.receptive import ReceptiveField
    from layerscope.topk import TopK

__all__ = ["LIVE", "MAX_VERSION", "DashboardState", "check_version", "is_drawing"]

LIVE = "draw:live"  # the image key of the digit being drawn
MAX_VERSION = 2**53  # stroke versions are a browser's numbers (assets/draw.js counts from Date.now()): exact below this
# thumbnails shown at most this big come from a referencing Run's stored 32-pixel ones (the gallery and the hover show
# 56 px); bigger ones (the card's 224 px) read the image itself
SMALL_THUMBNAIL = 64
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


def _uint8(digit: np.ndarray) -> np.ndarray:
    """A drawn digit, floats in [0, 1], as the uint8 image it is kept as."""
    return np.round(np.clip(digit, 0, 1) * 255).astype(np.uint8)


@dataclass(eq=False)  # hashed by identity: its methods are lru-cached
class DashboardState:
    run: Run
    jobs: dict[tuple[str, str], Job] = field(default_factory=dict)
    unit_jobs: dict[tuple[str, str], Job] = field(default_factory=dict)
    device: str = "cpu"  # where work over the whole dataset runs ("auto": cuda if there is one; see work_device)
    url_prefix: str = "/"  # where the page reaches this app's routes (Dash's requests_pathname_prefix)
    # the training snapshot this state shows (`at`): None for the Run as trained
    snapshot: int | None = None
    # a state shown beside the page's own (a snapshot, a Run compared with it): it shares the page's sessions, not
    # its drawings (their outputs are the page's network's)
    guest: bool = False

    def __post_init__(self) -> None:
        # names this server's images by URL: a browser's cached image from another server at this address never shows
        self.token = secrets.token_hex(4)
        self.labels = np.asarray(self.run.labels)
        self.split = np.asarray(self.run.split)
        self.predicted, self.confidence = predictions(self.run)
        self.probs = self.run.probs
        self.images = self.run.images  # (N, C, H, W) uint8, memory-mapped
        self.class_names = self.run.class_names
        self.n = len(self.labels)
        self.wrong = self.predicted != self.labels
        self.confusion = confusion(self.run)
        self.n_test = int(self.confusion.sum())  # the confusion matrix counts the test set
        # forward hooks are per module: requests that run the shared model take turns
        self.model_lock = threading.Lock()
        self.names = np.asarray(self.run.names)
        self.has_model = self.run.has_model
        self.has_probabilities = self.run.manifest["dataset"].get("probabilities", "model") != "none"
        self.aggregates = self.run.aggregates
        # class-mean images: the proxy instances of the report (section 5.3.2); a file's own averages when it has them
        means = self.run.class_means()
        for k in range(len(self.class_names)):
            own = self.aggregates.of_class(k) if self.aggregates is not None else None
            if own is not None:
                means[k] = self.aggregates.images[own]  # type: ignore[union-attr]
        self.mean_images = means
        # each page's drawings and what it has shown (session.py); the Run's results are everyone's
        self.sessions = Sessions()
        self.draw_jobs: dict[tuple[str, str], Job] = {}
        # background work (jobs.py), each kind in a thread of its own; what it writes into the Run is read again
        self._projections = Runner("projection", self.jobs, after=self._reread)
        self._conv_pca = Runner("pca", self.draw_jobs, after=self._reread, share=self._projections)  # one at a time
        self._units = Runner("units", self.unit_jobs, after=self._reread)
        self.placements = Placements(self)  # drawings placed into the projections (placing.py)
        self.interventions = Interventions(self)  # ablations and attributions (intervening.py)
        self._at: dict[int, DashboardState] = {}
        self._at_lock = threading.Lock()
        self.compare: DashboardState | None = None  # Run B, beside this one (`compare_with`)
        self._comparison: Comparison | None = None

    def _reread(self) -> None:
        self.run = self.run.reopen()  # the manifest, with what background work added

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
        return placed(self.projection(layer, method))

    @lru_cache(maxsize=32)  # noqa: B019 - one state per app, lives as long as the server
    def projection(self, layer: str, method: str) -> np.ndarray:
        return np.asarray(self.run.projection(layer, method), dtype=np.float32)

    def projection_meta(self, layer: str, method: str) -> dict[str, Any]:
        return self.run.projection_meta(layer, method) or {}

    def cancel_projection(self, layer: str, method: str) -> bool:
        """Ask the running projection (layer, method) to stop; False when none runs. A projection belongs to the Run,
        so every page waiting on it sees it stopped (and may start it again)."""
        return self._projections.cancel((layer, method))

    def start_projection(self, layer: str, method: str) -> Job:
        """Compute a missing projection in a background thread (one at a time); returns its job."""
        from layerscope.projections.compute import compute_projection

        if method not in METHODS:
            raise ValueError(method)
        return self._projections.start(
            (layer, method),
            lambda progress: compute_projection(
                self.run.reopen(), layer, method, device=self.work_device, progress=progress
            ),
        )

    def set_token_source(self, layer: str, source: str) -> None:
        """Project the token layer ``layer`` from its class token ("cls") or its patch tokens' mean ("mean") from now
        on. The choice is the Run's, so every page's panels follow it; the projections of the other are dropped (a
        running one stopped first) and computed again when a panel shows them."""
        if self.run.layer(layer).token_features == source:
            return
        for method in METHODS:
            self.cancel_projection(layer, method)
        self.run.set_token_source(layer, source)
        self._reread()
        for cached in (self.projection, self.projected, self._neighbour_index):
            cached.cache_clear()
        self.placements.forget(layer)

    # -- the training timeline: the snapshots training kept (``train --snapshots``) --------------------------------
    @cached_property
    def snapshots(self) -> list[dict[str, Any]]:
        """The Run's snapshots, untrained first, the last the Run itself (index, step, epoch, test loss and
        accuracy); empty for a Run trained without."""
        return self.run.snapshots if self.snapshot is None else []

    def check_snapshot(self, value: Any) -> int | None:
        """A snapshot the page names: None (the Run as trained) or an index of `snapshots`, else a one-line
        ``LayerscopeError``."""
        if value is None:
            return None
        if not self.snapshots:
            raise LayerscopeError("this Run has no training snapshots; train with --snapshots K to keep some.")
        return check_index(value, len(self.snapshots), "snapshot")

    def at(self, snapshot: Any) -> DashboardState:
        """The state of the network at ``snapshot`` (`check_snapshot`): this one for None or the last snapshot (the Run
        itself), else a state over the snapshot's Run, made on first use and kept. It shares this state's sessions
        (a page's polling and what it has seen), not its drawings."""
        k = self.check_snapshot(snapshot)
        if k is None or k == len(self.snapshots) - 1:
            return self
        with self._at_lock:
            state = self._at.get(k)
            if state is None:
                run = self.run.snapshot(k)
                state = DashboardState(run, device=self.device, url_prefix=self.url_prefix, snapshot=k, guest=True)
                state.sessions = self.sessions
                state.token = f"{self.token}s{k}"
                self._at[k] = state
        return state

    @lru_cache(maxsize=64)  # noqa: B019
    def snapshot_predictions(self, snapshot: int) -> tuple[np.ndarray, np.ndarray]:
        """(predicted class, confidence) of every image at ``snapshot``, from its stored probabilities."""
        k = check_index(snapshot, len(self.snapshots), "snapshot")
        return (self.predicted, self.confidence) if k == len(self.snapshots) - 1 else predictions(self.run.snapshot(k))

    def snapshot_predicted(self, snapshot: int) -> np.ndarray:
        """(N,) the class each image is given at ``snapshot``."""
        return self.snapshot_predictions(snapshot)[0]

    def prediction_changed(self, before: int, after: int) -> np.ndarray:
        """The images whose predicted class differs between snapshots ``before`` and ``after``, by index."""
        return np.flatnonzero(self.snapshot_predicted(before) != self.snapshot_predicted(after))

    def timeline_meta(self, layer: str, method: str) -> dict[str, Any] | None:
        """What the Run records of the timeline of ``method`` of ``layer``; None while it has none."""
        return (self.run.manifest.get("timelines") or {}).get(layer, {}).get(method)

    @lru_cache(maxsize=8)  # noqa: B019
    def timeline(self, layer: str, method: str) -> np.ndarray:
        """(S, N, 2) float32: ``layer``'s projection by ``method`` at every snapshot (timeline.py), as stored."""
        from layerscope.timeline import timeline

        return np.ascontiguousarray(timeline(self.run, layer, method).embeddings, dtype=np.float32)

    def start_timeline(self, layer: str, method: str) -> Job:
        """Compute the timeline of ``method`` of ``layer`` in the background (the projections' thread: one at a
        time) and keep it in the Run; returns its job, keyed (layer, "timeline:<method>")."""
        from layerscope.timeline import METHODS as TIMELINE_METHODS
        from layerscope.timeline import timeline

        if method not in TIMELINE_METHODS:
            raise ValueError(method)
        return self._projections.start(
            (layer, f"timeline:{method}"),
            lambda progress: timeline(self.run.reopen(), layer, method, progress=progress),
        )

    # -- Run against Run: ``serve RUN_A --compare RUN_B`` -------------------------------------------------------------
    def compare_with(self, other: Run) -> DashboardState:
        """Show Run ``other`` beside this one (projection B, the comparison card): the same images, in the same order
        (`compare.same_images`: else a one-line ``LayerscopeError``). Returns its state."""
        from layerscope.compare import same_images

        same_images(self.run, other)
        guest = DashboardState(other, device=self.device, url_prefix=self.url_prefix, guest=True)
        guest.sessions = self.sessions
        guest.token = f"{self.token}b"
        self.compare = guest
        return guest

    def side(self, panel: Any) -> DashboardState:
        """The state a projection panel shows: Run B's for panel "b" when comparing, else this one."""
        return self.compare if panel == "b" and self.compare is not None else self

    @property
    def comparison(self) -> Comparison | None:
        """Predictions and the linear CKA of every layer pair of this Run and the compared one, once computed
        (`start_comparison`)."""
        return self._comparison

    def start_comparison(self) -> Job:
        """Compare this Run with Run B in the background (``compare.compare_runs``: the CKA of every layer pair over
        every image, conv layers' PCA scores computed first where missing); returns its job, keyed ("*", "compare")."""
        from layerscope.compare import compare_runs

        if self.compare is None:
            raise LayerscopeError("no Run to compare with: serve with --compare RUN_B.")
        other = self.compare

        def work(progress: ProgressFn) -> None:
            self._comparison = compare_runs(
                self.run.reopen(), other.run.reopen(), device=self.work_device, progress=progress
            )

        return self._projections.start(("*", "compare"), work)

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
        image = self._model_image(key)
        if image.ndim == 2:  # a drawing
            return image
        return image[0] if image.shape[0] == 1 else image.transpose(1, 2, 0)

    @cached_property
    def small_images(self) -> np.ndarray | None:
        """(N, C, h, w) uint8 thumbnails a referencing Run stores (``Run.thumbnails``), else None."""
        return self.run.thumbnails

    def thumbnail(self, key: int | str, size: int = 56) -> str:
        """A data-URI PNG of image ``key``, scaled to ``size`` pixels with sharp pixels."""
        key = self.image_key(key)  # a drawing is the page's own: never cached across pages
        return self._thumbnail(key, size) if not is_drawing(key) else self._thumbnail.__wrapped__(self, key, size)

    @lru_cache(maxsize=20_000)  # noqa: B019
    def _thumbnail(self, key: int | str, size: int = 56) -> str:
        small = self.small_images
        if small is not None and isinstance(key, (int, np.integer)) and size <= SMALL_THUMBNAIL:
            # a referencing Run's stored thumbnail: a gallery page of 60 decodes no image file
            pixels = small[int(key)]
            array = pixels[0] if pixels.shape[0] == 1 else pixels.transpose(1, 2, 0)
        else:
            array = self.image_array(key)
        image = Image.fromarray(np.ascontiguousarray(array)).resize((size, size), Image.Resampling.NEAREST)
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
        its digits. A snapshot's state (`at`) has none: a drawing's outputs are the trained network's."""
        return self.scratch.drawings if not self.guest else {}

    @property
    def drawing_outputs(self) -> dict[str, dict[str, np.ndarray]]:
        """Every layer's full output for each of this page's drawings."""
        return self.scratch.outputs

    @property
    def drawing_probs(self) -> dict[str, np.ndarray]:
        return self.scratch.probs

    @cached_property
    def drawing_off(self) -> str | None:
        """Why a drawing cannot be given to this Run's model (`drawing.drawing_off`: its images are in colour, or not
        square), in a sentence; None where it can."""
        from layerscope.drawing import drawing_off

        return drawing_off(self.images.shape[1:])

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
        from layerscope.capture import image_outputs

        image = _uint8(digit)
        with self.model_lock:
            scratch.outputs[key], scratch.probs[key] = image_outputs(self.model, image, self.layers)
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
        return [name for name in self.conv_layers if not self.run.has_features(name, "pca_components")]

    def cancel_conv_pca(self) -> bool:
        """Ask the PCA of the conv layers to stop; False when none runs. Its maps belong to the Run: as with a
        projection (`cancel_projection`), every page waiting on it sees it cancelled and may start it again."""
        return self._conv_pca.cancel(("*", "pca"))

    def start_conv_pca(self) -> Job:
        """Fit the PCA of every conv layer that lacks one, in the background (minutes over 70,000 images)."""
        from layerscope.projections.compute import compute_pca

        missing = self.missing_pca()
        return self._conv_pca.start(
            ("*", "pca"),
            lambda p: compute_pca(
                self.run.reopen(),
                missing,
                model=self.run.load_model(self.work_device),
                device=self.work_device,
                progress=p,
            ),
        )

    @lru_cache(maxsize=16)  # noqa: B019
    def _neighbour_index(self, layer: str) -> NeighbourIndex:
        from layerscope.drawing import NeighbourIndex

        return NeighbourIndex(self.run, layer)

    @cached_property
    def work_device(self) -> str:
        """Where work over the whole dataset runs: ``device``, "auto" resolved (to cuda where there is one) when the
        first such work starts. One image at a time stays on the CPU."""
        from layerscope.training import resolve_device

        return str(resolve_device(self.device))

    def warm_up(self) -> None:
        """Import the model side and load the model: what the first page does without, and what the Network, Draw
        and Intervene views need at once (importing torch alone takes seconds). ``serve`` calls it in a background
        thread once the server answers."""
        import layerscope.attribution
        import layerscope.capture
        import layerscope.network  # noqa: F401 - imported for the views that will ask for them

        if self.has_model:
            with self.model_lock:
                self.model  # noqa: B018 - loaded now, not on the first click inside the network

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
        from layerscope.attribution import gradcam_layers

        c, h, w = self.images.shape[1:]
        return gradcam_layers(self.model, (c, h, w), conv=[info for info in self.run.layers if info.kind == "conv"])

    def _model_image(self, key: int | str) -> np.ndarray:
        """Image ``key`` (an index, "mean:k" or a drawing) as the model's input is made from it: (C, H, W) as the Run
        keeps its images, or a drawing's (H, W), uint8."""
        key = self.image_key(key)
        if is_drawing(key):
            return self.drawing_image(str(key))
        if isinstance(key, str) and key.startswith("mean:"):
            return self.mean_images[int(key.split(":")[1])]
        return self.images[int(key)]

    def pixels(self, key: int | str) -> torch.Tensor:
        """(1, C, H, W) float32 in [0, 1] of image ``key`` (an index, "mean:k" or a drawing), as the model sees it."""
        from layerscope.capture import image_pixels

        return image_pixels(self._model_image(key))

    def feature_maps(self, key: int | str) -> dict[str, np.ndarray]:
        """Every conv layer's full output for one image, {layer: (C, H, W)}: recomputed, never stored."""
        key = self.image_key(key)
        outputs = self.drawing_outputs.get(str(key)) if is_drawing(key) else None
        if outputs is not None:
            return {name: outputs[name] for name in self.conv_layers}
        return self._feature_maps(key) if not is_drawing(key) else self._feature_maps.__wrapped__(self, key)

    @lru_cache(maxsize=64)  # noqa: B019
    def _feature_maps(self, key: int | str) -> dict[str, np.ndarray]:
        from layerscope.capture import image_layer_outputs

        with self.model_lock:
            outputs = image_layer_outputs(self.model, self._model_image(key), self.conv_layers)
        return {name: outputs[name] for name in self.conv_layers}

    @cached_property
    def connections(self) -> dict[str, Connection]:
        """The connection into each layer, keyed by the layer it ends in."""
        from layerscope.network import connections

        with self.model_lock:
            return {c.dst: c for c in connections(self.model, self.run.layers)}

    def edges(self, layer: str) -> np.ndarray | None:
        """(units of ``layer``, units of the layer before) signed weights, or None when they cannot be shown."""
        from layerscope.network import channel_edges

        connection = self.connections.get(layer)
        return None if connection is None or connection.kind == "none" else channel_edges(connection)

    @cached_property
    def weight_count(self) -> int:
        """How many unit-to-unit weights the network graph can show (`edges` of every layer)."""
        return sum(int(e.size) for e in (self.edges(name) for name in self.layers[1:]) if e is not None)

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
        from layerscope.network import incoming_weights

        with self.model_lock:
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
        from layerscope.receptive import receptive_field

        with self.model_lock:
            return receptive_field(self.model, layer, tuple(self.images.shape[1:]))

    def guided(self, key: int | str, layer: str, unit: int, method: str) -> np.ndarray:
        """(C, H, W) guided backprop ("guided") or deconvolution ("deconv") of one unit for image ``key``."""
        key = self.image_key(key)
        if is_drawing(key):  # the page's own, and the live one changes with every stroke
            return self._guided.__wrapped__(self, key, layer, unit, method)
        return self._guided(key, layer, unit, method)

    @lru_cache(maxsize=256)  # noqa: B019
    def _guided(self, key: int | str, layer: str, unit: int, method: str) -> np.ndarray:
        from layerscope.attribution import guided_backprop

        with self.model_lock:
            return guided_backprop(self.model, self.pixels(key)[0], layer, unit, method=method)

    # -- inside the network: results computed in the background and kept in the Run -------------------------------
    # Top-k and feature visualisations belong to the Run, as projections do, and the rule for stopping them is the
    # projections' (`cancel_projection`): one job serves every page, so a cancel from any page stops it for all of
    # them; each then says it was cancelled and offers to start it again, and none starts it again on its own.
    def topk(self, layer: str) -> TopK | None:
        """The top images of every unit of ``layer``, or None while they are computed: started on the first ask; once
        cancelled or failed, only `start_topk` (the user asking again) starts them again."""
        if layer in self.run.manifest.get("topk", {}).get("layers", []):
            return self._topk(layer)
        if self.unit_job("*", "topk") is None:
            self.start_topk()
        return None

    def start_topk(self) -> Job:
        """Compute the top images of every unit of every layer in the background and keep them in the Run (one pass
        over every image); returns its job."""
        from layerscope.topk import store_topk

        return self._units.start(
            ("*", "topk"),
            lambda p: store_topk(self.run.reopen(), device=self.work_device, progress=p),
        )

    def cancel_topk(self) -> bool:
        """Ask the top-k computation to stop; False when none runs."""
        return self._units.cancel(("*", "topk"))

    @lru_cache(maxsize=16)  # noqa: B019
    def _topk(self, layer: str) -> TopK:
        return self.run.topk(layer)

    def featurevis(self, layer: str, unit: int) -> FeatureVis | None:
        """The unit's feature visualisation if the Run has it, else None. Never computes: viewing a unit card must not
        write into the Run; `start_featurevis` does, when the user asks."""
        from layerscope.featurevis import cached_featurevis

        return cached_featurevis(self.run, layer, unit)

    def start_featurevis(self, layer: str, unit: int) -> Job:
        """Compute the unit's feature visualisation in the background and keep it in the Run; returns its job."""

        from layerscope.featurevis import unit_featurevis

        def work(progress: ProgressFn) -> None:
            # a model of its own: optimisation takes seconds and must not hold the shared model's lock
            model = self.run.load_model(self.work_device)
            unit_featurevis(self.run.reopen(), layer, unit, model=model, progress=progress)

        return self._units.start((layer, f"unit {unit}"), work)

    def cancel_featurevis(self, layer: str, unit: int) -> bool:
        """Ask the unit's feature visualisation to stop; False when none runs."""
        return self._units.cancel((layer, f"unit {unit}"))

    def unit_job(self, layer: str, what: str) -> Job | None:
        return self.unit_jobs.get((layer, what))

    @property
    def units_busy(self) -> bool:
        return self._units.busy
