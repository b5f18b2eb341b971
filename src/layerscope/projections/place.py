"""Place new inputs (a drawn digit) into a Run's stored 2-D projections.

A Run keeps only each projection's (N, 2) embedding, never a fitted model (nothing is pickled), so a placement
rebuilds from the Run's arrays what the method's own ``transform`` needs, and leaves the stored layout untouched:

- PCA: the fitted map ``compute_pca`` stores (components and mean).
- LDA: refitted on the training split of the projection's input, as ``compute_projection`` fitted it (scikit-learn's
  SVD solver is deterministic: the refit reproduces the stored map; ~0.2 s over 70,000 x 64).
- Isomap: refitted on the same random sample (same seed) as ``layerscope.projections.Isomap``; its ``transform``
  placed the other images of the stored embedding, and places new ones the same way.
- t-SNE: openTSNE's ``TSNEEmbedding.transform`` on the stored embedding. That transform only asks the affinity object
  for the new points' neighbours among the reference points (``to_new``); the reference's own affinity matrix is
  never used, so instead of openTSNE's approximate kNN graph over every point (``PerplexityBasedNN``: ~20-50 s for
  70,000 points on one core) the neighbours come from an exact blocked search (``ExactAffinities``), built
  instantly.
- UMAP: umap-learn's ``UMAP.transform`` needs a fitted model with its nearest-neighbour search index. It is fitted
  with the stored projection's parameters and seed (so the search index is the one the original fit built), with
  ``init`` the stored embedding and no optimisation epochs; umap rescales an array ``init`` to [0, 10], so the fitted
  ``embedding_`` is then set back to the stored embedding, and ``n_epochs`` back to the original fit's (None), which
  sets the optimisation ``transform`` runs. Building the kNN graph and index is the cost (about a minute for 70,000
  points on one core).

Every fit ends with a check that can fail: a sample of the Run's own rows, placed, must land where the stored
embedding has them (``disagreement_``: their median distance over the embedding's spread). A projection computed
from other inputs than the Run now holds (a PCA recomputed since) is refused rather than placed wrongly.
"""

from __future__ import annotations

import threading
import warnings
from collections.abc import Callable
from typing import Any

import numpy as np

from layerscope.data.datasets import TRAIN
from layerscope.errors import LayerscopeError
from layerscope.progress import ProgressFn, no_progress
from layerscope.projections import PLACEABLE
from layerscope.projections.compute import FEATURE_DIMS, RAW_MAX_DIMS, pca_transform
from layerscope.run import Run

__all__ = ["PLACEABLE", "Placement", "check_placement", "fit_placement"]

_STEPS = 3  # progress: input loaded, method rebuilt, checked
_REBUILDS = {  # what each method's rebuild does, as progress reports it
    "lda": "refitting LDA on the training split",
    "isomap": "refitting Isomap on its sample",
    "tsne": "setting up the exact neighbour search",
    "umap": "building UMAP's kNN graph and search index",
}
Mapper = Callable[[np.ndarray], np.ndarray]  # (n, d) projection input -> (n, 2)


def _uses_features(run: Run, layer: str, meta: dict[str, Any]) -> bool:
    """Whether the projection's input is the layer's 50 PCA scores (wide layers) rather than its raw values; as
    ``compute_projection`` chose it and recorded it in the meta (older Runs: the same rule)."""
    source = meta.get("input")
    if source is not None:
        return source != "activations"
    info = run.layer(layer)
    return not (info.kind == "dense" and info.dims <= RAW_MAX_DIMS)


def _command(run: Run, layer: str, method: str, recompute: bool = True) -> str:
    """The command that (re)computes a projection, quoted for a message."""
    again = " --recompute" if recompute else ""
    return f"'layerscope project {run.path} --layer {layer} --method {method}{again}'"


def check_placement(run: Run, layer: str, method: str) -> None:
    """Raise a ``LayerscopeError`` saying what to do when ``run`` lacks what placing into the ``method`` projection of
    ``layer`` needs; cheap (no array is read), so a caller can ask before starting the work."""
    run.layer(layer)
    if method not in PLACEABLE:
        raise LayerscopeError(
            f"a new input cannot be placed in a {method!r} projection; placeable: {', '.join(PLACEABLE)}."
        )
    meta = run.projection_meta(layer, method)
    if meta is None:
        raise LayerscopeError(
            f"{run.path} has no {method} projection of {layer!r}; "
            f"compute it with {_command(run, layer, method, recompute=False)}."
        )
    needs_map = method == "pca" or _uses_features(run, layer, meta)
    if needs_map and not run.has_features(layer, "pca_components"):
        raise LayerscopeError(
            f"{run.path} has no fitted PCA map of {layer!r}, which places new inputs (Runs made before it was kept "
            f"lack it); compute it with {_command(run, layer, 'pca')}."
        )
    if method != "pca" and _uses_features(run, layer, meta) and not run.has_features(layer, "pca"):
        raise LayerscopeError(
            f"{run.path} lacks features/{layer}.pca.npy, the input of its {method} projection of {layer!r}; "
            f"compute it again with {_command(run, layer, method)}."
        )


