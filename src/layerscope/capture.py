"""Record what a model's layers output: a context manager over forward hooks, and batched passes over a dataset.

Layers are named by their dotted ``named_modules()`` names; ``"input"`` names the pixels the model is given.
"""

from __future__ import annotations

import fnmatch
import inspect
import re
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any, Self

import numpy as np
import torch
from torch import nn

from layerscope.data.datasets import Dataset
from layerscope.errors import LayerNotFoundError, ModelMismatchError
from layerscope.layers import CLS, INPUT, LayerInfo, token_layout
from layerscope.memory import MemoryBudget, activation_row_bytes
from layerscope.progress import ProgressFn, no_progress
from layerscope.tracing import NORMS, model_graph, op_name, source_model
from layerscope.training import preferred_memory_format

__all__ = [
    "INPUT",
    "ActivationRecorder",
    "CaptureResult",
    "check_outputs",
    "LayerInfo",
    "ModuleCall",
    "capture_batch_size",
    "capture_dataset",
    "describe_layers",
    "image_layer_outputs",
    "image_outputs",
    "image_pixels",
    "iter_layer_batches",
    "layer_outputs",
    "list_layers",
    "open_outputs",
    "output_shapes",
    "trace_modules",
    "write_outputs",
]

# Leaf modules that only reshape, regularise or apply an element-wise activation are not offered as layers by
# default: their output is (nearly) the previous layer's. So are empty containers (a ResNet's identity shortcut is
# often an empty nn.Sequential()).
_SKIPPED = (
    nn.Flatten,
    nn.Unflatten,
    nn.Identity,
    *(nn.Dropout, nn.Dropout1d, nn.Dropout2d, nn.Dropout3d, nn.AlphaDropout, nn.FeatureAlphaDropout),
    *(nn.ReLU, nn.ReLU6, nn.LeakyReLU, nn.ELU, nn.GELU, nn.SiLU, nn.Mish, nn.Hardswish, nn.Hardsigmoid),
    *(nn.Sigmoid, nn.Tanh, nn.Softplus, nn.Softmax),
    *(nn.Sequential, nn.ModuleList, nn.ModuleDict),
)


def list_layers(
    model: nn.Module, include: Sequence[str] | None = None, exclude: Sequence[str] | None = None
) -> list[str]:
    """The model's layers, in order: ``model.layerscope_layers`` when it names them; for a graph model
    (``layerscope.graph.trace_model``) its graph's default choice (a residual net's stem, block outputs, pooled
    features and logits); else its computing leaf modules.

    ``include`` and ``exclude`` are glob patterns (``fnmatch``) over dotted names: ``include=["features.*"]`` keeps
    the default layers that match; a pattern that matches none of them chooses among every node of the graph
    (``layer1.0.add``), and a pattern that is exactly a module's name (a container such as ``features``, or a ReLU
    the default skips) adds that module. ``exclude=["*.bn*"]`` then drops layers. A pattern that matches nothing is
    an error, naming the layers there are.
    """
    named = getattr(model, "layerscope_layers", None)
    graph = model_graph(model)
    if named:
        default = [str(n) for n in named]
    elif graph is not None:
        default = graph.default_layers(dict(model.named_modules()), _SKIPPED, NORMS)
    else:
        default = [
            name
            for name, module in model.named_modules()
            if name and not list(module.children()) and not isinstance(module, _SKIPPED)
        ]
    if not include and not exclude:
        return default
    every = graph.names[1:] if graph is not None else []
    order = {name: i for i, name in enumerate([*every, *(n for n, _ in model.named_modules() if n and n not in every)])}
    chosen = list(default)
    if include:
        chosen = []
        for pattern in include:
            found = [n for n in default if fnmatch.fnmatchcase(n, pattern)]
            if not found:
                found = [n for n in every if fnmatch.fnmatchcase(n, pattern)]
            if not found and pattern in order:
                found = [pattern]
            if not found:
                raise LayerNotFoundError(
                    f"--include {pattern!r} matches no layer; the model's layers are {', '.join(default)}"
                    + (" ('layerscope layers RUN --all' lists every node)." if graph is not None else ".")
                )
            chosen += [n for n in found if n not in chosen]
    for pattern in exclude or ():
        kept = [n for n in chosen if not fnmatch.fnmatchcase(n, pattern)]
        if len(kept) == len(chosen):
            raise LayerNotFoundError(
                f"--exclude {pattern!r} matches no layer; the layers are {', '.join(chosen) or 'none'}."
            )
        chosen = kept
    if not chosen:
        raise LayerNotFoundError("the --include/--exclude patterns leave no layer; keep at least one.")
    # graph (or definition) order here; describe_layers puts them in the order a forward pass produces them
    return sorted(chosen, key=lambda n: order.get(n, len(order)))


