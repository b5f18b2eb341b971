"""The schema of a Run's ``manifest.json``, checked before anything in it is used.

A Run is something people download and share, like a checkpoint, so its manifest is input from outside: every value
that later becomes a path, a shape, an array length or a loop bound is checked here, and every problem is one line
that names the key. Keys this version does not know are kept and ignored (a newer layerscope may add some).
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from typing import Any

from layerscope.errors import RunError
from layerscope.layers import TOKEN_SOURCES
from layerscope.names import is_path_name

_SNAPSHOT = re.compile(r"snapshots/\d{2,6}")

__all__ = ["MAX_CLASSES", "MAX_IMAGES", "check_manifest", "check_relpath"]

MAX_IMAGES = 1 << 32
MAX_CLASSES = 100_000
MAX_DIMS = 1 << 31  # features of one layer: conv2 of the report's CNN has 18,432
KINDS = ("image", "conv", "dense", "projection")
_CLASS_PATH = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*:[A-Za-z_][A-Za-z0-9_]*")


class _Checker:
    def __init__(self, where: str) -> None:
        self.where = where

    def fail(self, key: str, problem: str) -> RunError:
        return RunError(f"{self.where}: {key} {problem}; the Run is damaged or was not written by layerscope.")

    def of(self, value: Any, kind: type | tuple[type, ...], key: str) -> Any:
        # bool is an int to Python, never to a manifest
        if isinstance(value, bool) and bool not in (kind if isinstance(kind, tuple) else (kind,)):
            raise self.fail(key, "is true/false where a number or text belongs")
        if not isinstance(value, kind):
            names = " or ".join(k.__name__ for k in (kind if isinstance(kind, tuple) else (kind,)))
            shown = {dict: "an object", list: "a list", str: "a text", int: "a whole number", float: "a number"}
            found = shown.get(type(value), "null" if value is None else type(value).__name__)
            wanted = {"dict": "an object", "list": "a list", "str": "a text", "int": "a whole number"}.get(names, names)
            raise self.fail(key, f"is {found}, not {wanted}")
        return value

    def count(self, value: Any, key: str, low: int, high: int) -> int:
        self.of(value, int, key)
        if not low <= value <= high:
            raise self.fail(key, f"is {value}, outside {low}..{high}")
        return int(value)

    def number(self, value: Any, key: str) -> float:
        self.of(value, (int, float), key)
        if not math.isfinite(value):
            raise self.fail(key, f"is {value}, not a finite number")
        return float(value)

    def name(self, value: Any, key: str) -> str:
        if not is_path_name(value):
            raise self.fail(key, f"{_shown(value)} is not a plain name (letters, digits, _ . + -, at most 128)")
        return str(value)

    def text(self, value: Any, key: str, limit: int = 1000) -> str:
        self.of(value, str, key)
        if len(value) > limit or "\x00" in value:
            raise self.fail(key, f"is a text of {len(value)} characters or holds a NUL byte")
        return str(value)

    def mapping(self, value: Any, key: str, each: Callable[[str, Any, str], object]) -> None:
        for k, v in self.of(value, dict, key).items():
            each(k, v, f"{key}[{k!r}]")


def _shown(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def check_relpath(value: Any) -> bool:
    """True for a relative path inside a Run made of plain names (``projections/fc1/pca.g3.npy``)."""
    return isinstance(value, str) and 0 < len(value) <= 400 and all(is_path_name(p) for p in value.split("/"))


def check_manifest(manifest: Any, where: str) -> dict[str, Any]:
    """``manifest`` (parsed JSON) if it has the shape this version reads; else a one-line ``RunError``."""
    c = _Checker(where)
    m = c.of(manifest, dict, "the manifest")
    missing = [key for key in ("dataset", "model", "layers", "metrics") if key not in m]
    if missing:
        raise RunError(f"{where} lacks {', '.join(missing)}; re-create the Run with 'layerscope train'.")
    c.count(m.get("generation", 0), "generation", 0, 1 << 62)

    d = c.of(m["dataset"], dict, "dataset")
    n = c.count(d.get("n_images"), "dataset.n_images", 1, MAX_IMAGES)
    for key in ("n_train", "n_test"):
        if key in d:
            c.count(d[key], f"dataset.{key}", 0, n)
    classes = c.of(d.get("class_names"), list, "dataset.class_names")
    if not 1 <= len(classes) <= MAX_CLASSES:
        raise c.fail("dataset.class_names", f"has {len(classes)} names, not 1..{MAX_CLASSES:,}")
    for i, name in enumerate(classes):
        c.text(name, f"dataset.class_names[{i}]", 200)
    shape = c.of(d.get("image_shape"), list, "dataset.image_shape")
    if len(shape) != 3:
        raise c.fail("dataset.image_shape", f"has {len(shape)} numbers, not 3 (channels, height, width)")
    for i, s in enumerate(shape):
        c.count(s, f"dataset.image_shape[{i}]", 1, 1 << 16)
    if "name" in d:
        c.text(d["name"], "dataset.name", 200)

    model = m["model"]
    if model is not None:
        c.of(model, dict, "model")
        path = c.text(model.get("class"), "model.class", 300)
        if _CLASS_PATH.fullmatch(path) is None:
            raise c.fail("model.class", f"{_shown(path)} is not written 'pkg.module:Class'")
        c.of(model.get("args", {}), dict, "model.args")
        if "num_parameters" in model:
            c.count(model["num_parameters"], "model.num_parameters", 0, 1 << 48)

    layers = c.of(m["layers"], list, "layers")
    if not layers:
        raise c.fail("layers", "is empty")
    names: set[str] = set()
    for i, layer in enumerate(layers):
        key = f"layers[{i}]"
        c.of(layer, dict, key)
        name = c.name(layer.get("name"), f"{key}.name")
        if name in names:
            raise c.fail(f"{key}.name", f"{name!r} appears twice")
        names.add(name)
        kind = layer.get("kind")
        if kind not in KINDS:
            raise c.fail(f"{key}.kind", f"is {_shown(kind)}, not one of {', '.join(KINDS)}")
        dims = 1
        for j, s in enumerate(c.of(layer.get("shape"), list, f"{key}.shape")):
            dims *= c.count(s, f"{key}.shape[{j}]", 1, MAX_DIMS)
        if dims > MAX_DIMS or len(layer["shape"]) > 3 or (kind == "conv" and len(layer["shape"]) != 3):
            raise c.fail(f"{key}.shape", f"{layer['shape']} is not the shape of a {kind} layer")
        if "op" in layer:
            c.text(layer["op"], f"{key}.op", 100)
        if "tokens" in layer:
            tokens = c.of(layer["tokens"], dict, f"{key}.tokens")
            extra = c.count(tokens.get("extra"), f"{key}.tokens.extra", 0, 4)
            source = tokens.get("project_from")
            if kind != "conv" or source not in TOKEN_SOURCES or (source == "cls" and not extra):
                raise c.fail(f"{key}.tokens", f"{_shown(tokens)} does not describe the tokens of a {kind} layer")

    graph = m.get("graph")
    if graph is not None:
        c.of(graph, dict, "graph")
        c.text(graph.get("method"), "graph.method", 20)
        c.text(graph.get("reason", ""), "graph.reason", 1000)
        nodes: set[str] = set()
        for i, node in enumerate(c.of(graph.get("nodes"), list, "graph.nodes")):
            key = f"graph.nodes[{i}]"
            c.of(node, dict, key)
            nodes.add(c.name(node.get("name"), f"{key}.name"))
            for field in ("op", "kind", "block"):
                c.text(node.get(field), f"{key}.{field}", 300)
            for j, source in enumerate(c.of(node.get("inputs"), list, f"{key}.inputs")):
                if not isinstance(source, str) or source not in nodes:
                    raise c.fail(f"{key}.inputs[{j}]", f"{_shown(source)} is not a node before it")
            for j, s in enumerate(c.of(node.get("shape"), list, f"{key}.shape")):
                c.count(s, f"{key}.shape[{j}]", 1, MAX_DIMS)

    metrics = c.of(m["metrics"], dict, "metrics")
    c.number(metrics.get("test_accuracy"), "metrics.test_accuracy")
    for key, value in metrics.items():
        c.number(value, f"metrics[{key!r}]")
    snapshots = c.of(m.get("snapshots", []), list, "snapshots")
    for i, entry in enumerate(snapshots):
        key = f"snapshots[{i}]"
        c.of(entry, dict, key)
        c.count(entry.get("step"), f"{key}.step", 0, 1 << 40)
        c.number(entry.get("epoch"), f"{key}.epoch")
        path = entry.get("path")
        last = i == len(snapshots) - 1
        if not isinstance(path, str) or (path != "." if last else _SNAPSHOT.fullmatch(path) is None):
            raise c.fail(f"{key}.path", f"is {_shown(path)}, not {'.' if last else 'snapshots/NN'}")
        for field in ("test_accuracy", "test_loss"):
            if entry.get(field) is not None:
                c.number(entry[field], f"{key}.{field}")
    if "snapshot" in m:
        c.count(c.of(m["snapshot"], dict, "snapshot").get("step"), "snapshot.step", 0, 1 << 40)
    for key, kind in (("history", list), ("training", dict), ("capture", dict), ("source", dict)):
        if key in m:
            c.of(m[key], kind, key)
    for key in ("created", "updated", "layerscope_version"):
        if key in m:
            c.text(m[key], key, 100)

    def projection_layer(layer: str, methods: Any, key: str) -> None:
        if layer not in names:
            raise c.fail(key, "names a layer the Run does not have")
        c.mapping(methods, key, lambda method, meta, k: (c.name(method, k), c.of(meta, dict, k)))

    c.mapping(m.get("projections", {}), "projections", projection_layer)

    topk = m.get("topk")
    if topk is not None:
        c.of(topk, dict, "topk")
        c.count(topk.get("k"), "topk.k", 1, 10_000)
        for i, layer in enumerate(c.of(topk.get("layers", []), list, "topk.layers")):
            if not isinstance(layer, str) or layer not in names:
                raise c.fail(f"topk.layers[{i}]", f"{_shown(layer)} is not a layer of the Run")

    stats = m.get("stats")
    if stats is not None:
        c.of(stats, dict, "stats")
        c.count(stats.get("count"), "stats.count", 1, MAX_IMAGES)
        for i, value in enumerate(c.of(stats.get("class_counts", []), list, "stats.class_counts")):
            c.count(value, f"stats.class_counts[{i}]", 0, MAX_IMAGES)

        def stats_layer(layer: str, entry: Any, key: str) -> None:
            if layer not in names:
                raise c.fail(key, "names a layer the Run does not have")
            if not check_relpath(c.of(entry, dict, key).get("of")):
                raise c.fail(f"{key}.of", f"{_shown(entry.get('of'))} is not a path inside the Run")

        c.mapping(stats.get("layers", {}), "stats.layers", stats_layer)

    def file_entry(logical: str, actual: Any, key: str) -> None:
        if not check_relpath(logical) or not check_relpath(actual):
            raise c.fail(key, f"{_shown(actual)} is not a path inside the Run")

    c.mapping(m.get("files", {}), "files", file_entry)

    aggregates = m.get("aggregates")
    if aggregates is not None:
        for i, entry in enumerate(c.of(aggregates, list, "aggregates")):
            c.of(entry, dict, f"aggregates[{i}]")
            c.text(entry.get("name"), f"aggregates[{i}].name", 200)
            if entry.get("label") is not None:
                c.count(entry["label"], f"aggregates[{i}].label", 0, len(classes) - 1)
        listed = c.of(m.get("aggregate_layers", {}), dict, "aggregate_layers")
        for part in ("activations", "projections"):
            for j, layer in enumerate(c.of(listed.get(part, []), list, f"aggregate_layers.{part}")):
                if not isinstance(layer, str) or layer not in names:
                    raise c.fail(f"aggregate_layers.{part}[{j}]", f"{_shown(layer)} is not a layer of the Run")
    c.of(m.get("ablations", {}), dict, "ablations")
    return m
