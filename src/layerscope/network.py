"""The weights between consecutive layers of a Run, as a graph: which unit feeds which, and how strongly.

The weighted module that produces a layer is the last ``Linear``/``Conv2d`` inside the layer's module (or the module
itself); batch norm, activations, dropout and pooling are not weighted modules. A connection from the previous layer
``src`` to ``dst`` is one of

    "conv"             Conv2d from a conv layer or the image: weight (C_out, C_in, kh, kw) (groups spread out)
    "dense_from_conv"  Linear over a flattened conv layer or image: weight (D_out, C, H, W)
    "dense"            Linear from a dense layer: weight (D_out, D_in)
    "identity"         no weights, the same units (pooling, batch norm): unit i feeds unit i
    "none"             the weights cannot be told apart from what else runs in between; ``note`` says why

A connection is trusted only when the modules that run between ``src``'s output and the weighted module are
element-wise, flatten or pooling, checked on a forward pass of one blank image. Batch norm between them (``src`` ->
BatchNorm -> ReLU -> Linear) rescales each unit of ``src``: its eval-mode scale and shift are folded into the weights
and bias, so the edges are the effective weights from ``src``'s units, and ``note`` says so.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from layerscope.capture import LayerInfo, ModuleCall, _resolve, trace_modules
from layerscope.errors import LayerNotFoundError, LayerscopeError
from layerscope.graph import ModelGraph
from layerscope.tracing import keeps_units, model_graph

__all__ = [
    "KINDS",
    "Connection",
    "IncomingWeights",
    "channel_edges",
    "collapse_units",
    "connections",
    "incoming_weights",
    "strongest_edges",
    "weighted_module",
]

KINDS = ("conv", "dense_from_conv", "dense", "identity", "none")
_NORMS = (nn.BatchNorm1d, nn.BatchNorm2d)
_WEIGHTED = (nn.Linear, nn.Conv2d)
# Modules that may run between a layer and the weighted module reading it without changing which unit feeds which.
_TRANSPARENT = (
    nn.ReLU,
    nn.LeakyReLU,
    nn.PReLU,
    nn.ELU,
    nn.GELU,
    nn.SiLU,
    nn.Sigmoid,
    nn.Tanh,
    nn.Softplus,
    nn.Hardtanh,
    nn.ReLU6,
    nn.Identity,
    nn.Dropout,
    nn.Dropout2d,
    nn.BatchNorm1d,
    nn.BatchNorm2d,
    nn.Flatten,
    nn.MaxPool2d,
    nn.AvgPool2d,
)


@dataclass(frozen=True)
class Connection:
    """The weights from layer ``src`` into layer ``dst``; see the module docstring for the kinds."""

    src: str
    dst: str
    kind: str
    weight: np.ndarray | None  # float32; shape by kind, None for "identity" and "none"
    bias: np.ndarray | None = None  # (D_out,) float32
    module: str | None = None  # dotted name of the weighted module
    src_units: int = 0  # channels of a conv layer or image, neurons of a dense layer
    dst_units: int = 0
    note: str = ""  # why "none", or that batch norm was folded in


@dataclass(frozen=True)
class IncomingWeights:
    """What feeds one unit. ``kind``: "kernel" (C_in, kh, kw) from the image, "kernels" (C_in, kh, kw) from a conv
    layer, "maps" (C, H, W) for a dense unit over a conv layer or the image, "bars" (D_in,) from a dense layer,
    "identity" (src_units,) one-hot, "none" (0,)."""

    src: str
    kind: str
    array: np.ndarray
    bias: float | None


def _units(info: LayerInfo) -> int:
    return int(info.shape[0])


def weighted_module(model: nn.Module, layer: str) -> tuple[str, nn.Module] | None:
    """(dotted name, module) of the last Linear/Conv2d inside ``layer``'s module (or the module itself), or None."""
    root = _resolve(model, [layer])[layer]
    found = [(f"{layer}.{name}" if name else layer, m) for name, m in root.named_modules() if isinstance(m, _WEIGHTED)]
    return found[-1] if found else None


