"""Pure builders for the views inside the network: the weights graph, feature-map tiles, unit-card figures.

Arrays in, plotly figures or data-URI PNGs out; no state and no callbacks.
"""

from __future__ import annotations

import base64
import io
import math
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import numpy as np
import plotly.graph_objects as go
from PIL import Image, ImageDraw
from plotly.colors import get_colorscale

from layerscope.ablation import Ablation, unit_scales
from layerscope.dashboard.figures import CLASS_COLORS, base_layout, colour_lut, figure_json

__all__ = [
    "GraphColumn",
    "ablated_trace",
    "channel_strip",
    "channel_strip_png",
    "class_bars",
    "colorize",
    "feature_map_figure",
    "network_figure",
    "overlay_png",
    "png_bytes",
    "png_uri",
    "signed_png",
    "tile",
    "weights_figure",
]

POSITIVE, NEGATIVE = "#d6604d", "#4393c3"  # edge colours: excitatory red, inhibitory blue (RdBu ends)
SWITCHED_OFF, SCALED = "#d62728", "#f08c00"  # crosses over units an ablation zeroes, or scales


def colorize(values: np.ndarray, lo: float, hi: float, scale: str = "Viridis") -> np.ndarray:
    """(H, W) floats -> (H, W, 3) uint8 colours, ``lo``..``hi`` spread over the colour scale; NaN stays white."""
    lut = colour_lut(scale)
    span = hi - lo if hi > lo else 1.0
    scaled = np.clip((np.nan_to_num(values, nan=lo) - lo) / span, 0, 1)
    rgb = lut[(scaled * 255).round().astype(np.int64)]
    rgb[np.isnan(values)] = 255
    return rgb


def channel_strip(fmap: np.ndarray, per_channel: bool = True, channels: slice | None = None) -> str:
    """A data-URI PNG of a conv layer's maps side by side (`channel_strip_png`)."""
    return _uri(channel_strip_png(fmap, per_channel, channels))


def channel_strip_png(fmap: np.ndarray, per_channel: bool = True, channels: slice | None = None) -> bytes:
    """A PNG of a conv layer's maps side by side: (C, H, W) floats -> (H, C*W, 3) colours, each map over its own
    range (``per_channel``) or all over the layer's. One PNG per layer: 80 small PNGs cost ~110 ms to encode, too
    slow for the Draw panel to follow the pen; the page shows each map as a slice of the strip (style.css).
    ``channels``: only these maps (a page of a wide layer), on the whole layer's range when it is one scale."""
    axes = (1, 2) if per_channel else (0, 1, 2)
    lo, hi = fmap.min(axis=axes, keepdims=True), fmap.max(axis=axes, keepdims=True)
    if channels is not None:
        fmap = fmap[channels]
        lo, hi = (lo[channels], hi[channels]) if per_channel else (lo, hi)
    scaled = (fmap - lo) / np.where(hi > lo, hi - lo, 1.0)
    c, h, w = fmap.shape
    rgb = colorize(scaled, 0.0, 1.0)  # (C, H, W, 3)
    return png_bytes(np.ascontiguousarray(rgb.transpose(1, 0, 2, 3).reshape(h, c * w, 3)))


def png_uri(image: np.ndarray, scale: int = 1, box: tuple[int, int, int, int] | None = None) -> str:
    """A data-URI PNG of a (H, W) or (H, W, 3) uint8 image (`png_bytes`)."""
    return _uri(png_bytes(image, scale, box))


