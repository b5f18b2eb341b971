"""Inside the network: the weights graph, the selected image's feature maps, and one card per unit.

Layout builders and callbacks; computation lives in the core (network, topk, receptive, featurevis, attribution)
and in the server-side state, figures in ``unit_figures``.
"""

from __future__ import annotations

import textwrap
from collections.abc import Mapping
from functools import lru_cache
from typing import Any
from urllib.parse import quote

import numpy as np
from dash import ALL, ClientsideFunction, Input, Output, State, ctx, dcc, html, no_update
from dash.exceptions import PreventUpdate
from flask import Response

from layerscope.analysis import group_mean
from layerscope.dashboard import ids, views
from layerscope.dashboard.attention_card import attention_card, has_attention
from layerscope.dashboard.checks import (
    check_ablation_list,
    check_choice,
    check_int,
    check_number,
    check_selection,
    check_unit,
    first_point,
    image_or_none,
    unit_count,
    url_image,
)
from layerscope.dashboard.components import (
    attrs,
    cancel_button,
    card,
    display,
    graph_row,
    layer_options,
    png_config,
    section_head,
)
from layerscope.dashboard.figures import empty_figure, figure_json
from layerscope.dashboard.jobs import Job, status_line, stopped_line
from layerscope.dashboard.model_graph import graph_card
from layerscope.dashboard.state import LIVE, DashboardState, is_drawing
from layerscope.dashboard.unit_figures import (
    GraphColumn,
    ablated_trace,
    channel_strip,
    channel_strip_png,
    class_bars,
    feature_map_figure,
    network_figure,
    overlay_png,
    png_uri,
    recolour_nodes,
    weights_figure,
)
from layerscope.dashboard.wiring import Callbacks
from layerscope.errors import LayerscopeError
from layerscope.names import check_index

__all__ = ["callbacks", "inside_layout"]

callbacks = Callbacks()

NODE_COLOURS = ("image", "selection", "none")
TOPK_START = "Compute top images"
FEATUREVIS_START = "Compute feature visualisation"
FMAP_SCALES = ("channel", "layer")
MAX_EDGES = 12  # the "edges per node" slider's maximum


def default_unit(state: DashboardState) -> dict[str, Any]:
    """The unit the card opens on: channel 0 of the second conv layer (the first has 3x3 kernels only), else of the
    first layer; a batch norm's channel (a rescaled copy of the layer before it) is never the first choice."""
    convs = [name for name in state.conv_layers if not state.run.layer(name).normalisation]
    return {"layer": convs[1] if len(convs) > 1 else state.activation_layers[0], "unit": 0}


def inside_layout(state: DashboardState) -> list[Any]:
    """The cards of the 'inside the network' part of the page (one note when the Run has no model)."""
    if not state.has_model:
        return [
            card(
                "Inside the network",
                html.P(
                    [
                        f"This Run was opened from {state.run.manifest['source']['kind']}, which holds the network's "
                        "activations and projections but not its weights. The network graph, feature maps, unit "
                        "cards, top images per unit and feature visualisation need the model: build a Run with ",
                        html.Code("layerscope import-model"),
                        " (or ",
                        html.Code("layerscope train"),
                        ") to see them.",
                    ],
                    className="hint",
                    id=ids.NO_MODEL,
                ),
            )
        ]
    colour_options = [
        {"label": "selected image", "value": "image"},
        {"label": "brushed points (mean)", "value": "selection"},
        {"label": "no colour", "value": "none"},
    ]
    network = card(
        "Network: weights and activations",
        html.Div(
            [
                html.Span("expand", className="label"),
                dcc.Checklist(
                    [{"label": f" {name}", "value": name} for name in state.conv_layers],
                    [],
                    id=ids.NET_EXPAND,
                    inline=True,
                    className="radio",
                ),
                html.Span("edges per node", className="label"),
                html.Div(
                    dcc.Slider(0, 12, 1, value=3, id=ids.NET_EDGES, marks={0: "0", 3: "3", 6: "6", 12: "12"}),
                    className="slider",
                ),
                html.Span("min |w|", className="label"),
                html.Div(
                    dcc.Slider(
                        0,
                        0.9,
                        0.05,
                        value=0.0,
                        id=ids.NET_THRESHOLD,
                        marks={0: "0", 0.3: "30%", 0.6: "60%", 0.9: "90%"},
                    ),
                    className="slider",
                ),
                html.Span("colour nodes by", className="label"),
                dcc.Dropdown(colour_options, "image", id=ids.NET_COLOR, clearable=False, className="ctl wide"),
            ],
            className="controls",
        ),
        html.Div(id=ids.NET_INFO, className="hint"),
        dcc.Graph(
            id=ids.NET_GRAPH,
            config={
                "displaylogo": False,
                "scrollZoom": True,
                "toImageButtonOptions": {"filename": "network", "scale": 2},
            },
            responsive=True,
            style={"height": "720px"},
        ),
        html.Div(
            "Red edges excite, blue inhibit; width is |w|. Click a conv layer's node to expand it into its channels "
            "(kernel thumbnails beside them), click a unit to open its card. Scroll to zoom, drag to pan.",
            className="hint",
        ),
    )
    page = _fmap_page(state, None)
    feature_maps = card(
        "Feature maps of the selected image",
        html.Div(
            [
                *_fmap_picker(state, page),
                dcc.RadioItems(
                    [
                        {"label": "one colour scale per channel", "value": "channel"},
                        {"label": "one per layer", "value": "layer"},
                    ],
                    "channel",
                    id=ids.FMAP_SCALE,
                    inline=True,
                    className="radio",
                ),
            ],
            className="controls",
        ),
        html.Div(id=ids.FMAP_NOTE),
        html.Div(_fmap_frame(state, page), id=ids.FMAP_AREA, className="fmap-area", **attrs(url=_fmap_base(state))),
        dcc.Store(id=ids.FMAP_SHOWN, data=page),
        html.Div(
            [
                dcc.Graph(id=ids.FMAP_ZOOM, config=png_config("feature-map"), className="fmap-zoom"),
                html.Button("Open unit card", id=ids.FMAP_OPEN_UNIT, className="btn small"),
            ],
            className="fmap-focus",
        ),
        dcc.Store(id=ids.FMAP_FOCUS, data=_default_focus(state)),
        class_name="fmaps",
    )
    start = default_unit(state)
    unit_card = card(
        "Unit",
        html.Div(
            [
                dcc.Dropdown(
                    layer_options(state.activation_layers),
                    start["layer"],
                    id=ids.UNIT_LAYER,
                    clearable=False,
                    className="ctl wide",
                ),
                # no max: a number past the layer's last unit reaches the server, which says so (UNIT_ERROR)
                dcc.Input(id=ids.UNIT_INDEX, type="number", min=0, step=1, value=start["unit"], className="text small"),
                html.Button("Switch off this unit", id=ids.UNIT_ABLATE, className="btn small"),
                html.Div(id=ids.UNIT_TITLE, className="unit-title"),
            ],
            className="controls",
        ),
        html.Div(id=ids.UNIT_ERROR, className="bad"),
        graph_row(("Incoming weights", ids.UNIT_WEIGHTS), ("Mean activation per class", ids.UNIT_CLASSES)),
        section_head(
            "Top dataset images",
            # computed once for every unit when first shown; this button shows once that was cancelled or failed
            html.Button(TOPK_START, id=ids.UNIT_TOPK_START, className="btn small", style=display(False)),
            cancel_button(ids.UNIT_TOPK_CANCEL, "computing the top images"),
        ),
        html.Div(id=ids.UNIT_TOPK, className="topk"),
        section_head(
            "Feature visualisation: the input that maximises the unit",
            # computed only when asked: it is kept in the Run, and viewing a unit must not write there
            html.Button(FEATUREVIS_START, id=ids.UNIT_FEATUREVIS_START, className="btn small", disabled=True),
            cancel_button(ids.UNIT_FEATUREVIS_CANCEL, "computing this feature visualisation"),
        ),
        html.Div(id=ids.UNIT_FEATUREVIS, className="featurevis"),
        html.H4("What drives it in the selected image"),
        html.Div(id=ids.UNIT_GUIDED, className="guided"),
        dcc.Store(id=ids.UNIT, data=start),
        dcc.Interval(id=ids.UNIT_INTERVAL, interval=700, disabled=True),
        class_name="unit-card",
    )
    attention = [attention_card(state)] if has_attention(state) else []
    return [graph_card(state), network, *attention, html.Div([feature_maps, unit_card], className="row two inside")]


