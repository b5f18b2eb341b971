"""NN_data.json, the exchange format of the report that started layerscope (section 5.2), read and written.

The file is one JSON object with five keys:

    digit_to_instances   {"0": ["x_12", ...], ...}       the instance names of each class
    prediction_results   {"x_12": [real, predicted], ...}
    activations          {layer: {instance: [values]}}   some layers; a layer included has every instance
    projections          {layer: {instance: [x, y]}}     some layers, each possibly for some instances only
    images               {instance: 28x28 floats in [0, 1]}   every instance name used anywhere has one

Instances in ``prediction_results`` are images of the dataset. Any other instance with an image is an *aggregate*
that stands for a group, such as the report's per-digit averages; it keeps its values but is not a dataset image.

``read_nn_data`` validates a file into arrays; ``import_nn_data`` turns it into a Run without a model, so the
dashboard opens it like any other Run; ``export_nn_data`` writes a Run as a file the report's application reads.
Files written by layerscope carry one more key, ``"layerscope"``, with class names, probabilities and which
class each aggregate stands for; readers of the report's format ignore it.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import reprlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from layerscope import __version__
from layerscope.atomic import atomic_write
from layerscope.data.datasets import MAX_CLASSES, TEST, TRAIN, Dataset
from layerscope.errors import LayerscopeError
from layerscope.layers import INPUT, LayerInfo
from layerscope.names import check_path_name
from layerscope.progress import ProgressFn, no_progress
from layerscope.projections.quality import knn_accuracy, trustworthiness
from layerscope.run import (
    FORMAT_VERSION,
    Run,
    dataset_manifest,
    now,
    staging_dir,
    write_array,
    write_dataset_arrays,
    write_json,
)

__all__ = ["FILE_METHOD", "NNData", "NNDataError", "export_nn_data", "import_nn_data", "read_nn_data"]

KEYS = ("digit_to_instances", "prediction_results", "activations", "projections", "images")
FILE_METHOD = "file"  # the projection method name of coordinates taken from a file
_SPEC = "see the report's section 5.2"
_TRAIN_NAME = re.compile(r"^train[-_]")
_NUMBER_KEY = re.compile(r"-?[0-9]+")  # ASCII digits only: str.isdigit() is true for "²", which int() refuses
MAX_FILE_BYTES = 2 * 2**30
MAX_TEXT = 200  # instance names and class keys: printable, 1 to MAX_TEXT characters
MAX_LAYERS = 1_000  # per section; each layer becomes files of the Run
# Activations and coordinates are refused above this size: they are float32 in a Run and projections and their
# quality metrics sum their squares, which overflow float32 (3.4e38) from about 1e19 on.
MAX_VALUE = 1e15
_REPR = reprlib.Repr()  # values quoted in messages: a few elements, two levels, 60 characters at most
_REPR.maxlevel, _REPR.maxlist, _REPR.maxdict, _REPR.maxstring, _REPR.maxother = 2, 4, 4, 60, 60


class NNDataError(LayerscopeError):
    """An NN_data.json file that does not follow the format."""


@dataclass(frozen=True)
class NNData:
    """A validated NN_data.json: dataset instances first, then aggregates, in the file's order."""

    class_keys: list[str]  # digit_to_instances keys; class k is class_keys[k]
    class_names: list[str]
    names: list[str]  # (N,) dataset instances: the keys of prediction_results
    labels: np.ndarray  # (N,) int64
    predicted: np.ndarray  # (N,) int64
    images: np.ndarray  # (N, C, H, W) uint8
    activations: dict[str, np.ndarray]  # layer -> (N, D) float32
    projections: dict[str, np.ndarray]  # layer -> (N, 2) float32, NaN where the file has no coordinates
    probabilities: np.ndarray | None  # (N, K) float32 when the file carries them (files written by layerscope)
    aggregate_names: list[str]
    aggregate_labels: np.ndarray  # (M,) int64, -1 when the file does not say which class
    aggregate_listed: list[bool]  # listed in digit_to_instances (the report's gallery shows the average first)
    aggregate_images: np.ndarray  # (M, C, H, W) uint8
    aggregate_activations: dict[str, np.ndarray]  # layer -> (M, D), NaN rows where absent
    aggregate_projections: dict[str, np.ndarray]  # layer -> (M, 2), NaN rows where absent
    layers: list[str]  # every layer named in activations or projections, in the file's order

    @property
    def split(self) -> np.ndarray:
        """(N,) TRAIN for names that start with "train-" (as layerscope writes them), TEST for the rest."""
        return np.array([TRAIN if _TRAIN_NAME.match(n) else TEST for n in self.names], np.uint8)