def _tsne(x: np.ndarray, embedding: np.ndarray, random_state: int, n_jobs: int) -> Mapper:
    from openTSNE import TSNEEmbedding

    from layerscope.projections.tsne import ExactAffinities

    affinities = ExactAffinities(x)
    # transform centres the reference in place ((max + min) / 2 at 0): centre it once here, and move the placed
    # points back by the same offset, so they are in the stored embedding's coordinates
    centre = (embedding.max(0) + embedding.min(0)) / 2
    # the gradient settings of layerscope's TSNE (openTSNE.TSNE defaults, FFT gradients); transform passes its own
    # learning rate, momentum and step limits, as it would for the embedding the original fit returned
    reference = TSNEEmbedding(
        np.asarray(embedding, np.float64) - centre,
        affinities,
        negative_gradient_method="fft",
        n_jobs=n_jobs,
        random_state=random_state,
    )

    def place(values: np.ndarray) -> np.ndarray:
        return np.asarray(reference.transform(values), np.float64) + centre

    return place


def _umap(x: np.ndarray, embedding: np.ndarray, meta: dict[str, Any]) -> Mapper:
    params = meta.get("params", {})
    with warnings.catch_warnings():
        # as layerscope.projections.UMAP: umap-learn's notices about random_state and numba are not actionable
        warnings.simplefilter("ignore")
        import umap

        model = umap.UMAP(
            n_components=2,
            n_neighbors=min(int(params.get("n_neighbors", 15)), len(x) - 1),
            min_dist=float(params.get("min_dist", 0.1)),
            random_state=params.get("random_state", 0),
            init=np.nan_to_num(embedding),  # (N, 2): no layout is computed, only rescaled to [0, 10]
            n_epochs=0,
        ).fit(x)
    model.embedding_ = np.ascontiguousarray(embedding, dtype=np.float32)
    model.set_params(n_epochs=None)  # transform optimises for n_epochs // 3 epochs, or 30-100 when None (the fit's)

    def place(values: np.ndarray) -> np.ndarray:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return np.asarray(model.transform(values), np.float64)

    return place


def _lda(x: np.ndarray, labels: np.ndarray, split: np.ndarray) -> Mapper:
    from layerscope.projections.lda import LDA

    train = split == TRAIN
    lda = LDA().fit(x[train], labels[train])
    return lambda values: np.asarray(lda.transform(values), np.float64)


def _isomap(x: np.ndarray, meta: dict[str, Any]) -> Mapper:
    from sklearn.manifold import Isomap as SkIsomap

    params = meta.get("params", {})
    # the sample layerscope.projections.Isomap fitted (same generator, seed and size)
    rng = np.random.default_rng(params.get("random_state", 0))
    sample = np.sort(rng.choice(len(x), size=min(int(params.get("fit_sample", 5000)), len(x)), replace=False))
    isomap = SkIsomap(n_neighbors=min(int(params.get("n_neighbors", 10)), len(sample) - 1), n_components=2)
    isomap.fit(x[sample])
    return lambda values: np.asarray(isomap.transform(values), np.float64)