def _numpy(tensor: torch.Tensor) -> np.ndarray:
    # out of autograd and off the device; a copy, so the arrays never alias the model's parameters
    return tensor.detach().cpu().float().numpy().copy()


def _between(calls: list[ModuleCall], src: str | None, dst: str) -> list[ModuleCall] | None:
    """The leaf calls after ``src`` finished (from the start for the image) and before ``dst`` finished; None when
    either did not run (once each)."""
    names = [call.name for call in calls]
    if names.count(dst) != 1 or (src is not None and names.count(src) != 1):
        return None
    start = names.index(src) + 1 if src is not None else 0
    return [call for call in calls[start : names.index(dst)] if call.leaf]


def _reads_only(graph: ModelGraph, dst: str, src: str) -> bool:
    """Whether ``dst`` computes from ``src`` through a chain of nodes that each read one node: no branch, add or
    concatenation between them (layers consecutive in a Run of a branching model need not be)."""
    node = dst
    while node in graph:
        inputs = graph.node(node).inputs
        if len(inputs) != 1:
            return False
        node = inputs[0]
        if node == src:
            return True
    return False


def _connect(model: nn.Module, calls: list[ModuleCall], src: LayerInfo, dst: LayerInfo) -> Connection:
    spatial = src.kind in ("image", "conv")

    def none(note: str) -> Connection:
        return Connection(
            src.name, dst.name, "none", None, src_units=_units(src), dst_units=_units(dst), note=f"{note}."
        )

    graph = model_graph(model)
    if graph is not None and not _reads_only(graph, dst.name, src.name):
        return none(f"{dst.name!r} does not compute from {src.name!r} alone (see the model graph)")
    found = weighted_module(model, dst.name)
    end = found[0] if found is not None else dst.name
    between = _between(calls, None if src.kind == "image" else src.name, end)
    if between is None:
        return none(f"{end!r} or {src.name!r} did not run exactly once in a forward pass")
    if between and between[-1].name == end:  # the weighted module (or a weightless dst) itself is a leaf
        between = between[:-1]
    other = [call.name for call in between if not (isinstance(call.module, _TRANSPARENT) or keeps_units(call.module))]
    if other:
        return none(f"{', '.join(other)} run between {src.name!r} and {end!r}")
    norms = [call for call in between if isinstance(call.module, _NORMS)]
    affine = _fold_norms(norms, src) if norms else None
    if isinstance(affine, str):
        return none(affine)
    if found is None:
        if _units(src) == _units(dst) and spatial == (dst.kind == "conv"):
            return Connection(src.name, dst.name, "identity", None, src_units=_units(src), dst_units=_units(dst))
        return none(f"{dst.name!r} has no Linear or Conv2d and changes the number of units")
    name, module = found
    assert isinstance(module, (nn.Linear, nn.Conv2d))
    bias = _numpy(module.bias) if module.bias is not None else None

    def make(kind: str, weight: np.ndarray) -> Connection:
        note = ""
        if affine is not None:  # batch norm between: x -> scale * x + shift per unit of src, folded into w and b
            scale, shift = affine
            shape = (1, *scale.shape) if kind != "conv" else (1, scale.shape[0], 1, 1)
            if kind == "conv" and scale.shape[1:] != (1, 1):
                return none(f"{', '.join(c.name for c in norms)} normalise each position, not each channel")
            folded = weight * scale.reshape(shape)
            flat_shift = shift.reshape(shape) if kind != "conv" else shift[:, 0, 0].reshape(shape)
            # the shift adds a constant to every output: sum of weight x shift (for conv, away from zero padding)
            extra = (weight * flat_shift).reshape(len(weight), -1).sum(1)
            folded_bias = (bias if bias is not None else 0) + extra
            weight, note = (
                folded.astype(np.float32),
                (f"batch norm {', '.join(repr(c.name) for c in norms)} folded into the weights and bias."),
            )
            return Connection(
                src.name, dst.name, kind, weight, folded_bias.astype(np.float32), name, _units(src), _units(dst), note
            )
        return Connection(src.name, dst.name, kind, weight, bias, name, _units(src), _units(dst))

    if isinstance(module, nn.Conv2d):
        if not spatial or module.in_channels != _units(src):
            return none(f"{name!r} takes {module.in_channels} channels, {src.name!r} has shape {src.shape}")
        # (C_out, C_in / groups, kh, kw) -> (C_out, C_in, kh, kw): zeros between channels of different groups
        grouped = _numpy(module.weight)
        weight = np.zeros((module.out_channels, module.in_channels, *grouped.shape[2:]), np.float32)
        c_out, c_in = module.out_channels // module.groups, module.in_channels // module.groups
        for g in range(module.groups):
            weight[g * c_out : (g + 1) * c_out, g * c_in : (g + 1) * c_in] = grouped[g * c_out : (g + 1) * c_out]
        return make("conv", weight)
    if module.in_features != src.dims:
        return none(f"{name!r} takes {module.in_features} inputs, {src.name!r} has {src.dims}")
    weight = _numpy(module.weight)  # (D_out, D_in)
    if spatial:  # (D_out, C*H*W) -> (D_out, C, H, W), the order nn.Flatten uses
        return make("dense_from_conv", weight.reshape(-1, *src.shape))
    return make("dense", weight)


