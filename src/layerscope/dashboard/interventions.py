"""Interventions: switch units off and see what the test set does (ablation), and what a decision rests on
(attribution, with the model-randomisation sanity check).

Layout builders, pure figure builders and callbacks; the computation lives in ``layerscope.ablation`` and
``layerscope.attribution``, run through the server-side state (background jobs for the slow parts).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import plotly.graph_objects as go
from dash import ALL, ClientsideFunction, Input, Output, State, ctx, dcc, html, no_update
from dash.exceptions import PreventUpdate

from layerscope.ablation import (
    Ablation,
    AblationResult,
    add_ablation,
    check_ablations,
    list_ablations,
    parse_ablation,
    remove_ablation,
    save_ablation,
    switch_off,
    toggle_unit,
)
from layerscope.dashboard import ids, views
from layerscope.dashboard.checks import (
    check_ablation_list,
    check_choice,
    check_int,
    check_number,
    check_unit,
    image_or_none,
)
from layerscope.dashboard.components import cancel_button, card, display, graph_row, layer_options, png_config
from layerscope.dashboard.figures import base_layout, empty_figure
from layerscope.dashboard.jobs import Job, status_line, stopped_line
from layerscope.dashboard.state import DashboardState
from layerscope.dashboard.unit_figures import png_uri
from layerscope.dashboard.wiring import Callbacks
from layerscope.errors import LayerscopeError
from layerscope.layers import last_hidden_layer
from layerscope.names import check_index, check_label

if TYPE_CHECKING:
    from layerscope.attribution import RandomisationStep

__all__ = [
    "ablation_class_figure",
    "confusion_change_figure",
    "graph_units",
    "interventions_layout",
    "callbacks",
    "similarity_figure",
]

callbacks = Callbacks()

METHOD_LABELS = {
    "saliency": "saliency",
    "integrated_gradients": "integrated gradients",
    "gradcam": "Grad-CAM",
    "occlusion": "occlusion",
}
PREDICTED = -1  # the target dropdown's "predicted class"
MAX_UNITS_TEXT = 1_000  # characters in the units box: "0-15,20,31" is ten
MAX_SCALE = 1e6  # |scale| of an ablation: any factor a unit is usefully multiplied by, and finite
DROP, GAIN, SAME = "#d6604d", "#4393c3", "#9aa5b1"  # a class's accuracy after ablating: lower, higher, unchanged
MIN_CHANGE_SPAN = 1.0  # percentage points each side of 0 on the per-class change axis, however small the change
EVALUATE_AGAIN = "Evaluate again"  # the button that re-evaluates the test set once that was cancelled or failed


# -- pure builders ----------------------------------------------------------------------------------------------------
def ablation_class_figure(before: np.ndarray, after: np.ndarray, class_names: Sequence[str]) -> go.Figure:
    """Per-class test accuracy after ablating minus before, in percentage points: bars coloured by sign on an axis
    symmetric about 0 and sized to the largest change (at least ``MIN_CHANGE_SPAN``), so a 1-point drop shows, where
    on a 0-100 axis it is a pixel. The hover gives both accuracies; a class without test images changes by 0."""
    b = np.asarray(before, np.float64) * 100  # (K,) percent; NaN: the class has no test images
    a = np.asarray(after, np.float64) * 100
    change = np.nan_to_num(a - b)  # (K,) percentage points
    span = max(MIN_CHANGE_SPAN, 1.15 * float(np.abs(change).max(initial=0.0)))  # room for the bars' labels
    names = [str(n) for n in class_names]
    fig = go.Figure(
        go.Bar(
            x=names,
            y=change,
            marker_color=[DROP if c < 0 else GAIN if c > 0 else SAME for c in change],
            text=[f"{c:+.1f}" if abs(c) >= 0.05 else "" for c in change],
            textposition="outside",
            cliponaxis=False,
            customdata=[[_percent(x), _percent(y)] for x, y in zip(b, a, strict=True)],
            hovertemplate="class %{x}: %{customdata[0]} → %{customdata[1]} (%{y:+.2f} points)<extra></extra>",
        )
    )
    base_layout(fig, 240, showlegend=False)
    fig.update_yaxes(
        title="accuracy change (points)",
        range=[-span, span],
        gridcolor="#e4e7eb",
        zeroline=True,
        zerolinecolor="#52606d",
        fixedrange=True,
    )
    fig.update_xaxes(type="category", fixedrange=True)
    fig.update_layout(margin=dict(l=50, r=10, t=30, b=30))
    return fig


def _percent(value: float) -> str:
    return "no test images" if math.isnan(value) else f"{value:.2f}%"


def confusion_change_figure(change: np.ndarray, class_names: Sequence[str]) -> go.Figure:
    """The confusion matrix after minus before, diverging around a white 0 (red: more images, blue: fewer)."""
    change = np.asarray(change)
    peak = max(1, int(np.abs(change).max()))
    names = [str(n) for n in class_names]
    text = np.where(change != 0, change.astype(str), "")
    fig = go.Figure(
        go.Heatmap(
            z=change,
            x=names,
            y=names,
            text=text,
            texttemplate="%{text}",
            colorscale="RdBu_r",
            zmin=-peak,
            zmax=peak,
            zmid=0,
            hovertemplate="true %{y} → predicted %{x}: %{z:+d}<extra></extra>",
            colorbar=dict(thickness=10),
        )
    )
    base_layout(fig, 300)
    fig.update_xaxes(title="predicted", type="category", side="top", fixedrange=True)
    fig.update_yaxes(title="true", type="category", autorange="reversed", fixedrange=True)
    fig.update_layout(margin=dict(l=50, r=10, t=50, b=10))
    return fig


def step_label(step: RandomisationStep) -> str:
    return "trained" if not step.randomised else f"+ {step.randomised[-1]}"


def similarity_figure(steps: Sequence[RandomisationStep]) -> go.Figure:
    """Spearman rank correlation and SSIM of each step's map with the trained model's, as lines."""
    x = [step_label(s) for s in steps]
    fig = go.Figure()
    for name, values, colour in (
        ("Spearman", [s.spearman for s in steps], "#1f77b4"),
        ("SSIM", [s.ssim for s in steps], "#d6604d"),
    ):
        y = [None if math.isnan(v) else v for v in values]
        fig.add_scatter(x=x, y=y, name=name, mode="lines+markers", line=dict(color=colour))
    # down to the lowest similarity: a map anti-correlated with the trained one (Spearman to -1) must not fall off
    shown = [v for s in steps for v in (s.spearman, s.ssim) if not math.isnan(v)]
    low = min([-0.1, *(v - 0.05 for v in shown)])
    base_layout(fig, 220, legend=dict(orientation="h", y=1.15, x=0))
    fig.update_yaxes(
        title="similarity",
        range=[low, 1.05],
        gridcolor="#e4e7eb",
        zeroline=True,
        zerolinecolor="#52606d",
        fixedrange=True,
    )
    fig.update_xaxes(title="layers re-initialised, from the output down", type="category", fixedrange=True)
    fig.update_layout(margin=dict(l=50, r=10, t=30, b=40))
    return fig


def _uint8(rgb: np.ndarray) -> np.ndarray:
    """(C, H, W) float in [0, 1] -> (H, W) or (H, W, 3) uint8."""
    out = (np.clip(np.asarray(rgb, np.float32), 0, 1) * 255).round().astype(np.uint8)
    return out[0] if out.shape[0] == 1 else out.transpose(1, 2, 0)


def _overlay_uri(pixels: Any, attribution_map: np.ndarray, scale: int) -> str:
    from layerscope.attribution import overlay  # the model side, with the maps it draws (state.py)

    return png_uri(_uint8(overlay(pixels, attribution_map)), scale)


# -- layout -----------------------------------------------------------------------------------------------------------
def interventions_layout(state: DashboardState) -> list[Any]:
    """The ablation and attribution cards side by side (nothing for a Run without a model)."""
    if not state.has_model:
        return []
    layers = state.activation_layers
    start = last_hidden_layer(state.run.layers, len(state.class_names), kinds=("conv", "dense"))
    ablation = card(
        "Switch units off",
        html.Div(
            [
                dcc.Dropdown(layer_options(layers), start, id=ids.ABL_LAYER, clearable=False, className="ctl"),
                dcc.Input(id=ids.ABL_UNITS, placeholder='units: "3,7" or "0-15"', className="text small"),
                html.Span("× scale", className="label"),
                dcc.Input(id=ids.ABL_SCALE, type="number", value=0, step=0.1, className="text tiny"),
                html.Button("Add", id=ids.ABL_ADD, className="btn"),
                html.Button("Reset", id=ids.ABL_RESET, className="btn"),
            ],
            className="controls",
        ),
        html.Div(
            [
                dcc.Checklist(
                    [{"label": " Click units to switch them off", "value": "on"}],
                    [],
                    id=ids.ABL_MODE,
                    inline=True,
                    className="abl-mode",
                ),
                html.Span(
                    "While on, a click on a unit in the network graph or in an activation panel switches it off, "
                    "a second click back on; the graph's box and lasso select switch several off.",
                    className="hint",
                ),
            ],
            className="controls",
        ),
        html.Div(id=ids.ABL_ERROR, className="bad"),
        html.Div(id=ids.ABL_LIST, className="abl-list"),
        html.Div(
            [
                html.Div(id=ids.ABL_STATUS, className="status"),
                cancel_button(ids.ABL_CANCEL, "re-evaluating the test set"),
                html.Button(EVALUATE_AGAIN, id=ids.ABL_AGAIN, className="btn small", style=display(False)),
            ],
            className="status-row",
        ),
        html.Div(id=ids.ABL_SUMMARY, className="abl-summary"),
        html.Div(id=ids.ABL_IMAGE, className="abl-image"),
        graph_row(("Accuracy per class", ids.ABL_CLASSES), ("Confusion matrix: after minus before", ids.ABL_CONFUSION)),
        html.Div(
            [
                dcc.Input(id=ids.ABL_SAVE_NAME, placeholder="name", className="text small"),
                html.Button("Save to Run", id=ids.ABL_SAVE, className="btn"),
            ],
            className="controls",
        ),
        html.Div(id=ids.ABL_SAVED, className="abl-saved"),
        html.Div(
            "A unit switched off outputs 0 (a conv channel: its whole map); a scale other than 0 multiplies it. "
            "The test set is re-run with the units changed, against the Run's stored predictions.",
            className="hint",
        ),
        dcc.Store(id=ids.ABL_STORE, data=[]),
        dcc.Store(id=ids.ABL_CLICK),
        dcc.Store(id=ids.ABL_NODES),
        dcc.Store(id=ids.ABL_MARKS),
        dcc.Interval(id=ids.ABL_INTERVAL, interval=500, disabled=True),
        class_name="ablation-card",
    )
    targets = [{"label": "predicted class", "value": PREDICTED}] + [
        {"label": f"class {name}", "value": k} for k, name in enumerate(state.class_names)
    ]
    convs = state.gradcam_layers
    attribution = card(
        "What the decision rests on",
        html.Div(
            [
                dcc.Dropdown(
                    [{"label": label, "value": m} for m, label in METHOD_LABELS.items()],
                    "saliency",
                    id=ids.ATTR_METHOD,
                    clearable=False,
                    className="ctl wide",
                ),
                dcc.Dropdown(targets, PREDICTED, id=ids.ATTR_TARGET, clearable=False, className="ctl wide"),
                html.Div(
                    [
                        html.Span("layer", className="label"),
                        dcc.Dropdown(
                            layer_options(convs), convs[-1] if convs else None, id=ids.ATTR_LAYER, clearable=False
                        ),
                    ],
                    id=ids.ATTR_LAYER_BOX,
                    className="attr-layer",
                    style={"display": "none"},
                ),
                dcc.Checklist(
                    [{"label": " sanity check", "value": "on"}], [], id=ids.ATTR_SANITY, inline=True, className="radio"
                ),
            ],
            className="controls",
        ),
        html.Div(
            [
                html.Div([html.Img(id=ids.ATTR_IMAGE, className="fig-img"), html.Div("image", className="hint")]),
                html.Div(
                    [html.Img(id=ids.ATTR_OVERLAY, className="fig-img"), html.Div("attribution", className="hint")]
                ),
                html.Div(id=ids.ATTR_INFO, className="attr-info"),
            ],
            className="figure-row",
        ),
        html.Div(
            "Over the dimmed image, red: pixels that raise the class score (saliency, Grad-CAM: magnitude only), "
            "blue: pixels that lower it.",
            className="hint",
        ),
        html.Div(id=ids.ATTR_SANITY_AREA),
        dcc.Interval(id=ids.ATTR_INTERVAL, interval=500, disabled=True),
        class_name="attribution-card",
    )
    return [html.Div([ablation, attribution], className="row two interventions")]


# -- helpers the callbacks share --------------------------------------------------------------------------------------
def graph_units(event: Any) -> tuple[list[tuple[str, int]], list[str]]:
    """The (layer, unit) pairs of a network-graph click or selection, from its points' customdata ``[layer, unit]``,
    in order and without repeats; and the layers whose single node (unit -1, a collapsed layer) it holds."""
    units: dict[tuple[str, int], None] = {}
    whole: dict[str, None] = {}
    points = event.get("points") if isinstance(event, dict) else None
    for point in points if isinstance(points, list) else []:
        custom = point.get("customdata") if isinstance(point, dict) else None
        if not isinstance(custom, list | tuple) or len(custom) < 2 or not isinstance(custom[0], str):
            continue
        if isinstance(custom[1], bool) or not isinstance(custom[1], int):  # not a unit's node
            continue
        layer, unit = custom[0], custom[1]
        if unit < 0:
            whole[layer] = None
        else:
            units[(layer, unit)] = None
    return list(units), list(whole)


def _whole_layer_hint(state: DashboardState, layer: str) -> html.Span:
    if layer in state.conv_layers:
        text = f"{layer} is drawn as one node: the click opens it into its channels; click a channel to switch it off."
    else:
        text = f"{layer} has no units to switch off; click a node of a conv or dense layer."
    return html.Span(text, className="hint")


def _job_text(job: Job | None, doing: str, what: str, again: str = "") -> html.Span:
    """A background job's status line: how far it is while it runs, else that it was cancelled or failed."""
    if job is not None and job.stopped:
        return html.Span(stopped_line(what, job, again), className="hint" if job.cancelled else "bad")
    return html.Span(status_line(doing, job), className="status")


