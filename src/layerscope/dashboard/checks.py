"""Checks of what a callback is sent: every value of a request (a dropdown's choice, a typed number, a store the page
keeps) may have been written by hand, so each is checked before it indexes an array or names a file.

Each check returns the value in the form the callbacks use, or raises a one-line ``LayerscopeError`` that the
callback shows where its answer would be (or, let out, `messages.on_callback_error` shows in the page's notice).
Image keys are checked by ``DashboardState.image_key``; names by ``layerscope.names``.
"""

from __future__ import annotations

import math
from collections.abc import Collection
from typing import Any

from layerscope.ablation import Ablation, check_ablations
from layerscope.dashboard.state import DashboardState
from layerscope.errors import LayerscopeError
from layerscope.layers import MAX_UNITS
from layerscope.names import check_index, check_label

__all__ = [
    "COLOURS",
    "MAX_ABLATIONS",
    "MAX_GROUP_MEMBERS",
    "MAX_ROWS",
    "PROJECTION_METHODS",
    "SPLITS",
    "check_ablation_list",
    "check_choice",
    "check_groups",
    "check_int",
    "check_number",
    "check_rows",
    "check_selection",
    "check_unit",
    "check_view",
    "first_point",
    "image_or_none",
    "unit_count",
    "url_image",
]

SPLITS = ("all", "train", "test")
COLOURS = ("label", "predicted", "correct", "confidence")
PROJECTION_METHODS = ("file", "pca", "tsne", "umap", "lda", "isomap")
ROW_KINDS = ("image", "class", "group")
MAX_ROWS = 500
MAX_ABLATIONS = 64  # entries of the list of switched-off units (each a layer, its units and a scale)
# every saved group travels with the activation panels' callbacks: 10 times the bundled MNIST as indices is ~4.5 MB,
# within the server's request limit (guard.MAX_BODY) beside a selection of every image
MAX_GROUP_MEMBERS = 700_000


