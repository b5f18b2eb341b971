"""A vision transformer's attention maps: nodes found in the graph, the class token's map over the patch grid, and
attention rollout."""

from __future__ import annotations

import numpy as np
import torch

from layerscope.attention import attention_nodes, image_attention, rollout, token_grid
from layerscope.capture import image_layer_outputs
from layerscope.tracing import trace_model
from tests.models import TinyViT


def test_token_grids():
    assert token_grid(65) == (1, 8) and token_grid(64) == (0, 8) and token_grid(50) == (1, 7)
    assert token_grid(3) is None and token_grid(7) == (3, 2)


def test_class_token_map_and_rollout_of_hand_made_weights():
    # 1 class token + 2x2 patches; every head of block 0 sends the class token to patch 3 only
    t = 5
    first = np.full((2, t, t), 1.0 / t)
    first[:, 0] = 0.0
    first[:, 0, 1 + 3] = 1.0
    maps = image_attention({"a": first, "b": np.full((2, t, t), 1.0 / t)}, ["a", "b"])
    assert maps.extra == 1 and maps.side == 2
    np.testing.assert_array_equal(maps.heads["a"][0], [[0, 0], [0, 1]])
    np.testing.assert_allclose(maps.heads["b"], 0.2)
    # rollout: rows stay distributions; with identity attention it is the identity
    joint = rollout([first, first])
    np.testing.assert_allclose(joint.sum(axis=1), 1.0)
    np.testing.assert_allclose(rollout([np.eye(t)[None].repeat(3, 0)]), np.eye(t))
    # one block: half the class token's own, half patch 3
    np.testing.assert_allclose(rollout([first])[0], [0.5, 0, 0, 0, 0.5])


def test_vit_attention_nodes_and_maps():
    torch.manual_seed(0)
    gm, graph = trace_model(TinyViT().eval(), (3, 32, 32))
    nodes = attention_nodes(graph)
    assert nodes == [f"blocks.{i}.attn.softmax" for i in range(4)]
    image = (np.random.default_rng(0).random((3, 32, 32)) * 255).astype(np.uint8)
    outputs = image_layer_outputs(gm, image, nodes)
    assert outputs[nodes[0]].shape == (4, 65, 65)
    maps = image_attention(outputs, nodes)
    assert maps.heads[nodes[2]].shape == (4, 8, 8) and maps.rollout.shape == (8, 8)
    # the class token's attention over the patches and to itself sums to 1 per head
    own = outputs[nodes[2]][:, 0, 0]
    np.testing.assert_allclose(maps.heads[nodes[2]].sum(axis=(1, 2)) + own, 1.0, rtol=1e-5)
