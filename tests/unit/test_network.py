"""Weights as a graph: connection kinds and shapes on the report's CNN, an MLP, and models with batch norm."""

import numpy as np
import pytest
import torch
from torch import nn

from layerscope.capture import describe_layers
from layerscope.errors import LayerNotFoundError, LayerscopeError
from layerscope.models.seed_cnn import SeedCNN
from layerscope.network import (
    channel_edges,
    collapse_units,
    connections,
    incoming_weights,
    strongest_edges,
    weighted_module,
)


@pytest.fixture(scope="module")
def seed():
    torch.manual_seed(0)
    model = SeedCNN()
    return model, describe_layers(model, (1, 28, 28))


def test_seed_cnn_connections(seed):
    model, layers = seed
    found = {c.dst: c for c in connections(model, layers)}
    assert [(c.src, c.dst, c.kind) for c in found.values()] == [
        ("input", "conv1", "conv"),
        ("conv1", "conv2", "conv"),
        ("conv2", "pool", "identity"),
        ("pool", "fc1", "dense_from_conv"),
        ("fc1", "fc2", "dense"),
        ("fc2", "out", "dense"),
    ]
    assert found["conv1"].weight.shape == (16, 1, 3, 3) and found["conv2"].weight.shape == (32, 16, 3, 3)
    assert found["pool"].weight is None and found["pool"].dst_units == 32
    assert found["fc1"].weight.shape == (64, 32, 12, 12) and found["fc1"].module == "fc1.1"
    assert found["fc2"].weight.shape == (64, 64) and found["out"].weight.shape == (10, 64)
    np.testing.assert_array_equal(found["conv2"].weight, model.conv2[0].weight.detach().numpy())
    np.testing.assert_array_equal(found["out"].bias, model.out.bias.detach().numpy())
    # the flattened order: fc1's input k is pool's (c, y, x) with k = c * 144 + y * 12 + x
    np.testing.assert_array_equal(found["fc1"].weight[5, 2, 3, 4], model.fc1[1].weight[5, 2 * 144 + 3 * 12 + 4].item())
    assert not any(m._forward_hooks for m in model.modules())


def test_channel_edges(seed):
    model, layers = seed
    found = {c.dst: c for c in connections(model, layers)}
    conv2 = channel_edges(found["conv2"])
    assert conv2.shape == (32, 16) and conv2.dtype == np.float32
    np.testing.assert_allclose(conv2[7, 3], model.conv2[0].weight[7, 3].sum().item(), rtol=1e-6)
    np.testing.assert_array_equal(channel_edges(found["pool"]), np.eye(32))
    fc1 = channel_edges(found["fc1"])
    assert fc1.shape == (64, 32)
    np.testing.assert_allclose(fc1[1, 0], model.fc1[1].weight[1, :144].sum().item(), rtol=1e-5)
    np.testing.assert_array_equal(channel_edges(found["fc2"]), model.fc2[0].weight.detach().numpy())


def test_incoming_weights(seed):
    model, layers = seed
    expected = {
        "conv1": ("kernel", (1, 3, 3)),
        "conv2": ("kernels", (16, 3, 3)),
        "pool": ("identity", (32,)),
        "fc1": ("maps", (32, 12, 12)),
        "fc2": ("bars", (64,)),
        "out": ("bars", (64,)),
    }
    for layer, (kind, shape) in expected.items():
        weights = incoming_weights(model, layers, layer, 3)
        assert (weights.kind, weights.array.shape) == (kind, shape), layer
    conv1 = incoming_weights(model, layers, "conv1", 3)
    np.testing.assert_array_equal(conv1.array, model.conv1[0].weight[3].detach().numpy())
    assert conv1.bias == pytest.approx(model.conv1[0].bias[3].item())
    assert incoming_weights(model, layers, "pool", 3).bias is None
    assert incoming_weights(model, layers, "pool", 3).array.argmax() == 3
    with pytest.raises(LayerscopeError, match="out of range"):
        incoming_weights(model, layers, "out", 10)
    with pytest.raises(LayerscopeError, match="input"):
        incoming_weights(model, layers, "input", 0)
    with pytest.raises(LayerNotFoundError, match="fc3"):
        incoming_weights(model, layers, "fc3", 0)