def _prediction(state: DashboardState, probs: np.ndarray) -> str:
    k = int(np.argmax(probs))
    return f"{state.class_names[k]} ({float(probs[k]):.1%})"


def _summary(state: DashboardState, result: AblationResult) -> list[Any]:
    change = (result.accuracy_after - result.accuracy_before) * 100
    return [
        html.Div(
            [
                "Test accuracy ",
                html.B(f"{result.accuracy_before:.2%}", className="acc-before"),
                " → ",
                html.B(f"{result.accuracy_after:.2%}", className="acc-after"),
                html.Span(f" ({change:+.2f} points)", className="bad" if change < 0 else "ok"),
            ]
        ),
        html.Div(
            f"{result.n_changed:,} of {result.n_images:,} test predictions changed · {result.seconds:.2f} s"
            + (f" (from stored {result.resumed_from} activations)" if result.resumed_from else ""),
            className="hint",
        ),
    ]


def _saved_list(state: DashboardState) -> list[Any]:
    saved = list_ablations(state.run)
    if not saved:
        return [html.Div("No saved ablations in this Run.", className="hint")]
    rows = []
    for s in saved:
        figures = ""
        if s.result:
            figures = f" · test accuracy {s.result['accuracy_before']:.2%} → {s.result['accuracy_after']:.2%}"
        rows.append(
            html.Div(
                [
                    html.B(s.name),
                    html.Span(s.label + figures, className="hint"),
                    html.Button("apply", id={"type": ids.ABL_APPLY, "name": s.name}, className="btn small"),
                    html.Button("×", id={"type": ids.ABL_FORGET, "name": s.name}, className="btn small x"),
                ],
                className="abl-item",
            )
        )
    return rows


