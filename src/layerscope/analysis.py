"""Questions asked of a Run: predictions, confusions, class and group means, and why an image was misclassified.

Pure functions over the Run's memory-mapped arrays; the dashboard and the CLI show what these return.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from layerscope.data.datasets import TEST, TRAIN
from layerscope.data.sources import ImageArray
from layerscope.errors import LayerscopeError
from layerscope.run import Run

__all__ = [
    "Explanation",
    "class_mean_images",
    "class_means",
    "confusion",
    "confusion_cell",
    "explain_misclassification",
    "find_image",
    "gallery",
    "group_mean",
    "layer_values",
    "neuron_order",
    "placed",
    "shown_points",
    "quick_group",
    "unit_summary",
    "predictions",
]


def predictions(run: Run) -> tuple[np.ndarray, np.ndarray]:
    """(predicted class, confidence) of every image: the argmax of the stored probabilities and its value."""
    probs = np.asarray(run.probs)
    predicted = probs.argmax(1)
    return predicted, probs[np.arange(len(probs)), predicted]


def placed(embedding: np.ndarray) -> np.ndarray:
    """(N,) bool: the images a 2-D projection places (a file's own projection may cover some instances only, the
    others NaN)."""
    return np.isfinite(np.asarray(embedding)).all(1)


def shown_points(split: np.ndarray, which: str, placed_mask: np.ndarray | None = None) -> np.ndarray:
    """(N,) bool: the images of ``which`` split ("all", "train" or "test") that a projection shows, those of
    ``placed_mask`` (`placed`) when given."""
    split = np.asarray(split)
    if which == "all":
        keep = np.ones(len(split), bool)
    elif which in ("train", "test"):
        keep = split == (TRAIN if which == "train" else TEST)
    else:
        raise LayerscopeError(f"unknown split {which!r}; use 'all', 'train' or 'test'.")
    return keep & placed_mask if placed_mask is not None else keep


def confusion(run: Run, split: int | None = TEST) -> np.ndarray:
    """(K, K) counts: row = true class, column = predicted class, over one split (or all images if None)."""
    predicted, _ = predictions(run)
    labels = np.asarray(run.labels)
    keep = np.ones(len(labels), bool) if split is None else np.asarray(run.split) == split
    k = len(run.class_names)
    true, guess = labels[keep].astype(np.int64), predicted[keep].astype(np.int64)
    # sklearn.metrics.confusion_matrix(true, guess, labels=range(k)) in one bincount: the dashboard computes this
    # as it starts, and importing sklearn (with scipy.stats) would add 1-2.5 s to every server start
    counted = (true >= 0) & (true < k) & (guess >= 0) & (guess < k)
    return np.bincount(true[counted] * k + guess[counted], minlength=k * k).reshape(k, k)


def find_image(names: np.ndarray, text: str) -> int:
    """The image ``text`` names: an index ("1234" or "#1234") or an image's name ("test-3", an imported instance's
    name; case does not matter). Anything else is a one-line ``LayerscopeError`` that says what is accepted."""
    query = text.strip().removeprefix("#")
    if query.isdigit():
        index = int(query)
        if index >= len(names):
            raise LayerscopeError(f"there is no image {index:,}: this Run has images 0 to {len(names) - 1:,}.")
        return index
    found = np.flatnonzero(np.char.lower(names.astype(str)) == query.lower()) if query else np.array([], int)
    if not len(found):
        shown = query if len(query) <= 40 else query[:37] + "..."
        raise LayerscopeError(f"no image is called {shown!r}; type an index (0 to {len(names) - 1:,}) or a name.")
    return int(found[0])


def gallery(run: Run, label: int, sort: str = "confidence", split: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Indices of the images of class ``label``: (correctly classified, misclassified).

    ``sort``: "confidence" (most confident first), "uncertain" (least confident first) or "index".
    """
    predicted, conf = predictions(run)
    labels = np.asarray(run.labels)
    mask = labels == label
    if split is not None:
        mask &= np.asarray(run.split) == split
    idx = np.flatnonzero(mask)
    if sort == "confidence":
        idx = idx[np.argsort(-conf[idx], kind="stable")]
    elif sort == "uncertain":
        idx = idx[np.argsort(conf[idx], kind="stable")]
    elif sort != "index":
        raise LayerscopeError(f"unknown gallery order {sort!r}; use confidence, uncertain or index.")
    correct = predicted[idx] == label
    return idx[correct], idx[~correct]


def layer_values(run: Run, layer: str, conv_stat: str = "mean") -> np.ndarray:
    """(N, units) values shown per unit: dense activations, or a conv layer's per-channel spatial ``conv_stat``
    ("mean", or "max": a unit's activation as top-k images and feature visualisation measure it)."""
    info = run.layer(layer)
    if info.kind == "dense":
        return run.activations(layer)
    if info.kind == "conv":
        return run.channel_summary(layer, conv_stat)
    raise LayerscopeError(f"layer {layer!r} is the input image; activation rows exist for conv and dense layers.")


