"""The training timeline: for a Run that kept snapshots while training (``train --snapshots``), a card under the
projections with a slider over the snapshots, play/pause and step, the test accuracy curve with the shown snapshot
marked, and the images whose prediction changed into it as a group one click away.

The page shows one snapshot at a time (``ids.SNAPSHOT``: absent until the slider is first moved, the Run as trained).
The projection panels move their points there: each panel's timeline (``timeline.py``: aligned PCA, the t-SNE chain
or AlignedUMAP of its layer, computed in the background where the Run lacks it) comes to the browser once as a
(snapshots, images, 2) float32 array (``TIMELINE_ROUTE``), and assets/timeline.js moves the plotted points from where
they are to where the snapshot has them, frame by frame, without a new figure; the selected image's ring and the lit
selection go along. The activation panels, the network graph and the unit card draw the chosen snapshot's network
(their gates follow ``ids.SNAPSHOT``: views.py; ``DashboardState.at``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import plotly.graph_objects as go
from dash import MATCH, Input, Output, State, ctx, dcc, html, no_update
from dash.exceptions import PreventUpdate
from flask import Response

from layerscope.dashboard import ids
from layerscope.dashboard.checks import check_choice, check_groups
from layerscope.dashboard.components import card
from layerscope.dashboard.jobs import status_line, stopped_line
from layerscope.dashboard.projection import answered_panel
from layerscope.dashboard.state import DashboardState
from layerscope.dashboard.wiring import Callbacks
from layerscope.errors import LayerscopeError
from layerscope.timeline import METHODS as TIMELINE_METHODS

__all__ = ["TIMELINE_ROUTE", "WRONG_ROUTE", "callbacks", "has_snapshots", "timeline_card"]

TIMELINE_ROUTE = "_layerscope/timeline"
WRONG_ROUTE = "_layerscope/timeline-wrong"
FRAME_MS = 1200  # a snapshot's time on screen while playing: the move (~0.5 s) and a pause to look
LABELS = {"pca": "PCA", "tsne": "t-SNE", "umap": "UMAP"}

callbacks = Callbacks()


def has_snapshots(state: DashboardState) -> bool:
    return len(state.snapshots) >= 2


def _info(state: DashboardState) -> list[dict[str, Any]]:
    return [
        {key: entry.get(key) for key in ("index", "step", "epoch", "test_accuracy", "test_loss")}
        for entry in state.snapshots
    ]


def accuracy_figure(state: DashboardState) -> go.Figure:
    """Test accuracy per snapshot over the training steps, the shown snapshot (the last, at first) marked."""
    info = _info(state)
    steps = [e["step"] for e in info]
    accuracy = [e["test_accuracy"] for e in info]
    fig = go.Figure(
        [
            go.Scatter(
                x=steps,
                y=accuracy,
                mode="lines+markers",
                line=dict(color="#4c78a8", width=2),
                marker=dict(size=5),
                hovertemplate="step %{x:,}<br>test accuracy %{y:.2%}<extra></extra>",
                name="test accuracy",
            ),
            go.Scatter(
                x=[steps[-1]],
                y=[accuracy[-1]],
                mode="markers",
                marker=dict(size=13, color="#e45756", line=dict(color="white", width=2)),
                hoverinfo="skip",
                name="shown",
            ),
        ]
    )
    fig.update_layout(
        height=130,
        margin=dict(l=44, r=10, t=6, b=30),
        showlegend=False,
        plot_bgcolor="white",
        xaxis=dict(title=dict(text="training step", standoff=2), gridcolor="#eee", zeroline=False),
        yaxis=dict(tickformat=".0%", gridcolor="#eee", zeroline=False, rangemode="tozero"),
    )
    return fig


def timeline_card(state: DashboardState) -> html.Div:
    """The card; laid out in the Explore view under the projections when the Run has snapshots."""
    info = _info(state)
    last = len(info) - 1
    every = max(1, -(-len(info) // 12))  # at most a dozen labels under the slider; the readout names each snapshot
    marks = {
        k: {"label": f"{e['epoch']:.3g}" if e.get("epoch") is not None else str(k)}
        for k, e in enumerate(info)
        if k % every == 0 or k == last
    }
    controls = html.Div(
        [
            html.Button("▶ Play", id=ids.TL_PLAY, className="btn", title="move through the snapshots, one a second"),
            html.Button("◀", id=ids.TL_BACK, className="btn small", title="the snapshot before"),
            html.Button("▶", id=ids.TL_NEXT, className="btn small", title="the snapshot after"),
            html.Div(
                dcc.Slider(
                    0, last, 1, value=last, marks=marks, id=ids.TL_SLIDER, included=True, allow_direct_input=False
                ),
                className="tl-slider",
                title="training epoch of each snapshot",
            ),
        ],
        className="tl-controls",
    )
    left = html.Div(
        [
            controls,
            html.Div(_readout(info, last), id=ids.TL_READOUT, className="tl-readout"),
            html.Div(
                [
                    html.Button(
                        "Group the images whose prediction changed into this snapshot",
                        id=ids.TL_CHANGED,
                        className="btn",
                        title="the images the snapshot before classed differently, saved as a group",
                    ),
                    html.Span(id=ids.TL_CHANGED_NOTE, className="hint"),
                ],
                className="tl-actions",
            ),
        ],
        className="tl-left",
    )
    curve = dcc.Graph(
        id=ids.TL_CURVE,
        figure=accuracy_figure(state),
        config={"displayModeBar": False},
        className="tl-curve",
    )
    return card(
        "Training timeline",
        html.Div([left, curve], className="tl-body"),
        dcc.Interval(id=ids.TL_TICK, interval=FRAME_MS, disabled=True),
        dcc.Store(id=ids.TL_INFO, data=info),
        extra=html.Span(
            f"{len(info)} snapshots kept while training, the untrained network first: the projections, activation "
            "panels and the network follow the one shown",
            className="hint",
        ),
        class_name="timeline-card",
    )


def _readout(info: list[dict[str, Any]], k: int) -> str:
    """What the slider shows, in words (assets/timeline.js writes the same as the slider moves)."""
    e = info[k]
    parts = [f"snapshot {k} of {len(info) - 1}", f"step {e['step']:,}"]
    if e.get("epoch") is not None:
        parts.append(f"epoch {e['epoch']:.2f}")
    if e.get("test_accuracy") is not None:
        parts.append(f"test accuracy {e['test_accuracy']:.1%}")
    if k == len(info) - 1:
        parts.append("the trained network")
    elif k == 0:
        parts.append("the untrained network")
    return " · ".join(parts)


# -- the slider, play/pause and step: in the browser ----------------------------------------------------------------

callbacks.clientside(
    "function(play, back, next, tick, value, playing, info) { return window.layerscope.timelineStep("
    "window.dash_clientside.callback_context, value, playing, info.length); }",
    Output(ids.TL_SLIDER, "value"),
    Output(ids.TL_TICK, "disabled"),
    Output(ids.TL_PLAY, "children"),
    Input(ids.TL_PLAY, "n_clicks"),
    Input(ids.TL_BACK, "n_clicks"),
    Input(ids.TL_NEXT, "n_clicks"),
    Input(ids.TL_TICK, "n_intervals"),
    State(ids.TL_SLIDER, "value"),
    State(ids.TL_TICK, "disabled"),
    State(ids.TL_INFO, "data"),
    prevent_initial_call=True,
    when=has_snapshots,
)

# the slider's snapshot -> the page's, the readout and the accuracy curve's marker
callbacks.clientside(
    "function(value, info, figure) { return window.layerscope.timelineShown(value, info, figure); }",
    Output(ids.SNAPSHOT, "data"),
    Output(ids.TL_READOUT, "children"),
    Output(ids.TL_CURVE, "figure"),
    Output(ids.TL_BADGE, "children"),
    Input(ids.TL_SLIDER, "value"),
    State(ids.TL_INFO, "data"),
    State(ids.TL_CURVE, "figure"),
    prevent_initial_call=True,
    when=has_snapshots,
)


@callbacks.callback(
    Output(ids.TL_CHANGED, "children"),
    Output(ids.TL_CHANGED, "disabled"),
    Input(ids.SNAPSHOT, "data"),
    prevent_initial_call=True,
    when=has_snapshots,
)
def changed_label(state: DashboardState, snapshot: Any) -> Any:
    """The group button says how many images changed their prediction from the snapshot before to the shown one."""
    k = state.check_snapshot(snapshot)
    k = len(state.snapshots) - 1 if k is None else k
    if k == 0:
        return "The untrained network: no snapshot before it", True
    n = len(state.prediction_changed(k - 1, k))
    return f"Group the {n:,} images whose prediction changed from snapshot {k - 1} to {k}", n == 0


@callbacks.callback(
    Output(ids.GROUPS, "data", allow_duplicate=True),
    Output(ids.TL_CHANGED_NOTE, "children"),
    Input(ids.TL_CHANGED, "n_clicks"),
    State(ids.TL_SLIDER, "value"),
    State(ids.GROUPS, "data"),
    prevent_initial_call=True,
    when=has_snapshots,
)
def changed_group(state: DashboardState, n: Any, snapshot: Any, groups: Any) -> Any:
    """Save the images whose prediction changed from the snapshot before to the shown one as a group."""
    if not n:
        raise PreventUpdate
    k = state.check_snapshot(snapshot)
    if not k:
        raise LayerscopeError("the untrained network has no snapshot before it; move the slider on first.")
    groups = check_groups(state, groups)
    indices = state.prediction_changed(k - 1, k)
    name = f"prediction changed {k - 1}→{k}"
    return {**groups, name: [int(i) for i in indices]}, f"saved as “{name}” ({len(indices):,} images)"


# -- a projection panel's points through the snapshots --------------------------------------------------------------


@callbacks.callback(
    Output(ids.proj("timeline", MATCH), "data"),
    Output(ids.proj("tl-status", MATCH), "children"),
    Input(ids.SNAPSHOT, "data"),
    Input(ids.proj("layer", MATCH), "value"),
    Input(ids.proj("method", MATCH), "value"),
    Input(ids.JOBS_INTERVAL, "n_intervals"),
    State(ids.proj("timeline", MATCH), "data"),
    State(ids.proj("tl-status", MATCH), "children"),
    prevent_initial_call=True,
    when=has_snapshots,
)
def panel_timeline(
    state: DashboardState, snapshot: Any, layer: Any, method: Any, tick: Any, current: Any, status_now: Any
) -> Any:
    """Which timeline a panel's points follow (the address of its array, for assets/timeline.js), and its status:
    computed in the background the first time a snapshot is shown in a panel whose layer's timeline the Run lacks."""
    polled = ctx.triggered_id == ids.JOBS_INTERVAL
    if state.compare is not None and answered_panel() == "b":  # Run B: the timeline is Run A's
        if polled or current is None:
            raise PreventUpdate
        return None, ""
    try:
        k = state.check_snapshot(snapshot)
        layer = check_choice(layer, state.layers, "layer")
    except LayerscopeError as e:
        return None, str(e)
    if k is None or method not in TIMELINE_METHODS:
        text = "" if k is None else "the timeline follows PCA, t-SNE and UMAP: choose one to see training move it"
        if polled and text == (status_now or ""):
            raise PreventUpdate
        return (None if current is not None else no_update), text
    label = f"{LABELS[method]} timeline of {layer}"
    job = state.jobs.get((layer, f"timeline:{method}"))
    if state.timeline_meta(layer, method) is not None:
        if job is not None and job.finished:
            state.scratch.mark_seen(job)
        wanted = _line(state, layer, method)
        if polled and wanted == current:
            raise PreventUpdate
        return (no_update if wanted == current else wanted), ""
    if job is not None and job.finished and job.error:
        if polled:  # stopped or failed: a poll does not start it again; moving the slider does
            state.scratch.mark_seen(job)
            return no_update, stopped_line(label, job, "move the slider to try again.")
    elif polled and job is None:
        raise PreventUpdate
    if job is None or job.finished:
        job = state.start_timeline(layer, method)
    return no_update, status_line(f"computing the {label} over {len(state.snapshots)} snapshots", job)


