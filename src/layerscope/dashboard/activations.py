"""Activation panels: one per layer, a row per image, group mean or digit average, a cell per unit coloured by its
activation (a conv layer's per-channel spatial mean), with the units in an order that shows what differs.

Every panel is one component (``activation_panel`` lays out its frame; ``panel``, a pattern-matching callback, draws
the rows of each), behind the Activations view's gates (views.py): nothing is built while the view is hidden, and a
panel's new order redraws that panel alone.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from dash import ALL, MATCH, Input, Output, State, ctx, dcc, html, no_update
from dash.exceptions import PreventUpdate

from layerscope.analysis import explain_misclassification, group_mean, neuron_order
from layerscope.dashboard import figures, ids, views
from layerscope.dashboard.checks import MAX_ROWS, check_choice, check_groups, check_rows, check_selection
from layerscope.dashboard.components import attrs, card, layer_options
from layerscope.dashboard.state import LIVE, DashboardState, is_drawing
from layerscope.dashboard.wiring import Callbacks
from layerscope.errors import LayerscopeError
from layerscope.names import check_index, check_label

__all__ = ["PANEL_SORTS", "activation_panel", "activations_card", "callbacks"]

PANEL_SORTS = ("none", "mean", "variance", "difference", "explain")


callbacks = Callbacks()


def activations_card(state: DashboardState) -> html.Div:
    return card(
        "Activation panels",
        html.Div(
            [
                dcc.Dropdown(
                    layer_options(state.activation_layers),
                    None,
                    id=ids.PANEL_LAYER,
                    placeholder="layer",
                    className="ctl",
                ),
                html.Button("Open panel", id=ids.PANEL_OPEN, className="btn"),
                html.Button("Add per-digit averages", id=ids.CLASS_ROWS, className="btn"),
            ],
            className="controls",
        ),
        html.Div(
            "Each row is an image, a group's mean or a digit's average; each cell a unit, coloured by its activation.",
            className="hint",
        ),
        html.Div(id=ids.PANEL_AREA),
    )


def _row_label(state: DashboardState, row: dict[str, Any]) -> str:
    if row["kind"] == "image" and is_drawing(row["key"]):
        probs = state.drawing_probs.get(row["key"])
        guess = f" (→{state.class_names[int(np.argmax(probs))]})" if probs is not None else ""
        return f"{state.name(row['key'])}{guess}"
    if row["kind"] == "image":
        i = int(row["key"])
        return f"{state.name(i)} ({state.class_names[state.labels[i]]}→{state.class_names[state.predicted[i]]})"
    if row["kind"] == "class":
        return f"average {state.class_names[int(row['key'])]}"
    if row["kind"] == "selection":
        return "brushed points (mean)"
    return f"group {row['key']}"


def _row_values(
    state: DashboardState, layer: str, row: dict[str, Any], groups: dict[str, list[int]], selection: list[int] | None
) -> np.ndarray | None:
    if row["kind"] == "image" and is_drawing(row["key"]):
        return state.drawing_values(row["key"], layer)
    values = state.values(layer)
    if row["kind"] == "image":
        return np.asarray(values[int(row["key"])], dtype=np.float32)
    if row["kind"] == "class":
        return state.class_means(layer)[int(row["key"])]
    members = selection if row["kind"] == "selection" else groups.get(row["key"])
    if not members:
        return None
    return group_mean(values, members)


# -- rows, groups, panels -------------------------------------------------------------------------------------
@callbacks.callback(
    Output(ids.ROWS, "data"),
    Output(ids.EXPLAIN, "data"),
    Output(ids.PANEL_ORDERS, "data", allow_duplicate=True),
    Input(ids.ADD_BUTTON, "n_clicks"),
    Input(ids.EXPLAIN_BUTTON, "n_clicks"),
    Input(ids.CLASS_ROWS, "n_clicks", allow_optional=True),  # in the Activations view, laid out when it opens
    Input({"type": ids.ROW_REMOVE, "row": ALL}, "n_clicks"),
    Input({"type": ids.GROUP_ADD_ROW, "name": ALL}, "n_clicks"),
    Input(ids.DBLCLICK, "data"),
    State(ids.SELECTED, "data"),
    State(ids.ROWS, "data"),
    State(ids.EXPLAIN, "data"),
    State(ids.PANELS, "data"),
    prevent_initial_call=True,
)
def rows(
    state: DashboardState,
    _a: Any,
    _e: Any,
    _c: Any,
    _r: Any,
    _g: Any,
    dbl: Any,
    selected: Any,
    current: list[Any],
    explain: Any,
    panels: Any,
) -> Any:
    trigger = ctx.triggered_id
    if not ctx.triggered or ctx.triggered[0]["value"] in (None, 0):
        raise PreventUpdate
    rows = check_rows(state, current)

    def add(row: dict[str, Any]) -> None:
        if row not in rows:
            if len(rows) >= MAX_ROWS:
                raise LayerscopeError(f"the activation panels hold {MAX_ROWS} rows at most; remove some first.")
            rows.append(row)

    if trigger in (ids.ADD_BUTTON, ids.DBLCLICK):
        if trigger == ids.DBLCLICK:
            selected = dbl.get("key") if isinstance(dbl, dict) else None
        selected = state.image_key(selected)
        if isinstance(selected, str) and selected.startswith("mean:"):
            add({"kind": "class", "key": int(selected.split(":")[1])})
        elif is_drawing(selected):
            key = state.keep_drawing() if selected == LIVE else selected
            if key is None:
                raise PreventUpdate
            add({"kind": "image", "key": key})
        else:
            add({"kind": "image", "key": selected})
        return rows, explain, no_update
    if trigger == ids.EXPLAIN_BUTTON:
        i = check_index(selected, state.n, "image to explain")
        add({"kind": "image", "key": i})
        add({"kind": "class", "key": int(state.labels[i])})
        add({"kind": "class", "key": int(state.predicted[i])})
        # every open panel sorts its units by how the image departs from its class toward the predicted one
        return rows, i, {layer: "explain" for layer in _check_panels(state, panels)}
    if trigger == ids.CLASS_ROWS:
        for k in range(len(state.class_names)):
            add({"kind": "class", "key": k})
        return rows, explain, no_update
    if isinstance(trigger, dict) and trigger.get("type") == ids.ROW_REMOVE:
        removed = rows.pop(check_index(trigger.get("row"), len(rows), "activation row"))
        if removed == {"kind": "image", "key": explain}:
            explain = None
        return rows, explain, no_update
    if isinstance(trigger, dict) and trigger.get("type") == ids.GROUP_ADD_ROW:
        add({"kind": "group", "key": check_label(trigger.get("name"), "group name")})
    return rows, explain, no_update


@callbacks.callback(
    Output(ids.PANELS, "data"),
    Input(ids.PANEL_OPEN, "n_clicks"),
    Input({"type": ids.PANEL_CLOSE, "layer": ALL}, "n_clicks"),
    State(ids.PANEL_LAYER, "value"),
    State(ids.PANELS, "data"),
    prevent_initial_call=True,
)
def panels(state: DashboardState, _open: Any, _close: Any, layer: Any, current: Any) -> list[str]:
    trigger = ctx.triggered_id
    if not ctx.triggered or ctx.triggered[0]["value"] in (None, 0):
        raise PreventUpdate
    current = _check_panels(state, current)
    if trigger == ids.PANEL_OPEN:
        if not layer or layer in current:
            raise PreventUpdate
        return [*current, check_choice(layer, state.activation_layers, "layer")]
    return [name for name in current if name != trigger.get("layer")]


@callbacks.callback(
    Output(ids.PANEL_ORDERS, "data"),
    Input({"type": ids.PANEL_SORT, "layer": ALL}, "value"),
    State({"type": ids.PANEL_SORT, "layer": ALL}, "id"),
    State(ids.PANEL_ORDERS, "data"),
    prevent_initial_call=True,
)
def orders(state: DashboardState, values: Any, names: Any, current: Any) -> Any:
    """A panel's order dropdown, kept by layer (a redraw of the panels keeps each panel's order)."""
    try:
        now = _check_orders(current)
    except LayerscopeError:
        now = {}
    if not isinstance(values, list) or not isinstance(names, list) or len(values) != len(names):
        raise PreventUpdate
    wanted = dict(now)
    for name, value in zip(names, values, strict=True):
        if isinstance(name, dict) and isinstance(name.get("layer"), str):
            wanted[name["layer"]] = check_choice(value, PANEL_SORTS, "panel order")
    return no_update if wanted == now else wanted


@callbacks.callback(
    Output(ids.PANEL_AREA, "children"),
    # the panels' frames, when the Activations view is shown after panels were opened or closed (or an image
    # explained: its panels open sorted to explain it); each panel then draws its rows itself (`panel`)
    views.gated("panel-frames"),
    State(ids.PANELS, "data"),
    State(ids.PANEL_ORDERS, "data"),
    prevent_initial_call=True,
)
def panel_area(state: DashboardState, gate: Any, panels: Any, orders: Any) -> Any:
    views.opened(gate)
    try:
        panels = _check_panels(state, panels)
        chosen = _check_orders(orders)
    except LayerscopeError as e:
        return html.Div(str(e), className="bad")
    if not panels:
        return html.Div("Open a panel for a layer to compare activations row by row.", className="hint")
    return [activation_panel(state, layer, chosen.get(layer, "none")) for layer in panels]


@callbacks.callback(
    Output({"type": ids.PANEL_BODY, "layer": MATCH}, "children"),
    Output({"type": ids.PANEL_LEGEND, "layer": MATCH}, "children"),
    # hundreds of cells per row: drawn while the Activations view is open; a finished stroke (DRAW_SETTLED) is among
    # what the gate follows: the panels follow the pen stroke by stroke. Called too when a panel's frame is laid out
    # (a new component), never at page open: the page opens with no frame
    views.gated("panels"),
    Input({"type": ids.PANEL_SORT, "layer": MATCH}, "value"),
    State({"type": ids.PANEL_SORT, "layer": MATCH}, "id"),
    State(ids.ROWS, "data"),
    State(ids.GROUPS, "data"),
    State(ids.SELECTION, "data"),
    State(ids.EXPLAIN, "data"),
    State(ids.SNAPSHOT, "data"),
)
def panel(
    state: DashboardState,
    gate: Any,
    sort: Any,
    ident: Any,
    rows: Any,
    groups: Any,
    selection: Any,
    explain: Any,
    snapshot: Any,
) -> Any:
    """One activation panel's rows and colour range, in the order its dropdown chose; at a training snapshot the
    page shows (the timeline's), that network's activations."""
    views.opened(gate)
    try:
        layer = check_choice(ident.get("layer") if isinstance(ident, dict) else None, state.activation_layers, "layer")
        sort = check_choice(sort, PANEL_SORTS, "panel order")
        rows = check_rows(state, rows)
        groups = check_groups(state, groups)
        selection = check_selection(state, selection)
        explain = check_index(explain, state.n, "image to explain") if explain is not None else None
        state = state.at(snapshot)  # the rows were checked against the page's own state: its drawings
    except LayerscopeError as e:
        return html.Div(str(e), className="bad"), ""
    return _panel(state, layer, rows, groups, selection, explain, sort)


def _check_orders(value: Any) -> dict[str, str]:
    """{layer: unit order} of the open panels (PANEL_ORDERS); a layer not named is in unit order."""
    if value is None:
        return {}
    if not isinstance(value, dict) or len(value) > 1000:
        raise LayerscopeError("the panels' orders are not a mapping of layers to orders; reload the page.")
    return {str(k): check_choice(v, PANEL_SORTS, "panel order") for k, v in value.items()}


def _check_panels(state: DashboardState, value: Any) -> list[str]:
    """The layers with an open activation panel: a list of layers with activations, each once."""
    if value is None:
        return []
    if not isinstance(value, list) or len(value) > len(state.activation_layers):
        raise LayerscopeError("the open activation panels are not a list of layers; reload the page.")
    layers = [check_choice(layer, state.activation_layers, "layer") for layer in value]
    return list(dict.fromkeys(layers))


def _panel(
    state: DashboardState,
    layer: str,
    rows: list[dict[str, Any]],
    groups: dict[str, list[int]],
    selection: list[int] | None,
    explain: int | None,
    sort: str,
) -> tuple[list[Any], list[Any]]:
    """(rows, colour legend) of the panel of ``layer``."""
    shown = list(enumerate(rows))
    if selection:
        shown.append((-1, {"kind": "selection", "key": "brushed"}))
    if LIVE in state.drawings:  # the digit being drawn, until it is kept
        shown.append((-2, {"kind": "image", "key": LIVE}))
    values: list[tuple[int, dict[str, Any], np.ndarray]] = []
    for k, row in shown:
        v = _row_values(state, layer, row, groups, selection)
        if v is not None:
            values.append((k, row, v))
    units = len(state.values(layer)[0])
    order = np.arange(units)
    note = ""
    matrix = np.stack([v for _, _, v in values]) if values else np.zeros((0, units))
    if sort == "explain" and explain is not None and state.wrong[explain]:
        order = explain_misclassification(state.run, layer, int(explain)).order
        note = "units sorted by how far the explained image departs from its class toward the predicted one"
    elif sort in ("mean", "variance") and len(matrix):
        order = neuron_order(matrix, sort)
    elif sort == "difference" and len(matrix) >= 2:
        order = neuron_order(matrix, "difference", 0, 1)
        note = "units sorted by the first row minus the second"
    lo, hi = (float(matrix.min()), float(matrix.max())) if len(matrix) else (0.0, 1.0)
    body: list[Any] = [html.Div(note, className="hint")]
    for k, row, v in values:
        colors = figures.viridis(v[order], lo, hi)
        # data-unit (and the panel's data-layer): what assets/ablate.js sends when a click switches the unit off;
        # attributes, not Dash ids, so the panel's hundreds of cells stay cheap to render
        cells = [
            html.Span(className="cell", style={"background": c}, title=f"unit {u}: {x:.3f}", **attrs(unit=u))
            for u, c, x in zip(order, colors, v[order], strict=True)
        ]
        remove = (
            html.Button("×", id={"type": ids.ROW_REMOVE, "row": k}, className="btn small x")
            if k >= 0
            else html.Span(className="x-space")
        )
        name = (
            html.Button(_row_label(state, row), id={"type": ids.ROW_NAME, "row": k}, className="row-name")
            if k >= 0
            else html.Span(_row_label(state, row), className="row-name")
        )
        live: dict[str, Any] = {}
        if row.get("key") == LIVE and k == -2:
            # the Draw panel's fast path (assets/draw.js) recolours this row while the pen moves, in this order and
            # range; a new React key per drawing, so the row Dash draws next replaces whatever was recoloured
            live = {
                "key": f"live-{state.live_version}",
                **attrs(live_layer=layer, order=",".join(str(int(u)) for u in order), lo=lo, hi=hi),
            }
        body.append(html.Div([remove, name, html.Div(cells, className="cells")], className="act-row", **live))
    if not values:
        body.append(html.Div("No rows yet: add images, groups or per-digit averages.", className="hint"))
    legend = [html.Span(f"{lo:.2f}"), html.Span(className="legend-bar"), html.Span(f"{hi:.2f}")]
    return body, legend


SORT_OPTIONS = [
    {"label": "unit order", "value": "none"},
    {"label": "by mean", "value": "mean"},
    {"label": "by variance", "value": "variance"},
    {"label": "first row − second", "value": "difference"},
    {"label": "explain misclassification", "value": "explain"},
]


def activation_panel(state: DashboardState, layer: str, sort: str) -> html.Div:
    """The frame of ``layer``'s panel: its heading, order, colour legend and close; ``panel`` fills in the rows. In
    the page it is ``#panel-<layer>`` with ``data-layer`` (what assets/ablate.js reads)."""
    units = state.run.layer(layer)
    kind = "per-channel spatial mean" if units.kind == "conv" else "activation"
    count = len(state.values(layer)[0])
    head = html.Div(
        [
            html.H4(f"{layer} · {count} units ({kind})"),
            dcc.Dropdown(
                SORT_OPTIONS, sort, id={"type": ids.PANEL_SORT, "layer": layer}, clearable=False, className="ctl sort"
            ),
            html.Div(id={"type": ids.PANEL_LEGEND, "layer": layer}, className="legend"),
            html.Button("close", id={"type": ids.PANEL_CLOSE, "layer": layer}, className="btn small"),
        ],
        className="panel-head",
    )
    body = html.Div(html.Div("drawing the rows…", className="hint"), id={"type": ids.PANEL_BODY, "layer": layer})
    return html.Div([head, body], className="act-panel", id=f"panel-{layer}", **attrs(layer=layer))
