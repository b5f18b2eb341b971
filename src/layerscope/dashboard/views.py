"""The workspace's views: the work split by task, one shown at a time, the selection sidebar beside every one.

The page comes with the Explore view laid out; each other view is laid out the first time it opens (``laid_out_with``,
workspace.lay_out) and then stays in the page, hidden (``display: none``) while another view is shown. A page open
mounts under half of the page's components, and the renderer weighs each change against those only.
The stores the views share live outside them (layout.build_layout), so a callback never waits for a view nobody
opened. The heavy callbacks (feature maps, the network graph, attributions, activation panels) listen to a *gate*
instead of the stores the whole page shares: a store that the browser changes when one of those stores changed while
the view is shown, or when the view opens after one changed while it was hidden. A click in the gallery sends no
request for a view nobody looks at, and opening a view that is up to date redraws nothing.
"""

from __future__ import annotations

from typing import Any

from dash import Input, Output, State, dcc
from dash.exceptions import PreventUpdate

from layerscope.dashboard import ids

__all__ = [
    "DEFAULT",
    "GATES",
    "GATES_JS",
    "VIEWS",
    "check_view_name",
    "gate_dependencies",
    "gate_plan",
    "gate_stores",
    "gated",
    "laid_out_with",
    "opened",
    "shown",
]

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


# views laid out together the first time either opens: the network graph's clicks switch units off in the Intervene
# view's list, and the unit card asks that list whether a click is meant for it
_TOGETHER = (("network", "intervene"),)


def laid_out_with(view: str) -> tuple[str, ...]:
    """The views laid out when ``view`` first opens: itself, and the views whose callbacks span both."""
    return next((group for group in _TOGETHER if view in group), (view,))


def shown(has_model: bool) -> list[tuple[str, str, str]]:
    """The views a Run offers: Draw and Intervene need the model's weights."""
    return [v for v in VIEWS if has_model or v[0] not in _NEED_MODEL]


def check_view_name(value: Any) -> str:
    """``value`` if it names a view, else the default one (an address from elsewhere may name anything)."""
    return value if isinstance(value, str) and value in NAMES else DEFAULT


# gate -> (its view, the page-wide stores it follows); the callback behind it reads their values as States
GATES: dict[str, tuple[str, tuple[str, ...]]] = {
    "panel-frames": ("activations", (ids.PANELS, ids.EXPLAIN)),
    "panels": ("activations", (ids.ROWS, ids.GROUPS, ids.SELECTION, ids.DRAW_SETTLED, ids.SNAPSHOT)),
    "network": ("network", (ids.SELECTED, ids.SELECTION, ids.SNAPSHOT)),
    "unit": ("network", (ids.UNIT, ids.SNAPSHOT)),
    "guided": ("network", (ids.UNIT, ids.SELECTED)),
    "fmaps": ("network", (ids.SELECTED, ids.DRAW_SETTLED)),
    "ablated-image": ("intervene", (ids.ABL_STORE, ids.SELECTED)),
    "attribution": ("intervene", (ids.SELECTED,)),
}
_MODEL_FREE = ("panel-frames", "panels")  # the others follow stores of views that need the model's weights


def _gates(has_model: bool) -> list[str]:
    return [name for name in GATES if has_model or name in _MODEL_FREE]


def gated(name: str) -> Input:
    """The Input of a heavy callback behind gate ``name``; the callback starts with ``opened(gate)``."""
    return Input(ids.gate(name), "data")


def opened(gate: Any) -> None:
    """Stop a heavy callback whose view was never shown: the renderer calls a callback once when its components are
    laid out (a view, the first time it opens), whatever its gate says; that call draws nothing."""
    if gate is None:
        raise PreventUpdate


def gate_stores(has_model: bool) -> list[dcc.Store]:
    gates = [dcc.Store(id=ids.gate(name)) for name in _gates(has_model)]
    return [*gates, dcc.Store(id=ids.GATE_PLAN, data=gate_plan(has_model))]


# all gates in one callback in the browser (assets/workspace.js ``layerscope.gates``): no request while a gate's
# view is hidden, and one renderer cycle for all of them, not one each
GATES_JS = """function(view, ...values) {
    const plan = values.pop();  // gate_plan, laid out with the page
    return window.layerscope.gates(plan.views, plan.follows, view, values);
}"""


def _followed(names: list[str]) -> list[str]:
    """Every store the gates ``names`` follow, each once, in the order the gates' callback takes them."""
    return list(dict.fromkeys(store for name in names for store in GATES[name][1]))


def gate_dependencies(state: Any) -> list[Any]:
    """The gates' callback: an Output per gate the Run has, the view shown and every store a gate follows; which
    gate follows which store is handed to the browser (workspace.js ``gates``) with the page."""
    names = _gates(state.has_model)
    stores = _followed(names)
    return [
        *(Output(ids.gate(name), "data") for name in names),
        Input(ids.VIEW_SHOWN, "data"),  # the view once shown and its graphs measured (workspace.js showView)
        # optional: a view's own stores are there once it is laid out (its gates matter only then)
        *(Input(store, "data", allow_optional=True) for store in stores),
        State(ids.GATE_PLAN, "data"),
    ]


def gate_plan(has_model: bool) -> dict[str, Any]:
    """{"views": {gate: its view}, "follows": {gate: positions of its stores among the callback's}} for the page."""
    names = _gates(has_model)
    stores = _followed(names)
    return {
        "views": {name: GATES[name][0] for name in names},
        "follows": {name: [stores.index(store) for store in GATES[name][1]] for name in names},
    }