def _resolve(model: nn.Module, layers: Sequence[str]) -> dict[str, nn.Module]:
    modules = dict(model.named_modules())
    resolved = {}
    for name in layers:
        if name not in modules or name == "":
            close = [n for n in modules if n and re.sub(r"\W", "", n) == re.sub(r"\W", "", name)]
            hint = f" Did you mean {close[0]!r}?" if close else ""
            raise LayerNotFoundError(f"unknown layer {name!r}.{hint} Hint: 'layerscope layers RUN' lists them.")
        resolved[name] = modules[name]
    return resolved


class _StopForward(Exception):
    """Raised by a hook once every requested layer has been recorded, to skip the rest of the forward pass."""


def token_map(output: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None] | None:
    """A token layer's (N, T, D) output (`layerscope.layers.token_layout`) as (patch grid (N, D, side, side), extra
    tokens (N, extra, D) or None): a view of ``output``, differentiable. None for an output that is not tokens."""
    if output.ndim != 3:
        return None
    layout = token_layout(tuple(output.shape[1:]))
    if layout is None:
        return None
    extra, side = layout
    n, _, d = output.shape
    grid = output[:, extra:].transpose(1, 2).reshape(n, d, side, side)
    return grid, (output[:, :extra] if extra else None)


class ActivationRecorder:
    """Records the outputs of named layers while the model runs; hooks are removed on exit.

    >>> with ActivationRecorder(model, ["conv1", "fc1"]) as rec:
    ...     outputs = rec.run(x)          # {"conv1": (N, 16, 26, 26), "fc1": (N, 64)}

    ``run`` stops the forward pass as soon as every requested layer has produced its output. The model is put in
    eval mode inside the block and left as it was found afterwards. Each output is what the layer computed, also
    where a later in-place op of the pass overwrites its tensor: the first ``run`` of a kind finds those layers
    (`_find_overwritten`), whose outputs are then copied as they are recorded.

    A transformer's token layer, (N, T, D), is recorded as its patch tokens on their grid, (N, D, side, side)
    (`token_map`), and its class token's features (N, D) under ``<layer>#cls``; ``tokens`` has the number of extra
    tokens of each such layer.
    """

    def __init__(self, model: nn.Module, layers: Sequence[str], keep_graph: bool = False) -> None:
        self.model = model
        self.layers = list(dict.fromkeys(name for name in layers if name != INPUT))
        self.modules = _resolve(model, self.layers)
        self.keep_graph = keep_graph  # outputs stay attached to autograd (feature visualisation differentiates them)
        self.outputs: dict[str, torch.Tensor] = {}
        self._handles: list[Any] = []
        self._was_training = model.training
        self._wanted: set[str] = set()
        self._overwritten: set[str] = set()  # layers whose output a later in-place op changes (`_find_overwritten`)
        self._found: dict[frozenset[str], set[str]] = {}  # those layers, by the layers a pass stops after
        self._probing = False
        self._versions: dict[str, tuple[torch.Tensor, int]] = {}
        self.tokens: dict[str, int] = {}

    def _hook(self, name: str) -> Any:
        def hook(module: nn.Module, args: Any, output: Any) -> None:
            if isinstance(output, (tuple, list)):
                output = output[0]
            if self._probing:  # `_find_overwritten`: how many in-place changes the tensor has had so far
                self._versions[name] = (output, output._version)
                if self._wanted and self._wanted <= self._versions.keys():
                    raise _StopForward
                return
            values = {name: output}
            tokens = token_map(output)
            if tokens is not None:
                values[name], head = tokens
                self.tokens[name] = 0 if head is None else head.shape[1]
                if head is not None:
                    values[name + CLS] = head[:, 0]
            # a copy where a later in-place op of the same pass overwrites the layer's own output; a graph kept for
            # differentiation is always copied, and its copy stays on the graph (clone has a gradient)
            for key, value in values.items():
                if self.keep_graph:
                    self.outputs[key] = value.clone()
                else:
                    self.outputs[key] = value.detach().clone() if name in self._overwritten else value.detach()
            if self._wanted and self._wanted <= self.outputs.keys():
                raise _StopForward

        return hook

    def __enter__(self) -> Self:
        self._was_training = self.model.training
        self.model.eval()
        try:
            for name, module in self.modules.items():
                self._handles.append(module.register_forward_hook(self._hook(name)))
        except BaseException:
            self._remove()
            raise
        return self

    def _remove(self) -> None:
        for handle in self._handles:
            handle.remove()
        self._handles.clear()
        self.model.train(self._was_training)

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._remove()

    def run(
        self, x: torch.Tensor, stop_early: bool = True, layers: Sequence[str] | None = None
    ) -> dict[str, torch.Tensor]:
        """Forward ``x``; return the recorded outputs (and the logits under ``"__logits__"`` if the pass completed).

        With ``stop_early`` the pass ends once ``layers`` (default: all the recorder's layers) have their outputs.
        """
        self.outputs = {}
        self._wanted = set(self.layers if layers is None else layers) if stop_early else set()
        if not self.keep_graph:
            key = frozenset(self._wanted)
            if key not in self._found:
                self._found[key] = self._find_overwritten(x)
            self._overwritten = self._found[key]
        try:
            logits = self.model(x)
            detach = isinstance(logits, torch.Tensor) and not self.keep_graph
            self.outputs["__logits__"] = logits.detach() if detach else logits
        except _StopForward:
            pass
        return self.outputs

    def _find_overwritten(self, x: torch.Tensor) -> set[str]:
        """The recorded layers whose output tensor a later in-place op of the same pass changes (an in-place ReLU
        after a BatchNorm, ``out += identity``): a whole pass over one image outside inference mode, where a tensor
        counts its in-place changes; it ends where the pass it stands for does. Only those outputs are copied as
        they are recorded."""
        self._probing, self._versions = True, {}
        try:
            with torch.inference_mode(False), torch.no_grad():
                try:
                    self.model(x[:1].clone())
                except _StopForward:
                    pass
            return {name for name, (tensor, version) in self._versions.items() if tensor._version != version}
        finally:
            self._probing, self._versions = False, {}


