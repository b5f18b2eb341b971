"""Small layout pieces shared by the page's sections."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from dash import dcc, html

__all__ = ["attrs", "cancel_button", "card", "display", "graph_row", "layer_options", "png_config", "section_head"]


def card(title: str, *children: Any, extra: Any = None, class_name: str = "") -> html.Div:
    """A titled white card; ``extra`` sits at the right of the title."""
    head = [html.H3(title)] + ([extra] if extra is not None else [])
    return html.Div([html.Div(head, className="card-head"), *children], className=f"card {class_name}".strip())


def attrs(**values: object) -> dict[str, Any]:
    """``data-*`` attributes for a Dash html component, ``**attrs(live_layer="fc2")`` -> data-live-layer="fc2": what
    the page's scripts (assets/) read, without making each element a Dash component with an id."""
    return {"data-" + name.replace("_", "-"): str(value) for name, value in values.items()}


def png_config(filename: str) -> dcc.Graph.Config:
    """A figure's plotly config with one tool, shown while the pointer is over it: download as ``filename``.png (at
    twice the screen's resolution)."""
    return {
        "displaylogo": False,
        "modeBarButtons": [["toImage"]],
        "toImageButtonOptions": {"filename": filename, "scale": 2},
    }


def graph_row(*cells: tuple[str, str]) -> html.Div:
    """Figures side by side, each under its heading: ``graph_row(("Incoming weights", ids.UNIT_WEIGHTS), ...)``.
    Each downloads as a PNG named after its id."""
    return html.Div(
        [
            html.Div([html.H4(title), dcc.Graph(id=ident, config=png_config(ident))], className="unit-cell")
            for title, ident in cells
        ],
        className="unit-row",
    )


def section_head(title: str, *actions: Any) -> html.Div:
    """A heading inside a card with its actions (buttons) beside it."""
    return html.Div([html.H4(title), *actions], className="section-head")


def display(shown: bool) -> dict[str, str]:
    """The style of a button shown at times only (a job's Cancel while it runs), laid out hidden."""
    return {"display": "inline-block" if shown else "none"}


def cancel_button(ident: str, doing: str) -> html.Button:
    """The Cancel of a background job, hidden until it runs: "stop ``doing``". A job's result belongs to the Run, so
    its Cancel stops it for every page waiting on it (dashboard/jobs.py)."""
    return html.Button(
        "Cancel",
        id=ident,
        className="btn small",
        style=display(False),
        title=f"stop {doing}, for every page waiting on the result",
    )


def layer_options(names: Sequence[str]) -> list[dict[str, Any]]:
    """A layer dropdown's options, in the model's order so a block's layers stand together, each shown as its
    block (greyed) and its own name (``layer2.0.`` **relu_1**); typing any part of the dotted name finds it (with
    200 layers the list is searched, not scrolled)."""
    options = []
    for name in names:
        block, dot, own = name.rpartition(".")
        label = html.Span([html.Span(block + dot, className="muted"), html.B(own)]) if dot else name
        options.append({"label": label, "value": name, "search": name})
    return options