# -- helpers the callbacks share -----------------------------------------------------------------------------------
def _node_values(state: DashboardState, layer: str, colour: str, selected: Any, selection: Any) -> np.ndarray | None:
    """Per-unit values colouring a layer's nodes: the selected image's, or the brushed points' mean."""
    if colour == "none" or state.run.layer(layer).kind == "image":
        return None
    values = state.values(layer)
    if colour == "selection":
        if not selection:
            return None
        return group_mean(values, selection)
    if isinstance(selected, str) and selected.startswith("mean:"):
        return state.class_means(layer)[int(selected.split(":")[1])]
    if is_drawing(selected):
        return state.drawing_values(selected, layer)
    return np.asarray(values[int(selected)], dtype=np.float32)


def _column(state: DashboardState, layer: str, expanded: list[str], values: np.ndarray | None) -> GraphColumn:
    info = state.run.layer(layer)
    units = info.shape[0]
    shape = "x".join(str(s) for s in info.shape)
    label = f"{layer} {units}@{shape.split('x', 1)[-1]}" if info.kind != "dense" else f"{layer} {units} units"
    if info.kind == "image":
        label = f"{layer} {shape}"
    is_open = info.kind == "dense" or layer in expanded
    return GraphColumn(
        name=layer,
        kind=info.kind,
        units=units,
        expanded=is_open,
        label=label,
        values=values,
        thumbs=state.kernel_thumbs(layer) if is_open and info.kind == "conv" else None,
        unit_names=state.class_names if layer == state.layers[-1] and units == len(state.class_names) else None,
    )


def _node_grid(state: DashboardState, expanded: list[str]) -> list[tuple[str, int, bool]]:
    """(layer, units, drawn unit by unit) per column of the graph, as ``_column`` lays them out."""
    grid = []
    for name in state.layers:
        info = state.run.layer(name)
        grid.append((name, info.shape[0], info.kind == "dense" or name in expanded))
    return grid


def _custom(point: dict[str, Any]) -> tuple[Any, Any]:
    """(layer, unit) of a network-graph point's customdata; (None, None) when it has none."""
    custom = point.get("customdata")
    return (custom[0], custom[1]) if isinstance(custom, list) and len(custom) >= 2 else (None, None)


def _check_expanded(state: DashboardState, value: Any) -> list[str]:
    """The conv layers the graph draws channel by channel (the checklist's values)."""
    if value is None:
        return []
    if not isinstance(value, list) or len(value) > len(state.conv_layers):
        raise LayerscopeError("the expanded layers are not a list of conv layers; untick and tick them again.")
    return [check_choice(layer, state.conv_layers, "conv layer") for layer in value]


def _check_focus(state: DashboardState, value: Any) -> dict[str, Any] | None:
    """The enlarged feature map, {"layer": a conv layer, "unit": a channel of it}, or None."""
    if value is None:
        return None
    if not isinstance(value, dict):
        raise LayerscopeError("the enlarged channel is not a layer and a channel; click a channel again.")
    layer = check_choice(value.get("layer"), state.conv_layers, "conv layer")
    return {"layer": layer, "unit": check_index(value.get("unit"), unit_count(state, layer), f"{layer} channel")}


ALL_MAPS_UP_TO = 128  # a model with at most this many conv channels shows every layer's maps at once
FMAP_PAGE = 64  # else one layer at a time, this many channels a page


def fmap_paged(state: DashboardState) -> bool:
    """Whether the feature maps come one layer at a time, a page of channels at once (a ResNet's 10,000 maps would
    make a page 44,000 px tall), or all at once (the report's CNN: 80)."""
    return sum(state.run.layer(name).shape[0] for name in state.conv_layers) > ALL_MAPS_UP_TO


def _fmap_page(state: DashboardState, value: Any) -> dict[str, Any] | None:
    """The page of channels shown, {"layer", "first"}; None when every layer is shown whole."""
    if not fmap_paged(state):
        return None
    if not isinstance(value, dict):
        return {"layer": state.conv_layers[0], "first": 0}
    layer = check_choice(value.get("layer"), state.conv_layers, "conv layer")
    first = check_int(value.get("first", 0), 0, unit_count(state, layer) - 1, "first channel")
    return {"layer": layer, "first": first - first % FMAP_PAGE}