def _model_device(model: nn.Module) -> torch.device:
    return next((p.device for p in model.parameters()), torch.device("cpu"))


def layer_outputs(model: nn.Module, x: torch.Tensor, layers: Sequence[str]) -> dict[str, torch.Tensor]:
    """Full outputs of ``layers`` for a few images, float32 on the CPU: a whole feature map, which a Run never keeps.

    ``x`` is (n, C, H, W) or one (C, H, W) image, float in [0, 1]; outputs keep the batch dimension, e.g.
    ``{"conv2": (1, 32, 24, 24)}``. ``"input"`` gives ``x`` back.
    """
    x = x.unsqueeze(0) if x.ndim == 3 else x
    x = x.to(_model_device(model), torch.float32)
    with ActivationRecorder(model, layers) as rec, torch.inference_mode():
        outputs = rec.run(x)
    result = {name: outputs[name].float().cpu() for name in rec.layers}
    result |= {name + CLS: outputs[name + CLS].float().cpu() for name in rec.layers if name + CLS in outputs}
    if INPUT in layers:
        result[INPUT] = x.detach().cpu()
    return result


def image_pixels(image: np.ndarray) -> torch.Tensor:
    """(1, C, H, W) float32 in [0, 1] of one uint8 image, (H, W) or (C, H, W) as a Run keeps its images: what the
    model sees."""
    image = np.asarray(image, dtype=np.float32)
    return torch.from_numpy((image[None] if image.ndim == 2 else image) / 255.0)[None]


def image_outputs(
    model: nn.Module, image: np.ndarray, layers: Sequence[str]
) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """One uint8 image (`image_pixels`) through the model: every layer's full output, {layer: (C, H, W) or
    (units,)}, and the class probabilities (K,), float32 numpy."""
    outputs = image_layer_outputs(model, image, layers)
    with torch.inference_mode():
        logits = model(image_pixels(image).to(_model_device(model)))
    probs = torch.softmax(logits.float(), dim=1)[0].cpu().numpy()
    return outputs, probs


def image_layer_outputs(model: nn.Module, image: np.ndarray, layers: Sequence[str]) -> dict[str, np.ndarray]:
    """One uint8 image (`image_pixels`) through the model: the full output of each of ``layers``, {layer: (C, H, W)
    or (units,)} float32 numpy, e.g. every feature map of a conv layer, which a Run never keeps."""
    outputs = layer_outputs(model, image_pixels(image), layers)  # (1, ...) float32 on the CPU
    return {name: value[0].numpy() for name, value in outputs.items()}