def class_means(run: Run, layer: str, conv_stat: str = "mean") -> np.ndarray:
    """(K, units) mean of ``layer_values`` over the images of each true class."""
    values = np.asarray(layer_values(run, layer, conv_stat), dtype=np.float64)
    labels = np.asarray(run.labels)
    k = len(run.class_names)
    counts = np.bincount(labels, minlength=k)
    sums = np.zeros((k, values.shape[1]))
    np.add.at(sums, labels, values)
    return (sums / np.maximum(counts, 1)[:, None]).astype(np.float32)


def group_mean(values: np.ndarray, members: Sequence[int] | np.ndarray) -> np.ndarray:
    """(units,) the mean of ``values`` (N, units) over the images ``members`` (an activation row of a group or a
    brushed selection); read in index order, which a memory-mapped array reads fastest."""
    return np.asarray(values[np.sort(np.asarray(members, dtype=np.int64))], dtype=np.float32).mean(0)


def unit_summary(output: np.ndarray, kind: str) -> np.ndarray:
    """(units,) one image's values per unit, as the Run stores them for every image: a dense layer's output whole,
    a conv layer's (C, H, W) as per-channel spatial means (``layer_values``' "mean")."""
    out = np.asarray(output)
    return out.reshape(len(out), -1).mean(1) if kind == "conv" else out.reshape(-1)


def confusion_cell(labels: np.ndarray, predicted: np.ndarray, split: np.ndarray, true: int, pred: int) -> np.ndarray:
    """The test images of one confusion-matrix cell: true class ``true``, predicted ``pred`` (the matrix counts the
    test set, `confusion`)."""
    return np.flatnonzero((split == TEST) & (labels == true) & (predicted == pred))


def quick_group(labels: np.ndarray, predicted: np.ndarray, kind: str, k: int) -> np.ndarray:
    """The images of a ready-made group: "true" (every image of class ``k``) or "wrong-as" (misclassified as k)."""
    if kind == "true":
        return np.flatnonzero(labels == k)
    if kind == "wrong-as":
        return np.flatnonzero((predicted == k) & (predicted != labels))
    raise LayerscopeError(f"unknown group kind {kind!r}; use 'true' or 'wrong-as'.")


def class_mean_images(images: ImageArray, labels: np.ndarray, classes: int) -> np.ndarray:
    """(K, C, H, W) uint8: each class's mean image (the report's proxy instance of a class, section 5.3.2); zeros
    for a class with no image."""
    means = np.zeros((classes, *images.shape[1:]), np.float64)
    for k in range(classes):
        if (labels == k).any():
            means[k] = np.rint(images[labels == k].mean(0))
    return means.astype(np.uint8)


def neuron_order(rows: np.ndarray, by: str = "mean", a: int = 0, b: int = 1) -> np.ndarray:
    """Unit order for activation rows (R, units): by "mean" or "variance" across rows (largest first), or by
    "difference" of row ``a`` minus row ``b`` (largest first)."""
    rows = np.asarray(rows, dtype=np.float64)
    if by == "mean":
        score = rows.mean(0)
    elif by == "variance":
        score = rows.var(0)
    elif by == "difference":
        score = rows[a] - rows[b]
    else:
        raise LayerscopeError(f"unknown neuron order {by!r}; use mean, variance or difference.")
    return np.argsort(-score, kind="stable")


@dataclass(frozen=True)
class Explanation:
    """Why image ``index`` was taken for ``predicted`` rather than ``true`` in one layer."""

    index: int
    true: int
    predicted: int
    rows: np.ndarray  # (3, units): the image, the true class's mean, the predicted class's mean
    score: np.ndarray  # (units,) how far each unit moves the image from its class toward the predicted one
    order: np.ndarray  # units sorted by score, strongest pull first


def explain_misclassification(run: Run, layer: str, index: int) -> Explanation:
    """Per unit: (x - mean_true) * (mean_predicted - mean_true), positive where the image departs from its own
    class in the direction of the class it was taken for. Units are ordered by that score."""
    labels = np.asarray(run.labels)
    predicted, _ = predictions(run)
    if not 0 <= index < len(labels):
        raise LayerscopeError(f"image index {index} is out of range (0 to {len(labels) - 1}).")
    true, pred = int(labels[index]), int(predicted[index])
    if true == pred:
        raise LayerscopeError(
            f"image {index} is classified correctly (as {run.class_names[true]}); pick a misclassified one."
        )
    means = class_means(run, layer)
    x = np.asarray(layer_values(run, layer)[index], dtype=np.float32)
    score = (x - means[true]) * (means[pred] - means[true])
    return Explanation(
        index, true, pred, np.stack([x, means[true], means[pred]]), score, np.argsort(-score, kind="stable")
    )
