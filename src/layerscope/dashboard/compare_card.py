"""Run against Run: ``layerscope serve RUN_A --compare RUN_B`` shows Run B in projection B, beside Run A in
projection A (the same images: a brush in one lights the same images in the other, as for two layers of one Run), and
a card with what ``compare.compare_runs`` finds: how often the two agree, the images one gets right and the other
wrong (each a group one click away), and the linear CKA of every layer of A with every layer of B as a heatmap whose
cell, clicked, opens those two layers in the projections.

The comparison runs in the background when the page first opens (the CKA over every image; a conv layer's PCA scores
first where a Run lacks them), and the card shows its progress until it is there.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import plotly.graph_objects as go
from dash import Input, Output, State, ctx, dcc, html, no_update
from dash.exceptions import PreventUpdate

from layerscope.dashboard import ids
from layerscope.dashboard.checks import check_choice, check_groups
from layerscope.dashboard.components import card
from layerscope.dashboard.figures import empty_figure
from layerscope.dashboard.jobs import status_line, stopped_line
from layerscope.dashboard.state import DashboardState
from layerscope.dashboard.wiring import Callbacks
from layerscope.errors import LayerscopeError

__all__ = ["callbacks", "compare_card", "comparing", "cka_figure"]

callbacks = Callbacks()
KEY = ("*", "compare")
GROUP_NAMES = {"a": "A right, B wrong", "b": "B right, A wrong"}


def comparing(state: DashboardState) -> bool:
    return state.compare is not None


def compare_card(state: DashboardState) -> html.Div:
    """The comparison card of the Explore view; its contents come from ``comparison`` (at once when computed)."""
    assert state.compare is not None
    if state.comparison is None:
        state.start_comparison()  # the page polls from the start (projection.opens_waiting) and draws it when done
    summary, figure, disabled = _contents(state)
    groups = html.Div(
        [
            html.Button(
                f"Group: {GROUP_NAMES[side]}",
                id={"type": ids.CMP_GROUP, "side": side},
                className="btn",
                disabled=disabled,
                title="save the images as a group (Groups card) to see them in the activation panels",
            )
            for side in ("a", "b")
        ]
        + [html.Span(id=ids.CMP_NOTE, className="hint")],
        className="cmp-actions",
    )
    return card(
        "Run A against Run B",
        html.Div(summary, id=ids.CMP_SUMMARY, className="cmp-summary"),
        groups,
        dcc.Graph(id=ids.CMP_CKA, figure=figure, config={"displayModeBar": False}, className="cmp-cka"),
        extra=html.Span(
            f"A: {state.run.path.name} · B: {state.compare.run.path.name} · click a cell to open those two layers",
            className="hint",
        ),
        class_name="compare-card",
    )


def cka_figure(layers_a: list[str], layers_b: list[str], cka: np.ndarray) -> go.Figure:
    """The linear CKA of every layer of A (rows, first at the top) with every layer of B (columns), 0 to 1."""
    small = cka.size <= 196
    fig = go.Figure(
        go.Heatmap(
            z=cka,
            x=layers_b,
            y=layers_a,
            zmin=0,
            zmax=1,
            colorscale="Viridis",
            colorbar=dict(title=dict(text="CKA", side="right"), thickness=12),
            text=np.round(cka, 2) if small else None,
            texttemplate="%{text:.2f}" if small else None,
            hovertemplate="A %{y} · B %{x}<br>linear CKA %{z:.3f}<extra>click: open both</extra>",
        )
    )
    fig.update_layout(
        height=min(640, max(260, 34 * len(layers_a) + 90)),  # a deep network: smaller cells, no numbers
        margin=dict(l=10, r=10, t=10, b=10),
        xaxis=dict(title="Run B", side="bottom", type="category", automargin=True),
        yaxis=dict(title="Run A", autorange="reversed", type="category", automargin=True),
        plot_bgcolor="white",
    )
    return fig


def _contents(state: DashboardState) -> tuple[Any, Any, bool]:
    """(summary, CKA figure, group buttons disabled) of the comparison, or of its progress while it runs."""
    found = state.comparison
    job = state.jobs.get(KEY)
    if found is None:
        if job is not None and job.stopped:
            text = stopped_line("the comparison", job, "reload the page to try again.")
            return html.Span(text, className="bad"), empty_figure(), True
        text = status_line("comparing the two Runs over every image", job) if job else "comparing…"
        return text, empty_figure(), True
    a_wrong_b = len(found.b_only)
    summary = [
        html.B(f"{found.agreement:.2%}"),
        f" of the {found.n_images:,} images get the same prediction from both · ",
        html.B(f"{len(found.a_only):,}"),
        " A right, B wrong · ",
        html.B(f"{a_wrong_b:,}"),
        " B right, A wrong",
    ]
    return summary, cka_figure(found.layers_a, found.layers_b, found.cka), False


@callbacks.callback(
    Output(ids.CMP_SUMMARY, "children"),
    Output(ids.CMP_CKA, "figure"),
    Output({"type": ids.CMP_GROUP, "side": "a"}, "disabled"),
    Output({"type": ids.CMP_GROUP, "side": "b"}, "disabled"),
    Input(ids.JOBS_INTERVAL, "n_intervals"),
    when=comparing,  # called as the page opens too: its layout was made once, maybe before the comparison ended
)
def progress(state: DashboardState, tick: Any) -> Any:
    """The comparison as the page opens, its progress while the page polls, its result once there (then never sent
    again)."""
    job = state.jobs.get(KEY)
    if job is None or (tick is not None and state.scratch.seen(job)):
        raise PreventUpdate
    summary, figure, disabled = _contents(state)
    if job.finished:
        state.scratch.mark_seen(job)
    return summary, figure if job.finished else no_update, disabled, disabled


@callbacks.callback(
    Output(ids.proj("layer", "a"), "value", allow_duplicate=True),
    Output(ids.proj("layer", "b"), "value", allow_duplicate=True),
    Input(ids.CMP_CKA, "clickData"),
    prevent_initial_call=True,
    when=comparing,
)
def open_layers(state: DashboardState, click: Any) -> Any:
    """A CKA cell clicked: its layer of A in projection A, its layer of B in projection B."""
    point = (click or {}).get("points", [{}])[0] if isinstance(click, dict) else {}
    if not isinstance(point, dict) or "x" not in point or "y" not in point:
        raise PreventUpdate
    assert state.compare is not None
    layer_a = check_choice(point["y"], state.layers, "layer of Run A")
    layer_b = check_choice(point["x"], state.compare.layers, "layer of Run B")
    return layer_a, layer_b


@callbacks.callback(
    Output(ids.GROUPS, "data", allow_duplicate=True),
    Output(ids.CMP_NOTE, "children"),
    Input({"type": ids.CMP_GROUP, "side": "a"}, "n_clicks"),
    Input({"type": ids.CMP_GROUP, "side": "b"}, "n_clicks"),
    State(ids.GROUPS, "data"),
    prevent_initial_call=True,
    when=comparing,
)
def group(state: DashboardState, _a: Any, _b: Any, groups: Any) -> Any:
    """The images one Run gets right and the other wrong, saved as a group."""
    trigger = ctx.triggered_id
    if not isinstance(trigger, dict) or not ctx.triggered or not ctx.triggered[0]["value"]:
        raise PreventUpdate
    found = state.comparison
    if found is None:
        raise LayerscopeError("the comparison is still being computed; the groups come with it.")
    side = check_choice(trigger.get("side"), ["a", "b"], "side")
    indices = found.a_only if side == "a" else found.b_only
    name = GROUP_NAMES[side]
    return {**check_groups(state, groups), name: [int(i) for i in indices]}, f"saved “{name}” ({len(indices):,} images)"