class Placement:
    """Places new inputs into the stored ``method`` projection of a Run's layer (scikit-learn style).

    ``fit(run, layer)`` rebuilds what the method's transform needs (see the module's docstring) and checks it on
    ``check_rows`` of the Run's own images; ``transform(values)`` takes the layer's full activations of new inputs,
    (n, D) flattened (for the input layer: pixels in [0, 1]), and returns their (n, 2) coordinates in the stored
    embedding. Thread-safe: the dashboard's requests share one.

    Fitted attributes: ``layer_``, ``method_``, ``input_`` ("activations" or "pca50": what the method was fitted on),
    ``spread_`` (the stored embedding's RMS distance from its centre), ``check_indices_`` and ``disagreement_`` (the
    checked rows' median distance from their stored positions, over ``spread_``).
    """

    def __init__(
        self,
        method: str,
        check_rows: int = 64,
        max_disagreement: float = 0.05,
        n_jobs: int = 1,
        random_state: int = 0,
        progress: ProgressFn = no_progress,
    ) -> None:
        self.method = method
        self.check_rows = check_rows
        self.max_disagreement = max_disagreement
        self.n_jobs = n_jobs
        self.random_state = random_state
        self.progress = progress

    def fit(self, run: Run, layer: str) -> Placement:
        method = self.method
        check_placement(run, layer, method)
        meta = run.projection_meta(layer, method) or {}
        label = f"the {method} projection of {layer}"
        self.progress("loading its input and embedding", 0, _STEPS)
        self.run_, self.layer_, self.method_ = run, layer, method
        self._lock = threading.Lock()
        embedding = np.asarray(run.projection(layer, method), dtype=np.float64)  # (N, 2)
        finite = np.isfinite(embedding).all(1)
        self.spread_ = float(np.sqrt(embedding[finite].var(0).sum()))
        if method == "pca":
            self.input_ = "activations"
            self._features = False
            self._mapper: Mapper | None = None
            self.check_indices_ = np.zeros(0, dtype=np.int64)
            self.disagreement_ = 0.0  # the stored map itself: nothing rebuilt, nothing to check
            self.progress("ready", _STEPS, _STEPS)
            return self
        self._features = _uses_features(run, layer, meta)
        self.input_ = f"pca{FEATURE_DIMS}" if self._features else "activations"
        # (N, d): what the projection was fitted on, as compute_projection reads it
        if self._features:
            x = np.asarray(run.features(layer, "pca"))
        else:
            x = np.asarray(run.activations(layer))
        x = np.ascontiguousarray(x, dtype=np.float32)
        if len(x) != len(embedding):
            raise LayerscopeError(
                f"the {method} projection of {layer!r} has {len(embedding):,} points but its input {len(x):,} rows; "
                f"compute it again with {_command(run, layer, method)}."
            )
        self.progress(_REBUILDS[method], 1, _STEPS)
        if method == "tsne":
            self._mapper = _tsne(x, embedding, self.random_state, self.n_jobs)
        elif method == "umap":
            self._mapper = _umap(x, embedding, meta)
        elif method == "lda":
            self._mapper = _lda(x, np.asarray(run.labels), np.asarray(run.split))
        else:
            self._mapper = _isomap(x, meta)
        self.progress("checking it against the stored embedding", 2, _STEPS)
        rng = np.random.default_rng(self.random_state)
        rows = np.flatnonzero(finite)
        self.check_indices_ = np.sort(rng.choice(rows, size=min(self.check_rows, len(rows)), replace=False))
        placed = self._mapper(x[self.check_indices_])
        distance = np.linalg.norm(placed - embedding[self.check_indices_], axis=1)
        self.disagreement_ = float(np.median(distance) / max(self.spread_, 1e-12))
        if not self.disagreement_ <= self.max_disagreement:
            raise LayerscopeError(
                f"placing the Run's own images into {label} puts them {self.disagreement_:.0%} of the embedding's "
                f"spread away from their stored positions: it was computed from other inputs than the Run now holds; "
                f"compute it again with {_command(run, layer, method)}."
            )
        self.progress("ready", _STEPS, _STEPS)
        return self

    def transform(self, values: np.ndarray) -> np.ndarray:
        """(n, D) full activations of the layer (or (D,) for one input) -> (n, 2) float32 coordinates."""
        values = np.asarray(values, dtype=np.float32)
        values = values.reshape(1, -1) if values.ndim == 1 else values.reshape(len(values), -1)
        if self.method_ == "pca":
            return pca_transform(self.run_, self.layer_, values)[:, :2].astype(np.float32)
        # (n, D) -> (n, 50) scores in the Run's PCA of the layer, when the projection was fitted on those
        x = pca_transform(self.run_, self.layer_, values) if self._features else values
        assert self._mapper is not None
        with self._lock:  # openTSNE's transform re-centres its reference in place
            return self._mapper(np.ascontiguousarray(x, dtype=np.float32)).astype(np.float32)


def fit_placement(
    run: Run, layer: str, method: str, progress: ProgressFn = no_progress, random_state: int = 0
) -> Placement:
    """``Placement(method).fit(run, layer)``: ready to place new inputs into the stored projection."""
    return Placement(method, random_state=random_state, progress=progress).fit(run, layer)