def _shown(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def first_point(data: Any) -> dict[str, Any]:
    """The first point of a plotly click, hover or selection event, {} when there is none."""
    points = data.get("points") if isinstance(data, dict) else None
    point = points[0] if isinstance(points, list) and points else None
    return point if isinstance(point, dict) else {}


def check_choice(value: Any, options: Collection[Any], what: str) -> Any:
    """``value`` if it is one of ``options`` (a dropdown's), else a one-line error that lists them (up to 12)."""
    try:
        if value in options and not isinstance(value, bool):
            return value
    except TypeError:  # an unhashable value asked of a set
        pass
    listed = ", ".join(str(o) for o in list(options)[:12]) + (", ..." if len(options) > 12 else "")
    raise LayerscopeError(f"{what} {_shown(value)} is not one of {listed}.")


def check_int(value: Any, lo: int, hi: int, what: str) -> int:
    """A whole number from ``lo`` to ``hi`` (both included), not a bool; else a one-line error."""
    if isinstance(value, bool) or not isinstance(value, int) or not lo <= value <= hi:
        raise LayerscopeError(f"{what} {_shown(value)} is not a whole number from {lo} to {hi}.")
    return value


def check_number(value: Any, lo: float, hi: float, what: str) -> float:
    """A finite number from ``lo`` to ``hi``, not a bool; else a one-line error."""
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise LayerscopeError(f"{what} {_shown(value)} is not a number; give one from {lo:g} to {hi:g}.")
    if not lo <= value <= hi:
        raise LayerscopeError(f"{what} {value:g} is out of range: give one from {lo:g} to {hi:g}.")
    return float(value)


def image_or_none(state: DashboardState, key: Any) -> int | str | None:
    """``key`` checked by ``state.image_key``, None where it names no image of the page."""
    try:
        return state.image_key(key)
    except LayerscopeError:
        return None


def url_image(state: DashboardState, value: str | None) -> int | str:
    """The image a route's ``image`` argument names ("123", "mean:3", "draw:live"), checked by ``state.image_key``;
    a missing or malformed one is a one-line error."""
    if value is None:
        raise LayerscopeError("the request names no image; give one as image=<index>.")
    return state.image_key(int(value) if value.isdigit() and len(value) <= 12 else value)


def check_selection(state: DashboardState, value: Any, what: str = "the brushed selection") -> list[int] | None:
    """Image indices (a brushed selection, a group's members): a list of whole numbers in 0 .. N - 1, at most N of
    them; None stays None."""
    if value is None:
        return None
    if not isinstance(value, list) or len(value) > state.n:
        raise LayerscopeError(f"{what} is not a list of at most {state.n:,} image indices; brush the points again.")
    if any(type(i) is not int for i in value):  # floats, bools, strings, nested lists
        raise LayerscopeError(f"{what} holds values that are not image indices; brush the points again.")
    if value and (min(value) < 0 or max(value) >= state.n):
        bad = min(value) if min(value) < 0 else max(value)
        raise LayerscopeError(f"image index {bad} in {what} is out of range: give one from 0 to {state.n - 1}.")
    return list(value)


def check_groups(state: DashboardState, value: Any) -> dict[str, list[int]]:
    """The page's groups, {name: image indices}: names by ``check_label``, members by `check_selection`, at most
    ``MAX_GROUP_MEMBERS`` members in all."""
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise LayerscopeError("the groups are not a mapping of names to images; reload the page.")
    groups: dict[str, list[int]] = {}
    total = 0
    for name, members in value.items():
        label = check_label(name, "group name")
        groups[label] = check_selection(state, members, f"group {label!r}") or []
        total += len(groups[label])
    if total > MAX_GROUP_MEMBERS:
        raise LayerscopeError(f"the groups hold {total:,} images in all, over {MAX_GROUP_MEMBERS:,}; remove some.")
    return groups


def check_rows(state: DashboardState, value: Any) -> list[dict[str, Any]]:
    """The activation panels' rows, [{"kind": "image" | "class" | "group", "key": ...}]: images by their key,
    classes by number, groups by name; at most ``MAX_ROWS``."""
    if value is None:
        return []
    if not isinstance(value, list) or len(value) > MAX_ROWS:
        raise LayerscopeError(f"the activation panels' rows are not a list of at most {MAX_ROWS}; reload the page.")
    rows = []
    for row in value:
        if not isinstance(row, dict) or row.get("kind") not in ROW_KINDS:
            raise LayerscopeError(f"the activation row {_shown(row)} is not an image, class or group; reload the page.")
        kind, key = row["kind"], row.get("key")
        if kind == "image":
            key = state.image_key(key)
        elif kind == "class":
            key = check_index(key, len(state.class_names), "class")
        else:
            key = check_label(key, "group name")
        rows.append({"kind": kind, "key": key})
    return rows


def unit_count(state: DashboardState, layer: str) -> int:
    """How many units (neurons, channels) ``layer`` has, as the unit card counts them."""
    return int(state.run.layer(layer).shape[0])


def check_unit(state: DashboardState, value: Any) -> tuple[str, int]:
    """(layer, unit) of a {"layer", "unit"} the page keeps (the unit card's): a layer with units, a unit it has."""
    if not isinstance(value, dict):
        raise LayerscopeError(f"the unit {_shown(value)} is not a layer and a unit number; pick one in the unit card.")
    layer = check_choice(value.get("layer"), state.activation_layers, "layer")
    return layer, check_index(value.get("unit"), unit_count(state, layer), f"{layer} unit")


def check_view(state: DashboardState, layer: Any, method: Any, split: Any, colour: Any) -> list[str]:
    """What a projection panel shows, [layer, method, split, colour], each one of its dropdown's options (whether
    the Run has that projection is the panel's to say)."""
    return [
        check_choice(layer, state.layers, "layer"),
        check_choice(method, PROJECTION_METHODS, "projection method"),
        check_choice(split, SPLITS, "split"),
        check_choice(colour, COLOURS, "colouring"),
    ]


def check_ablation_list(state: DashboardState, value: Any) -> list[Ablation]:
    """The switched-off units the page keeps, [{"layer", "units", "scale"}], as ``Ablation``s of layers and units the
    Run has (``check_ablations``)."""
    if value is None:
        return []
    malformed = LayerscopeError("the list of switched-off units is malformed; press Reset.")
    if not isinstance(value, list) or len(value) > MAX_ABLATIONS:
        raise malformed
    ablations = []
    for entry in value:
        units = entry.get("units") if isinstance(entry, dict) else None
        if not isinstance(units, list) or len(units) > MAX_UNITS or any(type(u) is not int for u in units):
            raise malformed
        scale = entry.get("scale", 0.0)
        if isinstance(scale, bool) or not isinstance(scale, int | float) or not isinstance(entry.get("layer"), str):
            raise malformed
        ablations.append(Ablation.from_dict(entry))
    check_ablations(state.run, ablations)
    return ablations