def _fail(path: Path, message: str) -> NNDataError:
    return NNDataError(f"{path.name}: {message}")


def _q(value: Any) -> str:
    """``value`` as a message quotes it: a bounded repr, however long or deep the value is."""
    return _REPR.repr(value)


def _refuse_constant(name: str) -> Any:
    """json.loads calls this for the literals NaN, Infinity and -Infinity, which Python accepts and JSON does not."""
    raise NNDataError(f"holds the literal {name}, which is not JSON; write finite numbers only ({_SPEC}).")


def _check_text(path: Path, value: Any, what: str) -> str:
    """An instance name or class key: a string of 1 to ``MAX_TEXT`` printable characters."""
    if not isinstance(value, str) or not 0 < len(value) <= MAX_TEXT or not value.isprintable():
        raise _fail(path, f"{what} {_q(value)} is not a name of 1 to {MAX_TEXT} printable characters; rename it.")
    return value


def _check_layer_name(path: Path, section: str, layer: str) -> None:
    """Layers become file names inside the Run: plain names only, and not the name of the input images."""
    try:
        check_path_name(layer, f"{section} layer name")
    except LayerscopeError as e:
        raise _fail(path, str(e)) from None
    if layer == INPUT:
        raise _fail(
            path, f"{section} layer name {layer!r} is what layerscope calls the input images; rename the layer."
        )