def _attribution_choice(
    state: DashboardState, method: Any, target: Any, layer: Any
) -> tuple[str, int | None, str | None]:
    """(method, target class or None for the predicted one, layer or None) of the attribution card's dropdowns."""
    method = check_choice(method, METHOD_LABELS, "attribution method")
    if target is not None and target != PREDICTED:
        target = check_index(target, len(state.class_names), "target class")
    else:
        target = None
    if method != "gradcam":
        return method, target, None
    return method, target, check_choice(layer, state.conv_layers, "Grad-CAM layer")


# -- the list of ablations -------------------------------------------------------------------------------------
@callbacks.callback(
    Output(ids.ABL_STORE, "data"),
    Output(ids.ABL_ERROR, "children"),
    Input(ids.ABL_ADD, "n_clicks"),
    Input(ids.ABL_RESET, "n_clicks"),
    Input(ids.UNIT_ABLATE, "n_clicks"),
    Input({"type": ids.ABL_REMOVE, "i": ALL}, "n_clicks"),
    Input({"type": ids.ABL_ITEM_SCALE, "i": ALL}, "value"),
    Input({"type": ids.ABL_APPLY, "name": ALL}, "n_clicks"),
    Input(ids.ABL_CLICK, "data"),  # a cell of an activation panel, clicked in the mode (assets/ablate.js)
    Input(ids.NET_GRAPH, "clickData"),
    Input(ids.NET_GRAPH, "selectedData"),
    State(ids.ABL_LAYER, "value"),
    State(ids.ABL_UNITS, "value"),
    State(ids.ABL_SCALE, "value"),
    State(ids.UNIT, "data"),
    State(ids.ABL_MODE, "value"),
    State(ids.ABL_STORE, "data"),
    prevent_initial_call=True,
)
def edit(
    state: DashboardState,
    _add: Any,
    _reset: Any,
    _unit: Any,
    _remove: Any,
    _scales: Any,
    _apply: Any,
    _cell: Any,
    _graph_click: Any,
    _graph_selection: Any,
    layer: str,
    units: Any,
    scale: Any,
    unit: Any,
    mode: Any,
    data: Any,
) -> Any:
    trigger = ctx.triggered_id
    value = ctx.triggered[0]["value"] if ctx.triggered else None
    try:
        current = check_ablation_list(state, data)
        if trigger in (ids.ABL_CLICK, ids.NET_GRAPH) and not mode:
            raise PreventUpdate  # outside the mode a graph click opens the unit card instead
        if trigger == ids.ABL_CLICK:
            if not value:
                raise PreventUpdate
            if not isinstance(value, dict):
                raise LayerscopeError("the clicked cell names no unit; click it again.")
            layer = check_choice(value.get("layer"), state.activation_layers, "layer")
            current = toggle_unit(current, layer, check_int(value.get("unit"), 0, 2**31, "unit"))
        elif trigger == ids.NET_GRAPH:
            chosen, whole = graph_units(value)
            if not chosen:
                if not whole:
                    raise PreventUpdate
                return data, _whole_layer_hint(state, whole[0])
            if ctx.triggered[0]["prop_id"].endswith(".clickData"):
                current = toggle_unit(current, *chosen[0])
            else:  # a box or lasso selection
                current = switch_off(current, chosen)
        elif trigger == ids.ABL_RESET:
            current = []
        elif trigger == ids.ABL_ADD:
            if units is None or not str(units).strip():
                return data, "Write the units to switch off, e.g. 3,7 or 0-15."
            if len(str(units)) > MAX_UNITS_TEXT:
                raise LayerscopeError(f"the units box holds over {MAX_UNITS_TEXT:,} characters; write a range.")
            layer = check_choice(layer, state.activation_layers, "layer")  # here, not in the background
            if scale is None:  # empty, or what the browser cannot read as a number
                return data, f"Write the scale as a number from -{MAX_SCALE:,.0f} to {MAX_SCALE:,.0f} (0 switches off)."
            factor = check_number(scale, -MAX_SCALE, MAX_SCALE, "scale")
            current = add_ablation(current, parse_ablation(f"{layer}:{units}", factor))
        elif trigger == ids.UNIT_ABLATE:
            if not value or not unit:
                raise PreventUpdate
            layer, u = check_unit(state, unit)
            current = add_ablation(current, Ablation(layer, (u,), 0.0))
        elif isinstance(trigger, dict) and trigger.get("type") == ids.ABL_REMOVE:
            if not value:
                raise PreventUpdate
            i = check_index(trigger.get("i"), len(current), "switched-off entry")
            current = [a for k, a in enumerate(current) if k != i]
        elif isinstance(trigger, dict) and trigger.get("type") == ids.ABL_ITEM_SCALE:
            i = check_index(trigger.get("i"), len(current), "switched-off entry")
            if value is None:  # the entry keeps its scale until the box holds a number again
                return data, f"A scale is a number from -{MAX_SCALE:,.0f} to {MAX_SCALE:,.0f}; the entry keeps its own."
            factor = check_number(value, -MAX_SCALE, MAX_SCALE, "scale")
            if factor == current[i].scale:
                raise PreventUpdate
            current[i] = Ablation(current[i].layer, current[i].units, factor)
        elif isinstance(trigger, dict) and trigger.get("type") == ids.ABL_APPLY:
            if not value:
                raise PreventUpdate
            name = check_label(trigger.get("name"), "name of an ablation")
            saved = {s.name: s for s in list_ablations(state.run)}
            if name not in saved:
                return data, f"No saved ablation {name!r} in this Run."
            current = list(saved[name].ablations)
        else:
            raise PreventUpdate
        check_ablations(state.run, current)
    except LayerscopeError as e:
        return no_update, str(e)
    except MemoryError:  # a range no layer has units for, should a check above ever let one through
        return no_update, "Those are too many units to switch off at once; give a range within the layer."
    return [a.to_dict() for a in current], ""


