"""The Draw panel: a canvas (assets/draw.js records the strokes), the drawing as MNIST made its digits, the model's
prediction, and the training images nearest to the drawing in each layer.

The live drawing is the image key ``"draw:live"``: selecting it lets the preview, the activation panels, the feature
maps and the projections (a star, placed by each method's transform) show it like any image; "Keep as instance"
copies it to ``"draw:N"``. While the pen moves, live.py restyles the views that show it without these callbacks.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
from dash import Input, Output, State, dcc, html, no_update
from dash.exceptions import PreventUpdate

from layerscope.dashboard import figures, ids
from layerscope.dashboard.checks import PROJECTION_METHODS, check_choice, check_rows
from layerscope.dashboard.components import attrs, cancel_button, card, display, png_config, section_head
from layerscope.dashboard.jobs import Job, status_line, stopped_line
from layerscope.dashboard.state import LIVE, DashboardState, check_version
from layerscope.dashboard.wiring import Callbacks
from layerscope.drawing import draw_over, preprocess_digit, render_strokes
from layerscope.errors import LayerscopeError
from layerscope.layers import image_projection_values

__all__ = ["callbacks", "digit_from_strokes", "draw_layout", "drawn_digit", "over_of", "strokes_of"]

callbacks = Callbacks()

NEIGHBOURS = 8
MAX_POINTS = 20_000  # a drawing is a few hundred points; more is not a drawing
PCA_START = "Compute the PCA of conv layers"


def _coordinate(value: Any) -> float | None:
    """A point's x or y clamped to [0, 1]; None for what is not a finite number (NaN would reach the renderer)."""
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        return None
    return min(max(float(value), 0.0), 1.0)


def strokes_of(data: Any) -> list[list[tuple[float, float]]]:
    """The strokes of the store assets/draw.js fills, as lists of (x, y) in [0, 1]; malformed points are dropped."""
    found = data.get("strokes") if isinstance(data, dict) else None
    strokes = []
    for stroke in found if isinstance(found, list) else []:
        points = []
        for p in stroke if isinstance(stroke, list) else []:
            if isinstance(p, list | tuple) and len(p) >= 2:
                x, y = _coordinate(p[0]), _coordinate(p[1])
                if x is not None and y is not None:
                    points.append((x, y))
        if points:
            strokes.append(points)
    return strokes


def over_of(state: DashboardState, data: Any) -> np.ndarray | None:
    """The image the strokes are drawn over (the sidebar's "Draw over": "over" in the store's data, an image key), as
    the page has it; None for a drawing from scratch. A key the page does not have, the drawing itself or an image in
    colour is a one-line ``LayerscopeError``."""
    key = data.get("over") if isinstance(data, dict) else None
    if key is None:
        return None
    key = state.image_key(key)
    if key == LIVE:
        raise LayerscopeError("one draws over an image of the dataset, a digit's average or a kept drawing.")
    image = state.image_array(key)
    if image.ndim != 2:
        raise LayerscopeError("drawing over an image works on grey images; this Run's images are in colour.")
    return image


def digit_from_strokes(
    strokes: Sequence[Sequence[tuple[float, float]]], over: np.ndarray | None = None, field: int = 28
) -> np.ndarray | None:
    """(field, field) float32 in [0, 1] as MNIST made its digits (a box 20/28 of the field, centred by its mass), or
    None for an empty drawing; drawn over image ``over`` (`over_of`), the image with the strokes on it, unmoved."""
    if over is not None:
        return draw_over(over, strokes)
    if not strokes:
        return None
    return preprocess_digit(render_strokes(strokes), box=max(1, round(field * 20 / 28)), field=field)


def drawn_digit(state: DashboardState, data: Any, strokes: Sequence[Sequence[tuple[float, float]]]) -> Any:
    """The digit the page's strokes (and the image drawn over, in ``data``) make, at the Run's image size; a Run
    whose images cannot be drawn (`drawing.drawing_off`) is a one-line ``LayerscopeError``."""
    if state.drawing_off:
        raise LayerscopeError(state.drawing_off)
    return digit_from_strokes(strokes, over_of(state, data), field=int(state.images.shape[2]))


def _size(state: DashboardState) -> str:
    h, w = state.images.shape[2:]
    return f"{h}x{w}"


