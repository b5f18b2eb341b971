"""The selection sidebar: the selected image, its prediction bars and its actions, beside every view.

An image is selected by a click on a gallery or top-k thumbnail, a projection's point or an activation row's name;
the browser works out which image (assets/workspace.js ``select``), so the preview's request is the click's first.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from dash import ALL, Input, Output, State, ctx, html
from dash.exceptions import PreventUpdate

from layerscope.dashboard import figures, ids
from layerscope.dashboard.components import attrs
from layerscope.dashboard.state import LIVE, DashboardState, is_drawing
from layerscope.dashboard.wiring import Callbacks
from layerscope.errors import LayerscopeError

__all__ = ["callbacks"]

callbacks = Callbacks()

# the page's notice (messages.on_callback_error fills it) hides on a click
callbacks.clientside(
    "function(n) { return n ? '' : window.dash_clientside.no_update; }",
    Output(ids.PAGE_ERROR, "children"),
    Input(ids.PAGE_ERROR, "n_clicks"),
    prevent_initial_call=True,
)


# -- preview ----------------------------------------------------------------------------------------------------
@callbacks.callback(
    Output(ids.PREVIEW_IMAGE, "src"),
    Output(ids.PREVIEW_CAPTION, "children"),
    Output(ids.PREVIEW_PROBS, "figure"),
    Output(ids.EXPLAIN_BUTTON, "disabled"),
    Input(ids.SELECTED, "data"),
    Input(ids.DRAW_VERSION, "data", allow_optional=True),  # in the Draw view, laid out once it opens
)
def preview(state: DashboardState, selected: Any, _drawn: Any) -> tuple[Any, ...]:
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


# -- selecting an image: projection clicks and activation-row names, in the browser (assets/workspace.js); a
# thumbnail's click sets the selection itself (assets/layerscope.js): the preview's request is the click's first
callbacks.clientside(
    f"""function(clicked, names, rows) {{
        return window.layerscope.select(window.dash_clientside.callback_context, rows,
                                        '{ids.proj("clicked", "")["type"]}', '{ids.ROW_NAME}');
    }}""",
    Output(ids.SELECTED, "data"),
    Input(ids.proj("clicked", ALL), "data"),
    Input({"type": ids.ROW_NAME, "row": ALL}, "n_clicks"),
    State(ids.ROWS, "data"),
    prevent_initial_call=True,
)
