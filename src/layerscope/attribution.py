"""Which input pixels drive a decision or a unit for one image, by captum: class attributions and unit attributions.

Class attributions explain one class score (the prediction by default) over the input: saliency (absolute
gradients), integrated gradients from a black image, Grad-CAM on a conv layer (upsampled to the input), and
occlusion. ``randomisation_check`` is Adebayo et al.'s (2018) sanity check of a method: re-initialise the model's
layers one more at a time from the output down, and see whether the map changes (a method that ignores the weights
does not pass).

Unit attributions explain one unit: guided backpropagation and deconvolution. A unit is a dense layer's neuron or a
conv layer's channel; a channel is targeted, as in DeepVis, at the position of its maximum for this image (the
activation that ranks it among the top images).

The algorithms are captum's (never rewritten here); this module picks the target, prepares the image, and leaves the
model as it found it: mode, parameters and hooks. Guided backprop and deconvolution override the gradient of ReLUs:
captum overrides ``nn.ReLU`` modules, and in a graph model (``layerscope.tracing``) the ReLU nodes that are no
``nn.ReLU`` of their own are overridden the same way here: a functional ``F.relu`` / ``x.relu()`` (a function or
method node whose op is ``relu``) and the second call of an ``nn.ReLU`` module (torchvision's ``layer1.0.relu_1``,
which runs the module without its hooks). In a model that was not traced, a ``forward`` calling ``F.relu`` gets a
plain gradient there.

Grad-CAM works on any node of a graph model with a (C, H, W) output, a residual block's ``add`` or a branch's
``cat`` included: each node is a module of its own there.
"""

from __future__ import annotations

import contextlib
import copy
import importlib
import math
import time
import warnings
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from layerscope.capture import INPUT, ActivationRecorder, _resolve, describe_layers, list_layers, token_map
from layerscope.errors import LayerscopeError
from layerscope.layers import LayerInfo, token_layout
from layerscope.progress import ProgressFn, no_progress
from layerscope.tracing import model_graph, op_name

__all__ = [
    "ATTRIBUTIONS",
    "METHODS",
    "Attribution",
    "RandomisationStep",
    "UnitTarget",
    "attribute",
    "gradcam_layers",
    "guided_backprop",
    "image_batch",
    "overlay",
    "randomisation_check",
    "unit_target",
]

# method -> captum.attr neuron attribution class, for one unit (guided_backprop).
# captum is imported when first used: it takes a second to import, and most commands never need it.
METHODS: dict[str, str] = {"guided": "NeuronGuidedBackprop", "deconv": "NeuronDeconvolution"}

# class attribution method -> captum.attr class, for one class score (attribute, randomisation_check). A hyphen in a
# method's name reads as an underscore ("integrated-gradients"), as the command line spells it.
ATTRIBUTIONS: dict[str, str] = {
    "saliency": "Saliency",
    "integrated_gradients": "IntegratedGradients",
    "gradcam": "LayerGradCam",
    "occlusion": "Occlusion",
}
# the keyword options each method takes beyond (target, layer)
_OPTIONS: dict[str, tuple[str, ...]] = {
    "saliency": (),
    "integrated_gradients": ("n_steps", "internal_batch_size"),
    "gradcam": ("interpolate_mode",),
    "occlusion": ("window", "stride", "perturbations_per_eval"),
}


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

            def pick(output: torch.Tensor) -> torch.Tensor:  # (N, C, H, W) -> (N,); a token layer on its grid
                tokens = token_map(output)
                return (tokens[0] if tokens is not None else output)[:, unit, y, x]

            return pick
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
            with _relu_nodes_overridden(model, method):
                attribution = algorithm(model, module).attribute(x, neuron_selector=target.selector())
    return attribution[0].detach().cpu().numpy().astype(np.float32)  # (1, C, H, W) -> (C, H, W)


# the op of a graph model's node that is a ReLU without being an nn.ReLU module: F.relu, x.relu(), torch.relu_, and a
# second call of an nn.ReLU (op_name gives its class name)
_RELU_OPS = frozenset({"relu", "relu_", "ReLU"})


def _relu_nodes(model: nn.Module) -> list[nn.Module]:
    """The ReLU nodes of a graph model that captum's guided backprop, which looks for ``nn.ReLU`` modules, misses."""
    if model_graph(model) is None:
        return []
    return [m for m in model.modules() if not isinstance(m, nn.ReLU) and op_name(m) in _RELU_OPS]