def _fold_norms(norms: list[ModuleCall], src: LayerInfo) -> tuple[np.ndarray, np.ndarray] | str:
    """(scale, shift) over ``src``'s units, shaped (C, 1, 1) per channel or like ``src.shape`` per element, of the
    eval-mode batch norms that run between ``src`` and a weighted module; or why they cannot be folded."""
    spatial = src.kind in ("image", "conv")
    scale = np.ones((src.shape[0], 1, 1) if spatial else src.shape, np.float64)
    shift = np.zeros_like(scale)
    for call in norms:
        bn = call.module
        assert isinstance(bn, nn.modules.batchnorm._BatchNorm)
        if bn.running_mean is None or bn.running_var is None:
            return f"batch norm {call.name!r} keeps no running statistics, so its effect depends on the batch"
        mean = bn.running_mean.detach().cpu().double().numpy()
        s = 1.0 / np.sqrt(bn.running_var.detach().cpu().double().numpy() + bn.eps)
        t = -mean * s
        if bn.weight is not None and bn.bias is not None:
            gamma, beta = bn.weight.detach().cpu().double().numpy(), bn.bias.detach().cpu().double().numpy()
            s, t = s * gamma, t * gamma + beta
        if isinstance(bn, nn.BatchNorm2d) and spatial and bn.num_features == src.shape[0]:
            s, t = s[:, None, None], t[:, None, None]
        elif isinstance(bn, nn.BatchNorm1d) and bn.num_features == src.dims:
            s, t = s.reshape(src.shape), t.reshape(src.shape)
        else:
            return f"batch norm {call.name!r} normalises {bn.num_features} features, {src.name!r} has shape {src.shape}"
        scale, shift = scale * s, shift * s + t
    return scale, shift


def connections(model: nn.Module, layers: Sequence[LayerInfo]) -> list[Connection]:
    """The connection into each layer from the one before it (``layers`` as a Run lists them, input first)."""
    if not layers or layers[0].kind != "image":
        raise LayerscopeError("the layer list must start with the input; pass run.layers or describe_layers(...).")
    calls = trace_modules(model, layers[0].shape)
    return [_connect(model, calls, src, dst) for src, dst in zip(layers[:-1], layers[1:], strict=True)]


