"""Receptive fields: which input pixels one position of a conv layer's output map can see.

Found by arithmetic over the modules a forward pass actually runs up to the layer, in execution order (recorded
with forward hooks on one blank image). Convolutions and pooling compose their kernel, stride, padding and dilation;
element-wise modules (activations, batch norm, dropout) pass the field through. Anything that changes the spatial
size in a way the arithmetic cannot follow (flatten, linear, upsampling, a functional call in ``forward``) means the
layer sees the whole image, and the result says so.

For one output position ``i`` of a layer the field spans input rows ``[i * stride + offset, ... + size)``, before
clipping to the image (``offset`` is negative where padding added zeros above/left of the image).

Modules are composed as one chain in the order they run: exact for sequential CNNs like the report's; for a model
with parallel branches (residual blocks) the branches are chained, which over-estimates the field.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from torch import nn

from layerscope.capture import INPUT, ModuleCall, trace_modules

__all__ = ["ReceptiveField", "receptive_field"]

# Spatial operations whose fields the arithmetic composes.
_WINDOWED = (nn.Conv2d, nn.MaxPool2d, nn.AvgPool2d)
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


@dataclass(frozen=True)
class ReceptiveField:
    """The input region one output position of a layer sees, per axis (rows, columns)."""

    size: tuple[int, int]  # (h, w) input pixels, before clipping to the image
    stride: tuple[int, int]  # input pixels between neighbouring output positions
    offset: tuple[int, int]  # input (y, x) of the top-left of position (0, 0)'s field; negative under padding
    whole_image: bool = False  # the layer mixes every position (dense layers, flatten, unknown spatial ops)
    reason: str = ""  # why the whole image, in words

    def box(self, y: int, x: int, image_hw: Sequence[int]) -> tuple[int, int, int, int]:
        """(top, left, bottom, right) of position (y, x)'s field in an image of ``image_hw``: bottom and right
        exclusive, clipped to the image."""
        h, w = int(image_hw[0]), int(image_hw[1])
        if self.whole_image:
            return 0, 0, h, w
        top = y * self.stride[0] + self.offset[0]
        left = x * self.stride[1] + self.offset[1]
        return max(top, 0), max(left, 0), min(top + self.size[0], h), min(left + self.size[1], w)


def _pair(value: int | Sequence[int]) -> tuple[int, int]:
    if isinstance(value, int):
        return value, value
    values = tuple(int(v) for v in value)
    return (values[0], values[0]) if len(values) == 1 else (values[0], values[1])


def _window(
    module: nn.Conv2d | nn.MaxPool2d | nn.AvgPool2d,
) -> tuple[tuple[int, int], tuple[int, int], tuple[int, int], tuple[int, int]]:
    """(kernel, stride, padding before the first row/column, dilation) of a conv or pooling module."""
    kernel = _pair(module.kernel_size)
    stride = _pair(module.stride or module.kernel_size)
    dilation = _pair(getattr(module, "dilation", 1))
    padding = module.padding
    if isinstance(padding, str):  # "valid" is none; "same" puts the odd pixel after, so before is the floor
        same = padding == "same"
        pad = ((dilation[0] * (kernel[0] - 1)) // 2 * same, (dilation[1] * (kernel[1] - 1)) // 2 * same)
    else:
        pad = _pair(padding)
    return kernel, stride, pad, dilation


def _spatial(shape: tuple[int, ...] | None) -> tuple[int, int] | None:
    return (shape[2], shape[3]) if shape is not None and len(shape) == 4 else None


def _whole(image_hw: tuple[int, int], reason: str) -> ReceptiveField:
    # stride 0 and the image's size make box() cover the image for any position
    return ReceptiveField(size=image_hw, stride=(0, 0), offset=(0, 0), whole_image=True, reason=reason)


def _compose(calls: list[ModuleCall], image_hw: tuple[int, int], layer_shape: tuple[int, ...] | None) -> ReceptiveField:
    size, stride, offset = [1, 1], [1, 1], [0, 0]
    current: tuple[int, int] | None = image_hw  # spatial size the next module should receive
    for call in calls:
        module = call.module
        received = _spatial(call.input_shape)
        if received != current:
            return _whole(image_hw, f"the spatial size changes before {call.name!r} outside any module")
        if isinstance(module, _WINDOWED):
            if isinstance(module, nn.Conv2d) and module.padding_mode == "circular":
                return _whole(image_hw, f"{call.name!r} pads circularly, wrapping the field around the image")
            kernel, step, pad, dilation = _window(module)
            for a in range(2):
                # a position i of this output sees previous positions [i * step - pad, ... + d * (k - 1)], each of
                # which sees `size` input pixels `stride` apart
                offset[a] -= pad[a] * stride[a]
                size[a] += dilation[a] * (kernel[a] - 1) * stride[a]
                stride[a] *= step[a]
        elif isinstance(module, (nn.AdaptiveAvgPool2d, nn.AdaptiveMaxPool2d)):
            if _spatial(call.output_shape) != received:
                return _whole(image_hw, f"{call.name!r} pools adaptively")
        elif isinstance(module, _MIXING) or _spatial(call.output_shape) != received:
            return _whole(image_hw, f"{call.name!r} ({type(module).__name__}) mixes all positions")
        current = _spatial(call.output_shape)
    if _spatial(layer_shape) is None:
        return _whole(image_hw, "the layer's output has no spatial positions")
    if _spatial(layer_shape) != current:
        return _whole(image_hw, "the spatial size changes outside any module")
    return ReceptiveField(size=(size[0], size[1]), stride=(stride[0], stride[1]), offset=(offset[0], offset[1]))


def receptive_field(model: nn.Module, layer: str, image_shape: Sequence[int]) -> ReceptiveField:
    """The receptive field of one output position of ``layer`` for images of ``image_shape`` (C, H, W)."""
    c, h, w = (int(s) for s in image_shape)
    if layer == INPUT:
        return ReceptiveField(size=(1, 1), stride=(1, 1), offset=(0, 0))
    calls = trace_modules(model, (c, h, w), until=layer)
    if not calls or calls[-1].name != layer:
        return _whole((h, w), f"{layer!r} did not run in a forward pass")
    # the leaves that ran before the layer's output was ready (including the layer itself when it is a leaf)
    leaves = [call for call in calls if call.leaf]
    return _compose(leaves, (h, w), calls[-1].output_shape)