def draw_layout(state: DashboardState) -> list[Any]:
    """The Draw card (only for a Run with a model) and the stores the rest of the page listens to."""
    stores = [
        dcc.Store(id=ids.DRAW_STROKES),
        dcc.Store(id=ids.DRAW_VERSION, data=0),
        dcc.Store(id=ids.DRAW_SETTLED, data=0),
        dcc.Store(id=ids.DRAW_BEFORE),
    ]
    if not state.has_model:
        return stores
    off = state.drawing_off  # the view is laid out as it always is, its canvas and buttons off, and says why
    canvas = html.Div(
        [
            html.Canvas(
                id=ids.DRAW_CANVAS,
                width=280,
                height=280,
                className="draw-canvas off" if off else "draw-canvas",
                **attrs(off=off or ""),
            ),
            html.Div(
                [
                    html.Button("Clear", id=ids.DRAW_CLEAR, className="btn", disabled=bool(off)),
                    html.Button("Undo", id=ids.DRAW_UNDO, className="btn", disabled=bool(off)),
                    html.Button("Keep as instance", id=ids.DRAW_KEEP, className="btn", disabled=True),
                ],
                className="buttons",
            ),
        ],
        className="draw-left",
    )
    seen = html.Div(
        [
            html.Img(id=ids.DRAW_PREVIEW, className="draw-preview", src=state.thumbnail(LIVE, 112)),
            html.Div(f"as the network sees it ({_size(state)}, MNIST's preprocessing)", className="hint"),
        ],
        className="draw-seen",
    )
    side = html.Div(
        [
            html.Div(id=ids.DRAW_CAPTION, className="caption"),
            dcc.Graph(
                id=ids.DRAW_PROBS,
                figure=figures.empty_figure(off or "Draw a digit in the black box."),
                config=png_config("drawing-prediction"),
                className="probs",
            ),
            html.Div(id=ids.DRAW_PLACED, className="hint"),
        ],
        className="preview-side",
    )
    neighbours = html.Div(
        [
            section_head(
                "Nearest training images, per layer",
                html.Button(PCA_START, id=ids.DRAW_PCA, className="btn small", disabled=True),
                cancel_button(ids.DRAW_PCA_CANCEL, "computing the PCA of the conv layers"),
            ),
            html.Div(id=ids.DRAW_NEIGHBOURS, className="draw-neighbours"),
            dcc.Interval(id=ids.DRAW_INTERVAL, interval=2000, disabled=True),
        ]
    )
    body = html.Div([canvas, seen, side], className="draw")
    hint = html.Div(
        "Draw with the mouse or a finger. The drawing is scaled into a 20x20 box and centred by its centre of mass, "
        'as MNIST\'s digits were; while it is drawn it is the selected image. "Draw over" (beside the selected '
        "image) starts from a copy of that image instead and leaves its pixels where they are.",
        className="hint",
    )
    if off:
        hint = html.Div(off, className="bad")
    return [card("Draw a digit", body, hint, neighbours, class_name="draw-card"), *stores]


def caption(state: DashboardState, key: str) -> list[Any]:
    probs = state.drawing_probs.get(key)
    if probs is None:
        return [html.Span("Nothing drawn yet.", className="hint")]
    k = int(np.argmax(probs))
    # the text in an attribute, shown by style.css: the fast path (live.py) can change it while React owns the node
    text = f"predicted {state.class_names[k]} ({probs[k]:.1%})"
    return [html.B(state.name(key)), html.Div(className="live-caption", title=text, **attrs(text=text))]


def probability_figure(state: DashboardState, key: str) -> dict[str, Any]:
    """The drawing's class probabilities (figure JSON), or what to do while there is none."""
    probs = state.drawing_probs.get(key)
    if probs is None:
        return figures.figure_json(figures.empty_figure("Draw a digit in the black box."))
    return figures.probability_figure(probs, int(np.argmax(probs)), state.class_names)


def _with_meta(fig: dict[str, Any], meta: dict[str, Any]) -> dict[str, Any]:
    return {**fig, "layout": {**fig["layout"], "meta": meta}}  # the layout is shared: copied, never changed