# Switched-off units outlined in the activation panels, and the mode shown on the page (a class on the body that
# assets/ablate.js reads): CSS rules written in the browser, so no panel is rebuilt when the list changes.
callbacks.clientside(
    ClientsideFunction("layerscope_ablate", "mark"),
    Output(ids.ABL_MARKS, "data"),
    Input(ids.ABL_MODE, "value"),
    Input(ids.ABL_STORE, "data"),
    prevent_initial_call=True,
)


@callbacks.callback(Output(ids.ABL_LIST, "children"), Input(ids.ABL_STORE, "data"))
def show_list(state: DashboardState, data: Any) -> Any:
    try:
        current = check_ablation_list(state, data)
    except LayerscopeError as e:
        return html.Div(str(e), className="bad")
    if not current:
        return html.Div("No unit is switched off.", className="hint")
    return [
        html.Div(
            [
                html.Span(a.label, className="abl-label"),
                html.Span("scale", className="label"),
                dcc.Input(
                    id={"type": ids.ABL_ITEM_SCALE, "i": i},
                    type="number",
                    value=a.scale,
                    step=0.1,
                    debounce=True,
                    className="text tiny",
                ),
                html.Button("×", id={"type": ids.ABL_REMOVE, "i": i}, className="btn small x", title="remove"),
            ],
            className="abl-item",
        )
        for i, a in enumerate(current)
    ]


