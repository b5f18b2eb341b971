"""The Draw panel's fast path: while a digit is drawn, assets/draw.js posts the strokes to one plain HTTP route and
restyles, in place, what shows the live drawing: the Draw card's bars, caption and preview, the "Selected image"
card, the live row of every open activation panel and the conv feature maps.

Why not a Dash callback: every callback response makes Dash's renderer walk the page's ~500 components, and on a
2-core laptop a stroke took 177 ms (p50) to 550 ms (p95) to reach the bars through a callback, against ~15 ms of
server work; through this route, bars, panels and feature maps together take ~100 ms (benchmarks/draw.py). The
callbacks still run once the pen rests (``DRAW_SETTLED``) and redraw every view from the server's state, so what the
fast path restyled is replaced by the same values drawn the usual way.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from dash import Dash
from flask import jsonify, request

from layerscope.dashboard import figures
from layerscope.dashboard.draw import MAX_POINTS, drawn_digit, strokes_of
from layerscope.dashboard.state import LIVE, DashboardState, check_version
from layerscope.dashboard.unit_figures import channel_strip
from layerscope.errors import LayerscopeError
from layerscope.names import check_index

__all__ = ["MAX_POINTS", "ROUTE", "live_update", "register_live"]

ROUTE = "_layerscope/draw"  # under the app's routes_pathname_prefix


def _bound(value: Any, default: float) -> float:
    """A colour-range end from a request: a finite number, else ValueError."""
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise ValueError(f"a colour range of {str(value)[:20]!r}")
    return float(value)


def _panel_colours(state: DashboardState, ask: Any) -> list[str] | None:
    """The live row's cell colours of an open activation panel: ``ask`` = {"layer", "order", "lo", "hi"}, the unit
    order and colour range the panel was drawn with (its data attributes)."""
    layer = ask.get("layer") if isinstance(ask, dict) else None
    if not isinstance(layer, str) or layer not in state.layers or layer == "input":
        return None
    values = state.drawing_values(LIVE, layer)
    if values is None:
        return None
    order = ask.get("order") or range(len(values))
    if not isinstance(order, list | range) or any(isinstance(u, bool) or not isinstance(u, int) for u in order):
        raise ValueError("a panel order that is not a list of unit numbers")
    order = [u for u in order if 0 <= u < len(values)]  # a unit the panel no longer has is left out, not wrapped
    lo, hi = _bound(ask.get("lo"), float(values.min())), _bound(ask.get("hi"), float(values.max()))
    return figures.viridis(values[order], lo, hi)


def live_update(state: DashboardState, body: Any) -> dict[str, Any]:
    """Set the live drawing from the strokes in ``body`` and say what the page shows for it.

    ``body``: {"strokes": [[[x, y], ...], ...], "version": n, "figure": bool, "panels": [{"layer", "order", "lo",
    "hi"}, ...], "maps": [{"layer", "scale", "first", "count"}, ...]}. The answer has the version, "empty" for a
    blank drawing, else
    "bars" (`figures.probability_bars`), "caption", "preview" (112 px) and "large" (224 px) images, "figure" (the whole
    bar figure, when asked: the card shows a placeholder before the first stroke), "panels" {layer: colours} and
    "maps" {layer: strip PNG}. A request older than one already answered is answered with "stale". A malformed
    body is a ValueError, TypeError or LayerscopeError."""
    strokes = strokes_of(body)
    if sum(len(s) for s in strokes) > MAX_POINTS:
        raise ValueError(f"a drawing of more than {MAX_POINTS:,} points")
    version = check_version(body.get("version", 0))
    digit = drawn_digit(state, body, strokes)
    if not state.set_live(digit, version):
        return {"version": version, "stale": True}
    if digit is None:
        return {"version": version, "empty": True}
    probs = state.drawing_probs[LIVE]
    k = int(np.argmax(probs))
    out: dict[str, Any] = {
        "version": version,
        "bars": figures.probability_bars(probs, k),
        "caption": f"predicted {state.class_names[k]} ({probs[k]:.1%})",
        "preview": state.thumbnail(LIVE, 112),
        "large": state.thumbnail(LIVE, 224),
        "panels": {},
        "maps": {},
    }
    if body.get("figure"):
        out["figure"] = figures.probability_figure(probs, k, state.class_names)
    panels, asked_maps = body.get("panels") or [], body.get("maps") or []
    if not isinstance(panels, list) or not isinstance(asked_maps, list):
        raise ValueError("panels and maps that are not lists")
    for ask in panels:
        colours = _panel_colours(state, ask)
        if colours is not None:
            out["panels"][ask["layer"]] = colours
    maps = state.feature_maps(LIVE)
    for ask in asked_maps:
        layer = ask.get("layer") if isinstance(ask, dict) else None
        if isinstance(layer, str) and layer in maps:
            channels = len(maps[layer])
            first = check_index(ask.get("first", 0), channels, f"{layer} channel")
            count = ask.get("count") or channels  # a page of a wide layer's channels (inside.py fmap_paged)
            if not isinstance(count, int) or isinstance(count, bool) or count < 1:
                raise ValueError(f"a page of {count!r} channels")
            part = slice(first, first + count)
            out["maps"][layer] = channel_strip(maps[layer], ask.get("scale") != "layer", part)
    return out


def register_live(app: Dash, state: DashboardState) -> None:
    """Serve `live_update` at POST ``<routes_pathname_prefix>_layerscope/draw``."""

    def draw() -> Any:
        body = request.get_json(silent=True)
        if not isinstance(body, dict):
            return jsonify(error="expected a JSON object with the drawing's strokes."), 400
        try:
            return jsonify(live_update(state, body))
        except LayerscopeError as e:
            return jsonify(error=str(e)), 400
        except (TypeError, ValueError, KeyError, IndexError, OverflowError) as e:
            return jsonify(error=f"malformed drawing: {' '.join(str(e).split())[:200]}."), 400

    app.server.add_url_rule(app.config.routes_pathname_prefix + ROUTE, "layerscope_draw", draw, methods=["POST"])