def neighbour_rows(state: DashboardState, key: str, selected: Any) -> tuple[list[Any], bool]:
    """Per layer (the input, then each activation layer) the drawing's nearest training images; and whether a
    background PCA is running (the rows then refresh)."""
    job = state.draw_jobs.get(("*", "pca"))
    busy = job is not None and not job.finished
    outputs = state.drawing_outputs.get(key)
    if outputs is None:
        rows = [html.Div("Draw a digit to see the training images nearest to it in each layer.", className="hint")]
        if busy or (job is not None and job.stopped and state.missing_pca()):
            rows.append(html.Div(_pca_status(job)))  # asked for before drawing: how far it is
        return rows, busy
    rows = []
    for layer in ["input", *state.activation_layers] if "input" in state.layers else state.activation_layers:
        index = state.neighbour_index(layer)
        if index is None:
            if busy or (job is not None and job.stopped):
                body: Any = _pca_status(job)
            else:
                body = html.Span("needs the PCA of the conv layers (button above)", className="hint")
        else:
            found = index.query(image_projection_values(state.run.layer(layer), outputs), NEIGHBOURS)
            body = [
                html.Img(
                    src=state.thumbnail(int(i)),
                    id={"type": ids.THUMB, "key": int(i)},
                    className="thumb selected" if str(int(i)) == str(selected) else "thumb",
                    title=f"{state.name(int(i))} · true {state.class_names[state.labels[i]]} · distance {d:.2f}",
                )
                for i, d in zip(found.indices, found.distances, strict=True)
            ]
        rows.append(
            html.Div(
                [html.Span(layer, className="draw-layer"), html.Div(body, className="thumbs")],
                className="draw-row",
                id=f"draw-near-{layer}",
            )
        )
    return rows, busy


def _pca_status(job: Job | None) -> html.Span:
    """The status line of the PCA of the conv layers: how far it is (queued behind a projection, as they take turns
    in one thread, until its task names the PCA), or that it was cancelled or failed."""
    if job is not None and job.stopped:
        text = stopped_line("the PCA of the conv layers", job, f"press '{PCA_START}' to start it again.")
        return html.Span(text, className="hint" if job.cancelled else "bad")
    return html.Span(status_line("computing the PCA of the conv layers", job), className="hint")


def placed_note(state: DashboardState, views: Sequence[tuple[str, str]]) -> str:
    """Where the live drawing is shown in the two projections, said plainly: starred, being prepared (with the
    percent of the background rebuild that places it), or why it cannot be placed there."""
    if LIVE not in state.drawings:
        return ""
    parts = []
    for panel, (layer, method) in zip(ids.PANEL_IDS, views, strict=True):
        where = state.placements.place(LIVE, layer, method)  # starts the rebuild a placement needs, in the background
        text = "marked with a star" if where is not None else state.placements.placing(layer, method)
        parts.append(f"projection {panel.upper()}: " + (text or "not placed").rstrip("."))
    return "; ".join(parts) + "."


def _key_or(state: DashboardState, key: Any, default: Any) -> Any:
    """``key`` if it names an image of the page (`DashboardState.image_key`), else ``default``."""
    try:
        return state.image_key(key) if key is not None else default
    except LayerscopeError:
        return default


@callbacks.callback(
    Output(ids.DRAW_VERSION, "data"),
    Output(ids.SELECTED, "data", allow_duplicate=True),
    Output(ids.DRAW_BEFORE, "data"),
    Output(ids.DRAW_PREVIEW, "src"),
    Output(ids.DRAW_CAPTION, "children"),
    Output(ids.DRAW_PROBS, "figure"),
    Output(ids.DRAW_KEEP, "disabled"),
    Output(ids.DRAW_SETTLED, "data"),
    Input(ids.DRAW_STROKES, "data"),
    State(ids.SELECTED, "data"),
    State(ids.DRAW_BEFORE, "data"),
    State(ids.DRAW_VERSION, "data"),
    prevent_initial_call=True,
)
def strokes(state: DashboardState, data: Any, selected: Any, before: Any, version: Any) -> Any:
    if not isinstance(data, dict):  # None: the store announcing its empty value as the page loads
        raise PreventUpdate
    strokes = strokes_of(data)
    if sum(len(s) for s in strokes) > MAX_POINTS:
        raise LayerscopeError(f"a drawing of more than {MAX_POINTS:,} points is not a digit; clear it.")
    digit = drawn_digit(state, data, strokes)
    if not state.set_live(digit, check_version(data.get("version", 0))):
        raise PreventUpdate  # the fast path (live.py) already shows newer strokes; their own push follows
    if digit is None:  # cleared: the image selected before drawing began is selected again
        select = _key_or(state, before, 0) if selected == LIVE else no_update
        before = None
    else:
        select = LIVE if selected != LIVE else no_update
        before = _key_or(state, selected if selected != LIVE else before, None)
    version = (version if isinstance(version, int) and not isinstance(version, bool) else 0) + 1
    return (
        version,
        select,
        before,
        state.thumbnail(LIVE, 112),
        caption(state, LIVE),
        # meta: the browser's stroke version, which these bars show (benchmarks/draw.py waits for it)
        _with_meta(probability_figure(state, LIVE), {"draw": (data or {}).get("version")}),
        digit is None,
        # the nearest images and the projections' star follow finished strokes only: moving the star redraws a
        # 70,000-point figure in the browser (0.5-0.8 s), too slow to follow the pen
        version if (data or {}).get("done", True) else no_update,
    )


