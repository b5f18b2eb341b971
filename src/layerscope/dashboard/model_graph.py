"""The model's graph in the Network view: every node of the traced model (modules, adds, concatenations), laid out
left to right by dagre in dash-cytoscape, blocks collapsible into one node, each captured node coloured by how
strongly it responds to the selected image (or the brushed points) against the whole dataset.

The graph's structure (which blocks are drawn as one node) travels as cytoscape elements, laid out once per
structure; a new image or brush changes only the stylesheet's colours, so the layout (and the user's zoom and pan)
stays where it is. A click on a block opens or folds it; a click on a captured node opens it in the unit card.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

import dash_cytoscape as cyto
import numpy as np
from dash import Input, Output, State, ctx, dcc, html, no_update
from dash.exceptions import PreventUpdate

from layerscope.analysis import group_mean
from layerscope.dashboard import ids, views
from layerscope.dashboard.checks import check_choice, check_selection
from layerscope.dashboard.components import card
from layerscope.dashboard.figures import viridis
from layerscope.dashboard.state import DashboardState, is_drawing
from layerscope.dashboard.wiring import Callbacks
from layerscope.errors import LayerscopeError
from layerscope.graph import ModelGraph

__all__ = ["callbacks", "default_collapsed", "graph_card", "graph_elements", "node_colours"]

cyto.load_extra_layouts()  # dagre: the layered layout of a DAG (served with the page, from the package)

callbacks = Callbacks()

FOLD_ABOVE = 20  # a graph of more nodes opens with its blocks folded (drawn whole, its names are too small)
LAYOUT = {"name": "dagre", "rankDir": "LR", "nodeSep": 14, "rankSep": 36, "edgeSep": 8, "padding": 12}
_GREY = "#e6e8ec"

STYLESHEET: list[dict[str, Any]] = [
    {
        "selector": "node",
        "style": {
            "label": "data(label)",
            "shape": "round-rectangle",
            "width": "label",
            "height": "label",
            "padding": "6px",
            "font-size": "11px",
            "text-valign": "center",
            "text-halign": "center",
            "text-wrap": "wrap",
            "background-color": _GREY,
            "border-width": 1,
            "border-color": "#9aa3af",
            "color": "#111827",
        },
    },
    {"selector": "node.captured", "style": {"border-width": 2, "border-color": "#1f2937"}},
    {
        "selector": "node.merge",
        "style": {"shape": "ellipse", "font-size": "10px", "padding": "4px", "background-color": "#fde68a"},
    },
    {"selector": "node.input", "style": {"shape": "rectangle", "background-color": "#dbeafe"}},
    {
        "selector": "node.folded",
        "style": {"shape": "round-rectangle", "border-style": "double", "border-width": 4, "font-weight": "bold"},
    },
    {
        "selector": ":parent",
        "style": {
            "text-valign": "top",
            "text-halign": "center",
            "background-color": "#f8fafc",
            "background-opacity": 0.6,
            "border-color": "#cbd5e1",
            "border-style": "dashed",
            "font-size": "10px",
            "color": "#475569",
            "padding": "10px",
        },
    },
    {
        "selector": "edge",
        "style": {
            "curve-style": "bezier",
            "target-arrow-shape": "triangle",
            "arrow-scale": 0.7,
            "width": 1.4,
            "line-color": "#94a3b8",
            "target-arrow-color": "#94a3b8",
        },
    },
    {
        "selector": "edge.skip",
        "style": {"line-style": "dashed", "line-color": "#d97706", "target-arrow-color": "#d97706"},
    },
    {"selector": "node:selected", "style": {"border-color": "#dc2626", "border-width": 3}},
]


def default_collapsed(graph: ModelGraph) -> list[str]:
    """The blocks drawn folded when the page opens: every block of a graph too big to read whole (a ResNet-18's 70
    nodes fold into its stem, eight blocks and its head), none of a small one."""
    return graph.blocks if len(graph.nodes) > FOLD_ABOVE else []


def _label(name: str, parent: str | None, shape: tuple[int, ...], op: str = "") -> str:
    """The node's name inside its frame (``conv1`` in ``layer1.0``), with its op where the name is a number (a
    Sequential's ``0 Conv2d``), over its output's shape."""
    short = name[len(parent) + 1 :] if parent else name
    if short.isdigit() and op:
        short = f"{short} {op}"
    size = "x".join(str(s) for s in shape)
    return f"{short}\n{size}" if size else short


def graph_elements(graph: ModelGraph, captured: set[str], collapsed: list[str]) -> list[dict[str, Any]]:
    """Cytoscape elements of ``graph`` with ``collapsed`` groups folded: compound nodes for the open groups, a node
    per shown node or folded group (classes: captured, merge, input, folded), an edge per flow (class skip for a
    shortcut into a merge)."""
    nodes, edges = graph.shown(collapsed)
    groups = set(graph.groups)
    folded = {name for name in nodes if name in groups and name not in graph}
    # the open groups that hold a shown node: each a compound node inside the next group out
    parents: dict[str, str | None] = {}

    def parent_of(name: str) -> str | None:
        parts = name.split(".")[:-1]
        for i in range(len(parts), 0, -1):
            path = ".".join(parts[:i])
            if path in groups and path not in folded:
                return path
        return None

    for name in nodes:
        p = parent_of(name)
        while p is not None and p not in parents:
            parents[p] = parent_of(p)
            p = parents[p]
    elements: list[dict[str, Any]] = [
        {"data": {"id": f"group:{g}", "label": g, "group": g, **({"parent": f"group:{pp}"} if pp else {})}}
        for g, pp in parents.items()
    ]
    skips = graph.skip_edges()
    for name in nodes:
        p = parent_of(name)
        data: dict[str, Any] = {"id": name, **({"parent": f"group:{p}"} if p else {})}
        if name in folded:
            data |= {"label": f"{name[len(p) + 1 :] if p else name}\n(block)", "group": name}
            classes = ["folded"]
            out = graph.block_output(name)
            if out in captured:
                data["layer"] = out
                classes.append("captured")
        else:
            node = graph.node(name)
            data |= {"label": _label(name, p, node.shape, node.op), "op": node.op}
            classes = [node.kind] + (["merge"] if node.merge else []) + (["captured"] if name in captured else [])
            if name in captured:
                data["layer"] = name
        elements.append({"data": data, "classes": " ".join(classes)})
    for src, dst in edges:
        skip = (src, dst) in skips
        elements.append({"data": {"id": f"{src}->{dst}", "source": src, "target": dst}, "classes": "skip" * skip})
    return elements


@lru_cache(maxsize=64)
def _ranks(state: DashboardState, layer: str) -> np.ndarray:
    """Each image's mean over the layer's units, as its rank among all images in [0, 1] (sorted once per layer)."""
    means = np.asarray(state.values(layer), dtype=np.float32).mean(axis=1)
    order = np.argsort(means, kind="stable")
    ranks = np.empty(len(means), np.float32)
    ranks[order] = np.linspace(0.0, 1.0, len(means), dtype=np.float32)
    return ranks


def _rank_of(state: DashboardState, layer: str, colour: str, selected: Any, selection: Any) -> float | None:
    """Where the selected image (or the brushed points, on average) stands among all images in ``layer``'s mean
    activation, 0 to 1; None when there is nothing to colour by."""
    if colour == "none":
        return None
    ranks = _ranks(state, layer)
    if colour == "selection":
        return float(group_mean(ranks[:, None], selection)[0]) if selection else None
    if isinstance(selected, str) and selected.startswith("mean:"):
        k = int(selected.split(":")[1])
        return float(ranks[state.labels == k].mean())
    if is_drawing(selected):
        values = state.drawing_values(selected, layer)
        if values is None:
            return None
        means = np.sort(np.asarray(state.values(layer), dtype=np.float32).mean(axis=1))
        return float(np.searchsorted(means, float(np.mean(values))) / max(len(means) - 1, 1))
    return float(ranks[int(selected)])


def node_colours(state: DashboardState, layers: list[str], colour: str, selected: Any, selection: Any) -> list[dict]:
    """Stylesheet rules colouring each captured node by `_rank_of` (viridis: dark low, yellow high)."""
    rules = []
    for layer in layers:
        rank = _rank_of(state, layer, colour, selected, selection)
        if rank is None:
            continue
        fill = viridis(np.array([rank], np.float32), 0.0, 1.0)[0]
        text = "#ffffff" if rank < 0.55 else "#111827"
        rules.append({"selector": f'node[layer = "{layer}"]', "style": {"background-color": fill, "color": text}})
    return rules


def graph_card(state: DashboardState) -> html.Div:
    graph = state.run.graph
    how = {
        "fx": "traced with torch.fx",
        "hooks": f"the order its modules ran in: {graph.reason}",
        "layers": "the Run's layers in order (it was written before layerscope traced models)",
    }.get(graph.method, graph.method)
    collapsed = default_collapsed(graph)
    return card(
        "Model graph",
        html.Div(
            [
                html.Span(f"{len(graph.nodes)} nodes, {len(graph.edges)} edges · {how}", className="hint"),
                html.Button("Fold all blocks", id=ids.NET_FOLD_ALL, className="btn small"),
                html.Button("Open all blocks", id=ids.NET_OPEN_ALL, className="btn small"),
                html.Button("Download PNG", id=ids.NET_DAG_PNG, className="btn small"),
            ],
            className="controls",
        ),
        cyto.Cytoscape(
            id=ids.NET_DAG,
            elements=graph_elements(graph, set(state.activation_layers), collapsed),
            stylesheet=STYLESHEET,
            layout=LAYOUT,
            style={"width": "100%", "height": "300px"},
            minZoom=0.2,
            maxZoom=3,
            wheelSensitivity=0.3,
            responsive=True,
            autounselectify=False,
            boxSelectionEnabled=False,
        ),
        html.Div(id=ids.NET_DAG_INFO, className="hint"),
        html.Div(
            "Bold borders: nodes this Run captured (coloured by how strongly the selected image drives them, as a "
            "rank among all images: dark low, yellow high); yellow ellipses: adds and concatenations, dashed orange "
            "edges: shortcuts. Click a block to open or fold it, a captured node to open it in the unit card. "
            "Scroll to zoom, drag to pan.",
            className="hint",
        ),
        dcc.Store(id=ids.NET_COLLAPSED, data=collapsed),
        class_name="model-graph",
    )


@callbacks.callback(
    Output(ids.NET_COLLAPSED, "data"),
    Input(ids.NET_DAG, "tapNodeData"),
    Input(ids.NET_FOLD_ALL, "n_clicks"),
    Input(ids.NET_OPEN_ALL, "n_clicks"),
    State(ids.NET_COLLAPSED, "data"),
    prevent_initial_call=True,
)
def fold(state: DashboardState, tapped: Any, _fold: Any, _open: Any, collapsed: Any) -> Any:
    """A click on a block (a folded node or an open group's frame) folds or opens it."""
    graph = state.run.graph
    groups = graph.groups
    if ctx.triggered_id == ids.NET_FOLD_ALL:
        return graph.blocks or groups
    if ctx.triggered_id == ids.NET_OPEN_ALL:
        return []
    group = tapped.get("group") if isinstance(tapped, dict) else None
    if not isinstance(group, str) or group not in groups:
        raise PreventUpdate
    current = [g for g in (collapsed if isinstance(collapsed, list) else []) if isinstance(g, str) and g in groups]
    if group in current:
        return [g for g in current if g != group]
    return [g for g in current if not g.startswith(f"{group}.")] + [group]


@callbacks.callback(
    Output(ids.NET_DAG, "elements"),
    Input(ids.NET_COLLAPSED, "data"),
    prevent_initial_call=True,
)
def structure(state: DashboardState, collapsed: Any) -> Any:
    groups = set(state.run.graph.groups)
    chosen = [g for g in (collapsed if isinstance(collapsed, list) else []) if isinstance(g, str) and g in groups]
    return graph_elements(state.run.graph, set(state.activation_layers), chosen)


@callbacks.callback(
    Output(ids.NET_DAG, "stylesheet"),
    Input(ids.NET_COLOR, "value"),
    views.gated("network"),  # drawn while the Network view is open (views.py)
    State(ids.SELECTED, "data"),
    State(ids.SELECTION, "data"),
    State(ids.SNAPSHOT, "data"),
    prevent_initial_call=True,
)
def colours(state: DashboardState, colour: Any, gate: Any, selected: Any, selection: Any, snapshot: Any) -> Any:
    views.opened(gate)
    try:
        state = state.at(snapshot)  # the activations of the network at the training snapshot the page shows
        colour = check_choice(colour, ("image", "selection", "none"), "node colouring")
        selected = state.image_key(selected)
        selection = check_selection(state, selection)
    except LayerscopeError:
        raise PreventUpdate from None
    return STYLESHEET + node_colours(state, state.activation_layers, colour, selected, selection)


@callbacks.callback(
    Output(ids.NET_DAG_INFO, "children"),
    Input(ids.NET_DAG, "tapNodeData"),
    Input(ids.NET_DAG, "mouseoverNodeData"),
    prevent_initial_call=True,
)
def describe(state: DashboardState, tapped: Any, over: Any) -> Any:
    """One line about the node under the pointer (or clicked): what computes it from what, its shape, and whether
    this Run captured it."""
    data = tapped if ctx.triggered_id and "tapNodeData" in str(ctx.triggered[0]["prop_id"]) else over
    if not isinstance(data, dict) or not isinstance(data.get("id"), str):
        return no_update
    graph = state.run.graph
    name = data["id"]
    if name.startswith("group:") or name not in graph:
        group = str(data.get("group", name.removeprefix("group:")))
        inside = sum(1 for n in graph.names if n.startswith(f"{group}."))
        return f"{group}: a block of {inside} nodes; click to open or fold it."
    node = graph.node(name)
    reads = ", ".join(node.inputs) or "the image"
    shape = "x".join(str(s) for s in node.shape)
    text = f"{name}: {node.op} of {reads} → {shape}"
    if name in state.activation_layers:
        return f"{text} · captured: click to open it in the unit card."
    return (
        f"{text} · not captured in this Run (make one with --include '{name}' to open its units)."
        if node.kind != "input"
        else text
    )


@callbacks.callback(
    Output(ids.NET_DAG, "generateImage"),
    Input(ids.NET_DAG_PNG, "n_clicks"),
    prevent_initial_call=True,
)
def download(state: DashboardState, _clicks: Any) -> Any:
    return {"type": "png", "action": "download", "filename": "model-graph", "options": {"scale": 2, "bg": "#ffffff"}}


# the graph was laid out while its view was hidden (no size to fit): fit it to its box once the view is shown
callbacks.clientside(
    """function(shown) {
        const box = document.getElementById('net-dag');
        const cy = box && box._cyreg && box._cyreg.cy;
        if (shown === 'network' && cy) { cy.resize(); cy.fit(undefined, 12); }
        return window.dash_clientside.no_update;
    }""",
    Output(ids.NET_DAG_INFO, "title"),
    Input(ids.VIEW_SHOWN, "data"),
    prevent_initial_call=True,
)