def _channels(state: DashboardState, layer: str, page: dict[str, Any] | None) -> range:
    """The channels of ``layer`` the page shows: all, or those of the page."""
    channels = state.run.layer(layer).shape[0]
    if page is None:
        return range(channels)
    first = page["first"] if page["layer"] == layer else 0
    return range(first, min(first + FMAP_PAGE, channels))


def _fmap_picker(state: DashboardState, page: dict[str, Any] | None) -> list[Any]:
    """The layer and the page of its channels shown, when the maps come one layer at a time (`fmap_paged`)."""
    if page is None:
        return []
    return [
        html.Span("layer", className="label"),
        dcc.Dropdown(
            layer_options(state.conv_layers), page["layer"], id=ids.FMAP_LAYER, clearable=False, className="ctl wide"
        ),
        html.Button("‹", id=ids.FMAP_PREV, className="btn small", title="the previous channels"),
        html.Span(_page_text(state, page), id=ids.FMAP_PAGE_TEXT, className="hint"),
        html.Button("›", id=ids.FMAP_NEXT, className="btn small", title="the next channels"),
    ]


def _page_text(state: DashboardState, page: dict[str, Any]) -> str:
    shown = _channels(state, page["layer"], page)
    return f"channels {shown.start}-{shown.stop - 1} of {state.run.layer(page['layer']).shape[0]}"


def _fmap_frame(
    state: DashboardState,
    page: dict[str, Any] | None = None,
    focus: dict[str, Any] | None = None,
    values: dict[str, dict[str, Any]] | None = None,
) -> list[Any]:
    """Per conv layer shown (every layer, or the page's), a heading and a grid of one tile per channel: a new image
    changes the grids' strips and the headings (`_fmap_values`), never the tiles, so the renderer swaps two
    properties per layer instead of building a component per channel again. A tile shows its slice of the strip
    PNG (`channel_strip`) held in the grid's ``--sprite`` style, which the Draw panel's fast path (assets/draw.js)
    replaces while the live drawing is shown."""
    if not state.conv_layers:
        return [html.Div("This model has no convolutional layers.", className="hint")]
    focus = focus or _default_focus(state)
    blocks = []
    for info in (i for i in state.run.layers if i.kind == "conv"):
        if page is not None and info.name != page["layer"]:
            continue
        channels, h, w = info.shape
        shown = _channels(state, info.name, page)
        tiles = [
            html.Div(
                id={"type": ids.FMAP_TILE, "layer": info.name, "unit": c},
                className="fmap chosen" if focus == {"layer": info.name, "unit": c} else "fmap",
                # aligns the strip's i-th map with the tile: p% of the strip sits at p% of the tile
                style={"backgroundPosition": f"{100 * i / max(len(shown) - 1, 1):.4f}% 0"},
                title=f"{info.name} channel {c}: click to enlarge it",
            )
            for i, c in enumerate(shown)
        ]
        now = (values or {}).get(info.name, {})  # the strip of an image already selected
        head = now.get("head", _fmap_head(info.name, channels, h, w, shown))
        grid = html.Div(
            tiles,
            id={"type": ids.FMAP_GRID, "layer": info.name},
            className="fmap-grid",
            style=now.get("style", {"--channels": str(len(shown))}),
            **attrs(layer=info.name, scale="channel", live=now.get("live", 0), first=shown.start, count=len(shown)),
        )
        blocks.append(
            html.Div([html.Div(head, id={"type": ids.FMAP_HEAD, "layer": info.name}, className="row-title"), grid])
        )
    return blocks


def _fmap_head(layer: str, channels: int, h: int, w: int, shown: range) -> str:
    part = f" · channels {shown.start}-{shown.stop - 1} shown" if len(shown) < channels else ""
    return f"{layer} · {channels} channels of {h}x{w}{part}"


def _default_focus(state: DashboardState) -> dict[str, Any] | None:
    return {"layer": state.conv_layers[0], "unit": 0} if state.conv_layers else None


def _fmap_values(
    state: DashboardState, selected: Any, scale: str, page: dict[str, Any] | None = None
) -> dict[str, dict[str, Any]]:
    """{layer: {"style", "live", "head"}} of each conv layer's grid for image ``selected``: the strip of its channel
    maps shown (one colour scale per channel, or one for the layer), whether it is the live drawing's, the heading.
    A dataset image's strip is a URL (`fmap_png`), which the page also sets itself on a click; a drawing's, which is
    the page's own, comes inline."""
    out = {}
    for layer, fmap in state.feature_maps(selected).items():  # (C, H, W)
        channels, h, w = fmap.shape
        shown = _channels(state, layer, page)
        head = _fmap_head(layer, channels, h, w, shown) + (
            f" · layer scale {float(fmap.min()):.2f} to {float(fmap.max()):.2f}" if scale == "layer" else ""
        )
        own = is_drawing(selected)
        part = slice(shown.start, shown.stop)
        strip = (
            channel_strip(fmap, scale == "channel", part)
            if own
            else fmap_url(state, layer, selected, scale, shown.start, len(shown))
        )
        out[layer] = {
            "style": {"--sprite": f'url("{strip}")', "--channels": str(len(shown))},
            "live": int(selected == LIVE),
            "head": head,
        }
    return out


def _job_text(state: DashboardState, job: Job | None, doing: str, what: str, button: str) -> html.Span:
    """The status line of a unit-card job: how far it is while it runs, else that it was cancelled (or failed) and
    that ``button`` starts it again; a job that ended is shown, so this page need not poll for it."""
    if job is not None and job.stopped:
        state.scratch.mark_seen(job)
        text = stopped_line(what, job, f"press '{button}' to start it again.")
        return html.Span(text, className="hint" if job.cancelled else "bad")
    return html.Span(status_line(doing, job), className="status")


def _running(job: Job | None) -> bool:
    """Whether ``job`` runs and may still be cancelled (not yet asked to stop)."""
    return job is not None and not job.finished and not job.cancel