@callbacks.callback(
    Output(ids.ROWS, "data", allow_duplicate=True),
    Output(ids.SELECTED, "data", allow_duplicate=True),
    Input(ids.DRAW_KEEP, "n_clicks"),
    State(ids.ROWS, "data"),
    prevent_initial_call=True,
)
def keep(state: DashboardState, n: Any, rows: Any) -> Any:
    rows = check_rows(state, rows)
    key = state.keep_drawing() if n else None
    if key is None:
        raise PreventUpdate
    return [*rows, {"kind": "image", "key": key}], key


@callbacks.callback(
    Output(ids.DRAW_NEIGHBOURS, "children"),
    Output(ids.DRAW_INTERVAL, "disabled"),
    Output(ids.DRAW_PCA, "disabled"),
    Output(ids.DRAW_PCA_CANCEL, "style"),
    Input(ids.DRAW_SETTLED, "data"),
    Input(ids.DRAW_PCA, "n_clicks"),
    Input(ids.DRAW_INTERVAL, "n_intervals"),
    State(ids.SELECTED, "data"),
)
def neighbours(state: DashboardState, _version: Any, compute: Any, _tick: Any, selected: Any) -> Any:
    from dash import ctx

    if ctx.triggered_id == ids.DRAW_PCA and compute and state.missing_pca():
        state.start_conv_pca()
    rows, busy = neighbour_rows(state, LIVE, selected)
    job = state.draw_jobs.get(("*", "pca"))
    return rows, not busy, busy or not state.missing_pca(), display(busy and job is not None and not job.cancel)


# The PCA's maps belong to the Run: as with a projection, a cancel stops it for every page waiting on it
# (DashboardState.cancel_conv_pca); the rows say it was cancelled once the next poll finds it stopped, and the button
# beside starts it again.
@callbacks.callback(
    Output(ids.DRAW_PCA_CANCEL, "style", allow_duplicate=True),
    Input(ids.DRAW_PCA_CANCEL, "n_clicks"),
    prevent_initial_call=True,
)
def cancel_pca(state: DashboardState, n: Any) -> Any:
    if not n or not state.cancel_conv_pca():
        raise PreventUpdate
    return display(False)


@callbacks.callback(
    Output(ids.DRAW_PLACED, "children"),
    Input(ids.DRAW_SETTLED, "data"),
    Input(ids.proj("layer", "a"), "value"),
    Input(ids.proj("method", "a"), "value"),
    Input(ids.proj("layer", "b"), "value"),
    Input(ids.proj("method", "b"), "value"),
    # polls while a projection or a placement is prepared (the panels' status starts it): the percent moves on
    Input(ids.JOBS_INTERVAL, "n_intervals"),
    State(ids.DRAW_PLACED, "children"),
)
def placed(
    state: DashboardState, _version: Any, layer_a: Any, method_a: Any, layer_b: Any, method_b: Any, _tick: Any, now: Any
) -> Any:
    try:
        views = [
            (check_choice(layer, state.layers, "layer"), check_choice(method, PROJECTION_METHODS, "method"))
            for layer, method in ((layer_a, method_a), (layer_b, method_b))
        ]
    except LayerscopeError as e:
        return str(e)
    state.placements.shown(views)  # preparations no panel shows any more: the page need not poll for them
    note = placed_note(state, views)
    return no_update if note == now else note
