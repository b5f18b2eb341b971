"""Where a vision transformer looks: the attention maps of one image, per block and head, and attention rollout.

An attention node is a softmax in the model's graph whose output is (heads, tokens, tokens) for one image: the
weights each token's query gives every token's key. Patch tokens sit on a square grid (a 32x32 image in 4x4
patches: 8x8 tokens) after any extra tokens (a class token first, ViT's layout). The class token's row, reshaped to
the grid, is where the class token reads the image from; a model without one shows each patch's mean attention
received. Rollout (Abnar & Zuidema 2020) multiplies the blocks' head-averaged attention, each mixed half and half
with the identity for the residual connection, to follow attention through the whole stack.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from layerscope.graph import ModelGraph
from layerscope.layers import token_grid

__all__ = ["AttentionMaps", "attention_nodes", "image_attention", "rollout", "token_grid"]


def attention_nodes(graph: ModelGraph) -> list[str]:
    """The graph's attention weights: softmax nodes of (heads, tokens, tokens) per image over a square token grid."""
    found = []
    for node in graph.nodes:
        shape = node.shape
        if node.op.lower() == "softmax" and len(shape) == 3 and shape[1] == shape[2] and token_grid(shape[1]):
            found.append(node.name)
    return found


@dataclass(frozen=True)
class AttentionMaps:
    """One image's attention: ``heads[node]`` (heads, side, side) per attention node, the class token's (or the mean)
    attention to each patch; ``rollout`` (side, side) through every node in order; ``extra`` tokens before the
    patches (1: a class token)."""

    heads: dict[str, np.ndarray]
    rollout: np.ndarray
    extra: int
    side: int


def _to_patches(weights: np.ndarray, extra: int, side: int) -> np.ndarray:
    """(..., T, T) attention -> (..., side, side): the first (class) token's row over the patches, or with no extra
    token the attention each patch receives, averaged over the queries."""
    row = weights[..., 0, extra:] if extra else weights.mean(axis=-2)
    return row.reshape(*weights.shape[:-2], side, side)


def rollout(weights: Sequence[np.ndarray]) -> np.ndarray:
    """(T, T) attention rollout of blocks' (heads, T, T) weights, first block first: each head-averaged, mixed half
    and half with the identity (the residual connection), rows normalised, multiplied through."""
    tokens = weights[0].shape[-1]
    joint = np.eye(tokens, dtype=np.float64)
    for w in weights:
        a = 0.5 * np.asarray(w, np.float64).mean(axis=0) + 0.5 * np.eye(tokens)
        a /= a.sum(axis=-1, keepdims=True)
        joint = a @ joint
    return joint


def image_attention(outputs: dict[str, np.ndarray], nodes: Sequence[str]) -> AttentionMaps:
    """`AttentionMaps` of one image from its attention nodes' outputs ({node: (heads, T, T)}, e.g. from
    ``capture.image_layer_outputs``), ``nodes`` in the order the model runs them."""
    tokens = outputs[nodes[0]].shape[-1]
    grid = token_grid(tokens)
    if grid is None:
        raise ValueError(f"{tokens} tokens do not make a square grid of patches")
    extra, side = grid
    heads = {name: _to_patches(np.asarray(outputs[name], np.float32), extra, side) for name in nodes}
    joint = rollout([outputs[name] for name in nodes])
    return AttentionMaps(heads, _to_patches(joint, extra, side).astype(np.float32), extra, side)
