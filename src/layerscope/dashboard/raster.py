"""A projection of hundreds of thousands of points drawn as an image: Datashader aggregates the points in the current
view on the server into a ``WIDTH`` x ``HEIGHT`` raster, coloured by class (or correct/wrong, or confidence), and
the browser shows a PNG instead of a WebGL trace per class.

Plotly's WebGL scatter takes seconds to draw a million points, and every restyle draws them all again; the raster
costs the browser the same at any size. What the points gave the page is kept another way:

- **hover and click**: a transparent heatmap over the view, one cell per ``CELL`` x ``CELL`` pixels, whose
  ``customdata`` is the index of one image in the cell: assets/workspace.js reads it as it reads a point's;
- **lasso and box**: the polygon or the range goes to the server, which finds the images inside (``inside``);
- **the selection** is drawn into the raster, the rest faded (``render(selected=...)``);
- **zoom and pan** draw the new view again; a view holding at most ``EXACT_MAX`` points is drawn as points.

Pure: arrays in, arrays and figure JSON out. projection_raster.py wires it to the panels.
"""

from __future__ import annotations

import base64
import io
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from layerscope.dashboard import figures

__all__ = [
    "CELL",
    "EXACT_MAX",
    "HEIGHT",
    "RASTER_MIN",
    "WIDTH",
    "check_size",
    "Points",
    "inside",
    "points",
    "raster_figure",
    "render",
    "warm_up",
]

RASTER_MIN = 200_000  # a panel showing more points than this is a raster
EXACT_MAX = 50_000  # a raster view holding at most this many points is drawn as points again
WIDTH, HEIGHT = 800, 520  # px of the first raster, before the page says its plot's size (``check_size``)
SIZE_RANGE = (100, 4000)  # px: the sizes a raster may be asked for
CELL = 4  # px: the hover and click grid
FADED_ALPHA = 40  # the alpha (0-255) of the points behind a lit selection


@dataclass(frozen=True)
class Points:
    """The points one panel draws: coordinates, dataset indices and colouring, with the extent of all of them."""

    xy: np.ndarray  # (n, 2) float32
    index: np.ndarray  # (n,) int64: each point's image index
    codes: np.ndarray  # (n,) int16: each point's colour group (categorical colourings), or zeros
    values: np.ndarray | None  # (n,) float32: the continuous colouring (confidence's doubt), or None
    colors: tuple[str, ...]  # each group's colour
    names: tuple[str, ...]  # each group's legend name
    full: tuple[float, float, float, float]  # (x0, x1, y0, y1): every point, with a margin

    def __len__(self) -> int:
        return int(self.index.shape[0])

    def in_view(self, view: Sequence[float]) -> np.ndarray:
        x0, x1, y0, y1 = view
        x, y = self.xy[:, 0], self.xy[:, 1]
        return (x >= x0) & (x <= x1) & (y >= y0) & (y <= y1)


def points(
    embedding: np.ndarray,
    labels: np.ndarray,
    predicted: np.ndarray,
    confidence: np.ndarray,
    keep: np.ndarray,
    color_by: str,
    class_names: Sequence[str],
) -> Points:
    """The kept points of ``embedding`` (NaN rows dropped), grouped for colouring as `figures.scatter_traces` groups
    the points of a scatter, so a raster and the scatter it replaces have the same colours and legend."""
    keep = keep & np.isfinite(embedding).all(axis=1)
    groups = figures.scatter_traces(labels, predicted, confidence, keep, color_by)
    index = np.concatenate([idx for _, idx, _ in groups]) if groups else np.zeros(0, np.int64)
    codes: Any = (
        np.concatenate([np.full(len(idx), k, np.int16) for k, (_, idx, _) in enumerate(groups)]) if groups else []
    )
    names = tuple(
        class_names[int(name)] if name.isdigit() and int(name) < len(class_names) else name for name, _, _ in groups
    )
    xy = np.ascontiguousarray(embedding[index], dtype=np.float32)
    values = figures.doubt(confidence[index]).astype(np.float32) if color_by == "confidence" else None
    if len(xy):
        low, high = xy.min(axis=0).astype(np.float64), xy.max(axis=0).astype(np.float64)
    else:
        low, high = np.zeros(2), np.ones(2)
    margin = 0.03 * np.maximum(high - low, 1e-6)
    full = (low[0] - margin[0], high[0] + margin[0], low[1] - margin[1], high[1] + margin[1])
    return Points(
        xy,
        index.astype(np.int64),
        np.asarray(codes, np.int16),
        values,
        tuple(color or "#888888" for _, _, color in groups),
        names,
        (float(full[0]), float(full[1]), float(full[2]), float(full[3])),
    )


