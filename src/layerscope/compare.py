"""Run against Run: where two networks trained on the same images agree, and how alike their layers represent them.

``compare_runs(a, b)`` checks that both Runs hold the same images and labels (by a hash of the arrays), then gives:

- the agreement of their predictions, and the images only A classifies right and those only B does (per class);
- the linear CKA (Kornblith et al. 2019, "Similarity of neural network representations revisited") of every layer
  of A with every layer of B, over every image:

      CKA(X, Y) = ||Yc^T Xc||_F^2 / (||Xc^T Xc||_F ||Yc^T Yc||_F)

  with Xc, Yc the (N, p) activations centred over the images. It is 1 for a layer with itself, and unchanged by an
  orthogonal transform or a rescaling of either layer. The (p, q) cross-products are summed over batches of images
  (``StreamingCKA``), in float64, so N never has to fit in memory: only p x q numbers per pair of layers.

A layer's activations, as compared: a dense layer (and the input) whole up to ``WHOLE_MAX`` values, a conv layer
whose map is one pixel (a global pool) by its channels, a transformer's token layer by what its projections use
(the class token or the token mean), and any wider layer by its 50 leading PCA scores (``features/<layer>.pca.npy``,
the input of its t-SNE and UMAP; computed first where the Run lacks them): the directions that carry most of its
variance. ``Comparison.features`` says which each layer used.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from layerscope.errors import LayerscopeError
from layerscope.layers import LayerInfo
from layerscope.progress import ProgressFn, no_progress
from layerscope.run import Run

__all__ = ["Comparison", "StreamingCKA", "compare_runs", "linear_cka", "same_images"]

WHOLE_MAX = 1024  # a layer of more values is compared by its PCA scores
BATCH = 4096


def linear_cka(x: np.ndarray, y: np.ndarray) -> float:
    """Linear CKA of two (N, p) and (N, q) activations of the same N images (one batch; see ``StreamingCKA``)."""
    cka = StreamingCKA([x.shape[1]], [y.shape[1]])
    cka.add([x], [y])
    return float(cka.result()[0, 0])


class StreamingCKA:
    """Linear CKA of every layer of A (widths ``a``) with every layer of B (widths ``b``), from batches of images.

    Each ``add`` takes one batch's activations of every layer, (n, p) arrays in the same image order; ``result``
    is the (len(a), len(b)) matrix. Memory: p x q float64 per pair, plus p x p per layer."""

    def __init__(self, a: Sequence[int], b: Sequence[int]) -> None:
        self.n = 0
        self.sums_a = [np.zeros(p) for p in a]
        self.sums_b = [np.zeros(q) for q in b]
        self.self_a = [np.zeros((p, p)) for p in a]
        self.self_b = [np.zeros((q, q)) for q in b]
        self.cross = [[np.zeros((p, q)) for q in b] for p in a]

    def add(self, a: Sequence[np.ndarray], b: Sequence[np.ndarray]) -> None:
        xs = [np.asarray(x, np.float64) for x in a]
        ys = [np.asarray(y, np.float64) for y in b]
        rows = {len(v) for v in (*xs, *ys)}
        if len(rows) != 1:
            raise ValueError(f"every layer's batch must hold the same images; got {sorted(rows)} rows")
        self.n += rows.pop()
        for i, x in enumerate(xs):
            self.sums_a[i] += x.sum(0)
            self.self_a[i] += x.T @ x
            for j, y in enumerate(ys):
                self.cross[i][j] += x.T @ y
        for j, y in enumerate(ys):
            self.sums_b[j] += y.sum(0)
            self.self_b[j] += y.T @ y

    def result(self) -> np.ndarray:
        if self.n < 2:
            raise ValueError("CKA needs at least two images")
        n = self.n

        def centred(cross: np.ndarray, s: np.ndarray, t: np.ndarray) -> np.ndarray:
            return cross - np.outer(s, t) / n

        norm_a = [np.linalg.norm(centred(c, s, s)) for c, s in zip(self.self_a, self.sums_a, strict=True)]
        norm_b = [np.linalg.norm(centred(c, s, s)) for c, s in zip(self.self_b, self.sums_b, strict=True)]
        out = np.zeros((len(norm_a), len(norm_b)))
        for i, (s, na) in enumerate(zip(self.sums_a, norm_a, strict=True)):
            for j, (t, nb) in enumerate(zip(self.sums_b, norm_b, strict=True)):
                # a layer that never varies (a dead one) is like no other: 0, not NaN
                denominator = na * nb
                out[i, j] = np.linalg.norm(centred(self.cross[i][j], s, t)) ** 2 / denominator if denominator else 0.0
        return out


def same_images(a: Run, b: Run) -> str:
    """The hash of ``a``'s images and labels when ``b`` holds the very same ones, in the same order; else a one-line
    error saying how they differ."""
    if a.images.shape != b.images.shape:
        raise LayerscopeError(
            f"{a.path} and {b.path} hold different images ({_shape(a)} against {_shape(b)}); compare Runs made on "
            "the same dataset."
        )
    digests = [_digest(run) for run in (a, b)]
    if digests[0] != digests[1]:
        raise LayerscopeError(
            f"{a.path} and {b.path} hold different images or labels (the same shape, other pixels or order); "
            "compare Runs made on the same dataset."
        )
    return digests[0]


def _shape(run: Run) -> str:
    return f"{run.n_images:,} of " + "x".join(str(s) for s in run.images.shape[1:])


def _digest(run: Run) -> str:
    h = hashlib.sha256()
    images = run.images
    for start in range(0, len(images), BATCH):
        h.update(np.ascontiguousarray(images[start : start + BATCH]).tobytes())
    h.update(np.ascontiguousarray(run.labels, dtype=np.int64).tobytes())
    return h.hexdigest()


@dataclass(frozen=True)
class Comparison:
    """What ``compare_runs`` found: the same ``n_images`` images through Runs ``a`` and ``b``."""

    a: str
    b: str
    n_images: int
    agreement: float  # the share of images both predict the same class for
    a_only: np.ndarray  # (M,) indices of the images A classifies right and B wrong
    b_only: np.ndarray
    class_names: list[str]
    layers_a: list[str]
    layers_b: list[str]
    cka: np.ndarray  # (len(layers_a), len(layers_b))
    features: dict[str, dict[str, str]]  # {"a": {layer: how it was compared}, "b": ...}
    widths: dict[str, dict[str, int]]  # {"a": {layer: values per image as compared}, "b": ...}

    def per_class(self, indices: np.ndarray, labels: np.ndarray) -> dict[str, int]:
        counts = np.bincount(np.asarray(labels)[indices], minlength=len(self.class_names))
        return {name: int(c) for name, c in zip(self.class_names, counts, strict=True)}

    def to_dict(self, labels: np.ndarray) -> dict[str, Any]:
        """The JSON ``compare --json`` prints: ``agreement``, ``a_only_correct``, ``b_only_correct`` (a count and
        per class), ``cka`` (the matrix with its layer names) and how each layer was compared."""
        return {
            "a": self.a,
            "b": self.b,
            "n_images": self.n_images,
            "agreement": self.agreement,
            "a_only_correct": {"count": len(self.a_only), "per_class": self.per_class(self.a_only, labels)},
            "b_only_correct": {"count": len(self.b_only), "per_class": self.per_class(self.b_only, labels)},
            "cka": {"a_layers": self.layers_a, "b_layers": self.layers_b, "values": self.cka.round(6).tolist()},
            "features": self.features,
            "widths": self.widths,
        }


def _comparable(run: Run) -> list[LayerInfo]:
    """The layers with values to compare (not a layer an NN_data.json file only projects)."""
    return [info for info in run.layers if info.kind != "projection"]


def _how(info: LayerInfo) -> str:
    """How ``info`` is compared: "activations", "channels", "class token", "token mean" or "pca50"."""
    if info.tokens is not None:
        return {"cls": "class token", "mean": "token mean"}[info.token_features or "mean"]
    if info.kind == "conv" and math.prod(info.shape[1:]) == 1:
        return "channels"
    if info.kind in ("dense", "image") and info.dims <= WHOLE_MAX:
        return "activations"
    return "pca50"


def _values(run: Run, info: LayerInfo, how: str, rows: slice) -> np.ndarray:
    if how == "pca50":
        return np.asarray(run.features(info.name, "pca")[rows], np.float32)
    if how in ("class token", "token mean"):
        return np.asarray(run.token_features(info.name)[rows], np.float32)
    if how == "channels":
        return np.asarray(run.channel_summary(info.name, "mean")[rows], np.float32)
    if info.kind == "image":
        images = run.images[rows]
        return images.reshape(len(images), -1).astype(np.float32) / 255.0
    return np.asarray(run.activations(info.name)[rows], np.float32)


def _prepare(run: Run, infos: list[LayerInfo], device: str, progress: ProgressFn) -> dict[str, str]:
    """How each layer is compared, its PCA scores computed first where they are needed and missing."""
    how = {info.name: _how(info) for info in infos}
    missing = [name for name, h in how.items() if h == "pca50" and not run.has_features(name, "pca")]
    if missing:
        from layerscope.projections.compute import compute_pca

        compute_pca(run, missing, device=device, progress=progress)
    return how


def compare_runs(
    a: Run,
    b: Run,
    layers_a: Sequence[str] | None = None,
    layers_b: Sequence[str] | None = None,
    device: str = "cpu",
    progress: ProgressFn = no_progress,
) -> Comparison:
    """Compare Run ``a`` with Run ``b`` (the same images: ``same_images``): predictions and the linear CKA of every
    layer pair (``layers_a`` x ``layers_b``, default all). See the module's text."""
    same_images(a, b)
    infos_a = [a.layer(name) for name in layers_a] if layers_a is not None else _comparable(a)
    infos_b = [b.layer(name) for name in layers_b] if layers_b is not None else _comparable(b)
    for run, infos in ((a, infos_a), (b, infos_b)):
        bad = next((info.name for info in infos if info.kind == "projection"), None)
        if bad is not None:
            raise LayerscopeError(f"{run.path}: layer {bad!r} has only a 2-D projection, no activations to compare.")
    how_a = _prepare(a, infos_a, device, progress)
    how_b = _prepare(b, infos_b, device, progress)
    labels = np.asarray(a.labels)
    predicted_a = np.asarray(a.probs).argmax(1)
    predicted_b = np.asarray(b.probs).argmax(1)
    right_a, right_b = predicted_a == labels, predicted_b == labels

    widths = {
        side: {info.name: int(_values(run, info, how[info.name], slice(0, 1)).shape[1]) for info in infos}
        for side, run, infos, how in (("a", a, infos_a, how_a), ("b", b, infos_b, how_b))
    }
    cka = StreamingCKA(list(widths["a"].values()), list(widths["b"].values()))
    n = a.n_images
    task = "cka"
    progress(task, 0, n)
    for start in range(0, n, BATCH):
        rows = slice(start, min(start + BATCH, n))
        cka.add(
            [_values(a, info, how_a[info.name], rows) for info in infos_a],
            [_values(b, info, how_b[info.name], rows) for info in infos_b],
        )
        progress(task, rows.stop, n)
    return Comparison(
        a=str(a.path),
        b=str(b.path),
        n_images=n,
        agreement=float((predicted_a == predicted_b).mean()),
        a_only=np.flatnonzero(right_a & ~right_b),
        b_only=np.flatnonzero(right_b & ~right_a),
        class_names=a.class_names,
        layers_a=[info.name for info in infos_a],
        layers_b=[info.name for info in infos_b],
        cka=cka.result(),
        features={"a": how_a, "b": how_b},
        widths=widths,
    )