@contextlib.contextmanager
def _relu_nodes_overridden(model: nn.Module, method: str) -> Iterator[None]:
    """Inside, the gradient through each of ``_relu_nodes(model)`` is overridden as captum overrides an nn.ReLU's:
    guided backprop passes ``relu(gradient at the ReLU's input)`` (positive gradients where the ReLU was on),
    deconvolution ``relu(gradient at its output)`` (positive gradients, whatever the forward pass did). The hook
    sits on a copy of the input that only the ReLU reads (a hook on the input itself would also see the gradient of
    a skip connection reading it), and the ReLU gets a copy of that copy, so an in-place ReLU (``relu_``,
    ``nn.ReLU(inplace=True)``) overwrites neither. The hooks are removed after."""
    handles: list[torch.utils.hooks.RemovableHandle] = []
    outputs: dict[int, dict[str, torch.Tensor]] = {}  # per node, its output's gradient (deconvolution)

    def pre_hook(module: nn.Module, args: tuple[Any, ...]) -> tuple[Any, ...] | None:
        if not args or not isinstance(args[0], torch.Tensor) or not args[0].requires_grad:
            return None
        read = args[0].clone()  # the ReLU's input, read by the ReLU alone
        if method == "guided":
            read.register_hook(torch.relu)  # the gradient at the input, the forward mask applied: its positive part
        else:
            given = outputs.setdefault(id(module), {})
            read.register_hook(lambda grad: torch.relu(given["out"]) if "out" in given else grad)
        return (read.clone(), *args[1:])

    def forward_hook(module: nn.Module, args: tuple[Any, ...], output: Any) -> None:
        given = outputs.get(id(module))
        if given is not None and isinstance(output, torch.Tensor) and output.requires_grad:
            output.register_hook(lambda grad: given.__setitem__("out", grad))

    try:
        for module in _relu_nodes(model):
            handles.append(module.register_forward_pre_hook(pre_hook))
            handles.append(module.register_forward_hook(forward_hook))
        yield
    finally:
        for handle in handles:
            handle.remove()


# -- class attributions ----------------------------------------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class Attribution:
    """One attribution map of one class score for one image."""

    map: np.ndarray  # float32 in input space: (C, H, W), or (H, W) for Grad-CAM (one map for all channels)
    method: str  # "saliency", "integrated_gradients", "gradcam" or "occlusion"
    target: int  # the class whose score is explained
    layer: str | None  # Grad-CAM's conv layer; None for the other methods
    delta: float | None  # integrated gradients: sum(map) - (f(x) - f(black))[target], captum's convergence delta
    seconds: float  # time of the attribution itself (not the forward pass that finds the prediction)
    predicted: int  # the model's predicted class for the image


def _method(method: str) -> str:
    name = method.replace("-", "_")
    if name not in ATTRIBUTIONS:
        raise LayerscopeError(f"unknown attribution method {method!r}; choose one of {', '.join(ATTRIBUTIONS)}.")
    return name


def _one_image(image: torch.Tensor | np.ndarray, device: torch.device) -> torch.Tensor:
    """(C, H, W) or (1, C, H, W), uint8 or float in [0, 1] -> (1, C, H, W) float32."""
    if image.ndim == 4 and image.shape[0] == 1:
        image = image[0]
    return image_batch(image, device)


