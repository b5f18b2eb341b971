"""Which input pixels drive one unit for one image: guided backpropagation and deconvolution, by captum.

A unit is a dense layer's neuron or a conv layer's channel; a channel is targeted, as in DeepVis, at the position of
its maximum for this image (the activation that ranks it among the top images). The algorithms are captum's
(``NeuronGuidedBackprop``, ``NeuronDeconvolution``); this module picks the target, prepares the image, and leaves the
model as it found it.

Both methods override the gradient of ``nn.ReLU`` modules only; a ``forward`` calling ``F.relu`` gets a plain
gradient there.
"""

from __future__ import annotations

import contextlib
import importlib
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from layerscope.capture import INPUT, ActivationRecorder, _resolve
from layerscope.errors import LayerscopeError

__all__ = ["METHODS", "UnitTarget", "guided_backprop", "image_batch", "unit_target"]

# method -> captum.attr neuron attribution class; later methods (saliency, integrated gradients, ...) join here.
# captum is imported when first used: it takes a second to import, and most commands never need it.
METHODS: dict[str, str] = {"guided": "NeuronGuidedBackprop", "deconv": "NeuronDeconvolution"}


@dataclass(frozen=True)
class UnitTarget:
    """One unit of one layer for one image, as an attribution targets it."""

    layer: str
    unit: int
    position: tuple[int, int] | None  # (y, x) of a conv channel's maximum in the layer's output map; None for dense
    activation: float  # the targeted value: the channel's maximum, or the neuron's value

    def selector(self) -> Callable[[torch.Tensor], torch.Tensor]:
        """captum's ``neuron_selector``: the layer's output (N, ...) -> the targeted value per image (N,)."""
        unit, position = self.unit, self.position
        if position is not None:
            y, x = position
            return lambda output: output[:, unit, y, x]  # (N, C, H, W) -> (N,)
        return lambda output: output.reshape(len(output), -1)[:, unit]  # (N, ...) -> (N, D) -> (N,)


def image_batch(image: torch.Tensor | np.ndarray, device: torch.device | str = "cpu") -> torch.Tensor:
    """(C, H, W) uint8 (0-255) or float (0-1) image -> (1, C, H, W) float32 on ``device``."""
    tensor = torch.as_tensor(np.asarray(image) if not isinstance(image, torch.Tensor) else image)
    if tensor.ndim != 3:
        raise LayerscopeError(f"expected one image of shape (C, H, W), got shape {tuple(tensor.shape)}.")
    scale = 255.0 if tensor.dtype == torch.uint8 else 1.0
    return (tensor.detach().to(device, torch.float32) / scale).unsqueeze(0)


def _device(model: nn.Module) -> torch.device:
    return next((p.device for p in model.parameters()), torch.device("cpu"))


@contextlib.contextmanager
def _eval_mode(model: nn.Module) -> Iterator[None]:
    """Eval mode inside (dropout off, batch-norm statistics fixed), the caller's mode restored after."""
    was_training = model.training
    model.eval()
    try:
        yield
    finally:
        model.train(was_training)


def unit_target(model: nn.Module, x: torch.Tensor, layer: str, unit: int) -> UnitTarget:
    """The target for ``unit`` of ``layer`` on the image batch ``x`` (1, C, H, W): for a conv channel, its maximum."""
    if layer == INPUT:
        raise LayerscopeError("the input has no units to attribute; choose a conv or dense layer.")
    with ActivationRecorder(model, [layer]) as rec, torch.no_grad():
        output = rec.run(x)[layer]
    units = int(output.shape[1]) if output.ndim == 4 else int(output[0].numel())
    if not 0 <= unit < units:
        raise LayerscopeError(f"unit {unit} is out of range: {layer!r} has {units} units (0-{units - 1}).")
    if output.ndim == 4:  # (1, C, H, W): the first maximum of channel `unit`, row-major
        channel = output[0, unit]
        flat = int(channel.flatten().argmax())
        y, x_ = divmod(flat, int(channel.shape[1]))
        return UnitTarget(layer, unit, (y, x_), float(channel[y, x_]))
    return UnitTarget(layer, unit, None, float(output.reshape(len(output), -1)[0, unit]))


def guided_backprop(
    model: nn.Module, image: torch.Tensor | np.ndarray, layer: str, unit: int, method: str = "guided"
) -> np.ndarray:
    """Guided backpropagation (``method="guided"``) or deconvolution (``"deconv"``) of one unit for one image:
    (C, H, W) float32, the image's shape. ``image`` is (C, H, W), float in [0, 1] or uint8."""
    if method not in METHODS:
        raise LayerscopeError(f"unknown method {method!r}; choose one of {', '.join(METHODS)}.")
    module = _resolve(model, [layer])[layer]
    x = image_batch(image, _device(model))
    with _eval_mode(model):
        target = unit_target(model, x, layer, unit)
        # a leaf that requires grad (captum would otherwise set it and warn); the caller's image is untouched
        x = x.clone().requires_grad_(True)
        with warnings.catch_warnings():
            # captum announces, on every call, that it hooks the ReLU modules and removes the hooks afterwards
            warnings.filterwarnings("ignore", message="Setting backward hooks on ReLU", category=UserWarning)
            algorithm = getattr(importlib.import_module("captum.attr"), METHODS[method])
            attribution = algorithm(model, module).attribute(x, neuron_selector=target.selector())
    return attribution[0].detach().cpu().numpy().astype(np.float32)  # (1, C, H, W) -> (C, H, W)