def _uri(png: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(png).decode("ascii")


def png_bytes(image: np.ndarray, scale: int = 1, box: tuple[int, int, int, int] | None = None) -> bytes:
    """A PNG of a (H, W) or (H, W, 3) uint8 image, enlarged ``scale`` times with sharp pixels.

    ``box`` (top, left, bottom, right) in image pixels is outlined, e.g. a receptive field.
    """
    pil = Image.fromarray(np.ascontiguousarray(image))
    if scale != 1:
        pil = pil.resize((pil.width * scale, pil.height * scale), Image.Resampling.NEAREST)
    if box is not None:
        pil = pil.convert("RGB")
        top, left, bottom, right = box
        ImageDraw.Draw(pil).rectangle(
            [left * scale, top * scale, right * scale - 1, bottom * scale - 1], outline=(242, 201, 76), width=2
        )
    buffer = io.BytesIO()
    pil.save(buffer, format="PNG")
    return buffer.getvalue()


def signed_png(values: np.ndarray, scale: int = 1) -> str:
    """A (H, W) signed map as a PNG: red positive, blue negative, white zero, symmetric around 0."""
    peak = float(np.nanmax(np.abs(values))) if np.isfinite(values).any() else 1.0
    return png_uri(colorize(values, -peak or -1.0, peak or 1.0, "RdBu_r"), scale)


def overlay_png(image: np.ndarray, values: np.ndarray, scale: int = 1) -> str:
    """A signed (H, W) map over a dimmed grayscale (H, W) uint8 image: red positive, blue negative, opacity |value|."""
    peak = float(np.abs(values).max()) or 1.0
    colors = colorize(values, -peak, peak, "RdBu_r").astype(np.float32)
    alpha = np.clip(np.abs(values) / peak * 1.6, 0, 1)[..., None]  # weak values fade into the image
    base = np.repeat((70 + 0.35 * np.asarray(image, dtype=np.float32))[..., None], 3, axis=2)
    return png_uri((alpha * colors + (1 - alpha) * base).round().astype(np.uint8), scale)


def tile(maps: np.ndarray, columns: int | None = None, gap: int = 1) -> np.ndarray:
    """(N, H, W) -> one (rows*(H+gap)-gap, columns*(W+gap)-gap) array, NaN between the tiles."""
    n, h, w = maps.shape
    columns = columns or int(np.ceil(np.sqrt(n)))
    rows = int(np.ceil(n / columns))
    out = np.full((rows * (h + gap) - gap, columns * (w + gap) - gap), np.nan, np.float32)
    for i in range(n):
        r, c = divmod(i, columns)
        out[r * (h + gap) : r * (h + gap) + h, c * (w + gap) : c * (w + gap) + w] = maps[i]
    return out


# -- the network graph ---------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class GraphColumn:
    """One layer of the graph: a single node when ``expanded`` is False, else one node per unit.

    ``values``: per-unit activations used to colour the nodes (None: grey). ``thumbs``: per-unit data-URI images
    drawn beside the nodes (conv kernels) when expanded.
    """

    name: str
    kind: str  # "image", "conv" or "dense"
    units: int
    expanded: bool
    label: str
    values: np.ndarray | None = None
    thumbs: Sequence[str] | None = None
    unit_names: Sequence[str] | None = None  # e.g. class names for the output layer

    @property
    def shown(self) -> int:
        return self.units if self.expanded else 1


def _ys(n: int) -> np.ndarray:
    return 1.0 - (np.arange(n) + 0.5) / n if n > 1 else np.array([0.5])


COLOUR_SCALE = "node colour scale"  # the name of `network_figure`'s colour-bar trace
VIRIDIS = [[float(at), colour] for at, colour in get_colorscale("Viridis")]  # as plotly's checks spell it out


def node_style(col: GraphColumn, height: int) -> dict[str, Any]:
    """How `network_figure` draws a layer's nodes: mode, text, marker and hover text, coloured by ``col.values``
    where the layer is drawn unit by unit (plain JSON values: `recolour_nodes` puts them into a figure)."""
    units = np.arange(col.units) if col.expanded else np.array([-1])
    names = [f"{col.name} unit {u}" + (f" ({col.unit_names[u]})" if col.unit_names else "") for u in units]
    color: object = "#9fb3c8"
    if col.values is not None and col.expanded:
        values = np.asarray(col.values, dtype=np.float64)
        color = values.tolist()
        text = [f"{name}: {v:.3f}" for name, v in zip(names, values, strict=True)]
    elif col.values is not None:
        text = [f"{col.label}<br>mean activation {float(np.mean(col.values)):.3f}<br>click to expand"]
    else:
        text = names if col.expanded else [col.label]
    collapsed_size = 34 if col.kind != "dense" else 28
    size = max(5, min(14, int(height / max(col.shown, 1) * 0.55))) if col.expanded else collapsed_size
    marker: dict[str, object] = dict(
        size=size,
        color=color,
        symbol="square" if col.kind != "dense" else "circle",
        line=dict(color="#334e68", width=1),
    )
    if isinstance(color, list):
        lo, hi = min(color), max(color)
        marker.update(colorscale=VIRIDIS, cmin=lo, cmax=hi if hi > lo else lo + 1)
    labelled = bool(col.unit_names) and col.expanded
    return dict(
        mode="markers+text" if labelled else "markers",
        text=list(col.unit_names) if labelled and col.unit_names else None,
        marker=marker,
        hovertext=text,
    )


def _coloured(columns: Sequence[GraphColumn]) -> bool:
    return any(c.values is not None and c.expanded for c in columns)


def recolour_nodes(fig: dict[str, Any], columns: Sequence[GraphColumn], height: int) -> dict[str, Any]:
    """`network_figure`'s JSON ``fig`` with its nodes coloured by ``columns``' values: a new image or brush changes
    nothing else, so the figure is built once per structure and only its nodes are redone. ``fig`` is not changed."""
    by_name = {c.name: c for c in columns}
    data = []
    for trace in fig["data"]:
        col = by_name.get(trace.get("name"))
        if col is not None and trace.get("customdata") is not None:
            style = {key: value for key, value in node_style(col, height).items() if value is not None}
            marker = {**trace["marker"], **style.pop("marker")}
            for key in ("colorscale", "cmin", "cmax"):
                if key not in marker or not isinstance(marker["color"], list):
                    marker.pop(key, None)
            trace = {**trace, **style, "marker": marker}
        elif trace.get("name") == COLOUR_SCALE:
            trace = {**trace, "visible": _coloured(columns)}
        data.append(trace)
    return {**fig, "data": data}


def network_figure(
    columns: Sequence[GraphColumn],
    edges: Sequence[np.ndarray | None],
    per_node: int = 3,
    threshold: float = 0.0,
    height: int = 720,
) -> go.Figure:
    """The model left to right: nodes per layer, edges between consecutive layers (width |w|, colour the sign).

    ``edges[i]`` is the (units of column i+1, units of column i) weight matrix between them, or None when the
    connection has no weights layerscope can show. Nodes carry ``[layer, unit]`` as customdata (unit -1: a
    collapsed layer).
    """
    # the model side, where the edges come from (DashboardState.edges): imported by the time the graph is drawn
    from layerscope.network import collapse_units, strongest_edges

    fig = go.Figure()
    xs = np.arange(len(columns), dtype=float)
    segments: dict[tuple[bool, int], tuple[list[float | None], list[float | None]]] = {}
    plain: tuple[list[float | None], list[float | None]] = ([], [])  # channel-to-channel links without weights
    for i, matrix in enumerate(edges):
        if matrix is None or i + 1 >= len(columns):
            continue
        src, dst = columns[i], columns[i + 1]
        y_src, y_dst = _ys(src.shown), _ys(dst.shown)
        square = matrix.shape[0] == matrix.shape[1]
        if square and np.array_equal(matrix, np.eye(len(matrix), dtype=matrix.dtype)):  # pooling: channel c -> c
            for u in range(len(matrix)) if src.expanded and dst.expanded else [0]:
                ys_src = float(y_src[u if src.expanded else 0])
                ys_dst = float(y_dst[u if dst.expanded else 0])
                plain[0].extend([xs[i] + 0.06, xs[i + 1] - 0.06, None])
                plain[1].extend([ys_src, ys_dst, None])
            continue
        weights = collapse_units(matrix, src=not src.expanded, dst=not dst.expanded)
        kept = strongest_edges(weights, per_node, threshold)
        if not len(kept):
            continue
        peak = float(np.abs(weights).max()) or 1.0
        for d, s in kept:
            w = weights[d, s]
            width = min(int(4 * abs(w) / peak), 3)  # four width classes, one trace each per sign
            xs_, ys_ = segments.setdefault((bool(w > 0), width), ([], []))
            xs_ += [xs[i] + 0.06, xs[i + 1] - 0.06, None]
            ys_ += [float(y_src[s]), float(y_dst[d]), None]
    if plain[0]:
        fig.add_trace(
            go.Scatter(
                x=plain[0],
                y=plain[1],
                mode="lines",
                line=dict(color="#9aa5b1", width=1, dash="dot"),
                hoverinfo="skip",
                showlegend=False,
                name="no weights",
            )
        )
    for (positive, width), (ex, ey) in sorted(segments.items()):
        fig.add_trace(
            go.Scatter(
                x=ex,
                y=ey,
                mode="lines",
                line=dict(color=POSITIVE if positive else NEGATIVE, width=0.6 + 1.1 * width),
                opacity=0.35 + 0.15 * width,
                hoverinfo="skip",
                showlegend=False,
                name="weights",
            )
        )
    images = []
    for i, col in enumerate(columns):
        ys = _ys(col.shown)
        units = np.arange(col.units) if col.expanded else np.array([-1])
        fig.add_trace(
            go.Scatter(
                x=np.full(len(units), xs[i]),
                y=ys,
                textposition="middle right",
                customdata=[[col.name, int(u)] for u in units],
                hovertemplate="%{hovertext}<extra></extra>",
                name=col.name,
                showlegend=False,
                **node_style(col, height),
            )
        )
        if col.expanded and col.thumbs is not None:
            step = 1.0 / max(col.shown, 1)
            for y, uri in zip(ys, col.thumbs, strict=True):
                images.append(
                    dict(
                        source=uri,
                        x=xs[i] - 0.08,
                        y=float(y),
                        xref="x",
                        yref="y",
                        # a box a third of a column wide and 90% of a unit high: the kernels fill its height (the
                        # image keeps its aspect ratio), not a width tied to the number of units (6 px for conv2's 32)
                        sizex=0.34,
                        sizey=0.9 * step,
                        xanchor="right",
                        yanchor="middle",
                        layer="above",
                    )
                )
    fig.update_layout(images=images)
    # the nodes' colour scale: each layer's units on their own range, lowest to highest value of that layer
    fig.add_trace(
        go.Scatter(
            x=[None],
            y=[None],
            mode="markers",
            name=COLOUR_SCALE,
            visible=_coloured(columns),
            customdata=[],
            showlegend=False,
            hoverinfo="skip",
            marker=dict(
                color=[0.0],
                colorscale="Viridis",
                cmin=0,
                cmax=1,
                showscale=True,
                colorbar=dict(
                    title=dict(text="node value", side="right"),
                    tickvals=[0, 1],
                    ticktext=["lowest<br>in its layer", "highest"],
                    thickness=10,
                    len=0.5,
                    x=1.0,
                ),
            ),
        )
    )
    # column titles in as many staggered rows as their names need to keep clear of each other (a ResNet's
    # "layer3.1.relu_1" is wider than a twelfth of the card): about 7 px a character, the card about 1,000 px wide
    widest = 7.5 * max((len(c.name) for c in columns), default=1) + 12
    rows = min(4, max(1, math.ceil(widest / (1000 / max(len(columns), 1)))))
    annotations = [
        dict(
            x=xs[i],
            y=1.035,
            yshift=30 * (i % rows),
            text=f"<b>{c.name}</b><br>{c.label.split(' ', 1)[-1]}",
            showarrow=False,
            yanchor="bottom",
        )
        for i, c in enumerate(columns)
    ]
    base_layout(fig, height, annotations=annotations, dragmode="pan", hovermode="closest", uirevision="network")
    fig.update_layout(margin=dict(l=10, r=10, t=50 + 30 * (rows - 1), b=10))
    fig.update_xaxes(visible=False, range=[-0.6, len(columns) - 0.4])
    fig.update_yaxes(visible=False, range=[-0.02, 1.08])
    return fig


# -- unit card ---------------------------------------------------------------------------------------------------
def weights_figure(kind: str, array: np.ndarray, bias: float | None, title: str) -> go.Figure:
    """A unit's incoming weights: kernels and maps as tiled diverging heatmaps, anything else as signed bars."""
    array = np.asarray(array, dtype=np.float32)
    if kind in ("kernel", "kernels", "maps") and array.ndim == 3:
        grid = tile(array, columns=min(8, int(np.ceil(np.sqrt(len(array))))) if len(array) > 1 else None)
        peak = float(np.nanmax(np.abs(grid))) or 1.0
        fig = go.Figure(
            go.Heatmap(
                z=grid,
                colorscale="RdBu_r",
                zmin=-peak,
                zmax=peak,
                colorbar=dict(thickness=8, len=0.8),
                hovertemplate="w = %{z:.4f}<extra></extra>",
            )
        )
        fig.update_yaxes(autorange="reversed", scaleanchor="x", visible=False)
        fig.update_xaxes(visible=False)
    else:
        flat = array.ravel()
        fig = go.Figure(
            go.Bar(
                x=np.arange(len(flat)),
                y=flat,
                marker_color=np.where(flat >= 0, POSITIVE, NEGATIVE).tolist(),
                hovertemplate="input %{x}: %{y:.4f}<extra></extra>",
            )
        )
        fig.update_xaxes(title="input unit", showgrid=False)
        fig.update_yaxes(zeroline=True, zerolinecolor="#9aa5b1")
    subtitle = f"{title}" + (f" · bias {bias:+.3f}" if bias is not None else "")
    base_layout(fig, 260, title=dict(text=subtitle, font=dict(size=12), x=0.01, y=0.98))
    fig.update_layout(margin=dict(l=10, r=10, t=30, b=10))
    return fig


def class_bars(means: np.ndarray, class_names: Sequence[str], title: str) -> go.Figure:
    """Mean activation of a unit per class."""
    fig = go.Figure(
        go.Bar(
            x=[str(n) for n in class_names],
            y=np.asarray(means, dtype=np.float32),
            marker_color=[CLASS_COLORS[k % len(CLASS_COLORS)] for k in range(len(class_names))],
            hovertemplate="%{x}: %{y:.3f}<extra></extra>",
        )
    )
    base_layout(fig, 220, title=dict(text=title, font=dict(size=12), x=0.01, y=0.98))
    fig.update_layout(margin=dict(l=10, r=10, t=30, b=10))
    fig.update_xaxes(type="category", fixedrange=True)
    fig.update_yaxes(fixedrange=True)
    return fig


def feature_map_figure(fmap: np.ndarray, lo: float, hi: float, title: str) -> dict[str, Any]:
    """One channel's map enlarged, with its values on hover: figure JSON, filled into a frame built once (a new
    image or channel redraws it at every click)."""
    frame = _feature_map_frame()
    layout = frame["layout"]
    heat = {
        **frame["data"][0],
        "z": np.asarray(fmap, dtype=np.float32).tolist(),
        "zmin": lo,
        "zmax": hi if hi > lo else lo + 1,
    }
    return {"data": [heat], "layout": {**layout, "title": {**layout["title"], "text": title}}}


@lru_cache(maxsize=1)
def _feature_map_frame() -> dict[str, Any]:
    """`feature_map_figure` without its map, as JSON (plotly's checks take about 17 ms a figure). Read-only."""
    fig = go.Figure(
        go.Heatmap(
            z=[[0.0]],
            colorscale="Viridis",
            colorbar=dict(thickness=8, len=0.8),
            hovertemplate="(%{y}, %{x}): %{z:.3f}<extra></extra>",
        )
    )
    base_layout(fig, 300, title=dict(text="", font=dict(size=12), x=0.01, y=0.98))
    fig.update_layout(margin=dict(l=10, r=10, t=30, b=10))
    fig.update_yaxes(autorange="reversed", scaleanchor="x", visible=False)
    fig.update_xaxes(visible=False)
    return figure_json(fig)


def ablated_trace(
    columns: Sequence[tuple[str, int, bool]], ablations: Sequence[Ablation], height: int = 720
) -> go.Scatter:
    """A cross over the node of each unit ``ablations`` name (over a layer's single node while it is collapsed), where
    ``network_figure`` draws the nodes of ``columns`` ((layer, units, drawn unit by unit) each); drawn last, it carries
    the nodes' ``[layer, unit]`` customdata, so a click on a cross does what a click on its node does."""
    scales = unit_scales(ablations)
    x: list[float] = []
    y: list[float] = []
    custom: list[list[Any]] = []
    text: list[str] = []
    size: list[int] = []
    colour: list[str] = []
    for i, (name, units, expanded) in enumerate(columns):
        chosen = sorted(u for layer, u in scales if layer == name and u < units)
        if not chosen:
            continue
        if not expanded:
            off = sum(scales[(name, u)] == 0 for u in chosen)
            x.append(float(i))
            y.append(0.5)
            custom.append([name, -1])
            text.append(f"{name}: {off} of {units} units switched off, {len(chosen) - off} scaled")
            size.append(30)
            colour.append(SWITCHED_OFF if off else SCALED)
            continue
        ys = _ys(units)
        node = max(5, min(14, int(height / max(units, 1) * 0.55)))  # network_figure's node size
        for u in chosen:
            scale = scales[(name, u)]
            x.append(float(i))
            y.append(float(ys[u]))
            custom.append([name, u])
            text.append(f"{name} unit {u}: " + ("switched off" if scale == 0 else f"× {scale:g}"))
            size.append(node + 6)
            colour.append(SWITCHED_OFF if scale == 0 else SCALED)
    return go.Scatter(
        x=x,
        y=y,
        mode="markers",
        marker=dict(symbol="x-thin-open", size=size, color=colour, line=dict(color=colour, width=2.5)),
        customdata=custom,
        hovertext=text,
        hovertemplate="%{hovertext}<extra></extra>",
        name="switched off",
        showlegend=False,
    )
