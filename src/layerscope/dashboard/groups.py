"""Groups: images a visitor names and keeps (a brushed selection, or a quick group such as "misclassified as 3"),
each one click from the activation panels and a CSV download. They live in the page (sessionStorage), not on the
server."""

from __future__ import annotations

from typing import Any

from dash import ALL, Input, Output, State, ctx, dcc, html, no_update
from dash.exceptions import PreventUpdate

from layerscope.analysis import quick_group
from layerscope.dashboard import ids
from layerscope.dashboard.checks import check_choice, check_groups, check_selection
from layerscope.dashboard.components import card
from layerscope.dashboard.state import DashboardState
from layerscope.dashboard.wiring import Callbacks
from layerscope.errors import LayerscopeError
from layerscope.names import check_index, check_label

__all__ = ["callbacks", "groups_card"]

callbacks = Callbacks()


def groups_card(state: DashboardState) -> html.Div:
    return card(
        "Groups",
        html.Div(
            [
                dcc.Input(id=ids.GROUP_NAME, placeholder="name for the brushed points", className="text"),
                html.Button("Save selection as group", id=ids.GROUP_SAVE, className="btn"),
                html.Button("Download selection (CSV)", id=ids.SELECTION_CSV, className="btn"),
            ],
            className="controls",
        ),
        html.Div(
            [
                dcc.Dropdown(
                    [{"label": "true digit", "value": "true"}, {"label": "misclassified as", "value": "wrong-as"}],
                    "true",
                    id=ids.GROUP_QUICK_KIND,
                    clearable=False,
                    className="ctl",
                ),
                dcc.Dropdown(
                    [{"label": n, "value": k} for k, n in enumerate(state.class_names)],
                    0,
                    id=ids.GROUP_QUICK_CLASS,
                    clearable=False,
                    className="ctl narrow",
                ),
                html.Button("Add group", id=ids.GROUP_QUICK_ADD, className="btn"),
            ],
            className="controls",
        ),
        html.Div(id=ids.GROUP_ERROR, className="bad"),
        html.Div(group_list(state, {}), id=ids.GROUP_LIST, className="group-list"),
        dcc.Download(id=ids.DOWNLOAD),
        class_name="groups-card",
    )


@callbacks.callback(
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
    state: DashboardState,
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


# the page opens with no group listed (groups_card); groups kept in the tab (a reload) reach GROUPS as a change
@callbacks.callback(Output(ids.GROUP_LIST, "children"), Input(ids.GROUPS, "data"), prevent_initial_call=True)
def group_list(state: DashboardState, groups: Any) -> Any:
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
                html.Button("CSV", id={"type": ids.GROUP_CSV, "name": name}, className="btn small", title="download"),
                dcc.Input(id={"type": ids.GROUP_RENAME, "name": name}, placeholder="new name", className="text small"),
                html.Button("rename", id={"type": ids.GROUP_RENAME_BUTTON, "name": name}, className="btn small"),
                html.Button("×", id={"type": ids.GROUP_REMOVE, "name": name}, className="btn small x"),
            ],
            className="group",
        )
        for name, members in groups.items()
    ]


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
