"""The workspace's callbacks: which view shows, the address bar, the header's search, the selected image's ring in
the projections, and the page's downloads.

The view switch and the ring run in the browser (assets/workspace.js: no request, no redraw of a 70,000-point
figure); the address is written and read on the server, where it can be checked against the Run (address.py).
"""

from __future__ import annotations

from typing import Any

from dash import ALL, Input, Output, State, ctx, dcc, no_update
from dash.exceptions import PreventUpdate

from layerscope import export
from layerscope.analysis import find_image
from layerscope.dashboard import ids, views
from layerscope.dashboard.address import PANEL_FIELDS, format_address, parse_address
from layerscope.dashboard.checks import check_groups, check_selection
from layerscope.dashboard.layout import view_body
from layerscope.dashboard.state import DashboardState
from layerscope.dashboard.wiring import Callbacks
from layerscope.errors import LayerscopeError
from layerscope.names import check_label

__all__ = ["callbacks"]

callbacks = Callbacks()

_PANEL_PROPS = [(panel, field) for panel in ids.PANEL_IDS for field in PANEL_FIELDS]


def _panel_id(panel: str, field: str) -> dict[str, Any]:
    return ids.proj(field, panel)


# -- the view: a tab (or a sidebar action) chooses it; the browser shows it at once ----------------------------------
def _view_choices(state: DashboardState) -> list[Any]:
    """The tabs of the views the Run offers, and the sidebar actions whose result is in another view: an
    explanation sorts the activation panels (the unit card's "Switch off this unit" shows the ablation's effect)."""
    names = [name for name, _, _ in views.shown(state.has_model)]
    goto = [ids.EXPLAIN_BUTTON] + ([ids.DRAW_OVER, ids.GOTO_ATTRIBUTION, ids.GOTO_ABLATION] if state.has_model else [])
    return [
        Output(ids.VIEW, "data"),
        *(Input(ids.nav(name), "n_clicks") for name in names),
        *(Input(button, "n_clicks") for button in goto),
        # in the Network view, which is laid out only once it opens (views.py)
        *([Input(ids.UNIT_ABLATE, "n_clicks", allow_optional=True)] if state.has_model else []),
    ]


callbacks.clientside(
    "function() { return window.layerscope.chooseView(window.dash_clientside.callback_context); }",
    _view_choices,
    prevent_initial_call=True,
)
# a view opens at once; the first time, it says so while its components come (lay_out), and it is "shown" once they
# are there and its graphs are measured: the gates of its heavy callbacks follow VIEW_SHOWN
# (none of the views' callbacks runs as the page opens: it opens on the Explore view, laid out and shown)
callbacks.clientside(
    "function(view, loaded) { return window.layerscope.wantView(view, loaded); }",
    Output(ids.VIEW_WANTED, "data"),
    Input(ids.VIEW, "data"),
    State(ids.VIEW_LOADED, "data"),
    prevent_initial_call=True,
)
callbacks.clientside(
    "function(view, loaded) { return window.layerscope.showView(view, loaded); }",
    Output(ids.VIEW_SHOWN, "data"),
    Input(ids.VIEW, "data"),
    Input(ids.VIEW_LOADED, "data"),
    prevent_initial_call=True,
)


_LATER = [name for name in views.NAMES if name != views.DEFAULT]  # the views laid out when they first open


@callbacks.callback(
    *(Output(ids.view(name), "children") for name in _LATER),
    Output(ids.VIEW_LOADED, "data"),
    Input(ids.VIEW_WANTED, "data"),
    State(ids.VIEW_LOADED, "data"),
    prevent_initial_call=True,
)
def lay_out(state: DashboardState, wanted: Any, loaded: Any) -> list[Any]:
    """The components of the view that opens for the first time, and of the views laid out with it
    (views.laid_out_with); the views laid out so far."""
    had = [name for name in loaded if name in views.NAMES] if isinstance(loaded, list) else [views.DEFAULT]
    new = [name for name in views.laid_out_with(views.check_view_name(wanted)) if name not in had]
    if not new:
        raise PreventUpdate
    return [*(view_body(state, name) if name in new else no_update for name in _LATER), [*had, *new]]


callbacks.clientside(views.GATES_JS, views.gate_dependencies, prevent_initial_call=True)


# -- the address bar -------------------------------------------------------------------------------------------------
# the view an address names shows at once, in the browser (at page open here, after back or forward in workspace.js);
# the rest of the address is read on the server, which leaves the view as it finds it. The browser hands the address
# over with set_props, and only where there is one: were ADDRESS_IN this callback's Output, every callback downstream
# of `restore` would wait at page open for a request that changes nothing
callbacks.clientside(
    "function(id) { return window.layerscope.openAddress(); }",
    Output(ids.ADDRESS_OPENED, "data"),
    Input(ids.ADDRESS_IN, "id"),
)


def _restored(state: DashboardState) -> list[Any]:
    # the unit card's unit, through a store outside the Network view, which may not be laid out yet (inside.unit)
    unit = [Output(ids.UNIT_ASKED, "data")] if state.has_model else []
    return [
        Output(ids.SELECTED, "data", allow_duplicate=True),
        *(Output(_panel_id(p, f), "value", allow_duplicate=True) for p, f in _PANEL_PROPS),
        *unit,
        Output(ids.SELECTION, "data", allow_duplicate=True),
        Output(ids.GALLERY_FILTER, "data", allow_duplicate=True),
        Input(ids.ADDRESS_IN, "data"),
        State(ids.SELECTED, "data"),
        *(State(_panel_id(p, f), "value") for p, f in _PANEL_PROPS),
        *([State(ids.UNIT, "data", allow_optional=True)] if state.has_model else []),
    ]