# -- what it does ----------------------------------------------------------------------------------------------
@callbacks.callback(
    Output(ids.ABL_STATUS, "children"),
    Output(ids.ABL_SUMMARY, "children"),
    Output(ids.ABL_CLASSES, "figure"),
    Output(ids.ABL_CONFUSION, "figure"),
    Output(ids.ABL_INTERVAL, "disabled"),
    Output(ids.ABL_CANCEL, "style"),
    Output(ids.ABL_AGAIN, "style"),
    Input(ids.ABL_STORE, "data"),
    Input(ids.ABL_INTERVAL, "n_intervals"),
    Input(ids.ABL_AGAIN, "n_clicks"),
)
def evaluate(state: DashboardState, data: Any, _tick: Any, _again: Any) -> Any:
    hidden = display(False)
    try:
        current = check_ablation_list(state, data)
    except LayerscopeError as e:
        message = empty_figure()
        message.update_layout(height=240)
        return html.Span(str(e), className="bad"), "", message, message, True, hidden, hidden
    if not current:
        message = empty_figure("Switch units off to see what changes.")
        message.update_layout(height=240)
        return "", "", message, message, True, hidden, hidden
    # a re-evaluation that was cancelled (or failed) starts again when the user asks: a new list of units, or
    # "Evaluate again"; a poll only shows it
    job, result = state.interventions.ablation(current, again=ctx.triggered_id != ids.ABL_INTERVAL)
    if result is None:
        return _evaluating(state, job)
    classes = ablation_class_figure(result.class_accuracy_before, result.class_accuracy_after, state.class_names)
    matrix = confusion_change_figure(result.confusion_change, state.class_names)
    return "", _summary(state, result), classes, matrix, True, hidden, hidden