@dataclass(frozen=True)
class ModuleCall:
    """One finished call of a module during a forward pass, with the shapes of its first input and output tensor."""

    name: str
    module: nn.Module
    leaf: bool
    input_shape: tuple[int, ...] | None
    output_shape: tuple[int, ...] | None


def _first_tensor(value: Any) -> torch.Tensor | None:
    if isinstance(value, torch.Tensor):
        return value
    if isinstance(value, (tuple, list)) and value and isinstance(value[0], torch.Tensor):
        return value[0]
    return None


def trace_modules(model: nn.Module, image_shape: tuple[int, ...], until: str | None = None) -> list[ModuleCall]:
    """Every module call of a forward pass of one blank image, in the order the calls *finish* (a container comes
    after the modules it ran), stopping after ``until`` when given. Hooks are removed and the mode restored after.

    Functional calls in ``forward`` (``F.relu``, ``torch.flatten``) are not modules and do not appear; compare the
    recorded shapes to notice them.
    """
    modules = {name: module for name, module in model.named_modules() if name}
    if until is not None:
        _resolve(model, [until])
    calls: list[ModuleCall] = []

    def hook(name: str, module: nn.Module) -> Any:
        leaf = not list(module.children())

        def record(mod: nn.Module, args: Any, output: Any) -> None:
            inp, out = _first_tensor(args), _first_tensor(output)
            calls.append(
                ModuleCall(
                    name,
                    module,
                    leaf,
                    tuple(inp.shape) if inp is not None else None,
                    tuple(out.shape) if out is not None else None,
                )
            )
            if name == until:
                raise _StopForward

        return record

    was_training = model.training
    handles = []
    try:
        model.eval()
        for name, module in modules.items():
            handles.append(module.register_forward_hook(hook(name, module)))
        with torch.inference_mode():
            model(torch.zeros((1, *image_shape), device=_model_device(model)))
    except _StopForward:
        pass
    finally:
        for handle in handles:
            handle.remove()
        model.train(was_training)
    return calls


_CLASS_ARGS = ("num_classes", "n_classes", "classes", "num_outputs", "n_outputs", "out_features")


def _constructor_args(model: nn.Module) -> set[str]:
    try:
        return set(inspect.signature(type(source_model(model)).__init__).parameters)
    except (TypeError, ValueError):
        return set()


def _shape_text(shape: Sequence[int]) -> str:
    return "x".join(str(int(s)) for s in shape)


def _blank_pass(
    model: nn.Module, image_shape: tuple[int, int, int], layers: list[str]
) -> tuple[dict[str, torch.Tensor], dict[str, int]]:
    """Outputs of ``layers`` (and the logits) for one blank image, and the token layers' extra tokens
    (`ActivationRecorder.tokens`); a model that cannot take the images is an error."""
    device = _model_device(model)
    order: list[str] = []
    try:
        with ActivationRecorder(model, layers) as rec, torch.inference_mode():
            hooks = [
                rec.modules[name].register_forward_hook(lambda *_, name=name: order.append(name)) for name in rec.layers
            ]
            try:
                outputs = rec.run(torch.zeros((1, *image_shape), device=device), stop_early=False)
            finally:
                for handle in hooks:
                    handle.remove()
    except (RuntimeError, ValueError, TypeError, IndexError) as e:
        first = (str(e).strip().splitlines() or [type(e).__name__])[0]
        args = _constructor_args(model)
        hint = " ".join(
            f"--model-arg {arg}={value}"
            for arg, value in (("in_channels", image_shape[0]), ("image_size", image_shape[1]))
            if arg in args
        )
        raise ModelMismatchError(
            f"model does not accept {_shape_text(image_shape)} images ({first})"
            + (f"; build it for them with {hint}." if hint else "; build it for images of this shape.")
        ) from e
    # the order in which the layers produced their output (a layer run twice counts where it first ran)
    ordered = {name: outputs[name] for name in dict.fromkeys(order)} | {"__logits__": outputs["__logits__"]}
    return ordered, rec.tokens