Size = tuple[int, int]


def check_size(value: Any) -> Size:
    """A raster's (width, height) in pixels as the page sends it: whole numbers within ``SIZE_RANGE``."""
    from layerscope.errors import LayerscopeError

    low, high = SIZE_RANGE
    if not isinstance(value, list | tuple) or len(value) != 2 or not all(isinstance(v, int | float) for v in value):
        raise LayerscopeError("the panel's size is not two numbers; reload the page.")
    width, height = (int(round(float(v))) if np.isfinite(float(v)) else 0 for v in value)
    return min(max(width, low), high), min(max(height, low), high)


def _aggregate(pts: Points, mask: np.ndarray | None, view: Sequence[float], size: Size) -> Any:
    """Datashader's aggregate of the points (those of ``mask``) over ``view``: counts per colour group, or the mean
    of the continuous colouring."""
    import datashader as ds
    import pandas as pd

    xy, codes = (pts.xy, pts.codes) if mask is None else (pts.xy[mask], pts.codes[mask])
    columns: dict[str, Any] = {"x": xy[:, 0], "y": xy[:, 1]}
    if pts.values is not None:
        columns["v"] = pts.values if mask is None else pts.values[mask]
        reduction = ds.mean("v")
    else:
        columns["c"] = pd.Categorical.from_codes(codes, categories=range(max(1, len(pts.colors))))
        reduction = ds.count_cat("c")
    canvas = ds.Canvas(plot_width=size[0], plot_height=size[1], x_range=tuple(view[:2]), y_range=tuple(view[2:]))
    return canvas.points(pd.DataFrame(columns, copy=False), "x", "y", reduction)


def _shade(pts: Points, agg: Any, alpha: int) -> Any:
    import datashader.transfer_functions as tf

    if pts.values is not None:
        lo, hi = figures.DOUBT_SCALE
        colors = ["#%02x%02x%02x" % tuple(c) for c in figures.colour_lut("Viridis_r")]
        image = tf.shade(agg, cmap=colors, how="linear", span=[lo, hi], alpha=alpha, min_alpha=min(alpha, 90))
    else:
        image = tf.shade(
            agg, color_key=list(pts.colors) or ["#888888"], how="eq_hist", alpha=alpha, min_alpha=min(alpha, 90)
        )
    # a lone point is one pixel: spread sparse ones to be seen, as the scatter's 3 px markers are
    return tf.dynspread(image, threshold=0.5, max_px=2)