def _evaluating(state: DashboardState, job: Job) -> tuple[Any, ...]:
    """`evaluate`'s outputs while the test set is re-evaluated, or once that was cancelled or failed."""
    waiting = empty_figure("re-evaluating the test set…" if not job.stopped else "")
    waiting.update_layout(height=240)
    again = f"press '{EVALUATE_AGAIN}' to start it again."
    text = _job_text(job, f"re-evaluating {state.n_test:,} test images", "the re-evaluation of the test set", again)
    running = not job.finished and not job.cancel
    return text, "", waiting, waiting, job.stopped, display(running), display(job.stopped)


# The result belongs to every page (intervening.Interventions): as with a projection, a cancel stops it for every page
# waiting on it; each then says it was cancelled and offers to evaluate it again.
@callbacks.callback(
    Output(ids.ABL_CANCEL, "style", allow_duplicate=True),
    Output(ids.ABL_STATUS, "children", allow_duplicate=True),
    Input(ids.ABL_CANCEL, "n_clicks"),
    State(ids.ABL_STORE, "data"),
    prevent_initial_call=True,
)
def cancel(state: DashboardState, n: Any, data: Any) -> Any:
    current = check_ablation_list(state, data)
    if not n or not current or not state.interventions.cancel_ablation(current):
        raise PreventUpdate
    job, _ = state.interventions.ablation(current, again=False)
    return display(False), _evaluating(state, job)[0]