def _object(path: Path, value: Any, what: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise _fail(path, f"{what} must be a JSON object, found {type(value).__name__} ({_SPEC}).")
    return value


def _layer_order(*groups: list[str]) -> list[str]:
    """Merge layer lists keeping each one's order: a layer comes after the layers it follows in any list."""
    order: list[str] = []
    for group in groups:
        last = -1
        for name in group:
            if name in order:
                last = order.index(name)
            else:
                order.insert(last + 1, name)
                last += 1
    return order


def _image(path: Path, name: str, value: Any) -> np.ndarray:
    """One image: H x W (grayscale, as the report writes) or H x W x 3 floats in [0, 1] -> (C, H, W) uint8."""
    try:
        array = np.asarray(value, dtype=np.float64)
    except (ValueError, TypeError, OverflowError):  # ragged, not numbers, an int beyond float64
        raise _fail(path, f"image {name!r} is not a rectangular array of numbers ({_SPEC}).") from None
    if array.size and array.ndim == 3 and array.shape[2] == 3:
        array = array.transpose(2, 0, 1)
    elif array.size and array.ndim == 2:
        array = array[None]
    else:
        raise _fail(path, f"image {name!r} has shape {array.shape}; an image is 28x28 floats in [0, 1] ({_SPEC}).")
    if not np.isfinite(array).all() or array.min() < 0 or array.max() > 1:
        raise _fail(
            path,
            f"image {name!r} has values outside [0, 1] (from {array.min():g} to {array.max():g}); "
            "scale pixels to [0, 1].",
        )
    return np.rint(array * 255).astype(np.uint8)


def _class_index(path: Path, keys: dict[str, int], name: str, value: Any, what: str) -> int:
    if isinstance(value, float) and value.is_integer():  # 7.0 from a float array
        value = int(value)
    # str() only of ints and strings: a deeply nested list would exhaust the recursion limit
    if isinstance(value, bool) or not isinstance(value, (int, str)) or str(value) not in keys:
        shown = ", ".join(list(keys)[:12]) + (", ..." if len(keys) > 12 else "")
        raise _fail(
            path,
            f"prediction_results[{name!r}] has {what} label {_q(value)}, which is not a key of digit_to_instances "
            f"({shown}).",
        )
    return keys[str(value)]


def _vectors(
    path: Path, section: str, layer: str, values: dict[str, Any], order: dict[str, int], width: int | None
) -> tuple[np.ndarray, np.ndarray]:
    """{instance: [numbers]} of one layer -> (rows (n, D) float32, positions (n,) into ``order``)."""
    rows, positions = [], []
    first = None
    for name, vector in values.items():
        if name not in order:
            raise _fail(path, f"instance {name!r} is used in {section}[{layer!r}] but has no image ({_SPEC}).")
        try:
            row = np.asarray(vector, dtype=np.float64)  # float64 first: 1e300 would overflow float32 with a warning
        except (ValueError, TypeError, OverflowError):
            raise _fail(path, f"{section}[{layer!r}][{name!r}] is not a list of numbers.") from None
        if row.ndim != 1:
            raise _fail(path, f"{section}[{layer!r}][{name!r}] is not a flat list of numbers.")
        if len(row) == 0:
            raise _fail(path, f"{section}[{layer!r}][{name!r}] is an empty list; give the layer's values.")
        if width is not None and len(row) != width:
            raise _fail(path, f"{section}[{layer!r}][{name!r}] has {len(row)} values; a projection is [x, y].")
        if first is not None and len(row) != len(rows[0]):
            raise _fail(
                path,
                f"{section}[{layer!r}] is ragged: instance {name!r} has {len(row)} values but {first!r} has "
                f"{len(rows[0])}.",
            )
        first = first or name
        rows.append(row)
        positions.append(order[name])
    if not rows:
        return np.zeros((0, width or 0), np.float32), np.zeros(0, np.int64)
    stacked = np.stack(rows)  # (n, D) float64
    bad = ~(np.abs(stacked) <= MAX_VALUE)  # NaN compares False, so it is bad too
    if bad.any():
        i, j = np.argwhere(bad)[0]
        name = list(values)[i]
        raise _fail(
            path,
            f"{section}[{layer!r}][{name!r}] holds {stacked[i, j]:g}, which is not a finite number of at most "
            f"{MAX_VALUE:g} in size.",
        )
    return stacked.astype(np.float32), np.asarray(positions, np.int64)


def read_nn_data(path: str | os.PathLike[str]) -> NNData:
    """Read and validate an NN_data.json file; every problem is one line naming the key and the instance."""
    path = Path(path)
    if not path.is_file():
        raise NNDataError(f"{path}: no such file.")
    file_bytes = path.stat().st_size
    if file_bytes > MAX_FILE_BYTES:
        raise _fail(
            path, f"is {file_bytes:,} bytes; layerscope reads NN_data.json files of at most {MAX_FILE_BYTES:,} bytes."
        )
    try:
        data = json.loads(path.read_bytes(), parse_constant=_refuse_constant)
    except NNDataError as e:
        raise _fail(path, str(e)) from None
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise _fail(path, f"is not JSON ({e}); an NN_data.json file is one JSON object ({_SPEC}).") from None
    except RecursionError:
        raise _fail(
            path, f"nests lists or objects too deeply to be read; NN_data.json is 4 levels deep ({_SPEC})."
        ) from None
    except ValueError as e:  # an integer of more than 4,300 digits (CPython's limit on int() of a string)
        reason = " ".join(str(e).split(";")[0].split())
        raise _fail(path, f"holds a number that cannot be read ({reason}); write ordinary numbers.") from None
    data = _object(path, data, "the file")
    missing = [key for key in KEYS if key not in data]
    if missing:
        raise _fail(
            path, f"has no {', '.join(repr(k) for k in missing)} key; NN_data.json has the keys {', '.join(KEYS)}."
        )
    digits = _object(path, data["digit_to_instances"], "digit_to_instances")
    predictions = _object(path, data["prediction_results"], "prediction_results")
    activations = _object(path, data["activations"], "activations")
    projections = _object(path, data["projections"], "projections")
    images = _object(path, data["images"], "images")
    extra: dict[str, Any] = data["layerscope"] if isinstance(data.get("layerscope"), dict) else {}
    if not predictions:
        raise _fail(path, "prediction_results is empty; the file has no instances to show.")
    if len(digits) > MAX_CLASSES:
        raise _fail(path, f"digit_to_instances has {len(digits):,} keys; layerscope handles at most {MAX_CLASSES:,}.")
    for section, layers in (("activations", activations), ("projections", projections)):
        if len(layers) > MAX_LAYERS:
            raise _fail(path, f"{section} has {len(layers):,} layers; layerscope reads at most {MAX_LAYERS:,}.")

    # every name first: messages below quote them, and they become a Run's names, layers and files
    keys = [_check_text(path, k, "digit_to_instances key") for k in digits]
    if all(_NUMBER_KEY.fullmatch(k) for k in keys):
        keys = sorted(keys, key=int)
    key_index = {key: k for k, key in enumerate(keys)}
    names = [_check_text(path, n, "prediction_results instance") for n in predictions]
    for name in images:
        _check_text(path, name, "images instance")
    listed_class: dict[str, int] = {}
    for key, members in digits.items():
        if not isinstance(members, list):
            raise _fail(path, f"digit_to_instances[{key!r}] must be a list of instance names.")
        for member in members:
            if isinstance(member, bool) or not isinstance(member, (str, int)):
                raise _fail(path, f"digit_to_instances[{key!r}] holds {_q(member)}, which is not an instance name.")
            listed_class[_check_text(path, str(member), f"digit_to_instances[{key!r}] instance")] = key_index[key]
    for section, layers in (("activations", activations), ("projections", projections)):
        for layer, values in layers.items():
            _check_layer_name(path, section, layer)
            for name in _object(path, values, f"{section}[{layer!r}]"):
                _check_text(path, name, f"{section}[{layer!r}] instance")

    labels, predicted = [], []
    for name in names:
        pair = predictions[name]
        if not isinstance(pair, (list, tuple)) or len(pair) != 2:
            raise _fail(path, f"prediction_results[{name!r}] must be [real label, predicted label], found {_q(pair)}.")
        labels.append(_class_index(path, key_index, name, pair[0], "real"))
        predicted.append(_class_index(path, key_index, name, pair[1], "predicted"))

    used: dict[str, str] = {}  # every instance name used anywhere -> where it was first used
    for name in names:
        used.setdefault(name, "prediction_results")
    for name in listed_class:
        used.setdefault(name, "digit_to_instances")
    for section, layers in (("activations", activations), ("projections", projections)):
        for layer, values in layers.items():
            for name in values:
                used.setdefault(name, f"{section}[{layer!r}]")
    for name, first_use in used.items():
        if name not in images:
            raise _fail(path, f"instance {name!r} is used in {first_use} but has no image ({_SPEC}).")
    for name, label in zip(names, labels, strict=True):
        if name in listed_class and listed_class[name] != label:
            raise _fail(
                path,
                f"instance {name!r} is listed under {keys[listed_class[name]]!r} in digit_to_instances but "
                f"prediction_results gives real label {keys[label]!r}.",
            )

    is_instance = set(names)
    aggregate_names = [n for n in images if n not in is_instance]
    every = names + aggregate_names
    order = {name: i for i, name in enumerate(every)}
    pixels = [_image(path, name, images[name]) for name in every]
    for name, image in zip(every, pixels, strict=True):
        if image.shape != pixels[0].shape:
            size, first = "x".join(map(str, image.shape[1:])), "x".join(map(str, pixels[0].shape[1:]))
            raise _fail(path, f"image {name!r} is {size} but image {every[0]!r} is {first}; all images share a size.")
    n = len(names)
    stacked = np.stack(pixels)

    layer_activations: dict[str, np.ndarray] = {}
    aggregate_activations: dict[str, np.ndarray] = {}
    for layer, values in activations.items():
        rows, where = _vectors(path, "activations", str(layer), values, order, None)
        have = set(where.tolist())
        absent = next((name for name in names if order[name] not in have), None)
        if absent is not None:
            raise _fail(
                path,
                f"activations[{str(layer)!r}] has no values for instance {absent!r}; a layer in activations "
                f"has every instance ({_SPEC}).",
            )
        full = np.full((len(every), rows.shape[1]), np.nan, np.float32)
        full[where] = rows
        layer_activations[str(layer)] = full[:n]
        if (where >= n).any():
            aggregate_activations[str(layer)] = full[n:]
    layer_projections: dict[str, np.ndarray] = {}
    aggregate_projections: dict[str, np.ndarray] = {}
    for layer, values in projections.items():
        rows, where = _vectors(path, "projections", str(layer), values, order, 2)
        full = np.full((len(every), 2), np.nan, np.float32)
        full[where] = rows
        layer_projections[str(layer)] = full[:n]
        if (where >= n).any():
            aggregate_projections[str(layer)] = full[n:]

    # "layerscope" is optional: what in it does not fit the rest of the file is ignored, as other readers ignore it all
    class_names = keys
    stored_names = extra.get("class_names")
    if (
        isinstance(stored_names, list)
        and len(stored_names) == len(keys)
        and all(isinstance(c, str) and 0 < len(c) <= MAX_TEXT and c.isprintable() for c in stored_names)
    ):
        class_names = stored_names
    probabilities = None
    stored = extra.get("probabilities")
    if isinstance(stored, dict) and all(name in stored for name in names):
        try:
            probs = np.asarray([stored[name] for name in names], dtype=np.float64)
        except (ValueError, TypeError, OverflowError):
            probs = None
        if (
            probs is not None
            and probs.shape == (n, len(keys))
            and ((probs >= 0) & (probs <= 1)).all()  # NaN fails both
            and (probs.argmax(1) == np.asarray(predicted)).all()  # they must agree with the predictions stated
        ):
            probabilities = probs.astype(np.float32)
    aggregate_classes: dict[str, Any] = extra["aggregates"] if isinstance(extra.get("aggregates"), dict) else {}
    aggregate_labels = []
    for name in aggregate_names:
        k = listed_class.get(name, aggregate_classes.get(name))
        if isinstance(k, bool) or not isinstance(k, int) or not 0 <= k < len(keys):
            k = -1
        aggregate_labels.append(k)
    return NNData(
        class_keys=keys,
        class_names=class_names,
        names=names,
        labels=np.asarray(labels, np.int64),
        predicted=np.asarray(predicted, np.int64),
        images=stacked[:n],
        activations=layer_activations,
        projections=layer_projections,
        probabilities=probabilities,
        aggregate_names=aggregate_names,
        aggregate_labels=np.asarray(aggregate_labels, np.int64),
        aggregate_listed=[name in listed_class for name in aggregate_names],
        aggregate_images=stacked[n:],
        aggregate_activations=aggregate_activations,
        aggregate_projections=aggregate_projections,
        layers=_layer_order([str(k) for k in projections], [str(k) for k in activations]),
    )


def _file_projection_meta(
    projection: np.ndarray, labels: np.ndarray, high: np.ndarray | None, source: str
) -> dict[str, Any]:
    covered = np.flatnonzero(np.isfinite(projection).all(1))
    meta: dict[str, Any] = {
        "method": FILE_METHOD,
        "computed": now(),
        "input": source,
        "n_points": len(covered),
        "note": f"from {source}: {len(covered):,} of {len(labels):,} images",
    }
    if len(covered) > 11:
        meta["knn_accuracy"] = knn_accuracy(projection[covered], labels[covered], k=10)
        if high is not None:
            sample = np.random.default_rng(0).permutation(covered)[:2000]
            meta["trustworthiness"] = trustworthiness(high[sample], projection[sample], k=10)
    return meta


def import_nn_data(
    source: str | os.PathLike[str],
    out: str | os.PathLike[str],
    force: bool = False,
    progress: ProgressFn = no_progress,
) -> Run:
    """Turn an NN_data.json file into a Run without a model: images, labels, predictions, the file's activations,
    its projections (method ``"file"``, NaN for instances a layer's projection leaves out) and its aggregates.
    Nothing appears at ``out`` unless all of it succeeded."""
    path = Path(source)
    progress("read NN_data.json", 0, 2)
    data = read_nn_data(path)
    progress("read NN_data.json", 1, 2)
    n, k = len(data.names), len(data.class_keys)
    probs = data.probabilities
    if probs is None:  # the format gives the predicted class only
        probs = np.zeros((n, k), np.float32)
        probs[np.arange(n), data.predicted] = 1.0
    split = data.split
    dataset = Dataset(
        name=path.stem,
        images=data.images,
        labels=data.labels,
        split=split,
        class_names=tuple(data.class_names),
        source=str(path.resolve()),
    )
    infos = [LayerInfo(INPUT, "image", tuple(int(s) for s in data.images.shape[1:]))]
    for layer in data.layers:
        if layer in data.activations:
            infos.append(LayerInfo(layer, "dense", (int(data.activations[layer].shape[1]),)))
        else:
            infos.append(LayerInfo(layer, "projection", ()))
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    with staging_dir(out, force=force) as tmp:
        write_dataset_arrays(tmp, dataset)
        write_array(tmp / "probs.npy", probs)
        write_array(tmp / "names.npy", np.asarray(data.names, dtype=str))
        for layer, values in data.activations.items():
            write_array(tmp / "activations" / f"{layer}.npy", values)
        projections: dict[str, dict[str, Any]] = {}
        for layer, coords in data.projections.items():
            write_array(tmp / "projections" / layer / f"{FILE_METHOD}.npy", coords)
            projections[layer] = {
                FILE_METHOD: _file_projection_meta(coords, data.labels, data.activations.get(layer), path.name)
            }
        if data.aggregate_names:
            write_array(tmp / "aggregates" / "images.npy", data.aggregate_images)
            for layer, values in data.aggregate_activations.items():
                write_array(tmp / "aggregates" / "activations" / f"{layer}.npy", values)
            for layer, coords in data.aggregate_projections.items():
                write_array(tmp / "aggregates" / "projections" / f"{layer}.npy", coords)
        predicted_right = data.predicted == data.labels
        metrics = {
            f"{part}_accuracy": float(predicted_right[split == code].mean())
            for part, code in (("train", TRAIN), ("test", TEST))
            if (split == code).any()
        }
        metrics.setdefault("test_accuracy", float(predicted_right.mean()))
        manifest = {
            "format_version": FORMAT_VERSION,
            "layerscope_version": __version__,
            "created": now(),
            "source": {"kind": "NN_data.json", "file": str(path.resolve()), "sha256": digest},
            "dataset": {
                **dataset_manifest(dataset),
                "probabilities": "file" if data.probabilities is not None else "none",
                "class_keys": data.class_keys,
            },
            "model": None,
            "layers": [info.to_dict() for info in infos],
            "metrics": metrics,
            "history": [],
            "projections": projections,
            "aggregates": [
                {"name": name, "label": None if label < 0 else int(label), "listed": listed}
                for name, label, listed in zip(
                    data.aggregate_names, data.aggregate_labels, data.aggregate_listed, strict=True
                )
            ],
            "aggregate_layers": {
                "activations": list(data.aggregate_activations),
                "projections": list(data.aggregate_projections),
            },
        }
        write_json(tmp / "manifest.json", manifest)
    progress("read NN_data.json", 2, 2)
    return Run(out)


# -- writing ---------------------------------------------------------------------------------------------------------


def _pixels(image: np.ndarray) -> Any:
    """(C, H, W) uint8 -> H x W (or H x W x 3) nested lists of floats in [0, 1], 4 decimals (exact at 8 bits)."""
    array = np.round(image.astype(np.float64) / 255.0, 4)
    return (array[0] if array.shape[0] == 1 else array.transpose(1, 2, 0)).tolist()


def _export_sample(run: Run, per_class: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """The report's choice: ``per_class`` random images of each class (these are projected), plus every
    misclassified image. Returns (all exported indices, the projected ones), both sorted."""
    labels = np.asarray(run.labels)
    predicted = np.asarray(run.probs).argmax(1)
    rng = np.random.default_rng(seed)
    sampled = []
    for k in range(len(run.class_names)):
        members = np.flatnonzero(labels == k)
        sampled.append(rng.choice(members, size=min(per_class, len(members)), replace=False))
    projected = np.sort(np.concatenate(sampled)) if sampled else np.zeros(0, np.int64)
    wrong = np.flatnonzero(predicted != labels)
    return np.union1d(projected, wrong), projected


def export_nn_data(
    run: Run,
    out: str | os.PathLike[str],
    per_class: int = 200,
    seed: int = 0,
    method: str = "pca",
    everything: bool = False,
    progress: ProgressFn = no_progress,
) -> dict[str, Any]:
    """Write ``run`` as an NN_data.json file the report's application opens; returns a summary.

    By default, as the report did: ``per_class`` random images of each class plus every misclassified image, a
    per-class average instance (mean image, mean activations), the activations of every dense layer, and the
    ``method`` projection of every layer for the random images (misclassified ones are left out so they do not skew
    the picture). Projections the Run lacks are computed first. ``everything`` exports every image instead and
    projects them all. A Run imported from a file is written back with its own instances, aggregates and
    projections.
    """
    from layerscope.analysis import class_means
    from layerscope.projections.compute import check_method, compute_projection

    out = Path(out)
    imported = not run.has_model and (run.path / "names.npy").is_file()
    if method != FILE_METHOD:
        check_method(method)
    if imported or everything:
        chosen = projected = np.arange(len(run.labels))
    else:
        chosen, projected = _export_sample(run, per_class, seed)
    names = [str(n) for n in np.asarray(run.names)[chosen]]
    labels = np.asarray(run.labels)[chosen]
    probs = np.asarray(run.probs)[chosen]
    predicted = probs.argmax(1)
    keys = list(run.manifest["dataset"].get("class_keys") or [str(k) for k in range(len(run.class_names))])
    model_layers = [info for info in run.layers if info.kind != "image"]
    dense = [info.name for info in model_layers if info.kind == "dense"]

    # projections: the Run's own from a file, else ``method`` (computed when missing)
    coords: dict[str, np.ndarray] = {}
    for i, info in enumerate(model_layers):
        progress("projections", i, len(model_layers))
        available = run.manifest.get("projections", {}).get(info.name, {})
        use = FILE_METHOD if imported else method
        if use == FILE_METHOD and FILE_METHOD not in available:
            continue
        if use not in available:
            if info.kind == "projection" or (info.kind == "conv" and not run.has_model):
                continue
            compute_projection(run, info.name, use, progress=progress)
            run = Run(run.path)
        coords[info.name] = np.asarray(run.projection(info.name, use))
    progress("projections", len(model_layers), len(model_layers))

    aggregates = run.aggregates
    if aggregates is not None:
        agg_names, agg_labels, agg_images = aggregates.names, aggregates.labels, aggregates.images
        agg_activations, agg_projections = aggregates.activations, aggregates.projections
        agg_listed = [bool(a.get("listed")) for a in run.manifest["aggregates"]]
    else:  # one average instance per class, listed first under it: its mean image and mean activations
        agg_names = [f"average-{keys[k]}" for k in range(len(keys))]
        agg_labels = np.arange(len(keys))
        agg_images = run.class_means()
        agg_activations = {layer: class_means(run, layer) for layer in dense}
        agg_projections = {}
        agg_listed = [True] * len(agg_names)

    progress("write NN_data.json", 0, 1)
    in_projection = np.isin(chosen, projected)
    data: dict[str, Any] = {
        "digit_to_instances": {
            key: [a for a, j, listed in zip(agg_names, agg_labels, agg_listed, strict=True) if listed and j == k]
            + [name for name, label in zip(names, labels, strict=True) if label == k]
            for k, key in enumerate(keys)
        },
        "prediction_results": {
            name: [_label(keys[int(t)]), _label(keys[int(p)])]
            for name, t, p in zip(names, labels, predicted, strict=True)
        },
        "activations": {},
        "projections": {},
        "images": {},
    }
    for layer in dense:
        values = np.asarray(run.activations(layer))[chosen]
        rows = dict(zip(names, values.tolist(), strict=True))
        if layer in agg_activations:
            for name, row in zip(agg_names, agg_activations[layer], strict=True):
                if np.isfinite(row).all():
                    rows[name] = row.tolist()
        data["activations"][layer] = rows
    for layer, xy in coords.items():
        chosen_xy = xy[chosen]
        placed = in_projection & np.isfinite(chosen_xy).all(1)
        points = {name: row for name, row, keep in zip(names, chosen_xy.tolist(), placed, strict=True) if keep}
        if layer in agg_projections:
            for name, row in zip(agg_names, agg_projections[layer], strict=True):
                if np.isfinite(row).all():
                    points[name] = row.tolist()
        data["projections"][layer] = points
    images = np.asarray(run.images[chosen])  # one read of the memory map, not one per image
    data["images"] = {name: _pixels(image) for name, image in zip(names, images, strict=True)}
    for name, image in zip(agg_names, agg_images, strict=True):
        data["images"][name] = _pixels(image)
    data["layerscope"] = {
        "version": __version__,
        "run": str(run.path),
        "class_names": list(run.class_names),
        "probabilities": dict(zip(names, probs.tolist(), strict=True)),
        "aggregates": {name: int(k) for name, k in zip(agg_names, agg_labels, strict=True) if k >= 0},
        "projection_method": method,
    }
    with atomic_write(out, "w") as f:
        f.write(json.dumps(data, separators=(",", ":")))  # json.dump encodes in Python, dumps in C: 8x faster
    progress("write NN_data.json", 1, 1)
    return {
        "path": str(out),
        "instances": len(names),
        "misclassified": int((predicted != labels).sum()),
        "aggregates": len(agg_names),
        "activation_layers": list(data["activations"]),
        "projection_layers": list(data["projections"]),
        "bytes": out.stat().st_size,
    }


def _label(key: str) -> int | str:
    """Class keys that are numbers are written as numbers, as the report's notebook wrote digits."""
    return int(key) if _NUMBER_KEY.fullmatch(key) else key
