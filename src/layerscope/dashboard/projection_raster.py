"""Projection panels of more than ``raster.RASTER_MIN`` points, drawn by Datashader on the server (raster.py).

A panel's figure is then a raster of its current view. The page sends what the points would have told the server
another way (assets/workspace.js):

- a zoom or a pan: the new view (``proj-zoom``), drawn again, as points once it holds few enough;
- a lasso or a box: its polygon or range (``proj-lasso``), which becomes the images' indices here and from there
  the page's selection, as a brush of points does (``proj-brush``);
- the page's selection: drawn into the raster of every panel showing one, the rest faded;
- the selected image: its place (``proj-at``), where the page rings it.

Registered only for a Run with that many images: a smaller Run's page makes none of these requests.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

import numpy as np
from dash import MATCH, Input, Output, State, ctx
from dash.exceptions import PreventUpdate

from layerscope.analysis import shown_points
from layerscope.dashboard import figures, ids, raster
from layerscope.dashboard.checks import check_selection, check_view
from layerscope.dashboard.state import DashboardState
from layerscope.dashboard.wiring import Callbacks
from layerscope.errors import LayerscopeError

__all__ = ["callbacks", "is_large", "panel_figure"]


def is_large(state: DashboardState) -> bool:
    """Whether a panel of the Run can show more than ``RASTER_MIN`` points (a Run compared with it counts too)."""
    return state.n > raster.RASTER_MIN or (state.compare is not None and state.compare.n > raster.RASTER_MIN)


callbacks = Callbacks()


@lru_cache(maxsize=8)
def panel_points(
    state: DashboardState, layer: str, method: str, color: str, split: str, snapshot: int | None = None
) -> raster.Points:
    """The points a panel draws, grouped for colouring: built once per view (about 0.1 s for a million)."""
    if snapshot is not None:
        embedding = state.timeline(layer, method)[snapshot]
        predicted, confidence = state.snapshot_predictions(snapshot)
    else:
        embedding, predicted, confidence = state.projection(layer, method), state.predicted, state.confidence
    keep = shown_points(state.split, split, state.projected(layer, method))
    return raster.points(embedding, state.labels, predicted, confidence, keep, color, state.class_names)


def panel_figure(
    state: DashboardState,
    layer: str,
    method: str,
    color: str,
    split: str,
    snapshot: int | None = None,
    view: list[float] | None = None,
    selection: list[int] | None = None,
    size: raster.Size = (raster.WIDTH, raster.HEIGHT),
) -> dict[str, Any] | None:
    """The figure of a panel showing more than ``RASTER_MIN`` points, of ``view`` (all of them by default): a raster
    with ``selection`` lit, or the points themselves where the view holds at most ``EXACT_MAX``; ``size``: the
    plot's pixels. None for a panel showing fewer: its figure is the scatter of them all (projection.py)."""
    pts = panel_points(state, layer, method, color, split, snapshot)
    if len(pts) <= raster.RASTER_MIN:
        return None
    view = list(pts.full) if view is None else view
    meta = {"layer": layer, "method": method, "snapshot": snapshot, "color": color, "split": split}
    inside = pts.in_view(view)
    if int(inside.sum()) <= raster.EXACT_MAX:
        return _points_figure(state, pts, view, inside, color, meta, size)
    selected = None
    if selection:
        chosen = np.zeros(state.n, bool)
        chosen[selection] = True
        selected = chosen[pts.index]
    return raster.raster_figure(pts, view, selected, meta, size)


def _points_figure(
    state: DashboardState,
    pts: raster.Points,
    view: list[float],
    inside: np.ndarray,
    color: str,
    meta: dict[str, Any],
    size: raster.Size,
) -> dict[str, Any]:
    """The scatter of the points in ``view``: the panel as a smaller Run's, on the view's axes, its meta saying it
    stands for a raster (zooming out draws the raster again)."""
    keep = np.zeros(state.n, bool)
    keep[pts.index[inside]] = True
    embedding = np.zeros((state.n, 2), np.float32)
    embedding[pts.index] = pts.xy
    predicted, confidence = state.predicted, state.confidence
    if meta["snapshot"] is not None:
        predicted, confidence = state.snapshot_predictions(meta["snapshot"])
    fig = figures.scatter_figure(embedding, state.labels, predicted, confidence, keep, color, state.class_names)
    x0, x1, y0, y1 = view
    fig.update_xaxes(range=[x0, x1])
    fig.update_yaxes(range=[y0, y1])
    raster_meta = {
        "view": list(view),
        "full": list(pts.full),
        "size": list(size),
        "shown": int(inside.sum()),
        "points": True,
    }
    fig.update_layout(meta={**meta, "raster": raster_meta})
    return figures.figure_json(fig)


