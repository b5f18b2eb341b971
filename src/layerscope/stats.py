"""The sums that exact PCA and class means need, gathered on the capture pass: per dense layer the count, the column
sums and X^T X in float64, and the column sums of each class.

A capture already has every layer's full output in hand, batch by batch, on the machine (or the Ray worker) that ran
the model; summing there makes the PCA of a dense layer one pass (the projection) instead of two, and on Ray the
workers' partial sums travel back instead of rows, and are added on the driver (`LayerSums.merge`).

The products are float64 (a float64 copy of each batch): the sums then do not depend on the batches or the shards
beyond float64 rounding, and the covariance PCA takes from them, X^T X / n - mean mean^T, keeps about 16 - log10(mean^2
/ variance) digits, more than float32 rows have. For the dense layers of the report's CNN (64, 64 and 10 units) the
products cost nothing beside the forward pass; a 1,024-unit layer adds 268M multiply-adds per 256 images. A Run
stores the result as

    stats/<layer>.sum.npy        (D,) float64 column sums
    stats/<layer>.xtx.npy        (D, D) float64 X^T X of the layer's rows as stored (not centred)
    stats/<layer>.class_sum.npy  (K, D) float64 column sums of each class's rows (class means: / class_counts)

with ``"stats": {"count", "class_counts", "layers": {layer: {"of": file}}, "seconds"}`` in the manifest, where
``of`` is the file the sums were taken of (``activations/fc2.g7.npy``): sums are used only while the Run still
stores the layer's activations in that file, so a capture that rewrote them without new sums leaves the old ones
unused (`stored_sums`).

Layers wider than ``EXACT_MAX_DIM`` are left out: their PCA is randomised (`projections.pca`), which needs passes
over the rows whatever was summed.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from layerscope.layers import LayerInfo

if TYPE_CHECKING:
    from layerscope.run import Run, Update

__all__ = [
    "EXACT_MAX_DIM",
    "LAYER_SUMS_PARTS",
    "LayerSums",
    "SumsCollector",
    "stage_sums",
    "stored_sums",
    "summed_layers",
]

EXACT_MAX_DIM = 1024  # the widest layer PCA solves exactly (`projections.pca.PCA.exact_max_dim`'s default)
_PARTS = ("sum", "xtx", "class_sum")
LAYER_SUMS_PARTS = ("n", "sum", "xtx", "class_sum", "class_count")  # `LayerSums.parts`' keys


@dataclass
class LayerSums:
    """Sums over the rows of one layer seen so far, all float64: ``n`` rows, ``sum`` (D,), ``xtx`` (D, D) = X^T X,
    ``class_sum`` (K, D) and ``class_count`` (K,) per class. `empty` starts one; `update` adds a batch; `merge` adds
    another shard's."""

    n: int
    sum: np.ndarray
    xtx: np.ndarray
    class_sum: np.ndarray
    class_count: np.ndarray

    @classmethod
    def empty(cls, dims: int, num_classes: int) -> LayerSums:
        return cls(
            0,
            np.zeros(dims, np.float64),
            np.zeros((dims, dims), np.float64),
            np.zeros((num_classes, dims), np.float64),
            np.zeros(num_classes, np.int64),
        )

    def update(self, x: np.ndarray, labels: np.ndarray) -> None:
        """Add a batch: ``x`` (b, D) rows, ``labels`` (b,) their classes."""
        x64 = torch.from_numpy(np.asarray(x, np.float64))  # (b, D), a float64 copy
        if len(x64) == 0:
            return
        labels = np.asarray(labels, np.int64)
        self.n += len(x64)
        self.sum += x64.sum(0).numpy()
        self.xtx += torch.mm(x64.T, x64).numpy()  # (D, b) @ (b, D)
        self.class_sum += _one_hot(labels, len(self.class_count)).T @ x64.numpy()  # (K, b) @ (b, D)
        self.class_count += np.bincount(labels, minlength=len(self.class_count))

    def merge(self, other: LayerSums) -> None:
        """Add another shard's sums (over other images): the result is the one a single pass over both gives, to
        float64 rounding."""
        self.n += other.n
        self.sum += other.sum
        self.xtx += other.xtx
        self.class_sum += other.class_sum
        self.class_count += other.class_count

    def totals(self) -> dict[str, np.ndarray]:
        """The sums a Run stores: ``sum`` (D,), ``xtx`` (D, D), ``class_sum`` (K, D)."""
        return {"sum": self.sum, "xtx": self.xtx, "class_sum": self.class_sum}

    def parts(self) -> dict[str, np.ndarray]:
        """Its arrays, to send from a worker (`from_parts` rebuilds it)."""
        return {
            "n": np.asarray(self.n, np.int64),
            "sum": self.sum,
            "xtx": self.xtx,
            "class_sum": self.class_sum,
            "class_count": self.class_count,
        }

    @classmethod
    def from_parts(cls, parts: Mapping[str, Any]) -> LayerSums:
        return cls(  # copies: Ray hands out read-only arrays
            int(parts["n"]),
            np.array(parts["sum"], np.float64),
            np.array(parts["xtx"], np.float64),
            np.array(parts["class_sum"], np.float64),
            np.array(parts["class_count"], np.int64),
        )


