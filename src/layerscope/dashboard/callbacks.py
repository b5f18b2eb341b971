"""Callbacks: glue between component ids, the server-side state and the pure figure builders.

They are registered per app (closures over one DashboardState), so several dashboards can live in one process and
no module global changes per request.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from dash import ALL, Dash, Input, Output, Patch, State, ctx, dcc, html, no_update
from dash.exceptions import PreventUpdate

from layerscope.analysis import confusion_cell, explain_misclassification, group_mean, neuron_order, quick_group
from layerscope.dashboard import figures, ids, views
from layerscope.dashboard.checks import (
    MAX_ROWS,
    check_choice,
    check_groups,
    check_rows,
    check_selection,
    check_view,
    first_point,
)
from layerscope.dashboard.components import attrs
from layerscope.dashboard.gallery import PAGE, gallery_key, gallery_page, thumb
from layerscope.dashboard.layout import METHOD_LABELS, QUALITY_HINTS, method_options
from layerscope.dashboard.state import LIVE, DashboardState, is_drawing
from layerscope.errors import LayerscopeError
from layerscope.interop.seed_json import FILE_METHOD
from layerscope.names import check_index, check_label

PANEL_SORTS = ("none", "mean", "variance", "difference", "explain")

# Light up the selected images in every projection except the one they were brushed in (which shows its own lasso).
HIGHLIGHT_JS = """function(selection, origin) {
    const wanted = selection && selection.length ? new Set(selection) : null;
    ["a", "b"].forEach(function(panel) {
        if (panel === origin) { return; }
        const gd = document.querySelector("#proj-" + panel + "-graph .js-plotly-plot");
        if (!gd || !gd._fullData || !gd._fullData.length) { return; }
        const chosen = gd._fullData.map(function(trace) {
            if (!wanted) { return null; }
            const indices = trace.customdata || [];
            const positions = [];
            for (let i = 0; i < indices.length; i++) { if (wanted.has(indices[i])) { positions.push(i); } }
            return positions;
        });
        Plotly.restyle(gd, {selectedpoints: chosen});
    });
    return selection ? selection.length : 0;
}"""


def _view_states(panel: str) -> list[State]:
    """What a projection panel shows: (layer, method, split, colour); its figure's points follow from these."""
    return [State(ids.proj(name, panel), "value") for name in ("layer", "method", "split", "color")]


def _keep(state: DashboardState, layer: str, method: str, split: str) -> np.ndarray:
    """The images a panel draws: those of the split that the projection places (a file may place only some)."""
    if split == "train":
        keep = state.split == 0
    elif split == "test":
        keep = state.split == 1
    else:
        keep = np.ones(state.n, bool)
    if state.available(layer, method):
        keep = keep & state.projected(layer, method)
    return keep


def _brushed_row(state: DashboardState, selection: list[int] | None, selected: Any) -> list[Any]:
    """The first images of the brushed selection, above the gallery."""
    if not selection:
        return []
    shown = selection[:PAGE]
    title = f"brushed in a projection: {len(selection):,} images" + (
        f" (first {PAGE})" if len(selection) > PAGE else ""
    )
    thumbs = [thumb(state, int(i), selected, state.name(int(i))) for i in shown]
    return [html.Div(title, className="row-title"), html.Div(thumbs, className="thumbs brushed-row")]


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


