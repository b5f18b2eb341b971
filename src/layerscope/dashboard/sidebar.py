"""The selection sidebar: the selected image, its prediction bars and its actions, beside every view.

An image is selected by a click on a gallery or top-k thumbnail, a projection's point or an activation row's name;
the browser works out which image (assets/workspace.js ``select``), so the preview's request is the click's first.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
from dash import ALL, Input, Output, State
from flask import Response, jsonify

from layerscope.dashboard import figures, ids
from layerscope.dashboard.checks import url_image
from layerscope.dashboard.state import LIVE, DashboardState, is_drawing
from layerscope.dashboard.wiring import Callbacks

__all__ = ["SELECTED_ROUTE", "callbacks", "card_json", "selected_card"]

callbacks = Callbacks()

# the page's notice (messages.on_callback_error fills it) hides on a click
callbacks.clientside(
    "function(n) { return n ? '' : window.dash_clientside.no_update; }",
    Output(ids.PAGE_ERROR, "children"),
    Input(ids.PAGE_ERROR, "n_clicks"),
    prevent_initial_call=True,
)


# -- preview ----------------------------------------------------------------------------------------------------
# The card of the selected image is drawn by the page (assets/layerscope.js ``showSelected``) from one GET request:
# a click's answer is painted ~50 ms later, where a Dash callback's answer waited on the renderer walking the page's
# components, before and after the request (~150-180 ms on a 2-core laptop).
SELECTED_ROUTE = "_layerscope/selected"

Segment = tuple[str, str]  # (text, how the page shows it: "" plain, "b" bold, "ok" / "bad" a verdict, "live")


def selected_card(state: DashboardState, key: Any) -> dict[str, Any]:
    """What the "Selected image" card shows of image ``key``, as JSON: ``key``; ``image`` (a 224 px data-URI PNG);
    ``name`` (its bold first line) and ``live`` (the live drawing: the Draw panel's fast path restyles the card);
    ``line`` (the second line, as `Segment`s: "live" is a caption the Draw panel rewrites); ``figure`` (the bars of
    its class probabilities, or a message where there are none) and ``bars`` (their values alone, what the page
    restyles when it shows bars already); ``explainable`` (a misclassified dataset image). A key that names no image
    is a one-line ``LayerscopeError``."""
    key = state.image_key(key)
    card: dict[str, Any] = {"key": key, "image": state.thumbnail(key, 224), "live": key == LIVE, "explainable": False}
    probs: np.ndarray | None = None
    if is_drawing(key):  # no true label: the prediction only, nothing to explain
        probs = state.drawing_probs.get(key)
        true = int(np.argmax(probs)) if probs is not None else 0
        card["name"] = state.name(key)
        text = f"predicted {state.class_names[true]} ({probs[true]:.1%})" if probs is not None else ""
        card["line"] = [("drawn by hand · ", ""), (text, "live")] if probs is not None else []
    elif isinstance(key, str):  # "mean:k"
        true = int(key.split(":")[1])
        probs = np.zeros(len(state.class_names))
        card["name"] = f"average {state.class_names[true]}"
        card["line"] = [("mean image of the class (proxy instance)", "")]
    else:
        true, pred = int(state.labels[key]), int(state.predicted[key])
        card["name"] = state.name(key)
        sure = f" ({state.confidence[key]:.1%}) · " if state.has_probabilities else " · "
        verdict = ("correct", "ok") if true == pred else ("misclassified", "bad")
        card["line"] = [
            ("true ", ""),
            (state.class_names[true], "b"),
            (" · predicted ", ""),
            (state.class_names[pred], "b"),
            (sure, ""),
            verdict,
        ]
        card["explainable"] = true != pred
        if state.has_probabilities:
            probs = np.asarray(state.probs[key], dtype=np.float32)
    if probs is not None:
        card["figure"] = figures.probability_figure(probs, true, state.class_names)
        card["bars"] = figures.probability_bars(probs, true)
    else:
        message = "" if is_drawing(key) else "the file gives the predicted class only, no probabilities"
        card["figure"], card["bars"] = figures.figure_json(figures.empty_figure(message)), None
    return card


@callbacks.route(SELECTED_ROUTE)
def card_json(state: DashboardState, args: Mapping[str, str]) -> Response:
    """GET ``_layerscope/selected?image=123``: `selected_card` (a drawing is the asking page's own: session.py)."""
    response = jsonify(selected_card(state, url_image(state, args.get("image"))))
    response.headers["Cache-Control"] = "no-store"  # a drawing under the same key changes
    return response


# every way of selecting an image sets SELECTED; a thumbnail's click has asked for the card already
# (assets/layerscope.js), and this call is answered by that request. A drawing's card follows its strokes.
callbacks.clientside(
    """function(selected, drawn) {
        return window.layerscope.showSelected(selected, window.dash_clientside.callback_context);
    }""",
    Output(ids.EXPLAIN_BUTTON, "disabled"),
    Input(ids.SELECTED, "data"),
    Input(ids.DRAW_VERSION, "data", allow_optional=True),  # in the Draw view, laid out once it opens
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