def _one_hot(labels: np.ndarray, k: int) -> np.ndarray:
    """(b,) class indices -> (b, K) float64 one-hot rows."""
    out = np.zeros((len(labels), k), np.float64)
    out[np.arange(len(labels)), labels] = 1.0
    return out


def summed_layers(layers: Sequence[LayerInfo]) -> list[LayerInfo]:
    """The layers a capture sums: dense layers up to ``EXACT_MAX_DIM`` wide, whose PCA is exact. The input's pixels
    are left out: they never change between captures, and their 784 x 784 float64 products took 18 s over 70,000
    images on a 2-core machine where the whole capture takes 6 to 9 s, to spare one pass of a PCA computed once."""
    return [info for info in layers if info.kind == "dense" and info.dims <= EXACT_MAX_DIM]


class SumsCollector:
    """`LayerSums` of several layers fed from one pass: ``collector(batch_indices, {layer: output})``, the signature
    of ``capture_dataset``'s ``on_batch``, like `topk.TopKCollector`. ``labels`` are the dataset's (N,) classes."""

    def __init__(self, layers: Sequence[LayerInfo], labels: np.ndarray, num_classes: int) -> None:
        self.labels = labels
        self.sums = {info.name: LayerSums.empty(info.dims, num_classes) for info in summed_layers(layers)}
        self.seconds = 0.0  # time spent summing

    def __call__(self, batch_indices: np.ndarray, outputs: Mapping[str, torch.Tensor]) -> None:
        start = time.perf_counter()
        lo, hi = int(batch_indices[0]), int(batch_indices[-1]) + 1
        labels = np.asarray(self.labels[lo:hi]) if hi - lo == len(batch_indices) else self.labels[batch_indices]
        for name, sums in self.sums.items():
            sums.update(outputs[name].reshape(len(batch_indices), -1).numpy(), labels)
        self.seconds += time.perf_counter() - start

    def merge(self, other: Mapping[str, LayerSums]) -> None:
        for name, sums in other.items():
            self.sums[name].merge(sums)


def stage_sums(up: Update, sums: Mapping[str, LayerSums], files: Mapping[str, str], seconds: float) -> None:
    """Stage the sums in a Run update, each noted as taken of the file ``files[layer]`` that update stores the
    layer's activations in. With no sums (no dense layer was summed) the manifest has no ``stats``."""
    count = next((s.n for s in sums.values()), 0)
    class_counts = next((s.class_count for s in sums.values()), np.zeros(0, np.int64))
    for name, layer_sums in sums.items():
        for part, array in layer_sums.totals().items():
            up.write_array(f"stats/{name}.{part}.npy", array)

    def change(manifest: dict[str, Any]) -> None:
        if not sums:  # no dense layer to sum (a Run of conv layers): none, and none left of an earlier capture
            manifest.pop("stats", None)
            return
        manifest["stats"] = {
            "count": int(count),
            "class_counts": [int(c) for c in class_counts],
            "layers": {name: {"of": files[name]} for name in sums},
            "seconds": round(seconds, 3),
        }

    up.change(change)


def stored_sums(run: Run, layer: str) -> dict[str, Any] | None:
    """The Run's sums of ``layer`` (``count``, ``sum``, ``xtx``, ``class_sum``, ``class_counts``) while they are of
    the activations it stores now; None when it has none, or they are of an earlier capture's."""
    stats = run.manifest.get("stats") or {}
    entry = (stats.get("layers") or {}).get(layer)
    info = run.layer(layer)
    relpath = f"activations/{layer}.npy"
    if not entry or info.kind != "dense" or entry.get("of") != run.manifest.get("files", {}).get(relpath, relpath):
        return None
    if not all(run.has_array(f"stats/{layer}.{part}.npy") for part in _PARTS):
        return None
    d, k = info.dims, len(run.class_names)
    shapes = {"sum": (d,), "xtx": (d, d), "class_sum": (k, d)}
    found = {part: np.asarray(run.array(f"stats/{layer}.{part}.npy", shapes[part])) for part in _PARTS}
    return {"count": int(stats["count"]), "class_counts": np.asarray(stats["class_counts"], np.int64), **found}