def test_mlp():
    model = nn.Sequential(nn.Flatten(), nn.Linear(784, 32), nn.ReLU(), nn.Linear(32, 10))
    layers = describe_layers(model, (1, 28, 28))
    assert [info.name for info in layers] == ["input", "1", "3"]
    first, second = connections(model, layers)
    assert (first.kind, first.weight.shape) == ("dense_from_conv", (32, 1, 28, 28))
    assert (second.kind, second.weight.shape) == ("dense", (10, 32))
    assert incoming_weights(model, layers, "1", 0).kind == "maps"


def test_batch_norm_is_not_the_weighted_module():
    model = nn.Sequential(
        nn.Conv2d(1, 4, 3),
        nn.BatchNorm2d(4),
        nn.ReLU(),
        nn.Conv2d(4, 6, 3),
        nn.BatchNorm2d(6),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Flatten(),
        nn.Linear(6 * 4 * 4, 5),
        nn.BatchNorm1d(5),
    ).train()
    layers = describe_layers(model, (1, 12, 12))
    assert model.training  # describe_layers left it as it was
    assert [info.name for info in layers] == ["input", "0", "1", "3", "4", "6", "8", "9"]
    kinds = [(c.dst, c.kind) for c in connections(model, layers)]
    assert kinds == [
        ("0", "conv"),
        ("1", "identity"),
        ("3", "conv"),
        ("4", "identity"),
        ("6", "identity"),
        ("8", "dense_from_conv"),
        ("9", "identity"),
    ]
    assert model.training


class Blocks(nn.Module):
    """Layers named by blocks: conv + batch norm + ReLU in one, and one block holding two convs."""

    layerscope_layers = ("block1", "block2", "head")

    def __init__(self) -> None:
        super().__init__()
        self.block1 = nn.Sequential(nn.Conv2d(1, 4, 3), nn.BatchNorm2d(4), nn.ReLU())
        self.block2 = nn.Sequential(nn.Conv2d(4, 4, 3, padding=1), nn.ReLU(), nn.Conv2d(4, 4, 3, padding=1))
        self.head = nn.Sequential(nn.Flatten(), nn.Linear(4 * 6 * 6, 3))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.block2(self.block1(x)))


def test_blocks_and_what_cannot_be_told():
    model = Blocks()
    layers = describe_layers(model, (1, 8, 8))
    assert weighted_module(model, "block1")[0] == "block1.0"
    assert weighted_module(model, "block2")[0] == "block2.2"
    block1, block2, head = connections(model, layers)
    assert (block1.kind, block1.module, block1.weight.shape) == ("conv", "block1.0", (4, 1, 3, 3))
    # block2's last conv reads block2.0's output, not block1's: its weights are not the block1 -> block2 edges
    assert block2.kind == "none" and "block2.0" in block2.note and block2.weight is None
    with pytest.raises(LayerscopeError, match="no known weights"):
        channel_edges(block2)
    assert incoming_weights(model, layers, "block2", 0).kind == "none"
    assert head.kind == "dense_from_conv" and head.weight.shape == (3, 4, 6, 6)


def test_grouped_conv_is_spread_over_all_input_channels():
    model = nn.Sequential(nn.Conv2d(1, 4, 1), nn.Conv2d(4, 6, 3, groups=2))
    layers = describe_layers(model, (1, 6, 6))
    _, grouped = connections(model, layers)
    assert grouped.weight.shape == (6, 4, 3, 3)
    assert (grouped.weight[:3, 2:] == 0).all() and (grouped.weight[3:, :2] == 0).all()
    np.testing.assert_array_equal(grouped.weight[4, 2:], model[1].weight[4].detach().numpy())


def test_from_a_run(tiny_run):
    found = connections(tiny_run.load_model(), tiny_run.layers)
    assert [c.kind for c in found] == ["conv", "conv", "identity", "dense_from_conv", "dense", "dense"]
    assert all(not isinstance(c.weight, torch.Tensor) for c in found)