# -- network graph --------------------------------------------------------------------------------------------
@callbacks.callback(
    Output(ids.NET_GRAPH, "figure"),
    Output(ids.NET_INFO, "children"),
    Output(ids.NET_GRAPH, "style"),
    Input(ids.NET_EXPAND, "value"),
    Input(ids.NET_EDGES, "value"),
    Input(ids.NET_THRESHOLD, "value"),
    Input(ids.NET_COLOR, "value"),
    views.gated("network"),  # drawn while the Network view is open (views.py)
    State(ids.SELECTED, "data"),
    State(ids.SELECTION, "data"),
    State(ids.ABL_STORE, "data"),
    State(ids.SNAPSHOT, "data"),
    prevent_initial_call=True,
)
def network(
    state: DashboardState,
    expanded: Any,
    per_node: Any,
    threshold: Any,
    colour: Any,
    gate: Any,
    selected: Any,
    selection: Any,
    ablations: Any,
    snapshot: Any,
) -> Any:
    """The weights as a graph, nodes coloured by the image's or the selection's activations: the network at the
    training snapshot the page shows (the timeline's), the trained one by default."""
    views.opened(gate)
    try:
        state = state.at(snapshot)
        expanded = _check_expanded(state, expanded)
        per_node = check_int(per_node, 0, MAX_EDGES, "edges per node") if per_node is not None else 0
        threshold = check_number(threshold, 0.0, 1.0, "minimum |w|") if threshold is not None else 0.0
        colour = check_choice(colour, NODE_COLOURS, "node colouring")
        selected = state.image_key(selected)
        selection = check_selection(state, selection)
        stored = check_ablation_list(state, ablations)
    except LayerscopeError as e:
        return no_update, html.Span(str(e), className="bad"), no_update
    columns = [
        _column(state, name, expanded, _node_values(state, name, colour, selected, selection)) for name in state.layers
    ]
    info = [f"{state.weight_count:,} unit-to-unit weights"]
    missing = [name for name in state.layers[1:] if state.edges(name) is None]
    if missing:
        named = ", ".join(missing[:3]) + (f" and {len(missing) - 3} more" if len(missing) > 3 else "")
        info.append(
            f"no weights shown into {named}: not one Linear/Conv2d away from the layer before (a residual block's "
            "add, a concatenation); the model graph shows what feeds them"
        )
    if colour == "selection" and not selection:
        info.append("brush points in a projection to colour by their mean")
    height = _network_height(columns)
    fig = recolour_nodes(_network_frame(state, tuple(expanded), per_node, threshold), columns, height)
    grid = [(c.name, c.units, c.expanded) for c in columns]
    fig = {**fig, "data": [*fig["data"], ablated_trace(grid, stored).to_plotly_json()]}  # the crosses on top
    # a responsive graph in a box of the figure's height: plotly measures the box when the figure arrives (a
    # graph first laid out in a hidden view would draw it at plotly's default 700 px, then jump)
    return fig, " · ".join(info), {"height": f"{height}px"}


def _network_height(columns: list[GraphColumn]) -> int:
    """An opened conv layer gets room for its channels' kernel thumbnails (about 26 px each)."""
    return max(720, 26 * max([c.shown for c in columns if c.thumbs is not None], default=0))


@lru_cache(maxsize=32)
def _network_frame(state: DashboardState, expanded: tuple[str, ...], per_node: int, threshold: float) -> dict:
    """The network graph's figure JSON with its nodes grey, built once per structure (layers opened, edges shown):
    a new image or brush only recolours its nodes (`recolour_nodes`), where building the figure takes 80-90 ms."""
    columns = [_column(state, name, list(expanded), None) for name in state.layers]
    edges = [state.edges(name) for name in state.layers[1:]]
    fig = network_figure(columns, edges, per_node, threshold, height=_network_height(columns))
    return figure_json(fig)


# The crosses follow the list of ablations without the figure travelling again: the server sends the one trace,
# assets/ablate.js puts it in place of the figure's last.
@callbacks.callback(
    Output(ids.ABL_NODES, "data"),
    Input(ids.ABL_STORE, "data"),
    State(ids.NET_EXPAND, "value"),
    prevent_initial_call=True,
)
def crosses(state: DashboardState, ablations: Any, expanded: Any) -> Any:
    grid = _node_grid(state, _check_expanded(state, expanded))
    return ablated_trace(grid, check_ablation_list(state, ablations)).to_plotly_json()


callbacks.clientside(
    ClientsideFunction("layerscope_ablate", "crosses"),
    Output(ids.NET_GRAPH, "figure", allow_duplicate=True),
    Input(ids.ABL_NODES, "data"),
    State(ids.NET_GRAPH, "figure"),
    prevent_initial_call=True,
)


@callbacks.callback(
    Output(ids.NET_EXPAND, "value"),
    Input(ids.NET_GRAPH, "clickData"),
    State(ids.NET_EXPAND, "value"),
    prevent_initial_call=True,
)
def expand(state: DashboardState, click: Any, expanded: Any) -> Any:
    layer, unit = _custom(first_point(click))
    if not isinstance(layer, str) or layer not in state.conv_layers:
        raise PreventUpdate
    expanded = _check_expanded(state, expanded)
    if unit == -1:
        return [*expanded, layer] if layer not in expanded else expanded
    raise PreventUpdate