def _line(state: DashboardState, layer: str, method: str) -> dict[str, Any]:
    """What the browser needs to move a panel's points: its timeline's address (named by when it was computed, so a
    browser's cached copy of an older one is never used), the snapshots' count and the images'."""
    meta = state.timeline_meta(layer, method) or {}
    stamp = str(meta.get("computed", "")).replace(":", "").replace("-", "")
    base = f"{state.url_prefix}{TIMELINE_ROUTE}"
    return {
        "url": f"{base}?layer={layer}&method={method}&v={stamp}&t={state.token}",
        "wrong": f"{state.url_prefix}{WRONG_ROUTE}?t={state.token}",
        "layer": layer,
        "method": method,
        "snapshots": len(state.snapshots),
        "n": state.n,
    }


def _octets(data: np.ndarray) -> Response:
    response = Response(np.ascontiguousarray(data).tobytes(), mimetype="application/octet-stream")
    response.headers["Cache-Control"] = "private, max-age=31536000, immutable"  # its address names its version
    response.headers["X-Shape"] = ",".join(str(d) for d in data.shape)
    return response


@callbacks.route(TIMELINE_ROUTE, when=has_snapshots)
def timeline_array(state: DashboardState, args: Mapping[str, str]) -> Response:
    """(snapshots, images, 2) float32, little-endian: a layer's stored timeline."""
    layer = check_choice(args.get("layer"), state.layers, "layer")
    method = check_choice(args.get("method"), list(TIMELINE_METHODS), "timeline method")
    if state.timeline_meta(layer, method) is None:
        raise LayerscopeError(f"the Run has no {method} timeline of {layer} yet; show a snapshot to compute it.")
    return _octets(state.timeline(layer, method).astype("<f4"))


@callbacks.route(WRONG_ROUTE, when=has_snapshots)
def wrong_array(state: DashboardState, args: Mapping[str, str]) -> Response:
    """(snapshots, images) uint8: 1 where the snapshot's network gets the image wrong (the misclassified rings)."""
    wrong = np.stack([state.snapshot_predicted(k) != state.labels for k in range(len(state.snapshots))]).astype(
        np.uint8
    )
    return _octets(wrong)


# the panel's points move to the shown snapshot in the browser (assets/timeline.js); once there, the plot's
# data-snapshot attribute says which it shows (what tests wait for)
callbacks.clientside(
    "function(line, snapshot, id) { return window.layerscope.timelineTo(id.panel, line, snapshot); }",
    Output(ids.proj("tl-asked", MATCH), "data"),
    Input(ids.proj("timeline", MATCH), "data"),
    Input(ids.SNAPSHOT, "data"),
    State(ids.proj("timeline", MATCH), "id"),
    prevent_initial_call=True,
    when=has_snapshots,
)