def test_batch_norm_between_layers_is_folded_into_the_weights():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(4, 3), nn.BatchNorm1d(3), nn.Linear(3, 2)).eval()
    bn = model[2]
    bn.running_mean.uniform_(-1, 1)
    bn.running_var.uniform_(0.5, 2)
    bn.weight.data.uniform_(-2, 2)
    bn.bias.data.uniform_(-1, 1)
    layers = describe_layers(model, (1, 2, 2), ["1", "3"])
    _, into = connections(model, layers)
    assert into.kind == "dense" and "batch norm '2' folded" in into.note
    x = torch.rand(5, 1, 2, 2)
    hidden = model[1](model[0](x)).detach().numpy()
    np.testing.assert_allclose(hidden @ into.weight.T + into.bias, model(x).detach().numpy(), rtol=1e-4, atol=1e-5)


def test_batch_norm_between_convs_scales_each_input_channel():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(1, 3, 3), nn.BatchNorm2d(3), nn.ReLU(), nn.Conv2d(3, 2, 1)).eval()
    model[1].running_var.fill_(4.0)  # scale 1/2 per channel
    layers = describe_layers(model, (1, 5, 5), ["0", "3"])
    _, into = connections(model, layers)
    assert into.kind == "conv"
    np.testing.assert_allclose(into.weight, model[3].weight.detach().numpy() / np.sqrt(4 + 1e-5), rtol=1e-5)


def _edges(pairs):
    return {(int(d), int(s)) for d, s in pairs}


def test_each_node_keeps_its_strongest_incoming_and_outgoing_edges():
    # (dst 3, src 4): each row's and each column's largest |w| is marked; the rest are small
    edges = np.array(
        [
            [0.1, -5.0, 0.2, 0.1],
            [0.3, 0.1, 0.2, 4.0],
            [-3.0, 0.2, 0.1, 0.1],
        ]
    )
    kept = strongest_edges(edges, 1)
    assert kept.shape[1] == 2 and kept.dtype == np.int64
    # incoming: (0, 1), (1, 3), (2, 0); outgoing: src 0 -> 2, src 1 -> 0, src 2 -> 0 or 1 (0.2 both), src 3 -> 1
    assert {(0, 1), (1, 3), (2, 0)} <= _edges(kept)
    assert _edges(kept) - {(0, 1), (1, 3), (2, 0)} in ({(0, 2)}, {(1, 2)})
    every = strongest_edges(edges, 4)
    assert _edges(every) == {(d, s) for d in range(3) for s in range(4)}  # more per node than there are: all


def test_the_threshold_drops_weak_edges_and_per_node_zero_keeps_none():
    edges = np.array([[1.0, -0.5], [0.05, -0.2]])
    assert _edges(strongest_edges(edges, 2)) == {(0, 0), (0, 1), (1, 0), (1, 1)}
    assert _edges(strongest_edges(edges, 2, threshold=0.3)) == {(0, 0), (0, 1)}  # |w| >= 0.3 x 1.0
    assert _edges(strongest_edges(edges, 2, threshold=0.1)) == {(0, 0), (0, 1), (1, 1)}  # 0.05 < 0.1
    assert strongest_edges(edges, 0).shape == (0, 2)
    assert strongest_edges(np.zeros((0, 3)), 2).shape == (0, 2)


def test_collapsing_a_layer_sums_the_edges_over_its_units():
    edges = np.arange(6, dtype=np.float32).reshape(2, 3)  # (dst 2, src 3)
    np.testing.assert_array_equal(collapse_units(edges), edges)
    assert collapse_units(edges).dtype == np.float64
    np.testing.assert_array_equal(collapse_units(edges, src=True), [[3.0], [12.0]])
    np.testing.assert_array_equal(collapse_units(edges, dst=True), [[3.0, 5.0, 7.0]])
    np.testing.assert_array_equal(collapse_units(edges, src=True, dst=True), [[15.0]])
    # a collapsed layer's edge is the net sum, so opposite signs cancel: dst 0's (2 - 2 = 0) falls under the threshold
    net = collapse_units(np.array([[2.0, -2.0], [1.0, 0.5]]), src=True)
    assert _edges(strongest_edges(net, 1, threshold=0.5)) == {(1, 0)}
