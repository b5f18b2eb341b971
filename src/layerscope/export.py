"""Export what you see: the rows of a selection, a projection's coordinates, and a file name for each.

Pure functions over a Run: the dashboard and the command line hand what they return to the user as a download.
Cells a value does not exist for (the confidence of a Run whose file gives predicted classes only, a point a
projection does not place: NaN in the Run) are left empty, so a spreadsheet reads them as missing, not as 0.
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Mapping, Sequence

import numpy as np
from numpy.typing import ArrayLike

from layerscope.errors import LayerscopeError
from layerscope.names import check_index, check_label
from layerscope.run import Run

__all__ = ["coordinates", "export_name", "selection_table"]

BASE_COLUMNS = ("index", "name", "split", "true_label")
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


def _indices(run: Run, indices: Sequence[int] | np.ndarray) -> np.ndarray:
    """``indices`` as an (n,) int64 array, else a one-line ``LayerscopeError`` naming the first bad one."""
    idx = np.asarray(indices)
    if idx.size == 0:
        return np.zeros(0, np.int64)
    if idx.ndim != 1:
        raise LayerscopeError(f"image indices must be a flat list of numbers, not a {idx.ndim}-D array; flatten it.")
    n = run.n_images
    if idx.dtype.kind not in "iu":  # floats, text, bools, objects: the first that is not a whole number says why
        for value in idx.tolist():
            check_index(value, n, "image index")
    bad = np.flatnonzero((idx < 0) | (idx >= n))
    if len(bad):
        check_index(int(idx[bad[0]]), n, "image index")
    return idx.astype(np.int64)


def _text(values: np.ndarray) -> np.ndarray:
    """Floats as their shortest round-tripping text (float32 stays float32: ``0.1``, not ``0.10000000149``)."""
    return np.asarray(values).astype(str)


def _xy(points: np.ndarray, idx: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Text x and y columns of ``points[idx]`` (n, 2), empty where the projection does not place a point."""
    rows = np.asarray(points)[idx]
    if rows.dtype != np.float32:
        rows = rows.astype(np.float64)
    x, y = _text(rows[:, 0]), _text(rows[:, 1])
    placed = np.isfinite(rows).all(1)
    if placed.all():
        return x, y
    return np.where(placed, x, ""), np.where(placed, y, "")


def _base(run: Run, idx: np.ndarray) -> list[np.ndarray]:
    """The index, name, split and true_label columns of images ``idx``."""
    classes = np.asarray(run.class_names)
    split = np.where(np.asarray(run.split)[idx] == 0, "train", "test")  # 0 = train, 1 = test (see run.py)
    return [idx.astype(str), np.asarray(run.names)[idx], split, classes[np.asarray(run.labels)[idx]]]


def _csv(header: Sequence[str], columns: Sequence[np.ndarray]) -> str:
    """CSV text: ``header`` then one row per position of the (equally long) ``columns``."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(header)
    writer.writerows(zip(*(c.tolist() for c in columns), strict=True))
    return out.getvalue()


def selection_table(
    run: Run, indices: Sequence[int] | np.ndarray, projections: Mapping[str, ArrayLike] | None = None
) -> str:
    """CSV of images ``indices`` in order: index, name, split, true_label, predicted, confidence, <prefix>_x/_y."""
    idx = _indices(run, indices)
    probs = np.asarray(run.probs)[idx]  # (n, K)
    predicted = probs.argmax(1)
    if run.manifest["dataset"].get("probabilities", "model") == "none":  # the file gave predicted classes only
        confidence = np.full(len(idx), "")
    else:
        confidence = _text(probs[np.arange(len(idx)), predicted])
    header = [*BASE_COLUMNS, "predicted", "confidence"]
    columns = [*_base(run, idx), np.asarray(run.class_names)[predicted], confidence]
    for prefix, points in (projections or {}).items():
        prefix = check_label(prefix, "column prefix")
        array = np.asarray(points)
        if array.shape != (run.n_images, 2) or array.dtype.kind not in "iuf":
            raise LayerscopeError(
                f"projection {prefix!r} is a {'x'.join(map(str, array.shape))} {array.dtype} array; "
                f"give ({run.n_images}, 2) numbers, one point per image of the Run."
            )
        header += [f"{prefix}_x", f"{prefix}_y"]
        columns += _xy(array, idx)
    return _csv(header, columns)


def coordinates(run: Run, layer: str, method: str, fmt: str = "csv") -> bytes:
    """A projection's (N, 2) coordinates: CSV (index, name, split, true_label, x, y) or the float32 ``.npy`` bytes."""
    if fmt not in ("csv", "npy"):
        raise LayerscopeError(f"unknown export format {fmt!r}; use csv or npy.")
    points = np.asarray(run.projection(layer, method), dtype=np.float32)  # one-line RunError naming the command
    if fmt == "npy":
        out = io.BytesIO()
        np.save(out, points, allow_pickle=False)
        return out.getvalue()
    idx = np.arange(run.n_images)
    return _csv([*BASE_COLUMNS, "x", "y"], [*_base(run, idx), *_xy(points, idx)]).encode()


def export_name(run: Run, what: str | Sequence[str], ext: str) -> str:
    """A safe download name: the dataset, then ``what`` (a name or its parts), joined by "-": ``mnist-fc2-pca.csv``."""
    parts = [str(run.manifest["dataset"].get("name", "")), *([what] if isinstance(what, str) else what)]
    safe = [_UNSAFE.sub("-", str(p)).strip("-.") for p in parts]
    stem = "-".join(p for p in safe if p)[:120].strip("-.") or "layerscope"
    suffix = _UNSAFE.sub("", ext).strip(".")
    return f"{stem}.{suffix}" if suffix else stem
