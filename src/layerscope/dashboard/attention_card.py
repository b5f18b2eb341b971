"""The attention card of a vision transformer, in the Network view: for the selected image, where each head of each
block looks (the class token's attention over the patches, over the image) and the rollout through all blocks.
Computation in ``layerscope.attention``; shown only for a model whose graph has attention nodes."""

from __future__ import annotations

from typing import Any

import numpy as np
from dash import Output, State, html

from layerscope.attention import attention_nodes, image_attention
from layerscope.dashboard import ids, views
from layerscope.dashboard.components import card
from layerscope.dashboard.state import DashboardState
from layerscope.dashboard.unit_figures import overlay_png
from layerscope.dashboard.wiring import Callbacks
from layerscope.errors import LayerscopeError

__all__ = ["attention_card", "callbacks", "has_attention"]

callbacks = Callbacks()
TILE = 72  # px of each head's map


def has_attention(state: DashboardState) -> bool:
    return bool(attention_nodes(state.run.graph))


def attention_card(state: DashboardState) -> html.Div:
    nodes = attention_nodes(state.run.graph)
    return card(
        "Attention of the selected image",
        html.Div(
            f"{len(nodes)} attention nodes ({', '.join(nodes[:3])}{', ...' if len(nodes) > 3 else ''}): each group a "
            "block, each tile a head: red where the class token (or, without one, the average query) attends. "
            "Rollout follows attention through every block, the residual connections included.",
            className="hint",
        ),
        html.Div(id=ids.ATTN_AREA, className="attention"),
        class_name="attention-card",
    )


def _grey(image: np.ndarray) -> np.ndarray:
    """(H, W) uint8 of an image as the Run keeps it ((H, W), or (C, H, W) averaged over its channels)."""
    image = np.asarray(image, dtype=np.float32)
    return (image.mean(axis=0) if image.ndim == 3 else image).astype(np.uint8)


def _over(image: np.ndarray, patches: np.ndarray) -> str:
    """A (side, side) map of the patches, blown up to the image's pixels and laid over it: from clear at the least
    attended patch to red at the most (attention is spread thin: its range, not zero, is what tells)."""
    patches = patches - patches.min()
    h, w = image.shape
    side = patches.shape[0]
    big = np.kron(patches, np.ones((max(h // side, 1), max(w // side, 1)), np.float32))[:h, :w]
    big = np.pad(big, ((0, h - big.shape[0]), (0, w - big.shape[1])))
    return overlay_png(image, big, scale=max(1, TILE // max(h, 1)))


@callbacks.callback(
    Output(ids.ATTN_AREA, "children"),
    views.gated("network"),
    State(ids.SELECTED, "data"),
    prevent_initial_call=True,
    when=has_attention,
)
def attention(state: DashboardState, gate: Any, selected: Any) -> Any:
    views.opened(gate)
    from layerscope.capture import image_layer_outputs

    try:
        key = state.image_key(selected)
    except LayerscopeError as e:
        return html.Span(str(e), className="bad")
    nodes = attention_nodes(state.run.graph)
    image = state._model_image(key)
    with state.model_lock:
        outputs = image_layer_outputs(state.model, image, nodes)
    maps = image_attention(outputs, nodes)
    grey = _grey(image)
    rows = []
    for node in nodes:
        heads = maps.heads[node]
        tiles = [
            html.Div(
                [html.Img(src=_over(grey, m), className="attn-tile"), html.Span(f"head {i}")], className="attn-cell"
            )
            for i, m in enumerate(heads)
        ]
        rows.append(html.Div([html.Div(node, className="row-title"), html.Div(tiles, className="attn-row")]))
    rows = [html.Div(rows, className="attn-blocks")]
    rows[0].children.append(
        html.Div(
            [
                html.Div("rollout through all blocks", className="row-title"),
                html.Div(html.Img(src=_over(grey, maps.rollout), className="attn-tile"), className="attn-row"),
            ]
        )
    )
    return rows
