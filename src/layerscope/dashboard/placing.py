"""Drawings placed into the projections (layerscope.projections.place), for the dashboard's star.

PCA places with its stored map at once; LDA, Isomap, t-SNE and UMAP first rebuild from the Run's arrays what their
transform needs (seconds to a minute over 70,000 images), in a background job keyed (layer, "place <method>") among
the projections' own jobs, so the page polls (JOBS_INTERVAL) while one runs. A ready placement belongs to the Run and
serves every page; where a page's drawing lands is that page's (its scratch).
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np

from layerscope.dashboard.jobs import Job, Runner, status_line
from layerscope.errors import LayerscopeError
from layerscope.interop.seed_json import FILE_METHOD
from layerscope.layers import image_projection_values
from layerscope.progress import ProgressFn
from layerscope.projections import PLACEABLE

if TYPE_CHECKING:
    from layerscope.dashboard.state import DashboardState
    from layerscope.projections.place import Placement

__all__ = ["PLACING_PREFIXES", "Placements"]

_LABELS = {"pca": "PCA", "tsne": "t-SNE", "umap": "UMAP", "lda": "LDA", "isomap": "Isomap"}
PLACING_PREFIXES = ("preparing to place", "cannot place")  # how the texts of a running or failed job begin


class Placements:
    """The placements into one dashboard's projections: ready ones by (layer, method), and their preparation."""

    def __init__(self, state: DashboardState) -> None:
        self._state = state
        self._ready: dict[tuple[str, str], Placement] = {}  # kept while the server runs (each holds its input)
        self._lock = threading.Lock()
        # a thread of its own: a placement is prepared while a projection or the conv layers' PCA is computed
        self._runner = Runner("place", state.jobs)

    def forget(self, layer: str) -> None:
        """Drop the ready placements into ``layer``'s projections (they were computed from other features)."""
        with self._lock:
            for key in [key for key in self._ready if key[0] == layer]:
                del self._ready[key]

    def job(self, layer: str, method: str) -> Job | None:
        """The background preparation of placing drawings into the ``method`` projection of ``layer``, if started."""
        return self._state.jobs.get((layer, f"place {method}"))

    def _problem(self, layer: str, method: str) -> str | None:
        """Why drawings cannot be placed into this projection now (None: they can, perhaps after a rebuild)."""
        from layerscope.projections.place import check_placement  # with the model side (state.py)

        state = self._state
        label = f"the {_LABELS.get(method, method)} of {layer}"
        if method == FILE_METHOD:
            return "a drawing cannot be placed in a file's own projection (it comes without the map that made it)"
        if method not in PLACEABLE:
            return f"a drawing cannot be placed in {label}"
        if not state.available(layer, method):
            return f"a drawing is placed once {label} is computed"
        try:
            check_placement(state.run, layer, method)
        except LayerscopeError as e:
            if layer in state.missing_pca():
                return f"placing a drawing in {label} needs the PCA of the conv layers (the Draw card's button)"
            return str(e)
        return None

    def placement(self, layer: str, method: str) -> Placement | None:
        """The ready placement into the ``method`` projection of ``layer``, or None: while it is rebuilt in the
        background (started on first ask) or when it cannot be (`placing` says why). Never blocks on a rebuild."""
        from layerscope.projections.place import fit_placement

        ready = self._ready.get((layer, method))
        if ready is not None or self._problem(layer, method) is not None:
            return ready
        if method == "pca":  # the stored map: two small arrays, read now
            placement = fit_placement(self._state.run, layer, method)
            self._ready[(layer, method)] = placement
            return placement
        job = self.job(layer, method)
        if job is not None and job.error is not None:
            return None  # not retried on every poll: `placing` shows the error

        def work(progress: ProgressFn) -> None:
            self._ready[(layer, method)] = fit_placement(self._state.run.reopen(), layer, method, progress=progress)

        self._runner.start((layer, f"place {method}"), work)
        return self._ready.get((layer, method))

    def placing(self, layer: str, method: str) -> str:
        """What stands between a drawing and its star in the ``method`` projection of ``layer``, said plainly: how far
        its background preparation is, why it failed, or why drawings cannot be placed there; "" once they can."""
        if (layer, method) in self._ready:
            return ""
        problem = self._problem(layer, method)
        if problem is not None:
            return problem
        job = self.job(layer, method)
        label = f"the {_LABELS.get(method, method)} of {layer}"
        if job is None:
            return f"a drawing is placed in {label} once drawn" if method != "pca" else ""
        if job.error is not None:
            return f"cannot place drawings in {label}: {job.error}"
        if not job.finished:
            return status_line(f"preparing to place drawings in {label}", job)
        return ""

    def shown(self, views: Sequence[tuple[str, str]]) -> None:
        """Count the finished preparations of projections no panel shows now (``views``: (layer, method) pairs) as
        shown: the page polls while any job is unfinished or unshown, and no panel will show these."""
        scratch = self._state.scratch
        for (layer, what), job in list(self._state.jobs.items()):
            method = what.removeprefix("place ")
            if method != what and job.finished and (layer, method) not in views:
                scratch.mark_seen(job)

    def place(self, key: str, layer: str, method: str = "pca") -> tuple[float, float] | None:
        """Drawing ``key``'s (x, y) in the ``method`` projection of ``layer``; None when there is no such drawing or
        it cannot be placed there yet (a rebuild it needs is started in the background: `placing` tells how far)."""
        scratch = self._state.scratch
        outputs = scratch.outputs.get(key)
        if outputs is None:
            return None
        placement = self.placement(layer, method)
        if placement is None:
            return None
        values = outputs[layer]  # the layer's full output, e.g. (64,) or (C, H, W)
        # placed once per stroke though the star of each panel and the Draw card's note all ask (t-SNE's transform
        # takes ~0.1-0.5 s)
        with self._lock:
            cached = scratch.placed.get((key, layer, method))
            if cached is not None and cached[0] is values:  # a new stroke makes new arrays
                return cached[1]
            point = placement.transform(image_projection_values(self._state.run.layer(layer), outputs)[None])[0]
            where = (float(point[0]), float(point[1])) if np.isfinite(point).all() else None
            scratch.placed[(key, layer, method)] = (values, where)
        return where