def _logits(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """(1, K) logits of the image batch ``x``; a model that does not take it is a one-line error."""
    try:
        with torch.no_grad():
            logits = model(x)
    except (RuntimeError, ValueError, TypeError, IndexError) as e:
        first = (str(e).strip().splitlines() or [type(e).__name__])[0]
        shape = "x".join(map(str, x.shape[1:]))
        raise LayerscopeError(f"the model does not accept a {shape} image ({first}).") from e
    if not isinstance(logits, torch.Tensor) or logits.ndim != 2:
        raise LayerscopeError("attributions need a model that returns (N, classes) logits from forward().")
    return logits


def _class(target: int | None, logits: torch.Tensor) -> int:
    classes = int(logits.shape[1])
    if target is None:
        return int(logits[0].argmax())
    if not 0 <= int(target) < classes:
        raise LayerscopeError(f"target class {target} is out of range: the model has classes 0 to {classes - 1}.")
    return int(target)


def gradcam_layers(
    model: nn.Module, image_shape: tuple[int, int, int], conv: Sequence[LayerInfo | str] | None = None
) -> list[str]:
    """The layers Grad-CAM is offered on, in forward order, the last one its default (in the command line and the
    page alike): those with a (C, H, W) output that contain a convolution, so a pooling layer after the last conv is
    not the default; every (C, H, W) layer when none contains one. In a graph model, also every node computed from a
    convolution at its resolution (through batch norm, activations, adds and concatenations, not through pooling): a
    residual block's output (``layer4.1.relu_1``, ResNet's usual Grad-CAM layer) and its ``add``. A map of one pixel
    (a global pool's C x 1 x 1) is uniform, so such layers are left out where there are larger ones. ``conv``: the
    (C, H, W) layers when known (a Run lists them; names alone count as larger than one pixel), else found by one
    forward pass."""
    infos = list(conv) if conv is not None else [i for i in describe_layers(model, image_shape) if i.kind == "conv"]
    shaped = [c if isinstance(c, str) else c.name for c in infos]
    pixels = {c.name: math.prod(c.shape[1:]) for c in infos if not isinstance(c, str)}
    modules = dict(model.named_modules())
    fed = _conv_fed(model, modules)
    convs = [name for name in shaped if name in fed or (name in modules and _holds_conv(modules[name]))]
    offered = convs or shaped
    return [name for name in offered if pixels.get(name, 2) > 1] or offered


def _holds_conv(module: nn.Module) -> bool:
    target = getattr(module, "_target", module)  # a second call of a module: the module's
    return any(isinstance(m, nn.Conv2d) for m in target.modules()) or op_name(module) == "conv2d"


def _conv_fed(model: nn.Module, modules: dict[str, nn.Module]) -> set[str]:
    """The nodes of a graph model computed from a convolution at the same (H, W): a conv, then what reads it and keeps
    the map's size (batch norm, ReLU, an add, a concatenation). Empty for a model that was not traced."""
    graph = model_graph(model)
    fed: set[str] = set()
    if graph is None:
        return fed
    for node in graph.nodes:
        module = modules.get(node.name)
        if module is not None and token_layout(node.shape) is not None:  # a transformer's tokens, on their grid
            fed.add(node.name)
        if len(node.shape) != 3 or module is None:
            continue
        sources = [graph.node(i) for i in node.inputs if i in fed]
        if _holds_conv(module) or (sources and all(s.shape[1:] == node.shape[1:] for s in sources)):
            fed.add(node.name)
    return fed


def _conv_layer(model: nn.Module, image_shape: tuple[int, int, int], layer: str | None) -> str:
    """Grad-CAM's layer: ``layer`` if its output is (C, H, W), by default the last of ``gradcam_layers``."""
    if layer is None:
        offered = gradcam_layers(model, image_shape)
        if not offered:
            raise LayerscopeError("Grad-CAM needs a conv layer (a C x H x W output) and the model has none.")
        return offered[-1]
    _resolve(model, [layer])  # an unknown name is a LayerNotFoundError with a hint
    infos = [info for info in describe_layers(model, image_shape) if info.kind != "image"]
    conv = [info.name for info in infos if info.kind == "conv"]
    kind = next((info.kind for info in infos if info.name == layer), None)
    if kind is None:  # a module that is not among the default layers (a ReLU, a container): look at it alone
        kind = describe_layers(model, image_shape, [layer])[-1].kind
    if kind != "conv":
        offer = f"choose a conv layer: {', '.join(conv)}" if conv else "the model has no conv layer"
        raise LayerscopeError(f"Grad-CAM needs a conv layer (a C x H x W output); {layer!r} is {kind}; {offer}.")
    return layer


def _pair(value: Any, option: str) -> tuple[int, int]:
    pair = (value, value) if isinstance(value, int) else tuple(value)
    if len(pair) != 2 or not all(isinstance(v, int) and v >= 1 for v in pair):
        raise LayerscopeError(f"occlusion's {option} is a positive int or (height, width) pair (got {value!r}).")
    return int(pair[0]), int(pair[1])


def _occlusion_window(size: tuple[int, int], options: dict[str, Any]) -> tuple[tuple[int, int], tuple[int, int]]:
    """The occluding patch and its stride: by default 4x4 moved by 2 on a 28x28 image, scaled to the image's size."""
    h, w = size
    window = _pair(options.get("window") or (max(2, round(4 * h / 28)), max(2, round(4 * w / 28))), "window")
    stride = _pair(options.get("stride") or (max(1, round(2 * h / 28)), max(1, round(2 * w / 28))), "stride")
    return (min(window[0], h), min(window[1], w)), stride


def _captum_map(
    model: nn.Module, x: torch.Tensor, method: str, target: int, layer: str | None, options: dict[str, Any]
) -> tuple[torch.Tensor, float | None]:
    """(map (C, H, W) or (H, W), delta) of captum's ``method`` for class ``target`` of the batch ``x`` (1, C, H, W)."""
    captum_attr = importlib.import_module("captum.attr")
    algorithm = getattr(captum_attr, ATTRIBUTIONS[method])
    # a leaf that requires grad (captum would otherwise set it and warn); the caller's image is untouched
    x = x.clone().requires_grad_(True)
    if method == "saliency":
        return algorithm(model).attribute(x, target=target, abs=True)[0], None
    if method == "integrated_gradients":
        maps, delta = algorithm(model).attribute(
            x,
            baselines=torch.zeros_like(x),  # a black image
            target=target,
            n_steps=int(options.get("n_steps", 64)),
            internal_batch_size=options.get("internal_batch_size"),
            return_convergence_delta=True,
        )
        return maps[0], float(delta[0])
    if method == "gradcam":
        assert layer is not None
        module = _resolve(model, [layer])[layer]
        tokens = _token_gradcam(model, module, x, target)
        if tokens is not None:
            cam = tokens
        else:
            # ReLU of the weighted channel sum: only what speaks for the class; (1, 1, h, w) at the layer's resolution
            cam = algorithm(model, module).attribute(x, target=target, relu_attributions=True)
        mode = str(options.get("interpolate_mode", "bilinear"))
        # (1, 1, h, w) -> (1, 1, H, W); bilinear weights are non-negative, so the map stays >= 0
        upsampled = captum_attr.LayerAttribution.interpolate(cam, tuple(x.shape[2:]), mode)
        return upsampled[0, 0], None
    # occlusion: a black patch over all channels at once, slid over the image; the drop in the class score
    window, stride = _occlusion_window((int(x.shape[2]), int(x.shape[3])), options)
    channels = int(x.shape[1])
    maps = algorithm(model).attribute(
        x,
        sliding_window_shapes=(channels, *window),
        strides=(channels, *stride),
        baselines=0.0,
        target=target,
        perturbations_per_eval=int(options.get("perturbations_per_eval", 32)),
    )
    return maps[0], None


def _token_gradcam(model: nn.Module, module: nn.Module, x: torch.Tensor, target: int) -> torch.Tensor | None:
    """Grad-CAM of a transformer's token layer (captum's takes (N, C, H, W) maps only): the patch tokens' grid and its
    gradient (`token_map`), each channel weighted by its mean gradient, summed, ReLU: (1, 1, side, side). None when
    the layer's output is not tokens."""
    seen: dict[str, torch.Tensor] = {}
    handle = module.register_forward_hook(lambda m, args, out: seen.__setitem__("out", _first(out)))
    try:
        logits = model(x)
    finally:
        handle.remove()
    output = seen["out"]
    if token_map(output) is None:
        return None
    (gradient,) = torch.autograd.grad(logits[0, target], output)
    grid, grad = token_map(output)[0], token_map(gradient)[0]  # type: ignore[index]
    weights = grad.mean((2, 3), keepdim=True)
    return torch.relu((weights * grid).sum(1, keepdim=True)).detach()


def _first(output: Any) -> torch.Tensor:
    return output[0] if isinstance(output, (tuple, list)) else output


def attribute(
    model: nn.Module,
    image: torch.Tensor | np.ndarray,
    method: str,
    target: int | None = None,
    layer: str | None = None,
    **options: Any,
) -> Attribution:
    """Which pixels of ``image`` drive the score of class ``target`` (default: the predicted class), by captum.

    ``image`` is (C, H, W) (or (1, C, H, W)), float in [0, 1] or uint8. ``method``:

    - ``"saliency"``: absolute gradients of the class score (``Saliency``);
    - ``"integrated_gradients"``: gradients integrated from a black image (``IntegratedGradients``, ``n_steps=64``,
      ``internal_batch_size``); ``delta`` is captum's convergence delta, small next to f(x) - f(black);
    - ``"gradcam"``: Grad-CAM on the conv layer ``layer`` (default: the last layer with a C x H x W output),
      ReLU-ed and upsampled to the image (``interpolate_mode="bilinear"``); the map is (H, W);
    - ``"occlusion"``: the score's drop when a black patch covers each place (``window=4``, ``stride=2`` on 28x28
      images, scaled to the image's size; ints or (height, width) pairs; ``perturbations_per_eval=32``).

    The model runs in eval mode and is left as found: its mode, parameters (no gradients accumulate) and hooks.
    """
    name = _method(method)
    unknown = sorted(set(options) - set(_OPTIONS[name]))
    if unknown:
        takes = ", ".join(_OPTIONS[name]) or "none"
        raise LayerscopeError(f"{name} takes no option {unknown[0]!r}; its options: {takes}.")
    if layer is not None and name != "gradcam":
        raise LayerscopeError(f"only gradcam takes a layer; {name} explains the class score at the input.")
    x = _one_image(image, _device(model))
    with _eval_mode(model):
        logits = _logits(model, x)
        predicted, k = int(logits[0].argmax()), _class(target, logits)
        if name == "gradcam":
            layer = _conv_layer(model, (int(x.shape[1]), int(x.shape[2]), int(x.shape[3])), layer)
        importlib.import_module("captum.attr")  # its first import (a second) is not the method's time
        start = time.perf_counter()
        result, delta = _captum_map(model, x, name, k, layer, options)
        seconds = time.perf_counter() - start
    return Attribution(
        map=result.detach().float().cpu().numpy(),
        method=name,
        target=k,
        layer=layer,
        delta=delta,
        seconds=seconds,
        predicted=predicted,
    )


def overlay(image: torch.Tensor | np.ndarray, attribution_map: np.ndarray, strength: float = 0.8) -> np.ndarray:
    """The image in grey with the map over it, (3, H, W) in [0, 1]: positive red, negative blue, by |value| / max.

    ``image`` is (C, H, W), uint8 or float in [0, 1]; ``attribution_map`` is (C, H, W) (channels summed) or (H, W).
    """
    grey = image_batch(image)[0].mean(0).numpy()  # (C, H, W) -> (H, W)
    heat = np.asarray(attribution_map, np.float32)
    heat = heat.sum(0) if heat.ndim == 3 else heat  # (C, H, W) -> (H, W)
    if heat.shape != grey.shape:
        raise LayerscopeError(
            f"the map is {heat.shape[0]}x{heat.shape[1]} but the image {grey.shape[0]}x{grey.shape[1]}."
        )
    scale = float(np.abs(heat).max()) or 1.0
    alpha = np.clip(np.abs(heat) / scale, 0.0, 1.0) * strength  # (H, W)
    red, blue = np.array([1.0, 0.15, 0.1], np.float32), np.array([0.1, 0.4, 1.0], np.float32)
    colour = np.where(heat[None] >= 0, red[:, None, None], blue[:, None, None])  # (3, H, W)
    base = np.repeat(0.6 * grey[None], 3, axis=0)  # a dimmed grey image, (3, H, W)
    return (base * (1 - alpha) + colour * alpha).astype(np.float32)


# -- the model-randomisation sanity check (Adebayo et al. 2018) ------------------------------------------------------


@dataclass(frozen=True, eq=False)
class RandomisationStep:
    """The attribution after re-initialising some layers, and how much it still resembles the trained model's."""

    randomised: tuple[str, ...]  # layers re-initialised so far, the output's first; () for the trained model
    map: np.ndarray  # the attribution map, as ``Attribution.map``
    spearman: float  # rank correlation of |map| with the trained model's, per pixel; NaN when a map is constant
    ssim: float  # structural similarity of |map| and the trained model's, each scaled to [0, 1] by its maximum


def _heat(attribution_map: np.ndarray) -> np.ndarray:
    """|map| per pixel: (C, H, W) -> (H, W), channels summed; (H, W) as it is. float64 for the statistics."""
    heat = np.abs(np.asarray(attribution_map, np.float64))
    return heat.sum(0) if heat.ndim == 3 else heat


def _spearman(a: np.ndarray, b: np.ndarray) -> float:
    if np.ptp(a) == 0 or np.ptp(b) == 0:
        return float("nan")  # a constant map has no ranks to correlate
    stats = importlib.import_module("scipy.stats")
    return float(stats.spearmanr(a.ravel(), b.ravel())[0])


def _ssim(a: np.ndarray, b: np.ndarray) -> float:
    """SSIM of two (H, W) maps scaled to [0, 1], as scikit-image's ``structural_similarity`` with its defaults
    (a 7x7 uniform window, sample covariances, the border a window half wide left out)."""
    ndimage = importlib.import_module("scipy.ndimage")
    a, b = a / (a.max() or 1.0), b / (b.max() or 1.0)
    size = min(7, *a.shape)
    size -= 1 - size % 2  # odd
    n = size * size

    def mean(v: np.ndarray) -> np.ndarray:
        return np.asarray(ndimage.uniform_filter(v, size=size))

    ua, ub = mean(a), mean(b)
    correction = n / (n - 1) if n > 1 else 1.0
    va, vb = correction * (mean(a * a) - ua * ua), correction * (mean(b * b) - ub * ub)
    vab = correction * (mean(a * b) - ua * ub)
    c1, c2 = 0.01**2, 0.03**2
    s = ((2 * ua * ub + c1) * (2 * vab + c2)) / ((ua * ua + ub * ub + c1) * (va + vb + c2))
    pad = (size - 1) // 2
    return float(s[pad : s.shape[0] - pad, pad : s.shape[1] - pad].mean())


def _resettable(module: nn.Module) -> list[nn.Module]:
    return [m for m in module.modules() if callable(getattr(m, "reset_parameters", None))]


def _parameterised_layers(model: nn.Module, image_shape: tuple[int, int, int]) -> list[str]:
    """The model's layers with weights to re-initialise, in the order the forward pass runs them."""
    modules = dict(model.named_modules())
    names = [info.name for info in describe_layers(model, image_shape) if info.kind != "image"]
    names += [n for n in list_layers(model) if n not in names]  # layers that did not run come last
    return [n for n in names if any(True for _ in modules[n].parameters()) and _resettable(modules[n])]


def randomisation_check(
    model: nn.Module,
    image: torch.Tensor | np.ndarray,
    method: str,
    target: int | None = None,
    layers: Sequence[str] | None = None,
    seed: int = 0,
    layer: str | None = None,
    progress: ProgressFn = no_progress,
    **options: Any,
) -> list[RandomisationStep]:
    """Cascading model randomisation (Adebayo et al., "Sanity checks for saliency maps", 2018).

    A copy of the model has its layers re-initialised (``reset_parameters()``, seeded by ``seed``) one more at a
    time, in the order of ``layers`` (default: every layer with weights, from the output down to the input). After
    each step the same attribution is computed (the trained model's target class, ``layer`` and ``options`` as in
    ``attribute``) and compared with the trained model's map. The first step is the trained model itself
    (``randomised == ()``, similarity 1). A method whose maps stay similar while the weights become random explains
    the image rather than the model. ``model`` itself is not changed, and the global random state is not touched.
    ``progress`` sees one task, "randomisation", one unit per map: the trained model's, then one per layer.
    """
    x = _one_image(image, torch.device("cpu"))
    image_shape = (int(x.shape[1]), int(x.shape[2]), int(x.shape[3]))
    order = list(layers) if layers is not None else _parameterised_layers(model, image_shape)[::-1]
    total = len(order) + 1
    progress("randomisation", 0, total)
    original = attribute(model, image, method, target, layer, **options)
    progress("randomisation", 1, total)
    for name, module in _resolve(model, order).items():
        if not any(True for _ in module.parameters()) or not _resettable(module):
            raise LayerscopeError(f"layer {name!r} has no weights to re-initialise; leave it out of the layers.")
    reference = _heat(original.map)
    steps = [RandomisationStep((), original.map, 1.0, 1.0)]
    randomised = copy.deepcopy(model)
    device = _device(model)
    with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
        torch.manual_seed(seed)
        for i, name in enumerate(order):
            for module in _resettable(_resolve(randomised, [name])[name]):
                module.reset_parameters()  # type: ignore[operator]
            result = attribute(randomised, image, original.method, original.target, original.layer, **options)
            heat = _heat(result.map)
            steps.append(
                RandomisationStep(tuple(order[: i + 1]), result.map, _spearman(reference, heat), _ssim(reference, heat))
            )
            progress("randomisation", i + 2, total)
    return steps
