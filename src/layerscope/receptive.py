"""Receptive fields: which input pixels one position of a conv layer's output map can see.

For one output position ``i`` of a layer the field spans input rows ``[i * stride + offset, ... + size)``, before
clipping to the image (``offset`` is negative where padding added zeros above/left of the image); columns alike.

**A graph model** (``layerscope.tracing.trace_model``, what a Run loads) is walked node by node along its torch.fx
graph, running it once on a blank image to know every node's shape, up to the layer. A node's field is composed from
the fields of the nodes it reads:

- convolutions and pooling (modules, and the functional ``F.conv2d``, ``F.max_pool2d`` and ``F.avg_pool2d``, whose
  kernel, stride, padding and dilation are read from the call's arguments in the graph) compose their window;
- adaptive pooling that divides the map evenly is a window of ``in / out`` pixels; pooling to one position, or
  unevenly, means the whole image;
- element-wise modules, functions and methods (activations, batch norm in eval mode, dropout, ``F.relu``,
  ``x.contiguous()``) pass the field through;
- a merge (``add``, ``mul``, ``sub``, ``torch.cat`` along the channels...) takes the union of its inputs' fields:
  the box that covers all of them. Merged maps have the same size, so where their strides agree each output position
  reads the same-numbered position of every input, and the union keeps that stride: ``offset`` is the smallest of
  the inputs' and ``size`` reaches the farthest end. Where strides differ (a branch at stride 2 meeting one at stride
  1 upsampled, say) no box of one stride and size is exact for every position, so the field is the whole image and
  the reason names the merge. Inputs that do not depend on the image (a parameter, a constant) add nothing.

**A transformer's token layer** (patch tokens on a square grid, ``layerscope.capture.token_map``): a position is a
token, and its box is the patch it sits on, the field of the patch embedding's map of that grid size; attention
lets every token read every patch, which ``token_patch`` says.

Anything the arithmetic cannot follow means the layer sees the whole image, and the result says why: a node without
(H, W) positions (flatten, linear, a global pool), a function or method it does not know (interpolation, a
transpose, indexing), a norm over positions (group, layer and instance norm), a circular pad. A module it does not
know that keeps the map's size is taken as element-wise (a user's own scaling layer, say). A leaf module that holds
others (SeedCNN's ``conv1``: conv + ReLU) is composed from the modules it runs.

**Any other model** (one that was not traced) is composed from the modules a forward pass runs up to the layer, in
execution order (forward hooks on one blank image), as one chain: exact for sequential CNNs like the report's; for
parallel branches (residual blocks) the branches are chained, which over-estimates the field; a functional call in
``forward`` that changes the map's size cannot be seen, and means the whole image.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import fx, nn

from layerscope.capture import INPUT, ModuleCall, _resolve, trace_modules
from layerscope.layers import token_layout
from layerscope.tracing import _Call, _Function, _Method, model_graph

__all__ = ["ReceptiveField", "receptive_field"]

# Spatial operations whose fields the arithmetic composes.
_WINDOWED = (nn.Conv2d, nn.MaxPool2d, nn.AvgPool2d)
_ADAPTIVE = (nn.AdaptiveAvgPool2d, nn.AdaptiveMaxPool2d)
# Modules that mix positions in ways a box cannot describe, even when they keep the spatial size.
_MIXING = (
    nn.ConvTranspose2d,
    nn.Upsample,
    nn.Fold,
    nn.Unfold,
    nn.MultiheadAttention,
    nn.Linear,
    nn.Flatten,
    nn.Conv1d,
    nn.Conv3d,
)
# Normalisations whose statistics are taken over the positions of the image itself.
_OVER_POSITIONS = (nn.GroupNorm, nn.LayerNorm, nn.InstanceNorm1d, nn.InstanceNorm2d, nn.InstanceNorm3d)
_SOFTMAX = (nn.Softmax, nn.LogSoftmax, nn.Softmin)

# Functions and tensor methods whose output at a position reads only that position of each tensor input (operators,
# torch functions and tensor methods share names: operator.add and torch.add and x.add are all "add").
_ELEMENTWISE = frozenset(
    {
        *("relu", "relu_", "relu6", "gelu", "silu", "mish", "sigmoid", "sigmoid_", "tanh", "tanh_", "hardswish"),
        *("hardsigmoid", "hardtanh", "hardtanh_", "leaky_relu", "leaky_relu_", "elu", "elu_", "selu", "celu"),
        *("softplus", "dropout", "dropout2d", "alpha_dropout", "feature_alpha_dropout", "identity"),
        *("contiguous", "clone", "detach", "float", "half", "double", "to", "type_as", "neg", "abs", "exp", "log"),
        *("sqrt", "rsqrt", "square", "pow", "clamp", "clamp_", "clip", "clamp_min", "clamp_max", "sign"),
        # merges: the union of their inputs' fields
        *("add", "iadd", "add_", "sub", "isub", "sub_", "mul", "imul", "mul_", "truediv", "itruediv", "div", "div_"),
        *("maximum", "minimum", "where", "addcmul", "lerp"),
    }
)
_CONCATENATIONS = frozenset({"cat", "concat", "concatenate"})
# the positional parameters of the functions whose arguments the arithmetic reads
_PARAMETERS: dict[str, tuple[str, ...]] = {
    "conv2d": ("input", "weight", "bias", "stride", "padding", "dilation", "groups"),
    "max_pool2d": ("input", "kernel_size", "stride", "padding", "dilation", "ceil_mode", "return_indices"),
    "avg_pool2d": ("input", "kernel_size", "stride", "padding", "ceil_mode", "count_include_pad", "divisor_override"),
    "adaptive_avg_pool2d": ("input", "output_size"),
    "adaptive_max_pool2d": ("input", "output_size"),
    **{name: ("tensors", "dim") for name in _CONCATENATIONS},
}

_Window = tuple[tuple[int, int], tuple[int, int], tuple[int, int], tuple[int, int]]


@dataclass(frozen=True)
class ReceptiveField:
    """The input region one output position of a layer sees, per axis (rows, columns)."""

    size: tuple[int, int]  # (h, w) input pixels, before clipping to the image
    stride: tuple[int, int]  # input pixels between neighbouring output positions
    offset: tuple[int, int]  # input (y, x) of the top-left of position (0, 0)'s field; negative under padding
    whole_image: bool = False  # the layer mixes every position (dense layers, flatten, unknown spatial ops)
    reason: str = ""  # why the whole image, in words
    # a transformer's token layer: each position's box is its token's patch, where the token sits on the grid;
    # attention lets the token read every other patch too
    token_patch: bool = False

    def box(self, y: int, x: int, image_hw: Sequence[int]) -> tuple[int, int, int, int]:
        """(top, left, bottom, right) of position (y, x)'s field in an image of ``image_hw``: bottom and right
        exclusive, clipped to the image."""
        h, w = int(image_hw[0]), int(image_hw[1])
        if self.whole_image:
            return 0, 0, h, w
        top = y * self.stride[0] + self.offset[0]
        left = x * self.stride[1] + self.offset[1]
        return max(top, 0), max(left, 0), min(top + self.size[0], h), min(left + self.size[1], w)


_PIXEL = ReceptiveField(size=(1, 1), stride=(1, 1), offset=(0, 0))  # the input's own field


def _pair(value: int | Sequence[int]) -> tuple[int, int]:
    if isinstance(value, int):
        return value, value
    values = tuple(int(v) for v in value)
    return (values[0], values[0]) if len(values) == 1 else (values[0], values[1])


def _window(kernel_size: Any, stride: Any, padding: Any, dilation: Any) -> _Window:
    """(kernel, stride, padding before the first row/column, dilation) of a conv or pooling window; a stride of
    None (or ``[]``, as F.max_pool2d's default arrives) is the kernel's."""
    kernel = _pair(kernel_size)
    step = _pair(stride) if stride not in (None, [], ()) else kernel
    dilation = _pair(dilation)
    if isinstance(padding, str):  # "valid" is none; "same" puts the odd pixel after, so before is the floor
        same = padding == "same"
        pad = ((dilation[0] * (kernel[0] - 1)) // 2 * same, (dilation[1] * (kernel[1] - 1)) // 2 * same)
    else:
        pad = _pair(padding)
    return kernel, step, pad, dilation


def _module_window(module: nn.Conv2d | nn.MaxPool2d | nn.AvgPool2d) -> _Window:
    return _window(module.kernel_size, module.stride, module.padding, getattr(module, "dilation", 1))


def _spatial(shape: Sequence[int] | None) -> tuple[int, int] | None:
    return (int(shape[2]), int(shape[3])) if shape is not None and len(shape) == 4 else None


def _whole(image_hw: tuple[int, int], reason: str) -> ReceptiveField:
    # stride 0 and the image's size make box() cover the image for any position
    return ReceptiveField(size=image_hw, stride=(0, 0), offset=(0, 0), whole_image=True, reason=reason)


def _windowed(field: ReceptiveField, window: _Window) -> ReceptiveField:
    """The field of a window (kernel, stride, padding, dilation) sliding over a map whose positions see ``field``."""
    if field.whole_image:
        return field
    kernel, step, pad, dilation = window
    size, stride, offset = list(field.size), list(field.stride), list(field.offset)
    for a in range(2):
        # a position i of this output sees previous positions [i * step - pad, ... + d * (k - 1)], each of which sees
        # `size` input pixels `stride` apart
        offset[a] -= pad[a] * stride[a]
        size[a] += dilation[a] * (kernel[a] - 1) * stride[a]
        stride[a] *= step[a]
    return ReceptiveField(size=(size[0], size[1]), stride=(stride[0], stride[1]), offset=(offset[0], offset[1]))


def _union(fields: Sequence[ReceptiveField], name: str, image_hw: tuple[int, int]) -> ReceptiveField:
    """The box covering the fields of the same position of maps of one size (a merge's inputs): exact where their
    strides agree; the whole image where they differ (no one stride fits every position)."""
    for field in fields:
        if field.whole_image:
            return field
    if len({f.stride for f in fields}) > 1:
        strides = " and ".join(sorted({f"{f.stride[0]}x{f.stride[1]}" for f in fields}))
        return _whole(image_hw, f"{name!r} merges maps of different strides ({strides} pixels)")
    top = [min(f.offset[a] for f in fields) for a in range(2)]
    end = [max(f.offset[a] + f.size[a] for f in fields) for a in range(2)]
    return ReceptiveField(size=(end[0] - top[0], end[1] - top[1]), stride=fields[0].stride, offset=(top[0], top[1]))


def _adaptive(
    field: ReceptiveField, name: str, received: tuple[int, int], given: tuple[int, int], image_hw: tuple[int, int]
) -> ReceptiveField:
    """Adaptive pooling from ``received`` to ``given`` positions: a plain window where it divides the map evenly."""
    if given == received:
        return field
    if given == (1, 1):
        return _whole(image_hw, f"{name!r} pools all positions into one")
    if received[0] % given[0] or received[1] % given[1]:
        return _whole(image_hw, f"{name!r} pools adaptively into windows of uneven sizes")
    step = (received[0] // given[0], received[1] // given[1])
    return _windowed(field, (step, step, (0, 0), (1, 1)))


def _module_step(
    module: nn.Module,
    name: str,
    field: ReceptiveField,
    received: tuple[int, int] | None,
    given: tuple[int, int] | None,
    image_hw: tuple[int, int],
) -> ReceptiveField:
    """The field after a leaf module that receives a map of ``received`` (H, W) positions and gives ``given``."""
    if field.whole_image:
        return field
    kind = type(module).__name__
    if received is None:
        return _whole(image_hw, f"{name!r} ({kind}) reads a tensor without (H, W) positions")
    if isinstance(module, _MIXING) or given is None:
        return _whole(image_hw, f"{name!r} ({kind}) mixes all positions")
    if isinstance(module, _WINDOWED):
        if isinstance(module, nn.Conv2d) and module.padding_mode == "circular":
            return _whole(image_hw, f"{name!r} pads circularly, wrapping the field around the image")
        return _windowed(field, _module_window(module))
    if isinstance(module, _ADAPTIVE):
        return _adaptive(field, name, received, given, image_hw)
    running = isinstance(module, nn.modules.instancenorm._InstanceNorm) and module.track_running_stats
    if isinstance(module, _OVER_POSITIONS) and not (running and not module.training):
        return _whole(image_hw, f"{name!r} ({kind}) normalises over all positions")
    if isinstance(module, _SOFTMAX) and module.dim not in (1, -3):
        return _whole(image_hw, f"{name!r} ({kind}) normalises along a spatial axis")
    if given != received:
        return _whole(image_hw, f"{name!r} ({kind}) mixes all positions")
    return field  # element-wise: activations, batch norm, dropout, and modules it does not know that keep the size


def _compose(
    calls: Sequence[ModuleCall],
    field: ReceptiveField,
    current: tuple[int, int] | None,
    image_hw: tuple[int, int],
    prefix: str = "",
) -> tuple[ReceptiveField, tuple[int, int] | None]:
    """(field, spatial size) after the leaf module ``calls`` as one chain, from ``field`` on a map of ``current``."""
    for call in calls:
        name = f"{prefix}{call.name}"
        received = _spatial(call.input_shape)
        if received != current:
            return _whole(image_hw, f"the spatial size changes before {name!r} outside any module"), current
        field = _module_step(call.module, name, field, received, _spatial(call.output_shape), image_hw)
        current = _spatial(call.output_shape)
    return field, current


def receptive_field(model: nn.Module, layer: str, image_shape: Sequence[int]) -> ReceptiveField:
    """The receptive field of one output position of ``layer`` for images of ``image_shape`` (C, H, W): along the
    model's graph for a graph model, along the modules' execution order for any other (see the module docstring)."""
    c, h, w = (int(s) for s in image_shape)
    if layer == INPUT:
        return _PIXEL
    if isinstance(model, fx.GraphModule) and model_graph(model) is not None:
        return _graph_field(model, layer, (c, h, w))
    calls = trace_modules(model, (c, h, w), until=layer)
    if not calls or calls[-1].name != layer:
        return _whole((h, w), f"{layer!r} did not run in a forward pass")
    # the leaves that ran before the layer's output was ready (including the layer itself when it is a leaf)
    leaves = [call for call in calls if call.leaf]
    field, current = _compose(leaves, _PIXEL, (h, w), (h, w))
    return _at_layer(field, current, _spatial(calls[-1].output_shape), (h, w))


def _at_layer(
    field: ReceptiveField, current: tuple[int, int] | None, layer_hw: tuple[int, int] | None, image_hw: tuple[int, int]
) -> ReceptiveField:
    if field.whole_image:
        return field
    if layer_hw is None:
        return _whole(image_hw, "the layer's output has no spatial positions")
    if layer_hw != current:
        return _whole(image_hw, "the spatial size changes outside any module")
    return field


# -- along the graph -------------------------------------------------------------------------------------------------


class _Reached(Exception):
    """The walk computed the layer's node: the rest of the forward pass is not needed."""


def _graph_field(model: fx.GraphModule, layer: str, image_shape: tuple[int, int, int]) -> ReceptiveField:
    image_hw = (image_shape[1], image_shape[2])
    nodes = {str(n.target): n for n in model.graph.nodes if n.op == "call_module"}
    if layer not in nodes:
        _resolve(model, [layer])  # an unknown name is a LayerNotFoundError with a hint
        return _whole(image_hw, f"{layer!r} is not a node of the model's graph (a container the graph runs through)")
    walk = _FieldWalk(model, nodes[layer], image_hw)
    first = next(model.parameters(), None)
    device, dtype = (first.device, first.dtype) if first is not None else (torch.device("cpu"), torch.float32)
    was_training = model.training
    model.eval()
    try:
        with torch.inference_mode():
            walk.run(torch.zeros((1, *image_shape), device=device, dtype=dtype))
    except _Reached:
        pass
    finally:
        model.train(was_training)
    field, shape = walk.reached
    return _at_layer(field, _spatial(shape), _spatial(shape), image_hw)


class _FieldWalk(fx.Interpreter):
    """Runs a graph model on one blank image up to ``until``, keeping each node's field: None for a node whose value
    does not depend on the image (a parameter, a shape)."""

    def __init__(self, model: fx.GraphModule, until: fx.Node, image_hw: tuple[int, int]) -> None:
        super().__init__(model)
        self.until = until
        self.image_hw = image_hw
        self.fields: dict[fx.Node, ReceptiveField | None] = {}
        self.reached: tuple[ReceptiveField, tuple[int, ...] | None] = (_PIXEL, None)
        self.grids: dict[tuple[int, ...], ReceptiveField] = {}

    def run_node(self, n: fx.Node) -> Any:
        result = super().run_node(n)
        if n.op == "placeholder":
            self.fields[n] = _PIXEL
        elif n.op in ("call_module", "call_function", "call_method"):
            self.fields[n] = self._field(n, result)
        field = self.fields.get(n)
        if isinstance(result, torch.Tensor) and result.ndim == 4 and field is not None and not field.whole_image:
            self.grids[tuple(result.shape[2:])] = field  # a patch embedding's map, before it is flattened to tokens
        if n is self.until:
            shape = tuple(result.shape) if isinstance(result, torch.Tensor) else None
            field = field or _whole(self.image_hw, f"{n.target!r} does not read the image")
            layout = token_layout(shape[1:]) if shape is not None else None
            patch = self.grids.get((layout[1], layout[1])) if layout is not None else None
            if patch is not None:  # the layer's positions are its patch tokens' (`capture.token_map`)
                field = ReceptiveField(patch.size, patch.stride, patch.offset, token_patch=True)
                shape = (shape[0], shape[2], layout[1], layout[1])  # type: ignore[index]
            self.reached = (field, shape)
            raise _Reached
        return result

    def _field(self, n: fx.Node, result: Any) -> ReceptiveField | None:
        reads = [(a, self.fields[a]) for a in n.all_input_nodes if self.fields.get(a) is not None]
        if not reads:
            return None  # a constant as far as the image goes
        if not isinstance(result, torch.Tensor):
            if not any(isinstance(v, torch.Tensor) for v in (result if isinstance(result, (tuple, list)) else ())):
                return None  # a shape, a size: the same for every image
        whole = next((f for _, f in reads if f is not None and f.whole_image), None)
        if whole is not None:
            return whole  # whatever reads a node that sees the whole image sees it too
        name = str(n.target) if n.op == "call_module" else n.name
        args, kwargs = self.fetch_args_kwargs_from_env(n)
        module = self.module.get_submodule(str(n.target)) if n.op == "call_module" else None
        if isinstance(module, _Call):  # another call of a module: the module's arithmetic
            module = module.__dict__["_target"]
        if module is not None and not isinstance(module, (_Function, _Method)):
            return self._module_field(module, name, reads, args, result)
        if isinstance(module, (_Function, _Method)):
            op = str(module.op)
        else:
            op = str(n.target) if n.op == "call_method" else str(getattr(n.target, "__name__", n.target))
        return self._function_field(op, name, reads, args, kwargs, result)

    def _shape_of(self, node: fx.Node) -> tuple[int, int] | None:
        value = self.env.get(node)
        return _spatial(value.shape) if isinstance(value, torch.Tensor) else None

    def _merged(self, name: str, op: str, reads: Sequence[tuple[fx.Node, Any]], result: Any) -> ReceptiveField:
        """The union of the fields of the nodes ``reads``, each a map of the output's size."""
        given = _spatial(result.shape) if isinstance(result, torch.Tensor) else None
        if given is None:
            return _whole(self.image_hw, f"{name!r} ({op}) mixes all positions")
        if any(self._shape_of(node) != given for node, _ in reads):
            return _whole(self.image_hw, f"{name!r} ({op}) spreads a map of another size over the positions")
        return _union([field for _, field in reads], name, self.image_hw)

    def _module_field(
        self, module: nn.Module, name: str, reads: Sequence[tuple[fx.Node, Any]], args: Sequence[Any], result: Any
    ) -> ReceptiveField:
        x = args[0] if args else None
        if not isinstance(x, torch.Tensor) or len(reads) != 1:
            return self._merged(name, type(module).__name__, reads, result)  # a module of several maps, as a merge
        return self._through(module, name, reads[0][1], x, result)

    def _through(self, module: nn.Module, name: str, field: ReceptiveField, x: torch.Tensor, y: Any) -> ReceptiveField:
        """The field after ``module``, which made ``y`` of the map ``x`` whose positions see ``field``."""
        given = _spatial(y.shape) if isinstance(y, torch.Tensor) else None
        if not list(module.children()):
            return _module_step(module, name, field, _spatial(x.shape), given, self.image_hw)
        if isinstance(module, nn.Sequential):  # a container kept whole as a layer: its modules one by one
            for child_name, child in module.named_children():
                out = child(x)
                if not isinstance(out, torch.Tensor):
                    return _whole(self.image_hw, f"'{name}.{child_name}' does not give one tensor")
                field = self._through(child, f"{name}.{child_name}", field, x, out)
                x = out
            return field
        # another container kept whole: the leaves it runs, as one chain
        calls = [call for call in trace_modules(module, tuple(x.shape[1:])) if call.leaf]
        field, current = _compose(calls, field, _spatial(x.shape), self.image_hw, f"{name}.")
        if not field.whole_image and current != given:
            return _whole(self.image_hw, f"the spatial size changes inside {name!r} outside any module")
        return field

    def _function_field(
        self,
        op: str,
        name: str,
        reads: Sequence[tuple[fx.Node, Any]],
        args: Sequence[Any],
        kwargs: dict[str, Any],
        result: Any,
    ) -> ReceptiveField:
        given = _spatial(result.shape) if isinstance(result, torch.Tensor) else None
        if given is None:
            return _whole(self.image_hw, f"{name!r} ({op}) mixes all positions")
        if op in _ELEMENTWISE:
            return self._merged(name, op, reads, result)
        if op not in _PARAMETERS:
            return _whole(
                self.image_hw, f"{name!r} ({op}) moves or mixes positions in a way the arithmetic does not follow"
            )
        bound = dict(zip(_PARAMETERS[op], args, strict=False)) | kwargs
        if op in _CONCATENATIONS:
            dim = int(bound.get("dim", 0))
            if dim % 4 != 1:
                return _whole(self.image_hw, f"{name!r} ({op}) concatenates along dimension {dim}, not the channels")
            return self._merged(name, op, reads, result)
        x = bound.get("input")
        if not isinstance(x, torch.Tensor) or len(reads) != 1 or _spatial(x.shape) is None:
            return _whole(self.image_hw, f"{name!r} ({op}) reads the image other than as its input map")
        field = reads[0][1]
        if op.startswith("adaptive_"):
            return _adaptive(field, name, _spatial(x.shape) or given, given, self.image_hw)
        if op == "conv2d":
            weight = bound["weight"]  # (out, in / groups, kh, kw)
            window = _window(
                tuple(weight.shape[2:]), bound.get("stride", 1), bound.get("padding", 0), bound.get("dilation", 1)
            )
        else:
            window = _window(
                bound["kernel_size"], bound.get("stride"), bound.get("padding", 0), bound.get("dilation", 1)
            )
        return _windowed(field, window)