# -- which unit the card shows ----------------------------------------------------------------------------------
@callbacks.callback(
    Output(ids.UNIT, "data"),
    Output(ids.UNIT_LAYER, "value"),
    Output(ids.UNIT_INDEX, "value"),
    Output(ids.UNIT_ERROR, "children"),
    Input(ids.NET_GRAPH, "clickData"),
    Input(ids.NET_DAG, "tapNodeData"),
    Input(ids.FMAP_OPEN_UNIT, "n_clicks"),
    Input(ids.UNIT_LAYER, "value"),
    Input(ids.UNIT_INDEX, "value"),
    # the unit an address names: at once, or when the view is laid out after the address came (an initial call)
    Input(ids.UNIT_ASKED, "data"),
    State(ids.FMAP_FOCUS, "data"),
    State(ids.UNIT, "data"),
    State(ids.ABL_MODE, "value"),
)
def unit(
    state: DashboardState,
    click: Any,
    tapped: Any,
    _open: Any,
    layer: Any,
    index: Any,
    asked: Any,
    focus: Any,
    current: Any,
    ablating: Any,
) -> Any:
    """The unit the card shows. A unit number the layer does not have is refused with a sentence and the card
    stays on its unit: unit 40 of a 32-channel layer must not quietly become another one."""
    trigger = ctx.triggered_id
    try:
        if trigger in (ids.UNIT_ASKED, None) and asked is not None:
            layer, index = check_unit(state, asked)
            return {"layer": layer, "unit": index}, layer, index, ""
        shown = check_unit(state, current)[0] if current is not None else None
        if trigger == ids.NET_GRAPH:
            if ablating:  # "Click units to switch them off" is on: the click is the Ablation card's
                raise PreventUpdate
            layer, index = _custom(first_point(click))
            if layer is None or isinstance(index, int) and index < 0:  # -1: a collapsed layer's one node
                raise PreventUpdate
        elif trigger == ids.NET_DAG:  # a captured node of the model graph (or a folded block's output)
            layer = tapped.get("layer") if isinstance(tapped, dict) else None
            if layer is None:
                raise PreventUpdate
            index = check_unit(state, current)[1] if current is not None and layer == shown else 0
        elif trigger == ids.FMAP_OPEN_UNIT:
            chosen = _check_focus(state, focus)
            if chosen is None:
                raise PreventUpdate
            layer, index = chosen["layer"], chosen["unit"]
        if layer is None:
            layer = shown or default_unit(state)["layer"]
        layer = check_choice(layer, state.activation_layers, "layer")
        units = unit_count(state, layer)
        # a new layer starts at unit 0, unless the unit number came with it (an address names both)
        both = {f"{ids.UNIT_LAYER}.value", f"{ids.UNIT_INDEX}.value"} <= {t["prop_id"] for t in ctx.triggered}
        if trigger == ids.UNIT_LAYER and layer != shown and not both:
            index = 0
        if index is None:  # an empty box, or one the browser found invalid (a fraction, a negative number)
            raise LayerscopeError(f"write a unit number of {layer} from 0 to {units - 1}.")
        index = check_index(index, units, f"{layer} unit")
    except LayerscopeError as e:
        return no_update, no_update, no_update, str(e)
    return {"layer": layer, "unit": index}, layer, index, ""


# -- the unit card ----------------------------------------------------------------------------------------------
@callbacks.callback(
    Output(ids.UNIT_TITLE, "children"),
    Output(ids.UNIT_WEIGHTS, "figure"),
    Output(ids.UNIT_CLASSES, "figure"),
    views.gated("unit"),  # drawn while the Network view is open (views.py)
    State(ids.UNIT, "data"),
    State(ids.SNAPSHOT, "data"),
    prevent_initial_call=True,
)
def unit_static(state: DashboardState, gate: Any, unit: Any, snapshot: Any) -> Any:
    views.opened(gate)
    try:
        state = state.at(snapshot)  # the network at the training snapshot the page shows
        layer, u = check_unit(state, unit)
    except LayerscopeError as e:
        message = empty_figure()
        message.update_layout(height=260)
        return html.Span(str(e), className="bad"), message, message
    info = state.run.layer(layer)
    noun = "channel" if info.kind == "conv" else "neuron"
    if info.kind == "conv":
        measure = "spatial max of the channel"
    elif layer == state.layers[-1] and info.shape[0] == len(state.class_names):
        measure = f"logit of class {state.class_names[u]}"
    else:
        measure = "the neuron's output"
    title = html.Span([html.B(f"{layer} · {noun} {u}"), f" of {info.shape[0]} · activation: {measure}"])
    try:
        weights = state.incoming(layer, u)
        shape = "x".join(str(s) for s in np.asarray(weights.array).shape)
        label = {"kernel": "kernel", "kernels": "kernel per input channel", "maps": "weight maps per input channel"}
        if weights.kind == "none":  # an add, a concatenation, an op layerscope cannot read: say why, not an axis
            why = state.connections[layer].note if layer in state.connections else ""
            wfig = empty_figure("<br>".join(textwrap.wrap(f"No one layer of weights feeds it: {why}", 44)))
            wfig.update_layout(height=260)
        else:
            wfig = weights_figure(
                weights.kind, weights.array, weights.bias, f"{label.get(weights.kind, 'weights')} ({shape})"
            )
    except Exception as e:  # a layer without weights (pooling) or one layerscope cannot read
        wfig = empty_figure(str(e))
        wfig.update_layout(height=260)
    means = state.unit_class_means(layer)[:, u]
    cfig = class_bars(means, state.class_names, "mean activation over each class's images")
    return title, wfig, cfig


@callbacks.callback(
    Output(ids.UNIT_TOPK, "children"),
    Output(ids.UNIT_FEATUREVIS, "children"),
    Output(ids.UNIT_FEATUREVIS_START, "disabled"),
    Output(ids.UNIT_FEATUREVIS_CANCEL, "style"),
    Output(ids.UNIT_TOPK_START, "style"),
    Output(ids.UNIT_TOPK_CANCEL, "style"),
    views.gated("unit"),
    Input(ids.UNIT_INTERVAL, "n_intervals"),
    Input(ids.UNIT_FEATUREVIS_START, "n_clicks"),
    Input(ids.UNIT_TOPK_START, "n_clicks"),
    State(ids.UNIT, "data"),
    State(ids.SELECTED, "data"),
    State(ids.SNAPSHOT, "data"),
    prevent_initial_call=True,
)
def unit_results(
    state: DashboardState, gate: Any, _tick: Any, compute: Any, again: Any, unit: Any, selected: Any, snapshot: Any
) -> Any:
    views.opened(gate)
    hidden = display(False)
    try:
        state = state.at(snapshot)  # the top images of the network at the training snapshot the page shows
        layer, u = check_unit(state, unit)
    except LayerscopeError as e:
        return html.Span(str(e), className="bad"), "", True, hidden, hidden, hidden
    trigger = ctx.triggered_id
    if trigger == ids.UNIT_FEATUREVIS_START and compute and state.featurevis(layer, u) is None:
        state.start_featurevis(layer, u)  # the user asked: it runs in the background and is kept in the Run
    topk_job = state.unit_job("*", "topk")
    if trigger == ids.UNIT_TOPK_START and again and topk_job is not None and topk_job.stopped:
        state.start_topk()  # asked again after a cancel or a failure (a poll never starts it again)
    featurevis, can_start = _featurevis_view(state, layer, u)
    topk = _topk_view(state, layer, u, image_or_none(state, selected))
    topk_job = state.unit_job("*", "topk")
    stopped = topk_job is not None and topk_job.stopped
    return (
        topk,
        featurevis,
        not can_start,
        display(_running(state.unit_job(layer, f"unit {u}"))),
        display(stopped),
        display(_running(topk_job)),
    )