def _view(value: Any, layer: str, method: str, color: str, split: str) -> tuple[list[float] | None, raster.Size]:
    """(the view, the plot's size) the page says a panel shows (``proj-zoom``: workspace.js rasterZoom); the view is
    None (the whole projection) when it is not of the panel's present figure."""
    size = (
        raster.check_size(value["size"])
        if isinstance(value, dict) and "size" in value
        else (raster.WIDTH, raster.HEIGHT)
    )
    if not isinstance(value, dict) or [value.get(k) for k in ("layer", "method", "color", "split")] != [
        layer,
        method,
        color,
        split,
    ]:
        return None, size
    view = value.get("view")
    if not isinstance(view, list) or len(view) != 4 or not all(isinstance(v, int | float) for v in view):
        raise LayerscopeError("the panel's view is not four numbers; zoom out and in again.")
    x0, x1, y0, y1 = (float(v) for v in view)
    if not (np.isfinite([x0, x1, y0, y1]).all() and x1 > x0 and y1 > y0):
        raise LayerscopeError("the panel's view is empty or not finite; zoom out and in again.")
    return [x0, x1, y0, y1], size


def _snapshot(state: DashboardState, layer: str, method: str, snapshot: Any) -> int | None:
    """The training snapshot a panel shows: the page's, where the Run has the panel's timeline."""
    has_line = state.snapshots and state.timeline_meta(layer, method) is not None
    return state.check_snapshot(snapshot) if has_line else None


def _panel(state: DashboardState) -> DashboardState:
    from layerscope.dashboard.projection import _side

    return _side(state)


def _view_states() -> list[State]:
    return [State(ids.proj(name, MATCH), "value") for name in ("layer", "method", "split", "color")]


# a zoom, a pan or a reset of a raster panel -> its new view, with what the figure draws (workspace.js rasterZoom)
callbacks.clientside(
    "function(relayout, id) { return window.layerscope.rasterZoom(id.panel, relayout); }",
    Output(ids.proj("zoom", MATCH), "data"),
    Input(ids.proj("graph", MATCH), "relayoutData"),
    State(ids.proj("graph", MATCH), "id"),
    prevent_initial_call=True,
    when=is_large,
)


@callbacks.callback(
    Output(ids.proj("graph", MATCH), "figure", allow_duplicate=True),
    Input(ids.proj("zoom", MATCH), "data"),
    Input(ids.SELECTION, "data"),
    State(ids.SNAPSHOT, "data"),
    *_view_states(),
    prevent_initial_call=True,
    when=is_large,
)
def redraw(
    state: DashboardState, zoom: Any, selection: Any, snapshot: Any, layer: Any, method: Any, split: Any, color: Any
) -> Any:
    """A raster panel's view drawn again: zoomed or panned to, or with the page's selection lit."""
    state = _panel(state)
    try:
        layer, method, split, color = check_view(state, layer, method, split, color)
        if not state.available(layer, method):
            raise PreventUpdate
        view, size = _view(zoom, layer, method, color, split)
        chosen = check_selection(state, selection)
        snapshot = _snapshot(state, layer, method, snapshot)
    except LayerscopeError:
        raise PreventUpdate from None
    if ctx.triggered_id == ids.SELECTION:
        pts = panel_points(state, layer, method, color, split, snapshot)
        shown = pts.in_view(view if view is not None else pts.full).sum()
        if len(pts) <= raster.RASTER_MIN or shown <= raster.EXACT_MAX:
            raise PreventUpdate  # a scatter: the browser lights its points (workspace.js highlight)
    figure = panel_figure(state, layer, method, color, split, snapshot, view, chosen, size)
    if figure is None:
        raise PreventUpdate
    return figure