def render(pts: Points, view: Sequence[float], selected: np.ndarray | None = None, size: Size = (WIDTH, HEIGHT)) -> str:
    """The points in ``view`` (x0, x1, y0, y1) as a PNG data URL of ``size`` (width, height) pixels; with
    ``selected`` (a boolean mask over the points), those drawn in colour over the rest faded."""
    import datashader.transfer_functions as tf

    image = _shade(pts, _aggregate(pts, None, view, size), 255 if selected is None else FADED_ALPHA)
    if selected is not None and selected.any():
        image = tf.stack(image, _shade(pts, _aggregate(pts, selected, view, size), 255))
    buffer = io.BytesIO()
    image.to_pil().save(buffer, format="PNG", optimize=False, compress_level=3)
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def hover_grid(
    pts: Points, view: Sequence[float], mask: np.ndarray, size: Size = (WIDTH, HEIGHT)
) -> tuple[np.ndarray, np.ndarray]:
    """(counts, one image per cell) of the ``CELL`` px grid over ``view``, (rows, columns), from the bottom row up;
    a cell without points counts NaN (no hover there) and names image -1."""
    x0, x1, y0, y1 = view
    columns, rows = max(1, size[0] // CELL), max(1, size[1] // CELL)
    xy = pts.xy[mask]
    cx = np.clip(((xy[:, 0] - x0) / max(x1 - x0, 1e-12) * columns).astype(np.int64), 0, columns - 1)
    cy = np.clip(((xy[:, 1] - y0) / max(y1 - y0, 1e-12) * rows).astype(np.int64), 0, rows - 1)
    cell = cy * columns + cx
    counts = np.bincount(cell, minlength=rows * columns).astype(np.float32)
    image = np.full(rows * columns, -1, np.int64)
    image[cell] = pts.index[mask]  # one of each cell's images (the last written)
    counts[counts == 0] = np.nan
    return counts.reshape(rows, columns), image.reshape(rows, columns)


def inside(
    pts: Points, lasso: tuple[Sequence[float], Sequence[float]] | None = None, box: Sequence[float] | None = None
) -> np.ndarray:
    """The image indices of the points inside a lasso's polygon (xs, ys) or a ``box`` (x0, x1, y0, y1), sorted:
    what plotly's own selection of a scatter gives, found on the server from the coordinates the page sent."""
    if box is not None:
        x0, x1, y0, y1 = box
        hit = pts.in_view((min(x0, x1), max(x0, x1), min(y0, y1), max(y0, y1)))
        return np.sort(pts.index[hit])
    if lasso is None:
        return np.zeros(0, np.int64)
    px, py = np.asarray(lasso[0], np.float64), np.asarray(lasso[1], np.float64)
    if len(px) < 3:
        return np.zeros(0, np.int64)
    from matplotlib.path import Path  # matplotlib comes with captum

    near = np.flatnonzero(pts.in_view((px.min(), px.max(), py.min(), py.max())))  # the polygon's box first
    hit = Path(np.column_stack([px, py])).contains_points(pts.xy[near].astype(np.float64))
    return np.sort(pts.index[near[hit]])


def raster_figure(
    pts: Points,
    view: Sequence[float],
    selected: np.ndarray | None,
    meta: dict[str, Any],
    size: Size = (WIDTH, HEIGHT),
) -> dict[str, Any]:
    """A panel's figure of ``view`` as a raster of ``size`` pixels: the PNG as a layout image under a transparent
    hover grid, a legend of the colours, the axes fixed on the view. ``meta`` goes into the layout's meta, with
    ``raster``: the view, the full extent and the size (assets/workspace.js sends them back with a zoom)."""
    import plotly.graph_objects as go

    x0, x1, y0, y1 = view
    mask = pts.in_view(view)
    counts, image = hover_grid(pts, view, mask, size)
    columns, rows = counts.shape[1], counts.shape[0]
    fig = go.Figure(
        go.Heatmap(
            z=counts,
            customdata=image.astype(np.int32),
            x0=x0 + (x1 - x0) / columns / 2,
            dx=(x1 - x0) / columns,
            y0=y0 + (y1 - y0) / rows / 2,
            dy=(y1 - y0) / rows,
            colorscale=[[0, "rgba(0,0,0,0)"], [1, "rgba(0,0,0,0)"]],
            showscale=False,
            hoverongaps=False,
            hovertemplate="%{z:,} images here · #%{customdata}<extra></extra>",
            name="images",
            showlegend=False,
        )
    )
    for name, color in zip(pts.names, pts.colors, strict=True):
        if pts.values is None:  # a legend entry per colour: a marker with no point
            fig.add_trace(go.Scatter(x=[None], y=[None], mode="markers", name=name, marker=dict(color=color, size=7)))
    if pts.values is not None:
        lo, hi = figures.DOUBT_SCALE
        fig.add_trace(
            go.Scatter(
                x=[None],
                y=[None],
                mode="markers",
                showlegend=False,
                marker=dict(color=[lo], colorscale="Viridis_r", cmin=lo, cmax=hi, colorbar=figures.doubt_colorbar()),
            )
        )
    fig.add_layout_image(
        source=render(pts, view, selected, size),
        xref="x",
        yref="y",
        x=x0,
        y=y1,
        sizex=x1 - x0,
        sizey=y1 - y0,
        sizing="stretch",
        layer="below",
    )
    figures.base_layout(
        fig,
        None,
        dragmode="lasso",
        uirevision="keep",
        legend=dict(itemsizing="constant", font=dict(size=11), itemclick=False, itemdoubleclick=False),
        meta={
            **meta,
            "raster": {
                "view": [x0, x1, y0, y1],
                "full": list(pts.full),
                "size": list(size),
                "shown": int(mask.sum()),  # points in the view
                "lit": int(selected.sum()) if selected is not None else 0,  # of them, the selection's
            },
        },
    )
    fig.update_xaxes(showticklabels=False, zeroline=False, showgrid=False, range=[x0, x1])
    fig.update_yaxes(showticklabels=False, zeroline=False, showgrid=False, range=[y0, y1])
    return figures.figure_json(fig)


def warm_up(classes: int = 10) -> None:
    """Compile Datashader's aggregation and shading once (numba: seconds), so a page's first raster does not: for
    each colouring of a Run of ``classes`` classes (Datashader compiles one per number of colours)."""
    rng = np.random.default_rng(0)
    n = 1000
    names = tuple(str(k) for k in range(classes))
    labels = np.arange(n) % classes
    for color_by in ("label", "correct", "confidence"):
        pts = points(
            rng.normal(size=(n, 2)).astype(np.float32),
            labels,
            (labels + (np.arange(n) % 2)) % classes,
            rng.random(n).astype(np.float32),
            np.ones(n, bool),
            color_by,
            names,
        )
        raster_figure(pts, pts.full, np.arange(n) % 2 == 0, {})