@callbacks.callback(_restored, prevent_initial_call=True)
def restore(state: DashboardState, search: Any, selected: Any, *values: Any) -> list[Any]:
    """What the address asks for, where it differs from what the page shows (an equal value is not re-sent, so
    nothing redraws for it); what the address does not name stays as it is."""
    wanted = parse_address(search, state)
    if not wanted:
        raise PreventUpdate

    def changed(key: Any, now: Any) -> Any:
        return key if key is not None and key != now else no_update

    panel_values, shown_unit = values[: len(_PANEL_PROPS)], values[len(_PANEL_PROPS) :]
    panels = wanted.get("panels", {})
    fields = [changed(panels.get(p, {}).get(f), now) for (p, f), now in zip(_PANEL_PROPS, panel_values, strict=True)]
    unit = [changed(wanted.get("unit"), now) for now in shown_unit]  # one value where the Run has a model
    return [
        changed(wanted.get("image"), selected),
        *fields,
        *unit,
        wanted.get("selection", no_update),
        wanted.get("cell", no_update),
    ]


def _addressed(state: DashboardState) -> list[Any]:
    return [
        Output(ids.ADDRESS, "data"),
        Input(ids.VIEW, "data"),
        Input(ids.SELECTED, "data"),
        *(Input(_panel_id(p, f), "value") for p, f in _PANEL_PROPS),
        # the unit card's, once the Network view is laid out; the one an address asked for until then
        *([Input(ids.UNIT, "data", allow_optional=True), Input(ids.UNIT_ASKED, "data")] if state.has_model else []),
        Input(ids.SELECTION, "data"),
        Input(ids.GALLERY_FILTER, "data"),
    ]


@callbacks.callback(_addressed, prevent_initial_call=True)
def address(state: DashboardState, view: Any, selected: Any, *rest: Any) -> str:
    n = len(_PANEL_PROPS)
    panel_values, more = rest[:n], list(rest[n:])
    unit = None
    if state.has_model:
        shown, asked = more.pop(0), more.pop(0)
        unit = shown if shown is not None else asked
    selection, cell = more
    fields = len(PANEL_FIELDS)
    panels = {p: panel_values[k * fields : (k + 1) * fields] for k, p in enumerate(ids.PANEL_IDS)}
    return format_address(view, selected, panels, unit, selection, cell)


callbacks.clientside(
    "function(search) { return window.layerscope.writeAddress(search); }",
    Output(ids.ADDRESS_DONE, "data"),
    Input(ids.ADDRESS, "data"),
    prevent_initial_call=True,
)


# -- the header's search ---------------------------------------------------------------------------------------------
@callbacks.callback(
    Output(ids.SELECTED, "data", allow_duplicate=True),
    Output(ids.SEARCH_ERROR, "children"),
    Input(ids.SEARCH, "value"),
    prevent_initial_call=True,
)
def search(state: DashboardState, text: Any) -> tuple[Any, str]:
    if not isinstance(text, str) or not text.strip():
        return no_update, ""
    try:
        return find_image(state.names, text[:200]), ""
    except LayerscopeError as e:
        return no_update, str(e)


# -- the selected image's ring in both projections, in the browser ---------------------------------------------------
callbacks.clientside(
    "function(selected) { return window.layerscope.markSelected(selected); }",
    Output(ids.MARKED, "data"),
    Input(ids.SELECTED, "data"),
)


# -- downloads -------------------------------------------------------------------------------------------------------
@callbacks.callback(
    Output(ids.DOWNLOAD, "data"),
    Output(ids.GROUP_ERROR, "children", allow_duplicate=True),
    Input(ids.SELECTION_CSV, "n_clicks"),
    Input({"type": ids.GROUP_CSV, "name": ALL}, "n_clicks"),
    State(ids.SELECTION, "data"),
    State(ids.GROUPS, "data"),
    *(State(_panel_id(p, f), "value") for p, f in _PANEL_PROPS),
    prevent_initial_call=True,
)
def download_rows(
    state: DashboardState, _sel: Any, _groups: Any, selection: Any, groups: Any, *panel_values: Any
) -> Any:
    """The brushed selection or a group as CSV, with each open projection's coordinates."""
    if not ctx.triggered or not ctx.triggered[0]["value"]:
        raise PreventUpdate
    trigger = ctx.triggered_id
    try:
        if isinstance(trigger, dict):
            name = check_label(trigger.get("name"), "group name")
            members = check_groups(state, groups).get(name)
            if members is None:
                raise LayerscopeError(f"there is no group {name!r}; it may have been removed.")
            what = f"group-{name}"
        else:
            members = check_selection(state, selection)
            if not members:
                raise LayerscopeError("brush points in a projection first (lasso or box): they are what downloads.")
            what = "selection"
        table = export.selection_table(state.run, members, _open_projections(state, panel_values))
    except LayerscopeError as e:
        return no_update, str(e)
    return dcc.send_string(table, export.export_name(state.run, what, "csv"), type="text/csv"), ""


def _open_projections(state: DashboardState, panel_values: tuple[Any, ...]) -> dict[str, Any]:
    """{"fc2_pca": (N, 2) coordinates} of each projection the panels show, where the Run has it."""
    out: dict[str, Any] = {}
    for k in range(len(ids.PANEL_IDS)):
        layer, method = panel_values[k * len(PANEL_FIELDS)], panel_values[k * len(PANEL_FIELDS) + 1]
        if layer in state.layers and isinstance(method, str) and state.available(layer, method):
            out[f"{layer}_{method}"] = state.projection(layer, method)
    return out