# A cancel stops the job for every page (the Run's results are shared: DashboardState.cancel_topk); the status says
# it is stopping until the next poll finds it stopped, and the page then offers to start it again.
@callbacks.callback(
    Output(ids.UNIT_TOPK_CANCEL, "style", allow_duplicate=True),
    Output(ids.UNIT_TOPK, "children", allow_duplicate=True),
    Input(ids.UNIT_TOPK_CANCEL, "n_clicks"),
    State(ids.UNIT, "data"),
    State(ids.SELECTED, "data"),
    State(ids.SNAPSHOT, "data"),
    prevent_initial_call=True,
)
def cancel_topk(state: DashboardState, n: Any, unit: Any, selected: Any, snapshot: Any) -> Any:
    state = state.at(snapshot)  # the top images being computed for the network the page shows
    layer, u = check_unit(state, unit)
    if not n or not state.cancel_topk():
        raise PreventUpdate
    return display(False), _topk_view(state, layer, u, image_or_none(state, selected))


@callbacks.callback(
    Output(ids.UNIT_FEATUREVIS_CANCEL, "style", allow_duplicate=True),
    Output(ids.UNIT_FEATUREVIS, "children", allow_duplicate=True),
    Output(ids.UNIT_FEATUREVIS_START, "disabled", allow_duplicate=True),
    Input(ids.UNIT_FEATUREVIS_CANCEL, "n_clicks"),
    State(ids.UNIT, "data"),
    State(ids.SNAPSHOT, "data"),
    prevent_initial_call=True,
)
def cancel_featurevis(state: DashboardState, n: Any, unit: Any, snapshot: Any) -> Any:
    state = state.at(snapshot)
    layer, u = check_unit(state, unit)
    if not n or not state.cancel_featurevis(layer, u):
        raise PreventUpdate
    featurevis, can_start = _featurevis_view(state, layer, u)
    return display(False), featurevis, not can_start


@callbacks.callback(
    Output(ids.UNIT_GUIDED, "children"),
    views.gated("guided"),
    State(ids.UNIT, "data"),
    State(ids.SELECTED, "data"),
    prevent_initial_call=True,
)
def guided(state: DashboardState, gate: Any, unit: Any, selected: Any) -> Any:
    views.opened(gate)
    try:
        layer, u = check_unit(state, unit)
        selected = state.image_key(selected)
    except LayerscopeError as e:
        return html.Span(str(e), className="bad")
    cells = [_figure_cell(state.thumbnail(selected, 140), "selected image")]
    gray = state.image_array(selected)
    gray = gray if gray.ndim == 2 else gray.mean(2)
    try:
        for method, label in (("guided", "guided backprop"), ("deconv", "deconvolution")):
            drive = state.guided(selected, layer, u, method).sum(0)  # (C, H, W) -> (H, W)
            cells.append(_figure_cell(overlay_png(gray, drive, 5), label))
    except Exception as e:
        return html.Span(f"cannot compute guided backprop: {e}", className="bad")
    hint = html.Div(
        "Over the dimmed image, red: pixels that raise the unit (a conv channel at its strongest position), "
        "blue: pixels that lower it. Guided backprop passes only positive gradients through ReLUs that were "
        "active; deconvolution passes only positive gradients.",
        className="hint",
    )
    return [html.Div(cells, className="figure-row"), hint]


@callbacks.callback(
    Output(ids.UNIT_INTERVAL, "disabled"),
    Input(ids.UNIT_INTERVAL, "n_intervals"),
    Input(ids.UNIT_TOPK, "children"),
    Input(ids.UNIT_FEATUREVIS, "children"),
    State(ids.SNAPSHOT, "data"),
)
def poll(state: DashboardState, _n: Any, _a: Any, _b: Any, snapshot: Any) -> bool:
    scratch = state.scratch  # this page's: another page's redraw does not stop this one polling
    jobs = list(state.unit_jobs.values())
    try:
        jobs += list(state.at(snapshot).unit_jobs.values()) if snapshot is not None else []
    except LayerscopeError:
        pass
    return all(scratch.seen(job) for job in jobs)


# -- feature maps -----------------------------------------------------------------------------------------------


# -- feature maps, for a model with conv layers ------------------------------------------------------------------------
_GRID = {"type": ids.FMAP_GRID, "layer": ALL}


def _has_conv(state: DashboardState) -> bool:
    return bool(state.conv_layers)


FMAP_ROUTE = "_layerscope/fmap"


def _fmap_base(state: DashboardState) -> str:
    """The URL of this server's feature-map strips, to which a strip's layer, scale and image are appended: by
    `fmap_url` here, and by the page for a click (assets/layerscope.js ``showMaps``), the same way."""
    return f"{state.url_prefix}{FMAP_ROUTE}?v={state.token}"


def _url_part(value: Any) -> str:
    return quote(str(value), safe="!~*'()")  # as the browser's encodeURIComponent writes it


def _url_int(value: str) -> int | str:
    """A route argument as a whole number where it reads as one (checked by the caller)."""
    return int(value) if value.isdigit() and len(value) <= 9 else value


def fmap_url(state: DashboardState, layer: str, key: int | str, scale: str, first: int = 0, count: int = 0) -> str:
    """The URL of the strip of ``layer``'s maps for dataset image ``key`` (`fmap_png`): ``count`` channels from
    ``first`` (0: all)."""
    page = f"&first={first}&count={count}" if count else ""
    return f"{_fmap_base(state)}&layer={_url_part(layer)}&scale={_url_part(scale)}&image={_url_part(key)}{page}"


@callbacks.route(FMAP_ROUTE, when=_has_conv)
def fmap_png(state: DashboardState, args: Mapping[str, str]) -> Response:
    """GET ``_layerscope/fmap?layer=conv1&scale=channel&image=123``: the PNG strip of a conv layer's maps for a
    dataset image or a class mean (`channel_strip_png`). The URL names the server (``v``), so a browser may keep it;
    a drawing is the page's own and comes with the page's callbacks instead."""
    layer = check_choice(args.get("layer"), state.conv_layers, "layer")
    scale = check_choice(args.get("scale", "channel"), FMAP_SCALES, "colour scale")
    key = url_image(state, args.get("image"))
    if is_drawing(key):
        raise LayerscopeError("a drawing's feature maps come with the page's callbacks, not by URL.")
    fmap = state.feature_maps(key)[layer]
    first = check_int(_url_int(args.get("first", "0")), 0, len(fmap) - 1, "first channel")
    count = check_int(_url_int(args.get("count", "0")), 0, len(fmap), "channel count") or len(fmap)
    png = channel_strip_png(fmap, scale == "channel", slice(first, first + count))
    return Response(png, mimetype="image/png", headers={"Cache-Control": "private, max-age=86400"})