# a lasso or a box over a raster -> its polygon or range (workspace.js rasterBrush): the images in it are found here
callbacks.clientside(
    "function(selected, id) { return window.layerscope.rasterBrush(id.panel, selected); }",
    Output(ids.proj("lasso", MATCH), "data"),
    Input(ids.proj("graph", MATCH), "selectedData"),
    State(ids.proj("graph", MATCH), "id"),
    prevent_initial_call=True,
    when=is_large,
)


@callbacks.callback(
    Output(ids.proj("brush", MATCH), "data", allow_duplicate=True),
    Input(ids.proj("lasso", MATCH), "data"),
    State(ids.SNAPSHOT, "data"),
    *_view_states(),
    prevent_initial_call=True,
    when=is_large,
)
def lasso(state: DashboardState, drawn: Any, snapshot: Any, layer: Any, method: Any, split: Any, color: Any) -> Any:
    """The images inside a lasso or a box drawn over a raster, as a brush of points gives them (sorted indices)."""
    state = _panel(state)
    try:
        layer, method, split, color = check_view(state, layer, method, split, color)
        snapshot = _snapshot(state, layer, method, snapshot)
        shape = _drawn(drawn)
    except LayerscopeError:
        raise PreventUpdate from None
    if shape is None:
        return None  # the brush cleared
    pts = panel_points(state, layer, method, color, split, snapshot)
    found = raster.inside(pts, **shape)
    return found.tolist()


def _drawn(value: Any) -> dict[str, Any] | None:
    """A lasso ({"lasso": [xs, ys]}) or a box ({"box": [x0, x1, y0, y1]}) as `raster.inside` takes it; None for a
    cleared brush."""
    if value is None:
        return None
    bad = LayerscopeError("the brushed shape is malformed; brush the points again.")
    if not isinstance(value, dict):
        raise bad

    def numbers(items: Any, at_most: int) -> list[float]:
        if not isinstance(items, list) or len(items) > at_most or not all(isinstance(v, int | float) for v in items):
            raise bad
        if not np.isfinite(np.asarray(items, np.float64)).all():
            raise bad
        return [float(v) for v in items]

    if "box" in value:
        box = numbers(value["box"], 4)
        if len(box) != 4:
            raise bad
        return {"box": box}
    polygon = value.get("lasso")
    if not isinstance(polygon, list) or len(polygon) != 2:
        raise bad
    xs, ys = numbers(polygon[0], 100_000), numbers(polygon[1], 100_000)
    if len(xs) != len(ys):
        raise bad
    return {"lasso": (xs, ys)}


@callbacks.callback(
    Output(ids.proj("at", MATCH), "data"),
    Input(ids.SELECTED, "data"),
    *[Input(ids.proj(name, MATCH), "value") for name in ("layer", "method", "split", "color")],
    State(ids.SNAPSHOT, "data"),
    when=is_large,  # at page open too: the first selected image is ringed
)
def at(state: DashboardState, selected: Any, layer: Any, method: Any, split: Any, color: Any, snapshot: Any) -> Any:
    """Where the selected image is in a raster panel, [x, y] (None: not shown there), for the page's ring
    (workspace.js); a scatter finds it among its points itself."""
    state = _panel(state)
    if type(selected) is not int or not 0 <= selected < state.n:
        return None
    try:
        layer, method, split, color = check_view(state, layer, method, split, color)
        if not state.available(layer, method):
            return None
        snapshot = _snapshot(state, layer, method, snapshot)
    except LayerscopeError:
        return None
    pts = panel_points(state, layer, method, color, split, snapshot)
    if len(pts) <= raster.RASTER_MIN:
        raise PreventUpdate
    where = np.flatnonzero(pts.index == selected)
    return [*(float(v) for v in pts.xy[where[0]]), selected] if len(where) else None


callbacks.clientside(
    "function(at, id) { return window.layerscope.rasterRing(id.panel, at); }",
    Output(ids.proj("ringed", MATCH), "data", allow_duplicate=True),
    Input(ids.proj("at", MATCH), "data"),
    State(ids.proj("graph", MATCH), "id"),
    prevent_initial_call=True,
    when=is_large,
)