def channel_edges(connection: Connection) -> np.ndarray:
    """(dst_units, src_units) float32: one signed number per pair of units. Conv: the kernel's sum (the response to a
    uniform input); dense over a conv layer: the sum over positions; dense: the weight; identity: the identity."""
    kind, weight = connection.kind, connection.weight
    if kind == "identity":
        return np.eye(connection.dst_units, dtype=np.float32)
    if weight is None:
        raise LayerscopeError(
            f"no known weights from {connection.src!r} to {connection.dst!r} ({connection.note or kind}); "
            "only conv, dense and identity connections have edges."
        )
    if kind in ("conv", "dense_from_conv"):  # (D_out, C, kh|H, kw|W) -> (D_out, C)
        return weight.sum((2, 3)).astype(np.float32)
    return weight.astype(np.float32)


def collapse_units(edges: np.ndarray, src: bool = False, dst: bool = False) -> np.ndarray:
    """(dst_units, src_units) edges as float64, summed over the source layer's units (``src``) and/or the destination
    layer's (``dst``) into one: the net weight of a layer drawn as a single node. Summed dimensions are kept with
    length 1, e.g. ``src`` gives (dst_units, 1)."""
    edges = np.asarray(edges, dtype=np.float64)
    if src:
        edges = edges.sum(1, keepdims=True)
    if dst:
        edges = edges.sum(0, keepdims=True)
    return edges


def strongest_edges(edges: np.ndarray, per_node: int, threshold: float = 0.0) -> np.ndarray:
    """(n, 2) int64 indices (dst, src) of the edges worth drawing: each node's ``per_node`` strongest incoming and
    outgoing edges by |w|, among those with |w| >= ``threshold`` x the largest |w|. ``edges`` is (dst_units,
    src_units), e.g. from ``channel_edges``; ``per_node`` 0 keeps none."""
    strength = np.abs(edges)
    if per_node <= 0 or strength.size == 0:
        return np.zeros((0, 2), np.int64)
    keep = strength >= threshold * float(strength.max())
    chosen = np.zeros_like(keep)
    k_in = min(per_node, strength.shape[1])
    k_out = min(per_node, strength.shape[0])
    rows = np.arange(strength.shape[0])[:, None]
    chosen[rows, np.argpartition(-strength, k_in - 1, axis=1)[:, :k_in]] = True
    cols = np.arange(strength.shape[1])[None, :]
    chosen[np.argpartition(-strength, k_out - 1, axis=0)[:k_out, :], cols] = True
    return np.argwhere(chosen & keep).astype(np.int64)


def incoming_weights(model: nn.Module, layers: Sequence[LayerInfo], layer: str, unit: int) -> IncomingWeights:
    """The weights feeding ``unit`` of ``layer`` (and its bias), shaped to draw: see ``IncomingWeights``."""
    position = next((i for i, info in enumerate(layers) if info.name == layer), None)
    if position is None:
        names = ", ".join(info.name for info in layers)
        raise LayerNotFoundError(f"unknown layer {layer!r}; the layers are {names}.")
    if position == 0:
        raise LayerscopeError("the input has no incoming weights; choose a conv or dense layer.")
    units = _units(layers[position])
    if not 0 <= unit < units:
        raise LayerscopeError(f"unit {unit} is out of range: {layer!r} has {units} units (0-{units - 1}).")
    connection = _connect(model, trace_modules(model, layers[0].shape), layers[position - 1], layers[position])
    bias = float(connection.bias[unit]) if connection.bias is not None else None
    if connection.kind == "identity":
        return IncomingWeights(connection.src, "identity", np.eye(units, dtype=np.float32)[unit], None)
    if connection.weight is None:
        return IncomingWeights(connection.src, "none", np.zeros(0, np.float32), None)
    kind = {
        "conv": "kernel" if layers[position - 1].kind == "image" else "kernels",
        "dense_from_conv": "maps",
        "dense": "bars",
    }[connection.kind]
    return IncomingWeights(connection.src, kind, connection.weight[unit], bias)
