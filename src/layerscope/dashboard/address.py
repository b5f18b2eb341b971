"""The address bar is the page's state: the view, the selected image, each projection's layer, method, colouring and
split, the unit card's unit, the brushed images and the confusion cell, as a query string.

``format_address`` writes it (assets/workspace.js puts it in the URL: a new history entry when the view changes, so
back and forward move between views), ``parse_address`` reads it back when a page opens or the user goes back. The
parser keeps what it can check against the Run and drops the rest: a link from another Run, an older version or a
hand-edited URL opens the page it can, never an error.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any
from urllib.parse import parse_qs, urlencode

import numpy as np

from layerscope.dashboard import views
from layerscope.dashboard.checks import COLOURS, SPLITS, unit_count
from layerscope.dashboard.state import DashboardState, is_drawing

__all__ = ["MAX_SELECTION_CHARS", "PANEL_FIELDS", "format_address", "parse_address", "ranges", "unranges"]

PANEL_FIELDS = ("layer", "method", "color", "split")
MAX_SELECTION_CHARS = 1500  # a brushed selection longer than this as ranges stays out of the URL
_RANGE = re.compile(r"(\d{1,9})(?:-(\d{1,9}))?")


def ranges(indices: Sequence[int]) -> str:
    """Sorted indices as runs: [1, 2, 3, 7, 9, 10] -> "1-3,7,9-10"."""
    values = np.unique(np.asarray(indices, dtype=np.int64))
    if not len(values):
        return ""
    breaks = np.flatnonzero(np.diff(values) != 1)
    starts = np.r_[values[0], values[breaks + 1]]
    ends = np.r_[values[breaks], values[-1]]
    return ",".join(str(a) if a == b else f"{a}-{b}" for a, b in zip(starts.tolist(), ends.tolist(), strict=True))


def unranges(text: str, n: int) -> list[int] | None:
    """The indices of ``ranges`` text, each below ``n``; None when the text is not such a list."""
    out: list[int] = []
    for part in text.split(","):
        m = _RANGE.fullmatch(part.strip())
        if m is None:
            return None
        a = int(m.group(1))
        b = int(m.group(2)) if m.group(2) else a
        if not a <= b < n or len(out) + b - a + 1 > n:
            return None
        out.extend(range(a, b + 1))
    return sorted(set(out))


def format_address(
    view: Any,
    selected: Any,
    panels: Mapping[str, Sequence[Any]],
    unit: Any = None,
    selection: Any = None,
    cell: Any = None,
) -> str:
    """The query string ("?view=explore&image=7&a_layer=fc2&...") of what the page shows. A drawing is the page's
    own and is left out; so is a selection too long for a URL."""
    query: dict[str, Any] = {"view": views.check_view_name(view)}
    if selected is not None and not (isinstance(selected, str) and is_drawing(selected)):
        query["image"] = selected
    for panel, values in panels.items():
        for field, value in zip(PANEL_FIELDS, values, strict=False):
            if value is not None:
                query[f"{panel}_{field}"] = value
    if isinstance(unit, dict) and unit.get("layer") is not None:
        query["unit"] = f"{unit['layer']}:{unit.get('unit', 0)}"
    if isinstance(selection, list) and selection:
        text = ranges([int(i) for i in selection if isinstance(i, int)])
        if len(text) <= MAX_SELECTION_CHARS:
            query["sel"] = text
    if isinstance(cell, dict) and "true" in cell and "pred" in cell:
        query["cell"] = f"{cell['true']},{cell['pred']}"
    return "?" + urlencode(query, safe=":,")


def parse_address(search: Any, state: DashboardState) -> dict[str, Any]:
    """What ``search`` (a query string, with or without "?") asks the page to show, checked against ``state``'s Run:
    keys "view", "image", "panels" ({panel: {field: value}}), "unit" ({"layer", "unit"}), "selection" and "cell",
    each present only when its value names something this Run has."""
    if not isinstance(search, str) or len(search) > 20_000:
        return {}
    query = {k: v[-1] for k, v in parse_qs(search.lstrip("?"), keep_blank_values=False).items()}
    out: dict[str, Any] = {}
    if query.get("view") in views.NAMES and (state.has_model or query["view"] in [v for v, _, _ in views.shown(False)]):
        out["view"] = query["view"]
    image = query.get("image", "")
    if image.isdigit() and int(image) < state.n:
        out["image"] = int(image)
    elif re.fullmatch(r"mean:\d{1,4}", image) and int(image[5:]) < len(state.class_names):
        out["image"] = image
    panels: dict[str, dict[str, str]] = {}
    for panel in ("a", "b"):
        chosen: dict[str, str] = {}
        layer = query.get(f"{panel}_layer")
        if layer in state.layers:
            chosen["layer"] = layer
            method = query.get(f"{panel}_method")
            if method in state.methods(layer):
                chosen["method"] = method
        color = query.get(f"{panel}_color")
        if color in COLOURS and (color != "confidence" or state.has_probabilities):
            chosen["color"] = color
        split = query.get(f"{panel}_split")
        if split in SPLITS:
            chosen["split"] = split
        if chosen:
            panels[panel] = chosen
    if panels:
        out["panels"] = panels
    layer, _, unit = query.get("unit", "").rpartition(":")
    if layer in state.activation_layers and unit.isdigit() and int(unit) < unit_count(state, layer):
        out["unit"] = {"layer": layer, "unit": int(unit)}
    if "sel" in query:
        selection = unranges(query["sel"], state.n)
        if selection:
            out["selection"] = selection
    true, _, pred = query.get("cell", "").partition(",")
    k = len(state.class_names)
    if true.isdigit() and pred.isdigit() and int(true) < k and int(pred) < k:
        out["cell"] = {"true": int(true), "pred": int(pred)}
    return out
