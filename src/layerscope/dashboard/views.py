"""The workspace's views: the work split by task, one shown at a time, the selection sidebar beside every one.

Every view's components stay in the page (hidden ones are ``display: none``), so a callback never targets a missing
component; the heavy ones (feature maps, the network graph, attributions) wait with `gate` until their view is shown.
"""

from __future__ import annotations

from typing import Any

from dash.exceptions import PreventUpdate

__all__ = ["DEFAULT", "VIEWS", "check_view_name", "gate", "shown"]

# (name, tab title, tooltip); the order of the tabs
VIEWS: tuple[tuple[str, str, str], ...] = (
    ("explore", "Explore", "the two projections, the gallery, the confusion matrix and groups"),
    ("activations", "Activations", "activation rows of images, groups and digit averages, layer by layer"),
    ("network", "Network", "the weights as a graph, feature maps and the unit card"),
    ("draw", "Draw", "draw a digit and see what the network makes of it"),
    ("intervene", "Intervene", "switch units off; what a decision rests on (attributions)"),
)
DEFAULT = "explore"
NAMES = tuple(name for name, _, _ in VIEWS)
_NEED_MODEL = ("draw", "intervene")


def shown(has_model: bool) -> list[tuple[str, str, str]]:
    """The views a Run offers: Draw and Intervene need the model's weights."""
    return [v for v in VIEWS if has_model or v[0] not in _NEED_MODEL]


def check_view_name(value: Any) -> str:
    """``value`` if it names a view, else the default one (an address from elsewhere may name anything)."""
    return value if isinstance(value, str) and value in NAMES else DEFAULT


def gate(view: str, current: Any) -> None:
    """Stop a callback of ``view`` while another view is shown; it runs when its view opens (the view is an Input)."""
    if check_view_name(current) != view:
        raise PreventUpdate
