"""A projection panel, as an All-in-One component: ``projection_panel(state, "a", ...)`` lays out one; the callbacks
below serve every panel at once (pattern-matching ids, ``ids.proj(part, MATCH)``), so panels A and B are one piece
of code.

A panel shows one (layer, method) projection of every image, coloured one of four ways, with its quality figures,
a Cancel for a projection being computed, a hover card and its coordinates as CSV or .npy. Clicks, hovers and brushes
reach the server as the images' indices (each point's customdata, read in the browser: assets/workspace.js); the
images brushed in one panel light up in the other without a request (assets/workspace.js highlight).
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

import numpy as np
from dash import ALL, MATCH, Input, Output, Patch, State, ctx, dcc, html, no_update
from dash.exceptions import PreventUpdate

from layerscope import export
from layerscope.analysis import shown_points
from layerscope.dashboard import figures, ids, projection_raster, raster
from layerscope.dashboard.checks import check_choice, check_view
from layerscope.dashboard.components import card, layer_options
from layerscope.dashboard.jobs import status_line, stopped_line
from layerscope.dashboard.placing import PLACING_PREFIXES
from layerscope.dashboard.state import LIVE, DashboardState
from layerscope.dashboard.wiring import Callbacks
from layerscope.errors import LayerscopeError
from layerscope.interop.seed_json import FILE_METHOD
from layerscope.layers import last_hidden_layer
from layerscope.names import check_index

__all__ = [
    "METHOD_LABELS",
    "answered_panel",
    "callbacks",
    "default_views",
    "method_options",
    "opens_waiting",
    "projection_panel",
]

METHOD_LABELS = {
    "file": "from file",
    "pca": "PCA",
    "tsne": "t-SNE",
    "umap": "UMAP",
    "lda": "LDA",
    "isomap": "Isomap",
}
# what each method does, one line: the tooltip of its option
METHOD_HINTS = {
    "file": "the 2-D coordinates the imported file gives",
    "pca": "PCA: the two directions of largest variance; linear, keeps global distances, fast",
    "tsne": "t-SNE: keeps each point's nearest neighbours close; clusters are real, distances between them are not",
    "umap": "UMAP: neighbour graph laid out in 2-D; like t-SNE, keeps more of the global layout",
    "lda": "LDA: the linear directions that best separate the classes (uses the labels)",
    "isomap": "Isomap: keeps distances measured along the neighbour graph (geodesic), for curved manifolds",
}
COMPUTING = "computing "  # how a panel's status begins while its projection is computed (Cancel shows then)
QUALITY_HINTS = {
    "knn_accuracy": "the share of points whose 10 nearest neighbours in the 2-D map mostly share their label",
    "trustworthiness": "how far 2-D neighbours were neighbours in the layer too (1: no false neighbours)",
}
COLOR_OPTIONS = [
    {"label": "true label", "value": "label"},
    {"label": "predicted label", "value": "predicted"},
    {"label": "correct / wrong", "value": "correct"},
    {"label": "confidence", "value": "confidence"},
]
SPLIT_OPTIONS = [{"label": s, "value": s} for s in ("all", "train", "test")]
# what a transformer's token layer is projected from (`LayerInfo.token_features`): the Run's choice
TOKEN_OPTIONS = [
    {"label": "class token", "value": "cls", "title": "the class token's features: what the model classifies from"},
    {"label": "token mean", "value": "mean", "title": "the mean of the patch tokens' features"},
]

callbacks = Callbacks()


def method_options(state: DashboardState, layer: str) -> list[dict[str, str]]:
    return [{"label": METHOD_LABELS[m], "value": m, "title": METHOD_HINTS[m]} for m in state.methods(layer)]


def default_views(state: DashboardState) -> tuple[tuple[str, str], tuple[str, str]]:
    """(layer, method) of projection panels A and B when the page opens: a file's own projections when it has them
    (its deepest and its first), else the last hidden dense layer (``last_hidden_layer``) and the input, by PCA."""
    from_file = [layer for layer in state.layers if state.available(layer, FILE_METHOD)]
    if from_file:
        return (from_file[-1], FILE_METHOD), (from_file[0], FILE_METHOD)
    # a dense layer: stored whole, so its PCA is there or quick, where a conv layer's needs the model over every image
    first = last_hidden_layer(state.run.layers, len(state.class_names), kinds=("dense",))
    return (first, "pca"), (state.layers[0], "pca")


def token_choice(state: DashboardState, layer: str) -> tuple[list[dict[str, Any]], str | None, dict[str, str]]:
    """(options, value, style) of a panel's "projected from" switch: shown for a transformer's token layer only;
    the class token is offered where the layer has one."""
    info = state.run.layer(layer)
    if info.tokens is None:
        return TOKEN_OPTIONS, None, {"display": "none"}
    options = [o | ({"disabled": True} if o["value"] == "cls" and not info.tokens else {}) for o in TOKEN_OPTIONS]
    return options, info.token_features, {}


def projection_panel(state: DashboardState, panel: str, layer: str, method: str, title: str = "") -> html.Div:
    """Panel ``panel`` ("a", "b") of ``state``'s Run, opening on ``method`` of ``layer``; ``title`` names the Run
    when two are compared. In the page its box is ``#proj-<panel>`` and each part has the class ``proj-<part>``
    (``#proj-a .proj-graph``): what the scripts and the tests look for."""

    def part(name: str) -> dict[str, Any]:
        return {"id": ids.proj(name, panel), "className": f"proj-{name}"}

    # the first view comes with the page when the Run has it: drawn as soon as the page is, with no request; one it
    # lacks is computed once the page polls (``opens_waiting``, the projection callback on the first tick)
    figure, status, quality = (
        _shown(state, layer, method, "label", "all")
        if state.available(layer, method)
        else (None, f"{COMPUTING}the {METHOD_LABELS[method]} of {layer}…", "")
    )

    colors = [c for c in COLOR_OPTIONS if c["value"] != "confidence" or state.has_probabilities]
    controls = html.Div(
        [
            dcc.Dropdown(layer_options(state.layers), layer, clearable=False, **_classes(part("layer"), "ctl layer")),
            dcc.Dropdown(method_options(state, layer), method, clearable=False, **_classes(part("method"), "ctl")),
            dcc.Dropdown(colors, "label", clearable=False, **_classes(part("color"), "ctl wide")),
            dcc.RadioItems(SPLIT_OPTIONS, "all", inline=True, **_classes(part("split"), "radio")),
        ],
        className="controls",
    )
    token_options, token_value, token_style = token_choice(state, layer)
    tokens = html.Div(
        [
            html.Span("projected from", className="label"),
            dcc.RadioItems(token_options, token_value, inline=True, **_classes(part("tokens"), "radio")),
        ],
        id=ids.proj("tokens-row", panel),
        className="controls tokens-row",
        style=token_style,
    )
    body = card(
        f"Projection {panel.upper()}" + (f" · {title}" if title else ""),
        controls,
        tokens,
        html.Div(
            [
                html.Div(status, **_classes(part("status"), "status")),
                html.Button(
                    "Cancel",
                    style={"display": "none"},
                    title="stop computing this projection",
                    **_classes(part("cancel"), "btn small"),
                ),
                # the training timeline's word on this panel (timeline_card.py): its timeline being computed
                html.Div(**_classes(part("tl-status"), "status")),
            ],
            className="status-row",
        ),
        html.Div(
            [
                dcc.Graph(
                    figure=figure,
                    config={
                        "displaylogo": False,
                        "scrollZoom": True,
                        "toImageButtonOptions": {"filename": f"projection-{panel}", "scale": 2},
                    },
                    **part("graph"),
                ),
                html.Div(
                    [html.Img(**part("hover-img")), html.Div(**part("hover-text"))],
                    **_classes(part("hover"), "hover-box"),
                ),
            ],
            className="scatter",
        ),
        html.Div(
            [
                html.Div(quality, **_classes(part("quality"), "quality")),
                html.Div(
                    [
                        html.Span("coordinates", className="label"),
                        html.Button("CSV", title="x, y of every image", **_classes(part("csv"), "btn small")),
                        html.Button(".npy", title="(N, 2) float32", **_classes(part("npy"), "btn small")),
                    ],
                    className="exports",
                ),
            ],
            className="panel-foot",
        ),
        # the images brushed, clicked and hovered, by index (assets/workspace.js pointIndices)
        dcc.Store(id=ids.proj("brush", panel)),
        dcc.Store(id=ids.proj("clicked", panel)),
        dcc.Store(id=ids.proj("hovered", panel)),
        dcc.Store(id=ids.proj("ringed", panel)),  # written by workspace.js once the selected image's ring follows
        dcc.Store(id=ids.proj("star", panel), data=False),  # whether the live drawing's star is shown
        # the timeline the panel's points follow through the training snapshots, and the last move asked of them
        dcc.Store(id=ids.proj("timeline", panel)),
        dcc.Store(id=ids.proj("tl-asked", panel)),
        # a panel of more points than a scatter draws quickly is a raster (projection_raster.py): the view it was
        # zoomed to, the lasso drawn over it, where the selected image is in it
        dcc.Store(id=ids.proj("zoom", panel)),
        dcc.Store(id=ids.proj("lasso", panel)),
        dcc.Store(id=ids.proj("at", panel)),
        class_name="projection",
    )
    return html.Div(body, id=f"proj-{panel}", className="proj-panel")


def _classes(part: dict[str, Any], more: str) -> dict[str, Any]:
    return {**part, "className": f"{part['className']} {more}"}


# -- the figure ------------------------------------------------------------------------------------------------------


def _keep(state: DashboardState, layer: str, method: str, split: str) -> np.ndarray:
    """The images a panel draws: those of the split that the projection places (a file may place only some)."""
    return shown_points(state.split, split, state.projected(layer, method) if state.available(layer, method) else None)


@callbacks.callback(
    Output(ids.proj("method", MATCH), "options"),
    Output(ids.proj("method", MATCH), "value"),
    Output(ids.proj("tokens", MATCH), "options"),
    Output(ids.proj("tokens", MATCH), "value"),
    Output(ids.proj("tokens-row", MATCH), "style"),
    Input(ids.proj("layer", MATCH), "value"),
    State(ids.proj("method", MATCH), "options"),
    State(ids.proj("method", MATCH), "value"),
    State(ids.proj("tokens", MATCH), "value"),
    prevent_initial_call=True,
)
def methods(state: DashboardState, layer: Any, options: Any, method: Any, source: Any) -> tuple[Any, ...]:
    """The methods a layer offers (a file's own projection, those computed here), and for a token layer what it is
    projected from; unchanged ones stay put so the figure is not drawn twice."""
    state = _side(state)
    layer = check_choice(layer, state.layers, "layer")
    wanted = method_options(state, layer)
    value = method if method in state.methods(layer) else wanted[0]["value"]
    token_options, token_value, token_style = token_choice(state, layer)
    return (
        no_update if wanted == options else wanted,
        no_update if value == method else value,
        token_options,
        no_update if token_value == source else token_value,
        token_style,
    )


def answered_panel() -> Any:
    """The panel ("a", "b") a MATCH callback answers for, from its outputs; None outside a request."""
    outputs = ctx.outputs_list if ctx else None
    first = outputs[0] if isinstance(outputs, list) and outputs else outputs
    ident = first.get("id") if isinstance(first, dict) else None
    return ident.get("panel") if isinstance(ident, dict) else None


def _side(state: DashboardState) -> DashboardState:
    """The state of the Run the panel being answered shows: Run B's in panel B when comparing Runs."""
    try:
        return state.side(answered_panel())
    except Exception:  # outside a Dash request (a test calling the function itself)
        return state


def _view_states() -> list[State]:
    """What a projection panel shows: (layer, method, split, colour); its figure's points follow from these."""
    return [State(ids.proj(name, MATCH), "value") for name in ("layer", "method", "split", "color")]


@callbacks.callback(
    Output(ids.proj("graph", MATCH), "figure"),
    Output(ids.proj("status", MATCH), "children"),
    Output(ids.proj("quality", MATCH), "children"),
    Output(ids.proj("star", MATCH), "data"),
    Input(ids.proj("layer", MATCH), "value"),
    Input(ids.proj("method", MATCH), "value"),
    Input(ids.proj("color", MATCH), "value"),
    Input(ids.proj("split", MATCH), "value"),
    Input(ids.JOBS_INTERVAL, "n_intervals"),
    Input(ids.proj("tokens", MATCH), "value"),
    Input(ids.SNAPSHOT, "data"),
    Input(ids.proj("timeline", MATCH), "data"),  # the panel's timeline has come (timeline_card.py)
    State(ids.proj("star", MATCH), "data"),
    State(ids.proj("status", MATCH), "children"),
    prevent_initial_call=True,  # the first view comes with the page (projection_panel)
)
def projection(
    state: DashboardState,
    layer: Any,
    method: Any,
    color: Any,
    split: Any,
    tick: Any,
    source: Any,
    snapshot: Any,
    _line: Any,
    present: Any,
    status_now: Any,
) -> Any:
    # another snapshot, or the timeline it needs has come (with a poll's tick, maybe, in the same call)
    fired = [t["prop_id"] for t in ctx.triggered or []]
    moved = any(p.startswith(f"{ids.SNAPSHOT}.") or '"proj-timeline"' in p for p in fired)
    side = _side(state)
    if side is not state:  # Run B, compared with the page's: the training timeline is Run A's
        if moved:
            raise PreventUpdate
        state, snapshot = side, None
    try:
        layer, method, split, color = check_view(state, layer, method, split, color)
        snapshot = state.check_snapshot(snapshot)
        if moved:
            if _timeline_of(state, layer, method) is None or not state.available(layer, method):
                raise PreventUpdate  # the panel's timeline is on its way (timeline_card.py)
            if color == "label" and state.n <= raster.RASTER_MIN:
                # the points move in the browser (assets/timeline.js); the figures below them are the snapshot's
                # (a raster is drawn again at the snapshot)
                return no_update, no_update, _quality(state, layer, method, split, snapshot), no_update
            # colours by prediction are the snapshot's own: those figures are drawn again
        switched = isinstance(ctx.triggered_id, dict) and ctx.triggered_id.get("type") == "proj-tokens"
        if switched and source is not None and state.run.layer(layer).tokens is not None:
            # the user switched what this token layer is projected from (a panel opening on it sets the Run's own
            # choice, which changes nothing)
            state.set_token_source(layer, check_choice(source, ["cls", "mean"], "projected from"))
    except LayerscopeError as e:
        return figures.empty_figure(str(e)), html.Span(str(e), className="bad"), "", no_update
    try:
        fig, status, quality = _figure(state, layer, method, color, split, tick, _computing(status_now), snapshot)
    except PreventUpdate:
        # a JOBS_INTERVAL tick with nothing new in the projection itself: the drawing's placement, prepared in the
        # background, may have got further or be ready; a Patch brings the star, the figure is not re-sent
        patch, star, placing = _star_update(state, layer, method, bool(present), status_now, moved=False)
        return patch, placing, no_update, star
    # the live drawing as an annotation (clicks on it select nothing), in any projection that can place it
    where, placing = _place_live(state, layer, method) if not status else (None, "")
    if where is not None:
        layout = fig["layout"]
        annotations = [*layout.get("annotations", []), figures.drawing_annotation(*where)]
        fig = {**fig, "layout": {**layout, "annotations": annotations}}
    return fig, status or placing, quality, where is not None


def _computing(status: Any) -> bool:
    """Whether a panel's status says its projection is being computed (what ``_figure`` and the page open say)."""
    return isinstance(status, str) and status.startswith(COMPUTING)


def _figure(
    state: DashboardState,
    layer: str,
    method: str,
    color: str,
    split: str,
    tick: Any,
    waiting: bool = False,
    snapshot: int | None = None,
) -> tuple[Any, Any, Any]:
    """(figure, status, quality figures) of ``method`` of ``layer``; its status while it is being computed. A poll's
    tick draws the projection once there: for a panel ``waiting`` on it, or right after this page saw it finish. At
    a training ``snapshot`` whose timeline the Run has, the points are where the snapshot has them."""
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
        if job is not None and job.finished and job.error and ctx.triggered_id == ids.JOBS_INTERVAL:
            # stopped on request or failed: a poll does not start it again (a failure would be retried at every
            # tick, for ever), choosing the method again does
            state.scratch.mark_seen(job)
            if job.cancelled:
                text = stopped_line(label, job, "choose the method again to compute it.")
                return figures.empty_figure(text), text, ""
            failed = stopped_line(label, job, "choose the method again to try again.")
            return figures.empty_figure(), html.Span(failed, className="bad"), ""
        job = state.start_projection(layer, method)
        if job.error:
            state.scratch.mark_seen(job)
            failed = stopped_line(label, job, "choose the method again to try again.")
            return figures.empty_figure(), html.Span(failed, className="bad"), ""
        # the work it waits on (the PCA a t-SNE starts from) is the task it names
        text = status_line(f"{COMPUTING}{label} over {state.n:,} images", job)
        return figures.empty_figure(text), text, ""
    polled = tick is not None and ctx.triggered_id == ids.JOBS_INTERVAL
    if polled and not waiting and not _was_waiting(state, layer, method):
        raise PreventUpdate
    return _shown(state, layer, method, color, split, snapshot)


def _timeline_of(state: DashboardState, layer: str, method: str) -> dict[str, Any] | None:
    """What the Run records of the timeline of ``method`` of ``layer`` (None: it has none)."""
    return state.timeline_meta(layer, method) if state.snapshots else None


def _shown(
    state: DashboardState, layer: str, method: str, color: str, split: str, snapshot: int | None = None
) -> tuple[Any, Any, Any]:
    """(figure, status, quality figures) of a projection the Run has."""
    line = _timeline_of(state, layer, method) if snapshot is not None else None
    try:
        fig = _scatter(state, layer, method, color, split, snapshot if line is not None else None)
    except Exception as e:  # an error in one panel is shown there; the page keeps working
        label = f"{METHOD_LABELS[method]} of {layer}"
        return figures.empty_figure(), html.Span(f"cannot show {label}: {e}", className="bad"), ""
    return fig, "", _quality(state, layer, method, split, snapshot if line is not None else None)


def _quality(state: DashboardState, layer: str, method: str, split: str, snapshot: int | None) -> list[Any]:
    """A panel's quality figures and point count: the projection's, or at a training ``snapshot`` those its timeline
    records for it."""
    meta = state.projection_meta(layer, method)
    if snapshot is not None:
        meta = (_timeline_of(state, layer, method) or {"snapshots": {snapshot: {}}})["snapshots"][snapshot]
    # a file's projection of a layer without activations has no trustworthiness: nothing to compare it with
    at = f" (training snapshot {snapshot})" if snapshot is not None else ""
    quality: list[Any] = [
        html.Span(f"{title} {meta[key]:.3f}", title=QUALITY_HINTS[key] + at, className="term")
        for key, title in (("knn_accuracy", "kNN accuracy (k=10, 2-D)"), ("trustworthiness", "trustworthiness"))
        if meta.get(key) is not None
    ]
    shown = int(_keep(state, layer, method, split).sum())
    quality.append(html.Span(f"{shown:,} points" + (f" ({split} split)" if split != "all" else "")))
    if meta.get("note"):
        quality.append(html.Span(meta["note"], className="hint"))
    return quality


@lru_cache(maxsize=32)
def _scatter(
    state: DashboardState, layer: str, method: str, color: str, split: str, snapshot: int | None = None
) -> dict[str, Any]:
    """A panel's figure as the JSON the page gets (its arrays as base64 strings), built once per view: every visitor
    opening the page asks for the same two, and building and encoding 70,000 points takes about 50 ms a time. The
    page's selection is lit in the browser (assets/workspace.js), so one figure serves every selection. Read-only:
    `projection` copies what it adds to it (the live drawing's star). At a training ``snapshot`` the points and
    their predictions are the snapshot's, on the frame of the whole timeline (assets/timeline.js keeps it)."""
    if state.n > raster.RASTER_MIN:
        # more points than a WebGL scatter draws quickly: a raster of them, drawn by Datashader here
        # (projection_raster.py); None where the split shows few enough
        drawn = projection_raster.panel_figure(state, layer, method, color, split, snapshot)
        if drawn is not None:
            return drawn
    embedding, predicted, confidence = state.projection(layer, method), state.predicted, state.confidence
    if snapshot is not None:
        line = state.timeline(layer, method)
        embedding = line[snapshot]
        predicted, confidence = state.snapshot_predictions(snapshot)
    fig = figures.scatter_figure(
        embedding,
        state.labels,
        predicted,
        confidence,
        _keep(state, layer, method, split),
        color,
        state.class_names,
    )
    if snapshot is not None:
        low, high = np.nanmin(line, axis=(0, 1)), np.nanmax(line, axis=(0, 1))
        margin = 0.04 * np.maximum(high - low, 1e-9)
        fig.update_layout(
            xaxis_range=[float(low[0] - margin[0]), float(high[0] + margin[0])],
            yaxis_range=[float(low[1] - margin[1]), float(high[1] + margin[1])],
        )
    # which view the figure draws, for assets/timeline.js
    fig.update_layout(meta={"layer": layer, "method": method, "snapshot": snapshot})
    return figures.figure_json(fig)


def _was_waiting(state: DashboardState, layer: str, method: str) -> bool:
    """True once per page, right after a background projection finished, so its panel redraws exactly then."""
    job = state.jobs.get((layer, method))
    if job is None or not job.finished or state.scratch.seen(job):
        return False
    state.scratch.mark_seen(job)
    return True


# -- the live drawing's star -----------------------------------------------------------------------------------------


@callbacks.callback(
    Output(ids.proj("graph", MATCH), "figure", allow_duplicate=True),
    Output(ids.proj("star", MATCH), "data", allow_duplicate=True),
    Output(ids.proj("status", MATCH), "children", allow_duplicate=True),
    Input(ids.DRAW_SETTLED, "data", allow_optional=True),  # in the Draw view, laid out once it opens
    State(ids.proj("star", MATCH), "data"),
    State(ids.proj("status", MATCH), "children"),
    *_view_states(),
    prevent_initial_call=True,
)
def star(
    state: DashboardState, _drawn: Any, present: Any, status_now: Any, layer: Any, method: Any, split: Any, color: Any
) -> Any:
    """Move the drawing's star with a Patch of the layout: the 70,000-point figure is neither sent nor redrawn. A
    projection whose placement must first be rebuilt shows its progress in the status (which sets the page polling,
    JOBS_INTERVAL); the star then comes with the tick that finds it ready (``projection``)."""
    if _side(state) is not state:  # a drawing is the page's network's: Run B's panel places none
        raise PreventUpdate
    layer, method, split, color = check_view(state, layer, method, split, color)
    return _star_update(state, layer, method, bool(present), status_now, moved=True)


def _place_live(state: DashboardState, layer: str, method: str) -> tuple[tuple[float, float] | None, str]:
    """The live drawing's (x, y) in the projection (None while it cannot be placed) and the panel's status about
    it: a placement being prepared (with its percent) or its failure; "" otherwise (the Draw card says the rest).
    A finished preparation counts as shown from here on, so the page stops polling for it."""
    where = state.placements.place(LIVE, layer, method)  # starts a background rebuild where one is needed
    job = state.placements.job(layer, method)
    if where is None and job is not None and job.finished and job.error is None:
        where = state.placements.place(LIVE, layer, method)  # it finished in the meantime
    busy = LIVE in state.drawings and job is not None and (not job.finished or job.error is not None)
    if job is not None and job.finished:
        state.scratch.mark_seen(job)
    return where, state.placements.placing(layer, method) if busy else ""


def _star_update(
    state: DashboardState, layer: str, method: str, present: bool, status_now: Any, moved: bool
) -> tuple[Any, Any, Any]:
    """(a Patch of the figure's annotations, whether the star is shown, the status), each no_update where
    unchanged; the star is re-placed when ``moved`` (a new stroke), else only added or removed."""
    where, placing = _place_live(state, layer, method)
    # the status is the placement's only while it shows nothing else (a failed figure keeps its message)
    ours = not status_now or (isinstance(status_now, str) and status_now.startswith(PLACING_PREFIXES))
    status = placing if ours and placing != (status_now or "") else no_update
    if (where is not None or present) and (moved or (where is not None) != present):
        patch = Patch()
        patch["layout"]["annotations"] = [figures.drawing_annotation(*where)] if where is not None else []
        return patch, where is not None, status
    if status is no_update:
        raise PreventUpdate
    return no_update, no_update, status


# -- a projection being computed: Cancel, and the page polling while any is --------------------------------------------

# Cancel shows while the panel's projection is being computed (its status says "computing ..."), until it is asked
# to stop (jobs.status_line then says "stopping at")
callbacks.clientside(
    """function(status) {
        const busy = typeof status === "string" && status.indexOf("computing ") === 0
            && status.indexOf("… stopping at ") < 0;
        return {display: busy ? "inline-block" : "none"};
    }""",
    Output(ids.proj("cancel", MATCH), "style"),
    Input(ids.proj("status", MATCH), "children"),
    prevent_initial_call=True,  # a panel opens on a projection the Run has, or starts it on the first poll
)


@callbacks.callback(
    Output(ids.proj("status", MATCH), "children", allow_duplicate=True),
    Input(ids.proj("cancel", MATCH), "n_clicks"),
    *_view_states()[:2],
    prevent_initial_call=True,
)
def cancel(state: DashboardState, n: Any, layer: Any, method: Any) -> Any:
    """Stop the projection the panel waits for; the background thread is free for the next one."""
    if not n:
        raise PreventUpdate
    state = _side(state)
    layer, method, _, _ = check_view(state, layer, method, "all", "label")
    if not state.cancel_projection(layer, method):
        raise PreventUpdate
    return f"stopping the {METHOD_LABELS[method]} of {layer}…"


def opens_waiting(state: DashboardState) -> bool:
    """Whether a panel opens on a projection the Run lacks, or on two Runs not yet compared: the page then polls from
    the start, and the first tick has it computed (``projection``, compare_card.py)."""
    if state.compare is not None and state.comparison is None:
        return True
    return not all(state.available(layer, method) for layer, method in default_views(state))


@callbacks.callback(
    Output(ids.JOBS_INTERVAL, "disabled"),
    Input(ids.JOBS_INTERVAL, "n_intervals"),
    Input(ids.proj("status", ALL), "children"),
    Input(ids.proj("tl-status", ALL), "children"),  # a panel's training timeline being computed (timeline_card.py)
    prevent_initial_call=True,  # the page opens polling when it waits (opens_waiting)
)
def poll(state: DashboardState, _n: Any, _statuses: Any, _timelines: Any) -> bool:
    scratch = state.scratch  # this page's: another page's redraw does not stop this one polling
    jobs = list(state.jobs.values()) + (list(state.compare.jobs.values()) if state.compare is not None else [])
    return all(scratch.seen(job) for job in jobs)


# -- points: hover, click, brush -------------------------------------------------------------------------------------


@callbacks.callback(
    Output(ids.proj("hover-img", MATCH), "src"),
    Output(ids.proj("hover-text", MATCH), "children"),
    Input(ids.proj("hovered", MATCH), "data"),
    prevent_initial_call=True,
)
def hover(state: DashboardState, i: Any) -> Any:
    state = _side(state)
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


# clicks, hovers and brushes reach the server as the images' indices, each point's customdata, looked up in the
# browser (assets/workspace.js): selectedData can hold tens of thousands of points with coordinates
for _prop, _store in (("selectedData", "brush"), ("clickData", "clicked"), ("hoverData", "hovered")):
    callbacks.clientside(
        f"function(data, id) {{ return window.layerscope.pointIndices(id.panel, data, '{_store}'); }}",
        Output(ids.proj(_store, MATCH), "data"),
        Input(ids.proj("graph", MATCH), _prop),
        State(ids.proj("graph", MATCH), "id"),
        prevent_initial_call=True,
    )

# the images brushed in one panel -> the page's selection, in the browser (the highlight below lights them up in
# the other panel); what reads the selection on the server checks it there (checks.check_selection)
callbacks.clientside(
    "function(brushes, current) { return window.layerscope.brushed(window.dash_clientside.callback_context, "
    "brushes, current); }",
    Output(ids.SELECTION, "data", allow_duplicate=True),
    Output(ids.SELECTION_ORIGIN, "data"),
    Input(ids.proj("brush", ALL), "data"),
    State(ids.SELECTION, "data"),
    prevent_initial_call=True,
)

# Linked highlight, in the browser: the selection drawn on a 2-D canvas over every panel but the one it was brushed
# in, the WebGL points behind faded by CSS (workspace.js highlight). A restyle of `selectedpoints` redraws all 70,000
# WebGL points (0.3-0.6 s a panel in headless chromium's software WebGL), and a server Patch makes dcc.Graph re-run
# Plotly.react on the whole figure first.
callbacks.clientside(
    "function(selection, origin) { return window.layerscope.highlight(selection, origin); }",
    Output(ids.HIGHLIGHT_DONE, "data"),
    Input(ids.SELECTION, "data"),
    State(ids.SELECTION_ORIGIN, "data"),
    prevent_initial_call=True,
)

# a projection's figure arrived: the selected image's ring follows it (workspace.js); the first figures, laid out
# with the page, are followed from the page's first marking of the selected image (workspace.js markSelected)
callbacks.clientside(
    "function(figure, id) { return window.layerscope.followFigure(id.panel); }",
    Output(ids.proj("ringed", MATCH), "data"),
    Input(ids.proj("graph", MATCH), "figure"),
    State(ids.proj("graph", MATCH), "id"),
    prevent_initial_call=True,
)


# -- the panel's coordinates, downloaded -----------------------------------------------------------------------------


@callbacks.callback(
    Output(ids.DOWNLOAD, "data", allow_duplicate=True),
    Output(ids.proj("status", ALL), "children", allow_duplicate=True),
    Input(ids.proj("csv", ALL), "n_clicks"),
    Input(ids.proj("npy", ALL), "n_clicks"),
    State(ids.proj("layer", ALL), "value"),
    State(ids.proj("method", ALL), "value"),
    State(ids.proj("layer", ALL), "id"),
    prevent_initial_call=True,
)
def coordinates(state: DashboardState, _csv: Any, _npy: Any, layers: Any, methods: Any, panels: Any) -> Any:
    """The 2-D coordinates of every image in the panel whose button was pressed, as CSV or .npy."""
    trigger = ctx.triggered_id
    if not ctx.triggered or not ctx.triggered[0]["value"] or not isinstance(trigger, dict):
        raise PreventUpdate
    names = [p.get("panel") if isinstance(p, dict) else None for p in panels or []]
    if trigger.get("panel") not in names or len(names) != len(layers or []) or len(names) != len(methods or []):
        raise PreventUpdate
    k = names.index(trigger["panel"])
    fmt = "npy" if trigger.get("type") == ids.proj("npy", "")["type"] else "csv"
    status: list[Any] = [no_update] * len(names)
    state = state.side(trigger["panel"])
    try:
        layer, method, _, _ = check_view(state, layers[k], methods[k], "all", "label")
        check_choice(method, state.methods(layer), "projection method")
        data = export.coordinates(state.run, layer, method, fmt)
    except LayerscopeError as e:
        status[k] = str(e)
        return no_update, status
    return dcc.send_bytes(data, export.export_name(state.run, f"{layer}-{method}", fmt)), status