def check_outputs(model: nn.Module, logits: Any, num_classes: int) -> None:
    """The model must return ``(N, num_classes)`` logits for the dataset's classes."""
    if not isinstance(logits, torch.Tensor) or logits.ndim != 2:
        found = f"shape {tuple(logits.shape)}" if isinstance(logits, torch.Tensor) else type(logits).__name__
        raise ModelMismatchError(f"the model returns {found}; layerscope needs (N, classes) logits from forward().")
    if logits.shape[1] != num_classes:
        arg = next((a for a in _CLASS_ARGS if a in _constructor_args(model)), None)
        how = f"build it with --model-arg {arg}={num_classes}" if arg else f"build it with {num_classes} outputs"
        raise ModelMismatchError(f"model outputs {logits.shape[1]} classes but the dataset has {num_classes}; {how}.")


def describe_layers(
    model: nn.Module,
    image_shape: tuple[int, int, int],
    layers: Sequence[str] | None = None,
    num_classes: int | None = None,
) -> list[LayerInfo]:
    """The input plus each layer, with output shapes found by one forward pass of a blank image, in the order the
    pass produces them.

    Default layers (``layers`` None) that do not run are left out; a named layer that does not run is an error. A
    model that cannot take ``image_shape`` images, or (with ``num_classes``) does not return that many logits, is a
    ``ModelMismatchError``.
    """
    names = list(layers) if layers is not None else list_layers(model)
    outputs, tokens = _blank_pass(model, image_shape, names)
    if num_classes is not None:
        check_outputs(model, outputs["__logits__"], num_classes)
    missing = [name for name in names if name != INPUT and name not in outputs]
    if missing and layers is not None:
        raise LayerNotFoundError(
            f"layer {missing[0]!r} does not run in the model's forward pass; leave it out (--exclude {missing[0]!r})."
        )
    infos = [LayerInfo(INPUT, "image", tuple(image_shape))]
    modules = dict(model.named_modules())
    for name, out in outputs.items():
        if name == "__logits__":
            continue
        shape = tuple(int(s) for s in out.shape[1:])
        kind = "conv" if len(shape) == 3 else "dense"
        op = op_name(modules[name])
        infos.append(LayerInfo(name, kind, shape if kind == "conv" else (int(np.prod(shape)),), op, tokens.get(name)))
    return infos


def iter_layer_batches(
    model: nn.Module,
    dataset: Dataset,
    layers: Sequence[str],
    indices: np.ndarray | None = None,
    batch_size: int = 512,
    device: torch.device | str | None = None,
    stop_early: bool = True,
) -> Iterator[tuple[np.ndarray, dict[str, torch.Tensor]]]:
    """Yield ``(batch_indices, {layer: output})`` over the dataset (or ``indices``), outputs float32 on the CPU.

    ``device`` defaults to where the model is. With ``stop_early`` only as much of the network runs as the deepest
    requested layer needs; otherwise the logits come too, under ``"__logits__"``. ``"input"`` yields the pixels.
    """
    indices = np.arange(len(dataset)) if indices is None else np.asarray(indices)
    device = torch.device(device) if device is not None else _model_device(model)
    # channels-last runs the convolutions ~1.7x faster on the CPU (oneDNN); outputs keep their logical shape
    memory_format = preferred_memory_format(model.to(device), dataset.image_shape)
    with ActivationRecorder(model, layers) as rec, torch.inference_mode():
        for start in range(0, len(indices), batch_size):
            batch = indices[start : start + batch_size]
            x = dataset.pixels(batch).to(device, memory_format=memory_format)
            outputs = rec.run(x, stop_early) if rec.layers or not stop_early else {}
            result = {name: out.float().cpu() for name, out in outputs.items()}
            if INPUT in layers:
                result[INPUT] = x.cpu()
            yield batch, result


@dataclass(frozen=True)
class CaptureResult:
    seconds: float
    images_per_second: float
    files: list[str]


CAPTURE_BATCH = 256  # measured fastest on a 2-core CPU (channels-last oneDNN convolutions)


def capture_batch_size(layers: Sequence[LayerInfo], budget: MemoryBudget, at_most: int = CAPTURE_BATCH) -> int:
    """Images per capture batch: ``at_most``, fewer where the batch's outputs of every layer (and their copies,
    `activation_row_bytes`) would not fit in the budget; at least 1."""
    dims = [info.dims for info in layers if info.kind != "image"]
    return budget.rows(activation_row_bytes(dims), at_most=at_most)