@callbacks.callback(
    Output(ids.ABL_IMAGE, "children"),
    views.gated("ablated-image"),
    State(ids.ABL_STORE, "data"),
    State(ids.SELECTED, "data"),
    prevent_initial_call=True,
)
def selected_image(state: DashboardState, gate: Any, data: Any, selected: Any) -> Any:
    views.opened(gate)
    try:
        current = check_ablation_list(state, data)
    except LayerscopeError:
        return ""  # the ablation card's list says what is wrong with it
    selected = image_or_none(state, selected)
    if not current or selected is None:
        return ""
    probs = state.interventions.ablated_probs(selected, current)
    if probs is None:
        return ""
    before, after = probs
    changed = int(np.argmax(before)) != int(np.argmax(after))
    return html.Div(
        [
            "Selected image: predicted ",
            html.B(_prediction(state, before)),
            " → ",
            html.B(_prediction(state, after), className="bad" if changed else ""),
        ]
    )


# -- saved ablations -------------------------------------------------------------------------------------------
@callbacks.callback(
    Output(ids.ABL_SAVED, "children"),
    Output(ids.ABL_SAVE_NAME, "value"),
    Input(ids.ABL_SAVE, "n_clicks"),
    Input({"type": ids.ABL_FORGET, "name": ALL}, "n_clicks"),
    State(ids.ABL_SAVE_NAME, "value"),
    State(ids.ABL_STORE, "data"),
)
def saved(state: DashboardState, _save: Any, _forget: Any, name: Any, data: Any) -> Any:
    trigger = ctx.triggered_id
    value = ctx.triggered[0]["value"] if ctx.triggered else None
    error = None
    try:
        if trigger == ids.ABL_SAVE:
            label = check_label(name, "name of an ablation")
            current = check_ablation_list(state, data)
            # the result if there is one: saving does not start a cancelled re-evaluation again
            job, result = state.interventions.ablation(current, again=False) if current else (None, None)
            save_ablation(state.run, label, current, result)
            name = ""
        elif isinstance(trigger, dict) and trigger.get("type") == ids.ABL_FORGET:
            if not value:
                raise PreventUpdate
            remove_ablation(state.run, check_label(trigger.get("name"), "name of an ablation"))
    except LayerscopeError as e:
        error = html.Div(str(e), className="bad")
    return ([error] if error is not None else []) + _saved_list(state), name


