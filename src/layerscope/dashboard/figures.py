"""Pure figure builders: arrays in, plotly figures or plain component data out. No state, no callbacks."""

from __future__ import annotations

import json
from collections.abc import Sequence
from functools import lru_cache
from typing import Any, cast

import numpy as np
import plotly.graph_objects as go
import plotly.io
from plotly.colors import qualitative, sample_colorscale

__all__ = [
    "CLASS_COLORS",
    "DOUBT_SCALE",
    "base_layout",
    "colour_lut",
    "confusion_figure",
    "doubt",
    "empty_figure",
    "figure_json",
    "probability_bars",
    "probability_figure",
    "probability_frame",
    "scatter_figure",
    "viridis",
]

CLASS_COLORS = qualitative.T10 + qualitative.Alphabet
WRONG_COLOR = "#d62728"
FONT = dict(family="Inter, system-ui, -apple-system, Segoe UI, sans-serif", size=12, color="#1f2933")
# the "confidence" colouring's scale, log10(1 - confidence): -4 is 99.99% sure (or surer), 0 is 0%
DOUBT_SCALE = (-4, 0)


def base_layout(fig: go.Figure, height: int | None, **kwargs: object) -> go.Figure:
    fig.update_layout(
        height=height,
        margin=dict(l=10, r=10, t=10, b=10),
        paper_bgcolor="white",
        plot_bgcolor="white",
        font=FONT,
        **kwargs,
    )
    return fig


def doubt(confidence: np.ndarray | Sequence[float]) -> np.ndarray:
    """log10(1 - confidence), clipped to `DOUBT_SCALE`: a trained network is over 99% sure of most images, so a
    linear scale paints nearly all of them one colour; on this one 90%, 99% and 99.9% are a quarter of it apart."""
    lo, hi = DOUBT_SCALE
    # clipped before the log: a confidence of exactly 1 (float32 softmax) must not become -inf with a warning
    return np.log10(np.clip(1.0 - np.asarray(confidence, np.float64), 10.0**lo, 10.0**hi))


def doubt_colorbar() -> dict[str, object]:
    """The colour bar of `doubt`, its ticks labelled as confidences: 99.99%, 99.9%, 99%, 90%, 0%."""
    lo, hi = DOUBT_SCALE
    ticks = list(range(lo, hi + 1))
    text = [f"{100 * (1 - 10.0**k):.{max(0, -k - 2)}f}%" for k in ticks]
    return dict(title="conf.", thickness=10, len=0.6, tickvals=ticks, ticktext=text)


def scatter_traces(
    labels: np.ndarray, predicted: np.ndarray, confidence: np.ndarray, keep: np.ndarray, color_by: str
) -> list[tuple[str, np.ndarray, str | None]]:
    """How the points split into traces: (trace name, point indices, colour). Indices are into the dataset."""
    idx = np.flatnonzero(keep)
    if color_by == "correct":
        right = idx[predicted[idx] == labels[idx]]
        wrong = idx[predicted[idx] != labels[idx]]
        return [("correct", right, "#9aa5b1"), ("misclassified", wrong, WRONG_COLOR)]
    if color_by == "confidence":
        return [("confidence", idx, None)]
    by = predicted if color_by == "predicted" else labels
    classes = np.unique(by[idx]) if len(idx) else np.array([], int)
    return [(str(k), idx[by[idx] == k], CLASS_COLORS[int(k) % len(CLASS_COLORS)]) for k in classes]