def capture_dataset(
    model: nn.Module,
    dataset: Dataset,
    layers: Sequence[LayerInfo],
    out_dir: str | Path,
    batch_size: int = CAPTURE_BATCH,
    device: torch.device | str | None = None,
    progress: ProgressFn = no_progress,
    on_batch: Callable[[np.ndarray, dict[str, torch.Tensor]], None] | None = None,
) -> CaptureResult:
    """One batched pass over every image, writing ``.npy`` files into ``out_dir``.

    ``probs.npy`` (N, K) softmax probabilities; dense layers whole as ``activations/<layer>.npy`` (N, D); conv layers
    as per-channel spatial mean and max, ``activations/<layer>.mean.npy`` and ``.max.npy`` (N, C), a token layer's
    class token as ``.cls.npy`` (N, D). Full conv maps are
    70k x 18,432 floats for conv2, so they are recomputed on demand instead of stored.

    ``on_batch(batch_indices, outputs)`` sees every batch's full outputs on the way (e.g. a ``TopKCollector``), so
    other per-image statistics need no second pass.
    """
    out_dir = Path(out_dir)
    n = len(dataset)
    model_layers = [info for info in layers if info.kind != "image"]
    arrays = open_outputs(out_dir, model_layers, n, dataset.num_classes)
    start = time.perf_counter()
    progress("capture", 0, n)
    names = [i.name for i in model_layers]
    for batch, outputs in iter_layer_batches(model, dataset, names, None, batch_size, device, stop_early=False):
        write_outputs(arrays, model_layers, batch, outputs)
        if on_batch is not None:
            on_batch(batch, outputs)
        progress("capture", int(batch[-1]) + 1, n)
    for array in arrays.values():
        if isinstance(array, np.memmap):
            array.flush()
    seconds = time.perf_counter() - start
    return CaptureResult(seconds=seconds, images_per_second=n / max(seconds, 1e-9), files=list(arrays))


def output_shapes(layers: Sequence[LayerInfo], n: int, num_classes: int) -> dict[str, tuple[int, int]]:
    """The (N, D) float32 arrays a capture of ``n`` images writes, by the names the Run calls them (``probs.npy``,
    ``activations/conv1.mean.npy``)."""
    shapes = {"probs.npy": (n, num_classes)}
    for info in layers:
        if info.kind == "dense":
            shapes[f"activations/{info.name}.npy"] = (n, info.dims)
        elif info.kind != "image":
            for stat in ("mean", "max", "cls") if info.tokens else ("mean", "max"):
                shapes[f"activations/{info.name}.{stat}.npy"] = (n, info.shape[0])
    return shapes


def open_outputs(out_dir: Path, layers: Sequence[LayerInfo], n: int, num_classes: int) -> dict[str, np.ndarray]:
    """Create the capture's arrays (`output_shapes`) under ``out_dir``, memory-mapped to write rows into."""
    (out_dir / "activations").mkdir(parents=True, exist_ok=True)
    return {
        name: np.lib.format.open_memmap(out_dir / name, "w+", np.float32, shape)
        for name, shape in output_shapes(layers, n, num_classes).items()
    }


def write_outputs(
    arrays: Mapping[str, Any], layers: Sequence[LayerInfo], batch: np.ndarray, outputs: dict[str, torch.Tensor]
) -> None:
    """Write one batch of consecutive images' outputs (``iter_layer_batches(..., stop_early=False)``) into the
    capture's arrays: ``open_outputs``' memory maps, or anything taking ``array[lo:hi] = rows``."""
    lo, hi = int(batch[0]), int(batch[-1]) + 1
    if hi - lo != len(batch):
        raise ValueError("a capture batch must be consecutive images")
    arrays["probs.npy"][lo:hi] = torch.softmax(outputs["__logits__"], dim=1).numpy()
    for info in layers:
        if info.kind == "image":
            continue
        out = outputs[info.name]
        if info.kind == "dense":
            arrays[f"activations/{info.name}.npy"][lo:hi] = out.reshape(len(batch), -1).numpy()
        else:  # (b, C, H, W) -> (b, C); reducing in place is ~10x faster than flatten(2) of a channels-last map
            arrays[f"activations/{info.name}.mean.npy"][lo:hi] = out.mean((2, 3)).numpy()
            arrays[f"activations/{info.name}.max.npy"][lo:hi] = out.amax((2, 3)).numpy()
            if info.tokens:
                arrays[f"activations/{info.name}.cls.npy"][lo:hi] = outputs[info.name + CLS].numpy()