def register(app: Dash, state: DashboardState) -> None:
    # the page's notice (messages.on_callback_error fills it) hides on a click
    app.clientside_callback(
        "function(n) { return n ? '' : window.dash_clientside.no_update; }",
        Output(ids.PAGE_ERROR, "children"),
        Input(ids.PAGE_ERROR, "n_clicks"),
        prevent_initial_call=True,
    )

    # -- preview ----------------------------------------------------------------------------------------------------
    @app.callback(
        Output(ids.PREVIEW_IMAGE, "src"),
        Output(ids.PREVIEW_CAPTION, "children"),
        Output(ids.PREVIEW_PROBS, "figure"),
        Output(ids.EXPLAIN_BUTTON, "disabled"),
        Input(ids.SELECTED, "data"),
        Input(ids.DRAW_VERSION, "data"),
    )
    def preview(selected: Any, _drawn: Any) -> tuple[Any, ...]:
        try:
            selected = state.image_key(selected)
        except LayerscopeError as e:
            return None, [html.Span(str(e), className="bad")], figures.empty_figure(), True
        if is_drawing(selected):  # no true label: the prediction only, nothing to explain
            probs = state.drawing_probs.get(selected)
            if probs is None:
                return state.thumbnail(selected, 224), [html.B(state.name(selected))], figures.empty_figure(), True
            k = int(np.argmax(probs))
            text = f"predicted {state.class_names[k]} ({probs[k]:.1%})"
            caption = [
                # data-live: the Draw panel's fast path (live.py) restyles this card while the drawing is selected
                html.B(state.name(selected), **(attrs(live=1) if selected == LIVE else {})),
                html.Div(["drawn by hand · ", html.Span(className="live-caption", title=text, **attrs(text=text))]),
            ]
            return (
                state.thumbnail(selected, 224),
                caption,
                figures.probability_figure(probs, k, state.class_names),
                True,
            )
        if ctx.triggered_id == ids.DRAW_VERSION:
            raise PreventUpdate
        if isinstance(selected, str) and selected.startswith("mean:"):
            k = int(selected.split(":")[1])
            probs = np.zeros(len(state.class_names))
            caption = [html.B(f"average {state.class_names[k]}"), html.Div("mean image of the class (proxy instance)")]
            return (
                state.thumbnail(selected, 224),
                caption,
                figures.probability_figure(probs, k, state.class_names),
                True,
            )
        i = int(selected)
        true, pred = int(state.labels[i]), int(state.predicted[i])
        verdict = html.Span("correct", className="ok") if true == pred else html.Span("misclassified", className="bad")
        caption = [
            html.B(state.name(i)),
            html.Div(
                [
                    "true ",
                    html.B(state.class_names[true]),
                    " · predicted ",
                    html.B(state.class_names[pred]),
                    f" ({state.confidence[i]:.1%}) · " if state.has_probabilities else " · ",
                    verdict,
                ]
            ),
        ]
        if not state.has_probabilities:
            return (
                state.thumbnail(i, 224),
                caption,
                figures.empty_figure("the file gives the predicted class only, no probabilities"),
                true == pred,
            )
        probs = np.asarray(state.probs[i], dtype=np.float32)
        return (
            state.thumbnail(i, 224),
            caption,
            figures.probability_figure(probs, true, state.class_names),
            true == pred,
        )

    # -- selecting an image: gallery thumbnails, projection clicks, activation-row names ------------------------------
    # in the browser (assets/workspace.js): the preview's request is the click's first
    app.clientside_callback(
        f"""function(thumbs, topk, clickA, clickB, names, rows) {{
            return window.layerscope.select(window.dash_clientside.callback_context, clickA, clickB, rows,
                                            '{ids.proj("clicked", "a")}', '{ids.ROW_NAME}');
        }}""",
        Output(ids.SELECTED, "data"),
        Input({"type": ids.THUMB, "key": ALL}, "n_clicks"),
        Input({"type": ids.TOPK_THUMB, "key": ALL, "rank": ALL}, "n_clicks"),
        Input(ids.proj("clicked", "a"), "data"),
        Input(ids.proj("clicked", "b"), "data"),
        Input({"type": ids.ROW_NAME, "row": ALL}, "n_clicks"),
        State(ids.ROWS, "data"),
        prevent_initial_call=True,
    )

    # -- confusion matrix -----------------------------------------------------------------------------------------
    @app.callback(Output(ids.CONFUSION, "figure"), Input(ids.CONFUSION, "id"))
    def confusion(_: Any) -> Any:
        return figures.confusion_figure(state.confusion, state.class_names)

    @app.callback(
        Output(ids.GALLERY_FILTER, "data"),
        Output(ids.SELECTION, "data", allow_duplicate=True),
        Output(ids.SELECTION_ORIGIN, "data", allow_duplicate=True),
        Input(ids.CONFUSION, "clickData"),
        Input(ids.GALLERY_CLEAR_FILTER, "n_clicks"),
        prevent_initial_call=True,
    )
    def confusion_click(click: Any, _clear: Any) -> tuple[Any, Any, Any]:
        if ctx.triggered_id == ids.GALLERY_CLEAR_FILTER:
            return None, [], None
        point = first_point(click)
        if "x" not in point:
            raise PreventUpdate
        names = [str(n) for n in state.class_names]
        true = names.index(check_choice(point.get("y"), names, "true class"))
        pred = names.index(check_choice(point["x"], names, "predicted class"))
        members = confusion_cell(state.labels, state.predicted, state.split, true, pred)
        return {"true": true, "pred": pred}, members.tolist(), None

    # -- gallery --------------------------------------------------------------------------------------------------
    @app.callback(
        Output(ids.GALLERY_PAGE, "data"),
        Input(ids.GALLERY_PREV, "n_clicks"),
        Input(ids.GALLERY_NEXT, "n_clicks"),
        Input(ids.GALLERY_DIGIT, "value"),
        Input(ids.GALLERY_SORT, "value"),
        Input(ids.GALLERY_FILTER, "data"),
        State(ids.GALLERY_PAGE, "data"),
        prevent_initial_call=True,
    )
    def page(_p: Any, _n: Any, _d: Any, _s: Any, _f: Any, current: Any) -> int:
        current = current if isinstance(current, int) and not isinstance(current, bool) and current >= 0 else 0
        if ctx.triggered_id == ids.GALLERY_PREV:
            return max(0, current - 1)
        if ctx.triggered_id == ids.GALLERY_NEXT:
            return current + 1
        return 0

    @app.callback(
        Output(ids.GALLERY_BODY, "children"),
        Output(ids.GALLERY_INFO, "children"),
        Output(ids.GALLERY_SHOWN, "data"),
        Input(ids.GALLERY_DIGIT, "value"),
        Input(ids.GALLERY_SORT, "value"),
        Input(ids.GALLERY_PAGE, "data"),
        Input(ids.GALLERY_FILTER, "data"),
        State(ids.SELECTED, "data"),
        State(ids.GALLERY_SHOWN, "data"),
    )
    def gallery(digit: Any, sort: Any, page: Any, filt: Any, selected: Any, shown: Any) -> Any:
        try:
            key = gallery_key(state, digit, sort, page, filt)
        except LayerscopeError as e:
            return [html.Div(str(e), className="bad")], "", None
        if key == shown:  # the page it shows (the first, laid out with the page): the ring follows the selection
            raise PreventUpdate
        body, info = gallery_page(state, key, selected)
        return body, info, key

    @app.callback(
        Output(ids.GALLERY_BRUSHED, "children"),
        Input(ids.SELECTION, "data"),
        Input(ids.GALLERY_FILTER, "data"),
        State(ids.SELECTED, "data"),
    )
    def brushed_strip(selection: Any, cell: Any, selected: Any) -> Any:
        """The brushed images above the gallery; none while a confusion cell fills the gallery with them."""
        return [] if cell else _brushed_row(state, check_selection(state, selection), selected)

    # -- projections ----------------------------------------------------------------------------------------------
    for panel in ids.PANEL_IDS:
        _register_projection(app, state, panel)

    for panel in ids.PANEL_IDS:
        # clicks, hovers and brushes reach the server as the images' indices, each point's customdata, looked up in
        # the browser (assets/workspace.js): selectedData can hold tens of thousands of points with coordinates
        for prop, store in (("selectedData", "brush"), ("clickData", "clicked"), ("hoverData", "hovered")):
            app.clientside_callback(
                f"function(data) {{ return window.layerscope.pointIndices('{panel}', data, '{store}'); }}",
                Output(ids.proj(store, panel), "data"),
                Input(ids.proj("graph", panel), prop),
                prevent_initial_call=True,
            )

    # the images brushed in one panel -> the page's selection, in the browser (`HIGHLIGHT_JS` lights them up in the
    # other panel); what reads the selection on the server checks it there (checks.check_selection)
    app.clientside_callback(
        f"""function(a, b, current) {{
            return window.layerscope.brushed(window.dash_clientside.callback_context, a, b, current,
                                             '{ids.proj("brush", "a")}');
        }}""",
        Output(ids.SELECTION, "data", allow_duplicate=True),
        Output(ids.SELECTION_ORIGIN, "data"),
        Input(ids.proj("brush", "a"), "data"),
        Input(ids.proj("brush", "b"), "data"),
        State(ids.SELECTION, "data"),
        prevent_initial_call=True,
    )

    # Linked highlight, in the browser: a Plotly.restyle of `selectedpoints` on the drawn figure costs one redraw,
    # where a server Patch makes dcc.Graph re-run Plotly.react on the whole 70k-point figure first (measured
    # 0.8 s against 0.15-0.3 s in headless chromium with software WebGL).
    app.clientside_callback(
        HIGHLIGHT_JS,
        Output(ids.HIGHLIGHT_DONE, "data"),
        Input(ids.SELECTION, "data"),
        State(ids.SELECTION_ORIGIN, "data"),
        prevent_initial_call=True,
    )

    # -- rows, groups, panels -------------------------------------------------------------------------------------
    @app.callback(
        Output(ids.ROWS, "data"),
        Output(ids.EXPLAIN, "data"),
        Output(ids.PANEL_ORDERS, "data", allow_duplicate=True),
        Input(ids.ADD_BUTTON, "n_clicks"),
        Input(ids.EXPLAIN_BUTTON, "n_clicks"),
        Input(ids.CLASS_ROWS, "n_clicks"),
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

    @app.callback(
        Output(ids.PANELS, "data"),
        Input(ids.PANEL_OPEN, "n_clicks"),
        Input({"type": ids.PANEL_CLOSE, "layer": ALL}, "n_clicks"),
        State(ids.PANEL_LAYER, "value"),
        State(ids.PANELS, "data"),
        prevent_initial_call=True,
    )
    def panels(_open: Any, _close: Any, layer: Any, current: Any) -> list[str]:
        trigger = ctx.triggered_id
        if not ctx.triggered or ctx.triggered[0]["value"] in (None, 0):
            raise PreventUpdate
        current = _check_panels(state, current)
        if trigger == ids.PANEL_OPEN:
            if not layer or layer in current:
                raise PreventUpdate
            return [*current, check_choice(layer, state.activation_layers, "layer")]
        return [name for name in current if name != trigger.get("layer")]

    @app.callback(
        Output(ids.GROUPS, "data"),
        Output(ids.GROUP_NAME, "value"),
        Output(ids.GROUP_ERROR, "children"),
        Input(ids.GROUP_SAVE, "n_clicks"),
        Input(ids.GROUP_QUICK_ADD, "n_clicks"),
        Input({"type": ids.GROUP_REMOVE, "name": ALL}, "n_clicks"),
        Input({"type": ids.GROUP_RENAME_BUTTON, "name": ALL}, "n_clicks"),
        State({"type": ids.GROUP_RENAME, "name": ALL}, "value"),
        State({"type": ids.GROUP_RENAME, "name": ALL}, "id"),
        State(ids.GROUP_NAME, "value"),
        State(ids.GROUP_QUICK_KIND, "value"),
        State(ids.GROUP_QUICK_CLASS, "value"),
        State(ids.SELECTION, "data"),
        State(ids.GROUPS, "data"),
        prevent_initial_call=True,
    )
    def groups(
        _s: Any,
        _q: Any,
        _r: Any,
        _rn: Any,
        new_names: list[Any],
        rename_ids: list[Any],
        name: Any,
        kind: Any,
        k: Any,
        selection: Any,
        current: Any,
    ) -> Any:
        trigger = ctx.triggered_id
        if not ctx.triggered or ctx.triggered[0]["value"] in (None, 0):
            raise PreventUpdate
        try:
            groups = _edit_groups(state, trigger, new_names, rename_ids, name, kind, k, selection, current)
        except LayerscopeError as e:
            return no_update, no_update, str(e)
        return groups, "" if trigger == ids.GROUP_SAVE else no_update, ""

    @app.callback(Output(ids.GROUP_LIST, "children"), Input(ids.GROUPS, "data"))
    def group_list(groups: Any) -> Any:
        groups = check_groups(state, groups)
        if not groups:
            return html.Div(
                "Brush points in a projection (lasso or box) and save them, or add a quick group.", className="hint"
            )
        return [
            html.Div(
                [
                    html.Span(name, className="group-name"),
                    html.Span(f"{len(members):,} images", className="hint"),
                    html.Button("add to panels", id={"type": ids.GROUP_ADD_ROW, "name": name}, className="btn small"),
                    html.Button(
                        "CSV", id={"type": ids.GROUP_CSV, "name": name}, className="btn small", title="download"
                    ),
                    dcc.Input(
                        id={"type": ids.GROUP_RENAME, "name": name}, placeholder="new name", className="text small"
                    ),
                    html.Button("rename", id={"type": ids.GROUP_RENAME_BUTTON, "name": name}, className="btn small"),
                    html.Button("×", id={"type": ids.GROUP_REMOVE, "name": name}, className="btn small x"),
                ],
                className="group",
            )
            for name, members in groups.items()
        ]

    @app.callback(
        Output(ids.PANEL_ORDERS, "data"),
        Input({"type": ids.PANEL_SORT, "layer": ALL}, "value"),
        State({"type": ids.PANEL_SORT, "layer": ALL}, "id"),
        State(ids.PANEL_ORDERS, "data"),
        prevent_initial_call=True,
    )
    def orders(values: Any, names: Any, current: Any) -> Any:
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

    @app.callback(
        Output(ids.PANEL_AREA, "children"),
        # hundreds of cells per row: drawn while the Activations view is open; a finished stroke (DRAW_SETTLED) is
        # among what the gate follows: the panels follow the pen stroke by stroke
        views.gated("panels"),
        State(ids.PANELS, "data"),
        State(ids.ROWS, "data"),
        State(ids.GROUPS, "data"),
        State(ids.SELECTION, "data"),
        State(ids.EXPLAIN, "data"),
        State(ids.PANEL_ORDERS, "data"),
        prevent_initial_call=True,
    )
    def panel_area(
        gate: Any,
        panels: list[str],
        rows: list[dict[str, Any]],
        groups: dict[str, list[int]],
        selection: Any,
        explain: Any,
        orders: Any,
    ) -> Any:
        views.opened(gate)
        try:
            panels = _check_panels(state, panels)
            rows = check_rows(state, rows)
            groups = check_groups(state, groups)
            selection = check_selection(state, selection)
            explain = check_index(explain, state.n, "image to explain") if explain is not None else None
            chosen = _check_orders(orders)
        except LayerscopeError as e:
            return html.Div(str(e), className="bad")
        if not panels:
            return html.Div("Open a panel for a layer to compare activations row by row.", className="hint")
        return [_panel(state, layer, rows, groups, selection, explain, chosen.get(layer, "none")) for layer in panels]


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


def _edit_groups(
    state: DashboardState,
    trigger: Any,
    new_names: Any,
    rename_ids: Any,
    name: Any,
    kind: Any,
    k: Any,
    selection: Any,
    current: Any,
) -> dict[str, list[int]]:
    """The groups after the button ``trigger``: a selection saved, a quick group added, one removed or renamed."""
    groups = check_groups(state, current)
    if trigger == ids.GROUP_SAVE:
        selection = check_selection(state, selection)
        if not selection:
            raise LayerscopeError("brush points in a projection first; the group is made of them.")
        blank = name is None or (isinstance(name, str) and not name.strip())
        groups[f"selection {len(groups) + 1}" if blank else check_label(name, "group name")] = selection
    elif trigger == ids.GROUP_QUICK_ADD:
        kind = check_choice(kind, ("true", "wrong-as"), "group kind")
        k = check_index(k, len(state.class_names), "class")
        cls = state.class_names[k]
        name = f"true {cls}" if kind == "true" else f"misclassified as {cls}"
        groups[name] = quick_group(state.labels, state.predicted, kind, k).tolist()
    elif isinstance(trigger, dict) and trigger.get("type") == ids.GROUP_REMOVE:
        groups.pop(check_label(trigger.get("name"), "group name"), None)
    elif isinstance(trigger, dict) and trigger.get("type") == ids.GROUP_RENAME_BUTTON:
        old = check_label(trigger.get("name"), "group name")
        if not isinstance(new_names, list) or not isinstance(rename_ids, list) or len(new_names) != len(rename_ids):
            raise LayerscopeError("the rename boxes do not match the groups; reload the page.")
        names = [i.get("name") if isinstance(i, dict) else None for i in rename_ids]
        new = dict(zip(names, new_names, strict=True)).get(old) if old in names else None
        if new is None or (isinstance(new, str) and not new.strip()):
            raise LayerscopeError(f"write the new name of group {old!r} in its box first.")
        new = check_label(new, "group name")
        if new in groups and new != old:
            raise LayerscopeError(f"there is a group {new!r} already; choose another name.")
        groups = {(new if g == old else g): v for g, v in groups.items()}
    else:
        raise PreventUpdate
    return check_groups(state, groups)  # within the bound on members in all


def _panel(
    state: DashboardState,
    layer: str,
    rows: list[dict[str, Any]],
    groups: dict[str, list[int]],
    selection: list[int] | None,
    explain: int | None,
    sort: str,
) -> html.Div:
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
    kind = "per-channel spatial mean" if state.run.layer(layer).kind == "conv" else "activation"
    sort_options = [
        {"label": "unit order", "value": "none"},
        {"label": "by mean", "value": "mean"},
        {"label": "by variance", "value": "variance"},
        {"label": "first row − second", "value": "difference"},
        {"label": "explain misclassification", "value": "explain"},
    ]
    body = []
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
    if not body:
        body = [html.Div("No rows yet: add images, groups or per-digit averages.", className="hint")]
    legend = html.Div(
        [html.Span(f"{lo:.2f}"), html.Span(className="legend-bar"), html.Span(f"{hi:.2f}")], className="legend"
    )
    head = html.Div(
        [
            html.H4(f"{layer} · {units} units ({kind})"),
            dcc.Dropdown(
                sort_options, sort, id={"type": ids.PANEL_SORT, "layer": layer}, clearable=False, className="ctl sort"
            ),
            legend,
            html.Button("close", id={"type": ids.PANEL_CLOSE, "layer": layer}, className="btn small"),
        ],
        className="panel-head",
    )
    return html.Div(
        [head, html.Div(note, className="hint"), *body],
        className="act-panel",
        id=f"panel-{layer}",
        **attrs(layer=layer),
    )


def _register_projection(app: Dash, state: DashboardState, panel: str) -> None:
    @app.callback(
        Output(ids.proj("method", panel), "options"),
        Output(ids.proj("method", panel), "value"),
        Input(ids.proj("layer", panel), "value"),
        State(ids.proj("method", panel), "options"),
        State(ids.proj("method", panel), "value"),
        prevent_initial_call=True,
    )
    def methods(layer: Any, options: Any, method: Any) -> tuple[Any, Any]:
        """The methods a layer offers (a file's own projection, those computed here); unchanged ones stay put so
        the figure is not drawn twice."""
        layer = check_choice(layer, state.layers, "layer")
        wanted = method_options(state, layer)
        value = method if method in state.methods(layer) else wanted[0]["value"]
        return (no_update if wanted == options else wanted), (no_update if value == method else value)

    @app.callback(
        Output(ids.proj("graph", panel), "figure"),
        Output(ids.proj("status", panel), "children"),
        Output(ids.proj("quality", panel), "children"),
        Output(ids.proj("star", panel), "data"),
        Input(ids.proj("layer", panel), "value"),
        Input(ids.proj("method", panel), "value"),
        Input(ids.proj("color", panel), "value"),
        Input(ids.proj("split", panel), "value"),
        Input(ids.JOBS_INTERVAL, "n_intervals"),
        State(ids.SELECTION, "data"),
        State(ids.proj("star", panel), "data"),
        State(ids.proj("status", panel), "children"),
    )
    def projection(
        layer: Any,
        method: Any,
        color: Any,
        split: Any,
        tick: Any,
        selection: Any,
        present: Any,
        status_now: Any,
    ) -> Any:
        try:
            layer, method, split, color = check_view(state, layer, method, split, color)
            selection = check_selection(state, selection)
        except LayerscopeError as e:
            return figures.empty_figure(str(e)), html.Span(str(e), className="bad"), "", no_update
        try:
            fig, status, quality = view(layer, method, color, split, tick, selection)
        except PreventUpdate:
            # a JOBS_INTERVAL tick with nothing new in the projection itself: the drawing's placement, prepared in
            # the background, may have got further or be ready; a Patch brings the star, the figure is not re-sent
            patch, star, placing = star_update(layer, method, bool(present), status_now, moved=False)
            return patch, placing, no_update, star
        # the live drawing as an annotation (clicks on it select nothing), in any projection that can place it
        where, placing = place_live(layer, method) if not status else (None, "")
        if where is not None:
            fig.add_annotation(**figures.drawing_annotation(*where))
        return fig, status or placing, quality, where is not None

    @app.callback(
        Output(ids.proj("graph", panel), "figure", allow_duplicate=True),
        Output(ids.proj("star", panel), "data", allow_duplicate=True),
        Output(ids.proj("status", panel), "children", allow_duplicate=True),
        Input(ids.DRAW_SETTLED, "data"),
        State(ids.proj("star", panel), "data"),
        State(ids.proj("status", panel), "children"),
        *_view_states(panel),
        prevent_initial_call=True,
    )
    def star(_drawn: Any, present: Any, status_now: Any, layer: str, method: str, split: str, color: str) -> Any:
        """Move the drawing's star with a Patch of the layout: the 70,000-point figure is neither sent nor redrawn.
        A projection whose placement must first be rebuilt shows its progress in the status (which sets the page
        polling, JOBS_INTERVAL); the star then comes with the tick that finds it ready (`projection`)."""
        layer, method, split, color = check_view(state, layer, method, split, color)
        return star_update(layer, method, bool(present), status_now, moved=True)

    def place_live(layer: str, method: str) -> tuple[tuple[float, float] | None, str]:
        """The live drawing's (x, y) in the projection (None while it cannot be placed) and the panel's status about
        it: a placement being prepared (with its percent) or its failure; "" otherwise (the Draw card says the rest).
        A finished preparation counts as shown from here on, so the page stops polling for it."""
        where = state.place(LIVE, layer, method)  # starts a background rebuild where one is needed
        job = state.place_job(layer, method)
        if where is None and job is not None and job.finished and job.error is None:
            where = state.place(LIVE, layer, method)  # it finished in the meantime
        busy = LIVE in state.drawings and job is not None and (not job.finished or job.error is not None)
        if job is not None and job.finished:
            state.scratch.mark_seen(job)
        return where, state.placing(layer, method) if busy else ""

    def star_update(layer: str, method: str, present: bool, status_now: Any, moved: bool) -> tuple[Any, Any, Any]:
        """(a Patch of the figure's annotations, whether the star is shown, the status), each no_update where
        unchanged; the star is re-placed when ``moved`` (a new stroke), else only added or removed."""
        where, placing = place_live(layer, method)
        # the status is the placement's only while it shows nothing else (a failed figure keeps its message)
        ours = not status_now or (isinstance(status_now, str) and status_now.startswith(state.PLACING_PREFIXES))
        status = placing if ours and placing != (status_now or "") else no_update
        if (where is not None or present) and (moved or (where is not None) != present):
            patch = Patch()
            patch["layout"]["annotations"] = [figures.drawing_annotation(*where)] if where is not None else []
            return patch, where is not None, status
        if status is no_update:
            raise PreventUpdate
        return no_update, no_update, status

    def view(layer: str, method: str, color: str, split: str, _tick: Any, selection: Any) -> Any:
        label = f"{METHOD_LABELS[method]} of {layer}"
        if method not in state.methods(layer):
            text = (
                f"{(state.run.manifest.get('source') or {}).get('kind', 'this Run')} has no projection of {layer}; "
                "choose "
                + (
                    "PCA, t-SNE, UMAP, LDA or Isomap (computed from its activations)."
                    if state.computable(layer)
                    else "another layer."
                )
                if method == FILE_METHOD
                else f"{layer} has only the projection its file gives (no activations to project): choose 'from file'."
            )
            return figures.empty_figure(text), text, ""
        if not state.available(layer, method):
            job = state.jobs.get((layer, method))
            if job is not None and job.cancelled and ctx.triggered_id == ids.JOBS_INTERVAL:
                # stopped on request: a poll does not start it again, choosing it again does
                state.scratch.mark_seen(job)
                text = f"{label} was cancelled; choose the method again to compute it."
                return figures.empty_figure(text), text, ""
            job = state.start_projection(layer, method)
            if job.error:
                state.scratch.mark_seen(job)
                return figures.empty_figure(), html.Span(f"{label} failed: {job.error}", className="bad"), ""
            # the work it waits on (the PCA a t-SNE starts from) is the task it names
            text = f"computing {label} over {state.n:,} images… {job.describe()}"
            return figures.empty_figure(text), text, ""
        if ctx.triggered_id == ids.JOBS_INTERVAL and _tick is not None and not _was_waiting(state, layer, method):
            raise PreventUpdate
        keep = _keep(state, layer, method, split)
        try:
            embedding = state.projection(layer, method)
            fig = figures.scatter_figure(
                embedding,
                state.labels,
                state.predicted,
                state.confidence,
                keep,
                color,
                state.class_names,
                selection=np.asarray(selection) if selection else None,
            )
        except Exception as e:  # an error in one panel is shown there; the page keeps working
            return figures.empty_figure(), html.Span(f"cannot show {label}: {e}", className="bad"), ""
        meta = state.projection_meta(layer, method)
        # a file's projection of a layer without activations has no trustworthiness: nothing to compare it with
        quality = [
            html.Span(f"{title} {meta[key]:.3f}", title=QUALITY_HINTS[key], className="term")
            for key, title in (("knn_accuracy", "kNN accuracy (k=10, 2-D)"), ("trustworthiness", "trustworthiness"))
            if key in meta
        ]
        shown = int(keep.sum())
        quality.append(html.Span(f"{shown:,} points" + (f" ({split} split)" if split != "all" else "")))
        if meta.get("note"):
            quality.append(html.Span(meta["note"], className="hint"))
        return fig, "", quality

    # Cancel shows while the panel's projection is being computed (its status says "computing ...")
    app.clientside_callback(
        """function(status) {
            const busy = typeof status === "string" && status.indexOf("computing ") === 0;
            return {display: busy ? "inline-block" : "none"};
        }""",
        Output(ids.proj("cancel", panel), "style"),
        Input(ids.proj("status", panel), "children"),
    )

    @app.callback(
        Output(ids.proj("status", panel), "children", allow_duplicate=True),
        Input(ids.proj("cancel", panel), "n_clicks"),
        *_view_states(panel)[:2],
        prevent_initial_call=True,
    )
    def cancel(n: Any, layer: Any, method: Any) -> Any:
        """Stop the projection the panel waits for; the background thread is free for the next one."""
        if not n:
            raise PreventUpdate
        layer, method, _, _ = check_view(state, layer, method, "all", "label")
        if not state.cancel_projection(layer, method):
            raise PreventUpdate
        return f"stopping the {METHOD_LABELS[method]} of {layer}…"

    @app.callback(
        Output(ids.proj("hover-img", panel), "src"),
        Output(ids.proj("hover-text", panel), "children"),
        Input(ids.proj("hovered", panel), "data"),
        prevent_initial_call=True,
    )
    def hover(i: Any) -> Any:
        if i is None:
            raise PreventUpdate
        i = check_index(i, state.n, "image index")
        names = state.class_names
        confidence = f" ({state.confidence[i]:.0%})" if state.has_probabilities else ""
        text = [
            html.B(state.name(i)),
            html.Div(f"true {names[state.labels[i]]}"),
            html.Div(f"predicted {names[state.predicted[i]]}{confidence}"),
        ]
        return state.thumbnail(i), text


def _was_waiting(state: DashboardState, layer: str, method: str) -> bool:
    """True once per page, right after a background projection finished, so its panel redraws exactly then."""
    job = state.jobs.get((layer, method))
    if job is None or not job.finished or state.scratch.seen(job):
        return False
    state.scratch.mark_seen(job)
    return True


def register_jobs(app: Dash, state: DashboardState) -> None:
    @app.callback(
        Output(ids.JOBS_INTERVAL, "disabled"),
        Input(ids.JOBS_INTERVAL, "n_intervals"),
        Input(ids.proj("status", "a"), "children"),
        Input(ids.proj("status", "b"), "children"),
    )
    def poll(_n: Any, _a: Any, _b: Any) -> bool:
        scratch = state.scratch  # this page's: another page's redraw does not stop this one polling
        return all(scratch.seen(job) for job in list(state.jobs.values()))