def scatter_figure(
    embedding: np.ndarray,
    labels: np.ndarray,
    predicted: np.ndarray,
    confidence: np.ndarray,
    keep: np.ndarray,
    color_by: str,
    class_names: Sequence[str],
    height: int | None = None,
) -> go.Figure:
    """All kept points as WebGL scatter traces (one per class), misclassified points ringed on top; the points a
    lasso selects drawn large and the rest faded. assets/workspace.js rings the selected image and lights up the
    images brushed elsewhere.
    ``height=None`` fills the graph's box (CSS sizes it).

    Each trace carries its dataset indices as ``customdata``; numpy arrays travel to the browser as typed arrays.
    """
    fig = go.Figure()
    for name, idx, color in scatter_traces(labels, predicted, confidence, keep, color_by):
        marker: dict[str, object] = dict(size=3, opacity=0.75)
        if color is None:
            marker.update(
                color=doubt(confidence[idx]).astype(np.float32),
                colorscale="Viridis_r",  # the sure yellow, as on a linear scale; doubt dark, standing out on white
                cmin=DOUBT_SCALE[0],
                cmax=DOUBT_SCALE[1],
                colorbar=doubt_colorbar(),
            )
        else:
            marker["color"] = color
        label = class_names[int(name)] if name.isdigit() and int(name) < len(class_names) else name
        fig.add_trace(
            go.Scattergl(
                x=embedding[idx, 0],
                y=embedding[idx, 1],
                mode="markers",
                name=label,
                customdata=idx.astype(np.int32),
                marker=marker,
                hovertemplate="#%{customdata}<extra>" + label + "</extra>",
                # a brushed few must stand out of 70,000: larger, opaque, the rest nearly gone
                selected=dict(marker=dict(size=7, opacity=1.0)),
                unselected=dict(marker=dict(opacity=0.06)),
            )
        )
    wrong = np.flatnonzero(keep & (predicted != labels))
    fig.add_trace(
        go.Scattergl(
            x=embedding[wrong, 0],
            y=embedding[wrong, 1],
            mode="markers",
            name="misclassified",
            customdata=wrong.astype(np.int32),
            # a ring as a circle's outline over a clear fill: plotly's WebGL scatter draws a circle on its fast path,
            # where the "circle-open" symbol takes a glyph atlas and shader of its own (~100 ms of a page's first draw
            # of two panels, half of it on the GPU, for the same picture)
            marker=dict(size=6, color="rgba(0, 0, 0, 0)", line=dict(width=0.8, color="rgba(17, 17, 17, 0.8)")),
            hovertemplate="#%{customdata} misclassified<extra></extra>",
            visible=True if color_by != "correct" else "legendonly",
            unselected=dict(marker=dict(opacity=0.1)),
        )
    )
    base_layout(
        fig,
        height,
        dragmode="lasso",
        uirevision="keep",
        legend=dict(itemsizing="constant", font=dict(size=11)),
    )
    fig.update_xaxes(showticklabels=False, zeroline=False, showgrid=False)
    fig.update_yaxes(showticklabels=False, zeroline=False, showgrid=False)
    return fig


def probability_bars(probs: np.ndarray, true: int) -> dict[str, list[object]]:
    """What the bars of `probability_figure` show, as plain lists: ``x`` (the probabilities), ``color`` (the
    prediction in colour), ``line`` (the true class outlined) and ``text``. The Draw panel's fast path restyles the
    bars in the browser with it while a digit is drawn."""
    predicted = int(np.argmax(probs))
    colors = ["#cbd2d9"] * len(probs)
    colors[predicted] = "#2f80ed" if predicted == true else WRONG_COLOR
    return {
        "x": [float(p) for p in probs],
        "color": list(colors),
        "line": ["#111" if i == true else "rgba(0,0,0,0)" for i in range(len(probs))],
        "text": [f"{p:.1%}" if p >= 0.005 else "" for p in probs],
    }


def probability_figure(probs: np.ndarray, true: int, class_names: Sequence[str]) -> dict[str, Any]:
    """Horizontal bars of the class probabilities; the true class outlined, the prediction in colour. As figure JSON:
    the one the sidebar shows for every click, filled into a frame built once."""
    bars = probability_bars(probs, true)
    frame = _probability_frame(tuple(str(n) for n in class_names))
    bar = frame["data"][0]
    marker = {**bar["marker"], "color": bars["color"], "line": {**bar["marker"]["line"], "color": bars["line"]}}
    return {"data": [{**bar, "x": bars["x"], "text": bars["text"], "marker": marker}], "layout": frame["layout"]}


def probability_frame(class_names: Sequence[str]) -> dict[str, Any]:
    """`probability_figure` with no bars yet: what the sidebar shows until the selected image's card comes."""
    return _probability_frame(tuple(str(n) for n in class_names))


@lru_cache(maxsize=8)
def _probability_frame(class_names: tuple[str, ...]) -> dict[str, Any]:
    """`probability_figure` without its values, as JSON: plotly's checks take about 17 ms a figure, filling in a
    copy of this well under one. Read-only."""
    n = len(class_names)
    fig = go.Figure(
        go.Bar(
            x=[0.0] * n,
            y=list(class_names),
            orientation="h",
            marker=dict(color=["#cbd2d9"] * n, line=dict(color=["rgba(0,0,0,0)"] * n, width=1.5)),
            text=[""] * n,
            textposition="outside",
            cliponaxis=False,
            hovertemplate="%{y}: %{x:.4f}<extra></extra>",
        )
    )
    base_layout(fig, 18 * n + 26, bargap=0.25)
    # room beside the longest bar for its "100.0%", in the sidebar's narrow box too
    fig.update_xaxes(range=[0, 1.36], showticklabels=False, showgrid=False, zeroline=False, fixedrange=True)
    fig.update_yaxes(autorange="reversed", type="category", fixedrange=True)
    return figure_json(fig)