@callbacks.callback(
    Output(ids.FMAP_AREA, "children"),
    Output(ids.FMAP_SHOWN, "data"),
    Output(ids.FMAP_PAGE_TEXT, "children"),
    Output(ids.FMAP_LAYER, "value"),
    Input(ids.FMAP_LAYER, "value"),
    Input(ids.FMAP_PREV, "n_clicks"),
    Input(ids.FMAP_NEXT, "n_clicks"),
    Input(ids.NET_DAG, "tapNodeData"),
    State(ids.FMAP_SHOWN, "data"),
    State(ids.SELECTED, "data"),
    State(ids.FMAP_SCALE, "value"),
    State(ids.FMAP_FOCUS, "data"),
    prevent_initial_call=True,
    when=fmap_paged,
)
def fmap_page(
    state: DashboardState,
    layer: Any,
    _prev: Any,
    _next: Any,
    tapped: Any,
    shown: Any,
    selected: Any,
    scale: Any,
    focus: Any,
) -> Any:
    """Another layer (chosen, or a conv node clicked in the model graph) or page of channels: the grid is laid out
    again, with the selected image's strip already in it."""
    trigger = ctx.triggered_id
    try:
        page = _fmap_page(state, shown)
        assert page is not None  # the callback is there only when the maps are paged
        if trigger == ids.NET_DAG:
            layer = tapped.get("layer") if isinstance(tapped, dict) else None
            if layer not in state.conv_layers:
                raise PreventUpdate
        if trigger in (ids.FMAP_LAYER, ids.NET_DAG):
            page = {"layer": check_choice(layer, state.conv_layers, "conv layer"), "first": 0}
        else:
            step = FMAP_PAGE if trigger == ids.FMAP_NEXT else -FMAP_PAGE
            channels = state.run.layer(page["layer"]).shape[0]
            page = {**page, "first": min(max(page["first"] + step, 0), (channels - 1) // FMAP_PAGE * FMAP_PAGE)}
        selected = state.image_key(selected)
        scale = check_choice(scale, FMAP_SCALES, "colour scale")
        focus = _check_focus(state, focus)
    except LayerscopeError:
        raise PreventUpdate from None
    values = _fmap_values(state, selected, scale, page)
    return _fmap_frame(state, page, focus, values), page, _page_text(state, page), page["layer"]


@callbacks.callback(
    Output(ids.FMAP_NOTE, "children"),
    Output(_GRID, "style"),
    Output(_GRID, "data-live"),
    Output(_GRID, "data-scale"),
    Output({"type": ids.FMAP_HEAD, "layer": ALL}, "children"),
    views.gated("fmaps"),  # a new selection, or a stroke of the live drawing ended
    Input(ids.FMAP_SCALE, "value"),
    State(ids.SELECTED, "data"),
    State(ids.FMAP_SHOWN, "data"),
    prevent_initial_call=True,
    when=_has_conv,
)
def feature_maps(state: DashboardState, gate: Any, scale: Any, selected: Any, page: Any) -> Any:
    views.opened(gate)
    layers = [out["id"]["layer"] for out in ctx.outputs_list[1]]
    try:
        selected = state.image_key(selected)
        scale = check_choice(scale, FMAP_SCALES, "colour scale")
        page = _fmap_page(state, page)
    except LayerscopeError as e:
        keep = [no_update] * len(layers)
        return html.Span(str(e), className="bad"), keep, keep, keep, keep
    values = _fmap_values(state, selected, scale, page)
    return (
        "",
        [values[layer]["style"] for layer in layers],
        [values[layer]["live"] for layer in layers],
        [scale] * len(layers),
        [values[layer]["head"] for layer in layers],
    )


# the enlarged channel's tile outlined, in the browser
callbacks.clientside(
    """function(focus) {
        return window.dash_clientside.callback_context.outputs_list.map(function (out) {
            const chosen = focus && out.id.layer === focus.layer && out.id.unit === focus.unit;
            return chosen ? "fmap chosen" : "fmap";
        });
    }""",
    Output({"type": ids.FMAP_TILE, "layer": ALL, "unit": ALL}, "className"),
    Input(ids.FMAP_FOCUS, "data"),
    prevent_initial_call=True,
    when=_has_conv,
)


@callbacks.callback(
    Output(ids.FMAP_FOCUS, "data"),
    Input({"type": ids.FMAP_TILE, "layer": ALL, "unit": ALL}, "n_clicks"),
    prevent_initial_call=True,
)
def focus(state: DashboardState, _clicks: Any) -> Any:
    if not ctx.triggered or not ctx.triggered[0]["value"]:
        raise PreventUpdate
    trigger = ctx.triggered_id
    return _check_focus(state, {"layer": trigger.get("layer"), "unit": trigger.get("unit")})


@callbacks.callback(
    Output(ids.FMAP_ZOOM, "figure"),
    Output(ids.FMAP_OPEN_UNIT, "disabled"),
    Input(ids.FMAP_FOCUS, "data"),
    views.gated("fmaps"),
    Input(ids.FMAP_SCALE, "value"),
    State(ids.SELECTED, "data"),
    prevent_initial_call=True,
)
def zoom(state: DashboardState, focus: Any, gate: Any, scale: Any, selected: Any) -> Any:
    views.opened(gate)
    try:
        focus = _check_focus(state, focus)
        selected = state.image_key(selected)
        scale = check_choice(scale, FMAP_SCALES, "colour scale")
    except LayerscopeError as e:
        fig = empty_figure(str(e))
        fig.update_layout(height=300)
        return fig, True
    if focus is None:
        fig = empty_figure("Click a channel to enlarge it.")
        fig.update_layout(height=300)
        return fig, True
    fmap = state.feature_maps(selected)[focus["layer"]]
    m = fmap[focus["unit"]]
    lo, hi = (float(m.min()), float(m.max())) if scale == "channel" else (float(fmap.min()), float(fmap.max()))
    return feature_map_figure(m, lo, hi, f"{focus['layer']} channel {focus['unit']}"), False


def _figure_cell(src: str, caption: str) -> html.Div:
    return html.Div([html.Img(src=src, className="fig-img"), html.Div(caption, className="hint")], className="fig-cell")


def _topk_view(state: DashboardState, layer: str, unit: int, selected: Any) -> Any:
    topk = state.topk(layer)  # started on the first ask, for every unit of every layer
    job = state.unit_job("*", "topk")
    if topk is None:
        doing = f"computing the top images of every unit over {state.n:,} images"
        return _job_text(state, job, doing, "the search for the top images", TOPK_START)
    if job is not None and job.finished:
        state.scratch.mark_seen(job)
    info = state.run.layer(layer)
    rf = state.receptive_field(layer) if info.kind == "conv" else None
    h, w = state.images.shape[2:]
    thumbs = []
    for rank, (index, value) in enumerate(zip(topk.indices[unit], topk.values[unit], strict=True)):
        index = int(index)
        box = None
        if rf is not None and topk.positions is not None and not rf.whole_image:
            y, x = (int(v) for v in topk.positions[unit, rank])
            box = rf.box(y, x, (h, w))
        image = state.image_array(index)
        title = f"{state.name(index)} · true {state.class_names[state.labels[index]]} · activation {value:.3f}"
        classes = "thumb topk-thumb" + (" selected" if str(index) == str(selected) else "")
        thumbs.append(
            html.Div(
                [
                    html.Img(
                        src=png_uri(image, 3, box),
                        id={"type": ids.TOPK_THUMB, "key": index, "rank": rank},
                        className=classes,
                        title=title,
                    ),
                    html.Div(f"{value:.2f}", className="hint"),
                ],
                className="topk-cell",
            )
        )
    note = f"the {len(thumbs)} of {state.n:,} images that activate it most"
    if float(topk.values[unit, 0]) == 0 and float(topk.values[unit, -1]) == 0:
        note = f"a dead unit: no image of the {state.n:,} activates it (shown: the first ones, all at 0)"
    elif float(topk.values[unit, 0]) < 0:  # a layer that is not after a ReLU (a residual stream, tokens)
        note = f"the {len(thumbs)} of {state.n:,} images that activate it most, all below 0"
    if rf is not None and rf.token_patch:
        note += f"; outlined: the {rf.size[0]}x{rf.size[1]} patch of the maximal token (attention reads them all)"
    elif rf is not None and not rf.whole_image:
        note += f"; outlined: the {rf.size[0]}x{rf.size[1]} receptive field of the maximal position"
    return [html.Div(thumbs, className="topk-row"), html.Div(note, className="hint")]


def _featurevis_view(state: DashboardState, layer: str, unit: int) -> tuple[Any, bool]:
    """The unit's feature visualisation if the Run has it, else how far its computation is (or that it can be
    computed); and whether the button may start it (not while it runs, not once it is there)."""
    fv = state.featurevis(layer, unit)
    job = state.unit_job(layer, f"unit {unit}")
    if fv is None:
        if job is None:
            note = (
                "Not computed yet: 'Compute feature visualisation' optimises an input for this unit (256 steps, "
                "seconds) and keeps it in the Run."
            )
            return html.Span(note, className="hint"), True
        if job.finished and job.error is None:  # finished, and the file not there (the Run was replaced)
            state.scratch.mark_seen(job)
            return html.Span("The feature visualisation was computed but is not in the Run.", className="bad"), True
        doing = "computing the feature visualisation (256 optimisation steps)"
        return _job_text(state, job, doing, "the feature visualisation", FEATUREVIS_START), job.finished
    if job is not None and job.finished:
        state.scratch.mark_seen(job)
    trust = fv.trust
    method = {"data": "data prior", "spectrum": "data spectrum", "fourier": "Fourier"}.get(
        fv.parameterisation, "pixels"
    )
    cells = [_figure_cell(png_uri(_gray(fv.naive), 5), f"naive gradient ascent · {fv.naive_activation:.2f}")]
    for i, image in enumerate(fv.images):
        label = "regularised" + (f" #{i + 1}" if len(fv.images) > 1 else "") + f", {method}"
        cells.append(_figure_cell(png_uri(_gray(image), 5), f"{label} · {fv.activation[i]:.2f}"))
    if fv.accent is not None:
        index = int(trust["accent_from"])
        name = state.run.names[index]
        start = state.run.images[index].astype(np.float32) / 255.0
        cells.append(
            _figure_cell(png_uri(_gray(start), 5), f"top image {name} · {trust['accent_start_activation']:.2f}")
        )
        cells.append(_figure_cell(png_uri(_gray(fv.accent), 5), f"accentuated · {trust['accent_activation']:.2f}"))
    best = trust.get("dataset_max")
    best_text = f" · best dataset image {float(best):.2f}" if best is not None else ""
    verdict = []
    if "ink_ratio" in trust:
        far = bool(trust["far"])
        verdict.append(
            html.Span(
                "far from the data" if far else "close to the data",
                className="badge " + ("bad" if far else "ok"),
                title="Ink share (pixels above 0.5) and high-frequency share of the regularised image as multiples of "
                "the dataset's; 'far' when either is above 1.5x or below 1/1.5x.",
            )
        )
        text = f" ink {float(trust['ink_ratio']):.2f}x, high frequencies {float(trust['high_frequency_ratio']):.2f}x "
        text += "the dataset's"
        if trust.get("start_similarity") is not None:
            text += f"; random starts agree {float(trust['start_similarity']):.2f}"
        verdict.append(html.Span(text, className="hint"))
    recipe = (
        "drawn from the dataset's own pixel statistics (its principal components, a brightness penalty), with "
        "random jitter, scale and rotation"
        if fv.parameterisation in ("data", "spectrum")
        else "random jitter, scale and rotation while optimising (transformation robustness) and a total-variation "
        "penalty"
    )
    accent = (
        " Accentuated: the unit's top image changed as little as it takes to make the unit fire more."
        if fv.accent is not None
        else ""
    )
    hint = html.Div(
        f"Naive: gradient ascent on plain pixels, nothing else. Regularised: {recipe}.{accent} Numbers: the unit's "
        f"activation{best_text}.",
        className="hint",
    )
    return [html.Div(cells, className="figure-row"), html.Div(verdict, className="trust"), hint], False


def _gray(image: np.ndarray) -> np.ndarray:
    """(C, H, W) float in [0, 1] -> (H, W) or (H, W, 3) uint8."""
    image = np.clip(np.asarray(image, dtype=np.float32), 0, 1)
    out = (image * 255).round().astype(np.uint8)
    return out[0] if out.shape[0] == 1 else out.transpose(1, 2, 0)