# -- attribution -----------------------------------------------------------------------------------------------
@callbacks.callback(
    Output(ids.ATTR_LAYER_BOX, "style"),
    Output(ids.ATTR_IMAGE, "src"),
    Output(ids.ATTR_OVERLAY, "src"),
    Output(ids.ATTR_INFO, "children"),
    views.gated("attribution"),
    Input(ids.ATTR_METHOD, "value"),
    Input(ids.ATTR_TARGET, "value"),
    Input(ids.ATTR_LAYER, "value"),
    State(ids.SELECTED, "data"),
    prevent_initial_call=True,
)
def attribution(state: DashboardState, gate: Any, method: Any, target: Any, layer: Any, selected: Any) -> Any:
    views.opened(gate)
    style = {"display": "flex" if method == "gradcam" else "none"}
    try:
        selected = state.image_key(selected)
        method, target, layer = _attribution_choice(state, method, target, layer)
    except LayerscopeError as e:
        return style, None, None, html.Span(str(e), className="bad")
    pixels = state.pixels(selected)[0]
    image = png_uri(state.image_array(selected), 5)  # the same pixels, as the page shows its images
    try:
        a = state.interventions.attribution(selected, method, target, layer)
    except Exception as e:  # shown where the map would be; the page stays usable
        return style, image, None, html.Span(f"cannot compute it: {e}", className="bad")
    names = state.class_names
    lines = [
        html.Div([html.B(METHOD_LABELS[a.method]), f" of the score of class {names[a.target]}"]),
        html.Div(f"predicted: {names[a.predicted]}" + (" (the class explained)" if a.predicted == a.target else "")),
    ]
    if a.layer:
        lines.append(html.Div(f"at layer {a.layer}, upsampled to the image"))
    if a.delta is not None:
        lines.append(
            html.Div(
                f"completeness delta {a.delta:+.4f}: the map's sum minus (score of the image − score of a "
                "black image); near 0, the map accounts for the score",
                className="hint",
            )
        )
    lines.append(html.Div(f"{a.seconds * 1000:.0f} ms", className="hint"))
    return style, image, _overlay_uri(pixels, a.map, 5), lines


@callbacks.callback(
    Output(ids.ATTR_SANITY_AREA, "children"),
    Output(ids.ATTR_INTERVAL, "disabled"),
    Input(ids.ATTR_SANITY, "value"),
    views.gated("attribution"),
    Input(ids.ATTR_METHOD, "value"),
    Input(ids.ATTR_TARGET, "value"),
    Input(ids.ATTR_LAYER, "value"),
    Input(ids.ATTR_INTERVAL, "n_intervals"),
    State(ids.SELECTED, "data"),
    prevent_initial_call=True,
)
def sanity(
    state: DashboardState, on: Any, gate: Any, method: str, target: Any, layer: Any, _tick: Any, selected: Any
) -> Any:
    views.opened(gate)
    if not on:
        return [], True
    try:
        selected = state.image_key(selected)
        method, target, layer = _attribution_choice(state, method, target, layer)
    except LayerscopeError as e:
        return html.Span(str(e), className="bad"), True
    pixels = state.pixels(selected)[0]
    job, steps = state.interventions.randomisation(selected, method, target, layer)
    if steps is None:
        return _job_text(job, "re-initialising the layers one at a time", "the sanity check"), bool(job.error)
    cells = [
        html.Div(
            [
                html.Img(src=_overlay_uri(pixels, step.map, 3), className="sanity-img"),
                html.Div(
                    "trained model" if not step.randomised else "randomised: " + ", ".join(step.randomised),
                    className="hint",
                ),
            ],
            className="fig-cell sanity-cell",
        )
        for step in steps
    ]
    return [
        html.H4("Sanity check: the same map as the weights are randomised"),
        html.Div(cells, className="figure-row sanity-row"),
        dcc.Graph(
            id=ids.ATTR_SANITY_FIG, figure=similarity_figure(steps), config=png_config("attribution-sanity-check")
        ),
        html.Div(
            "The layers' weights are re-initialised one more at a time, from the output down; the map should "
            "change. A method whose map barely changes when the weights are randomised (similarity staying "
            "near 1) does not explain the weights: it shows the image, not what the network learned.",
            className="hint",
        ),
    ], True