def figure_json(fig: go.Figure) -> dict[str, Any]:
    """A figure as the plain JSON the page gets (numpy arrays as base64 typed arrays)."""
    return cast(dict[str, Any], json.loads(plotly.io.to_json(fig, validate=False)))


def confusion_figure(matrix: np.ndarray, class_names: Sequence[str]) -> go.Figure:
    """Test-set confusion counts, row = true class, column = predicted; the diagonal is muted so errors stand out."""
    off = matrix.astype(float).copy()
    np.fill_diagonal(off, np.nan)
    names = [str(n) for n in class_names]
    fig = go.Figure(
        go.Heatmap(
            z=off,
            x=names,
            y=names,
            colorscale="Reds",
            showscale=False,
            hovertemplate="true %{y}, predicted %{x}: %{customdata} images<extra></extra>",
            customdata=matrix,
            xgap=1,
            ygap=1,
        )
    )
    fig.add_trace(
        go.Heatmap(
            z=np.where(np.eye(len(names)) > 0, 1.0, np.nan),
            x=names,
            y=names,
            colorscale=[[0, "#e4e7eb"], [1, "#e4e7eb"]],
            showscale=False,
            hoverinfo="skip",
            xgap=1,
            ygap=1,
        )
    )
    k = len(names)
    peak = max(float(np.nanmax(off)) if np.isfinite(off).any() else 1.0, 1.0)
    # white text on the darkest error cells, dark text elsewhere
    colors = ["white" if i != j and matrix[i, j] > 0.55 * peak else "#1f2933" for i in range(k) for j in range(k)]
    fig.add_trace(
        go.Scatter(
            x=[names[j] for i in range(k) for j in range(k)],
            y=[names[i] for i in range(k) for _ in range(k)],
            text=[str(v) if v else "" for v in matrix.ravel()],
            mode="text",
            textfont=dict(size=10, color=colors),
            hoverinfo="skip",
        )
    )
    base_layout(fig, 330, xaxis_title="predicted", yaxis_title="true")
    fig.update_yaxes(autorange="reversed", type="category", fixedrange=True)
    fig.update_xaxes(type="category", side="top", fixedrange=True)
    fig.update_layout(margin=dict(l=50, r=10, t=50, b=10))
    return fig


def empty_figure(message: str = "") -> go.Figure:
    """A blank plot area, with a message in its middle."""
    fig = go.Figure()
    if message:
        fig.add_annotation(
            text=message, showarrow=False, x=0.5, y=0.5, xref="paper", yref="paper", font=dict(size=13, color="#52606d")
        )
    base_layout(fig, 460)
    fig.update_xaxes(visible=False)
    fig.update_yaxes(visible=False)
    return fig


@lru_cache(maxsize=8)
def colour_lut(scale: str = "Viridis") -> np.ndarray:
    """(256, 3) uint8 colours of a plotly colour scale: sampling the scale itself costs milliseconds per call."""
    colors = sample_colorscale(scale, np.linspace(0, 1, 256).tolist(), colortype="tuple")  # floats in [0, 1]
    return (np.asarray(colors) * 255).round().astype(np.uint8)


def viridis(values: np.ndarray, lo: float, hi: float) -> list[str]:
    """Viridis colours ("rgb(r, g, b)") for values scaled from [lo, hi], 256 levels."""
    span = hi - lo if hi > lo else 1.0
    levels = (np.clip((np.asarray(values, np.float64) - lo) / span, 0, 1) * 255).round().astype(np.int64)
    return [f"rgb({r}, {g}, {b})" for r, g, b in colour_lut()[levels].tolist()]


def drawing_annotation(x: float, y: float) -> dict[str, object]:
    """A drawn digit placed in a projection: a star with an arrow and a label. An annotation, not a trace: moving it
    redraws the annotation layer only, where a trace makes the browser redraw all 70,000 WebGL points (0.5-0.8 s)."""
    return dict(
        x=x,
        y=y,
        xref="x",
        yref="y",
        text="★ your drawing",
        showarrow=True,
        arrowhead=2,
        arrowwidth=1.5,
        ax=40,
        ay=-40,
        font=dict(size=13, color="#111111"),
        bgcolor="rgba(255, 255, 255, 0.85)",
        bordercolor="#111111",
        borderpad=3,
    )
