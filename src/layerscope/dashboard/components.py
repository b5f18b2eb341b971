"""Small layout pieces shared by the page's sections."""

from __future__ import annotations

from typing import Any

from dash import html

__all__ = ["attrs", "card"]


def card(title: str, *children: Any, extra: Any = None, class_name: str = "") -> html.Div:
    """A titled white card; ``extra`` sits at the right of the title."""
    head = [html.H3(title)] + ([extra] if extra is not None else [])
    return html.Div([html.Div(head, className="card-head"), *children], className=f"card {class_name}".strip())


def attrs(**values: object) -> dict[str, Any]:
    """``data-*`` attributes for a Dash html component, ``**attrs(live_layer="fc2")`` -> data-live-layer="fc2": what
    the page's scripts (assets/) read, without making each element a Dash component with an id."""
    return {"data-" + name.replace("_", "-"): str(value) for name, value in values.items()}
