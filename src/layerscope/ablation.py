"""Ablation: switch off (zero) or scale units of a model, and see what it does to the predictions.

A unit is a dense layer's neuron or a conv layer's channel (the whole channel map is scaled). ``ablated`` is a context
manager over forward hooks that multiply the chosen units of a layer's output; ``evaluate_ablation`` re-runs a split
of a Run's images with them and compares accuracy, per-class accuracy and the confusion matrix with the Run's stored
predictions. Saved ablations live in the Run's manifest under ``"ablations"``.

>>> with ablated(model, [Ablation("fc2", (3, 7))]):
...     logits = model(x)                       # fc2 neurons 3 and 7 are zero
>>> result = evaluate_ablation(run, [Ablation("conv2", (7,), scale=2.0)])
>>> result.accuracy_before, result.accuracy_after

Torch is imported by the functions that run a model: naming, checking and keeping ablations (what the dashboard's
first page and the command line's checks need) do not load it.
"""

from __future__ import annotations

import contextlib
import math
import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from layerscope.data.datasets import TEST, TRAIN
from layerscope.errors import LayerscopeError, RunError
from layerscope.layers import INPUT, parse_units, token_layout
from layerscope.names import check_label
from layerscope.progress import ProgressFn, no_progress
from layerscope.run import Run, now

if TYPE_CHECKING:
    import torch
    from torch import nn

__all__ = [
    "Ablation",
    "AblationResult",
    "ablated",
    "add_ablation",
    "check_ablations",
    "evaluate_ablation",
    "list_ablations",
    "parse_ablation",
    "predict_ablated",
    "remove_ablation",
    "SavedAblation",
    "save_ablation",
    "switch_off",
    "toggle_unit",
    "unit_scales",
]

MANIFEST_KEY = "ablations"


def _format_units(units: Sequence[int]) -> str:
    """(0, 1, 2, 3, 7, 9) -> "0–3, 7, 9": runs of three or more consecutive units become a range."""
    parts: list[str] = []
    i = 0
    while i < len(units):
        j = i
        while j + 1 < len(units) and units[j + 1] == units[j] + 1:
            j += 1
        if j - i >= 2:
            parts.append(f"{units[i]}–{units[j]}")
        else:
            parts.extend(str(u) for u in units[i : j + 1])
        i = j + 1
    return ", ".join(parts)


@dataclass(frozen=True)
class Ablation:
    """Multiply ``units`` of ``layer``'s output by ``scale`` (0 switches them off).

    ``units`` are a dense layer's neurons or a conv layer's channels, numbered from 0; they are kept sorted and
    without repeats.
    """

    layer: str
    units: tuple[int, ...]
    scale: float = 0.0

    def __post_init__(self) -> None:
        if not isinstance(self.layer, str) or not self.layer:
            raise LayerscopeError(f"an ablation needs a layer name (got {self.layer!r}).")
        try:
            units = tuple(sorted({int(u) for u in self.units}))
            scale = float(self.scale)
        except (TypeError, ValueError) as e:
            raise LayerscopeError(
                f"ablation of {self.layer!r}: units must be whole numbers and the scale a number ({e})."
            ) from e
        if not units:
            raise LayerscopeError(f"ablation of {self.layer!r} names no unit; give at least one.")
        if units[0] < 0:
            raise LayerscopeError(f"unit {units[0]} is out of range: units are numbered from 0.")
        if not math.isfinite(scale):
            raise LayerscopeError(f"the scale of an ablation must be a finite number (got {scale}).")
        object.__setattr__(self, "units", units)
        object.__setattr__(self, "scale", scale)

    @property
    def label(self) -> str:
        """Readable: "fc2 3, 7 × 0", "conv2 0–31 × 0.5"."""
        return f"{self.layer} {_format_units(self.units)} × {self.scale:g}"

    def to_dict(self) -> dict[str, Any]:
        return {"layer": self.layer, "units": list(self.units), "scale": self.scale}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Ablation:
        try:
            return cls(str(d["layer"]), tuple(d["units"]), float(d.get("scale", 0.0)))
        except (KeyError, TypeError, ValueError) as e:
            raise LayerscopeError(f"not an ablation: {d!r}; it needs 'layer', 'units' and optionally 'scale'.") from e


def parse_ablation(text: str, scale: float = 0.0, layer: str | None = None) -> Ablation:
    """``"fc2:3"``, ``"conv2:7,9"`` or ``"fc2:0-63"`` (a range, both ends included), or ``"3,7"`` of ``layer``
    -> an ``Ablation`` (``layerscope.layers.parse_units`` reads the units)."""
    return Ablation(*parse_units(text, layer), scale)


def add_ablation(current: Sequence[Ablation], new: Ablation) -> list[Ablation]:
    """``current`` with ``new`` added: its units join the entry of the same layer and scale when there is one, else
    it comes last. ``current`` is not changed."""
    for i, a in enumerate(current):
        if a.layer == new.layer and a.scale == new.scale:
            return [*current[:i], Ablation(a.layer, a.units + new.units, a.scale), *current[i + 1 :]]
    return [*current, new]


def toggle_unit(current: Sequence[Ablation], layer: str, unit: int) -> list[Ablation]:
    """``current`` with ``unit`` of ``layer`` back on when an ablation names it (at any scale; an entry left without
    units goes), else switched off (``add_ablation`` at scale 0): what a click on a unit does."""
    kept: list[Ablation] = []
    found = False
    for a in current:
        if a.layer == layer and unit in a.units:
            found = True
            rest = tuple(u for u in a.units if u != unit)
            if rest:
                kept.append(Ablation(a.layer, rest, a.scale))
        else:
            kept.append(a)
    return kept if found else add_ablation(current, Ablation(layer, (unit,), 0.0))


def switch_off(current: Sequence[Ablation], units: Iterable[tuple[str, int]]) -> list[Ablation]:
    """``current`` with the (layer, unit) pairs ``units`` switched off, one entry per layer at scale 0; a unit an
    ablation already names keeps its scale. What a selection of units does."""
    named = {(a.layer, u) for a in current for u in a.units}
    per_layer: dict[str, list[int]] = {}
    for layer, unit in units:
        if (layer, unit) not in named:
            per_layer.setdefault(layer, []).append(unit)
    result = list(current)
    for layer, chosen in per_layer.items():
        result = add_ablation(result, Ablation(layer, tuple(chosen), 0.0))
    return result


def unit_scales(ablations: Sequence[Ablation]) -> dict[tuple[str, int], float]:
    """{(layer, unit): the factor its output is multiplied by} for each unit ``ablations`` name: several ablations of
    one unit multiply, as ``ablated`` applies them."""
    scales: dict[tuple[str, int], float] = {}
    for a in ablations:
        for u in a.units:
            scales[(a.layer, u)] = scales.get((a.layer, u), 1.0) * a.scale
    return scales


def _unit_count(output: torch.Tensor) -> int:
    # a conv map (N, C, H, W) has C units (its channels), a token layer (N, T, D) D (its embedding's channels, in every
    # token); anything else counts its flattened features, as the Run does
    if _tokens(output):
        return int(output.shape[2])
    return int(output.shape[1]) if output.ndim == 4 else int(np.prod(output.shape[1:]))


def _tokens(output: torch.Tensor) -> bool:
    return output.ndim == 3 and token_layout(tuple(output.shape[1:])) is not None


def _out_of_range(layer: str, unit: int, count: int) -> LayerscopeError:
    return LayerscopeError(f"unit {unit} is out of range: {layer!r} has units 0 to {count - 1}.")


def check_ablations(run: Run, ablations: Sequence[Ablation]) -> None:
    """Every ablation names a conv or dense layer of ``run`` and units it has; else a one-line ``LayerscopeError``."""
    for ablation in ablations:
        if ablation.layer == INPUT:
            raise LayerscopeError(
                f"{INPUT!r} is the input image, not a layer with units; choose a conv or dense layer."
            )
        info = run.layer(ablation.layer)
        if info.kind not in ("conv", "dense"):
            raise LayerscopeError(f"{ablation.layer!r} is a {info.kind} layer; only conv and dense layers have units.")
        count = info.shape[0] if info.kind == "conv" else info.dims
        if ablation.units[-1] >= count:
            raise _out_of_range(ablation.layer, ablation.units[-1], count)


def _scaled(
    output: torch.Tensor, layer: str, units: list[tuple[tuple[int, ...], float]], in_place: bool = False
) -> torch.Tensor:
    """``output`` with the chosen units multiplied: a new tensor (autograd may still need the original), or the same
    one changed when ``in_place``."""
    import torch

    count = _unit_count(output)
    mask = torch.ones(count, dtype=output.dtype, device=output.device)
    for chosen, scale in units:
        if chosen[-1] >= count:
            raise _out_of_range(layer, chosen[-1], count)
        mask[list(chosen)] *= scale  # several ablations of one layer multiply
    # (N, C, H, W) * (1, C, 1, 1) keeps channels-last; tokens (N, T, D) * (1, 1, D); dense (N, D) * (D,)
    if output.ndim == 4:
        mask = mask.view(1, count, 1, 1)
    else:
        mask = mask.view(1, 1, count) if _tokens(output) else mask.view(output.shape[1:])
    return output.mul_(mask) if in_place else output * mask


def _owns(output: torch.Tensor, args: Any) -> bool:
    """Whether ``output`` may be changed in place: an inference tensor (no autograd, not a parameter) that shares no
    memory with the module's inputs (as nn.Identity's would)."""
    import torch

    if not torch.is_inference(output):
        return False
    ptr = output.untyped_storage().data_ptr()
    return not any(isinstance(a, torch.Tensor) and a.untyped_storage().data_ptr() == ptr for a in args)


@contextlib.contextmanager
def ablated(model: nn.Module, ablations: Sequence[Ablation], in_place: bool = False) -> Iterator[nn.Module]:
    """Inside the block, ``model`` runs with each ablation's units multiplied by its scale; yields the model.

    The model is in eval mode inside the block; its hooks are removed and its mode restored on the way out, also when
    the block raises. Layers are dotted ``named_modules()`` names; a unit a layer does not have is an error on the
    first forward pass (``check_ablations`` checks them against a Run up front).

    Each hook returns a new tensor, so gradients flow as usual. ``in_place=True`` instead changes a layer's output in
    place when that is safe (under ``torch.inference_mode``, memory the module's inputs do not share): ~8x cheaper for
    a large conv map, whose fresh allocation dominates; only for code that keeps no other reference to the output.
    """
    from layerscope.capture import _resolve

    ablations = list(ablations)
    modules = _resolve(model, [a.layer for a in ablations])
    per_layer: dict[str, list[tuple[tuple[int, ...], float]]] = {}
    for ablation in ablations:
        per_layer.setdefault(ablation.layer, []).append((ablation.units, ablation.scale))

    def hook(layer: str) -> Any:
        units = per_layer[layer]

        def scale_output(module: nn.Module, args: Any, output: Any) -> Any:
            first = output[0] if isinstance(output, (tuple, list)) else output
            scaled = _scaled(first, layer, units, in_place and _owns(first, args))
            if isinstance(output, (tuple, list)):
                return type(output)([scaled, *output[1:]])
            return scaled

        return scale_output

    was_training = model.training
    handles = []
    try:
        model.eval()
        for layer, module in modules.items():
            handles.append(module.register_forward_hook(hook(layer)))
        yield model
    finally:
        for handle in handles:
            handle.remove()
        model.train(was_training)


def predict_ablated(model: nn.Module, image: torch.Tensor | np.ndarray, ablations: Sequence[Ablation]) -> np.ndarray:
    """Class probabilities of one image (C, H, W) -> (K,), or of a batch (n, C, H, W) -> (n, K), under the ablations.

    Pixels are floats in [0, 1] (uint8 arrays are divided by 255).
    """
    import torch

    from layerscope.capture import _model_device

    x = torch.from_numpy(np.asarray(image)) if isinstance(image, np.ndarray) else image
    x = x.float().div(255.0) if x.dtype == torch.uint8 else x.float()
    single = x.ndim == 3
    x = x.unsqueeze(0) if single else x
    with ablated(model, ablations), torch.inference_mode():
        probs = torch.softmax(model(x.to(_model_device(model))).float(), dim=1).cpu().numpy()
    return probs[0] if single else probs


def _confusion(labels: np.ndarray, predicted: np.ndarray, k: int) -> np.ndarray:
    """(K, K) counts: rows are the true class, columns the predicted one."""
    return np.bincount(labels * k + predicted, minlength=k * k).reshape(k, k).astype(np.int64)


def _class_accuracy(confusion: np.ndarray) -> np.ndarray:
    counts = confusion.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(counts > 0, np.diag(confusion) / np.maximum(counts, 1), np.nan)


@dataclass(frozen=True)
class AblationResult:
    """What ablating did to one split of a Run. Before: the Run's stored predictions; after: with the ablations.

    ``indices`` are the dataset indices of the split's images, in order; ``probs`` (n, K) float32 their class
    probabilities after ablating. Confusion matrices are (K, K) counts, rows the true class, columns the predicted.
    Per-class accuracies are NaN for a class without images in the split.
    """

    ablations: tuple[Ablation, ...]
    split: int | None
    indices: np.ndarray  # (n,) int64
    labels: np.ndarray  # (n,) int64
    predicted_before: np.ndarray  # (n,) int64
    probs: np.ndarray  # (n, K) float32
    confusion_before: np.ndarray  # (K, K) int64
    confusion_after: np.ndarray  # (K, K) int64
    seconds: float
    resumed_from: str | None = None  # the layer whose stored activations the pass started from; None: the pixels

    @property
    def predicted_after(self) -> np.ndarray:
        return self.probs.argmax(axis=1)

    @property
    def n_images(self) -> int:
        return len(self.indices)

    @property
    def class_counts(self) -> np.ndarray:
        return self.confusion_before.sum(axis=1)

    @property
    def accuracy_before(self) -> float:
        return float(np.trace(self.confusion_before) / max(self.n_images, 1))

    @property
    def accuracy_after(self) -> float:
        return float(np.trace(self.confusion_after) / max(self.n_images, 1))

    @property
    def class_accuracy_before(self) -> np.ndarray:
        return _class_accuracy(self.confusion_before)

    @property
    def class_accuracy_after(self) -> np.ndarray:
        return _class_accuracy(self.confusion_after)

    @property
    def confusion_change(self) -> np.ndarray:
        """(K, K) after minus before; each row sums to 0 (an image moves from one column to another)."""
        return self.confusion_after - self.confusion_before

    @property
    def n_changed(self) -> int:
        """How many images' predictions changed."""
        return int((self.predicted_after != self.predicted_before).sum())

    def probs_of(self, index: int) -> np.ndarray | None:
        """(K,) probabilities after ablating of dataset image ``index``, or None when it is not in the split."""
        pos = int(np.searchsorted(self.indices, index))
        if pos < len(self.indices) and self.indices[pos] == index:
            return np.asarray(self.probs[pos])
        return None

    def biggest_changes(self, n: int = 5) -> list[tuple[int, int, int, int]]:
        """The ``n`` off-diagonal confusion cells that changed most: (true, predicted, before, after), biggest first."""
        change = self.confusion_change.copy()
        np.fill_diagonal(change, 0)
        flat = np.argsort(-np.abs(change), axis=None, kind="stable")[:n]
        cells = [divmod(int(f), change.shape[1]) for f in flat]
        return [
            (t, p, int(self.confusion_before[t, p]), int(self.confusion_after[t, p])) for t, p in cells if change[t, p]
        ]

    def summary(self) -> dict[str, Any]:
        """The figures a saved ablation keeps: JSON-ready, without the per-image arrays."""

        def floats(values: np.ndarray) -> list[float | None]:
            return [None if math.isnan(v) else round(float(v), 6) for v in values]

        return {
            "split": {TRAIN: "train", TEST: "test", None: "all"}[self.split],
            "n_images": self.n_images,
            "accuracy_before": round(self.accuracy_before, 6),
            "accuracy_after": round(self.accuracy_after, 6),
            "class_accuracy_before": floats(self.class_accuracy_before),
            "class_accuracy_after": floats(self.class_accuracy_after),
            "n_changed": self.n_changed,
            "biggest_changes": [
                {"true": t, "predicted": p, "before": b, "after": a} for t, p, b, a in self.biggest_changes(10)
            ],
            "seconds": round(self.seconds, 3),
        }


def _resume_chain(
    model: nn.Module, image_shape: tuple[int, int, int], layer: str, later: Sequence[str]
) -> tuple[tuple[int, ...], list[nn.Module]] | None:
    """How to finish a forward pass from ``layer``'s output: (its output shape per image, the modules to apply in
    turn), or None when the model does not run as such a chain after ``layer``.

    One blank pass records every module call. From ``layer``'s output on, every call must be a module whose input is
    exactly the tensor the previous one returned (an enclosing container may only return that tensor unchanged), and
    the model must return the last one's output: then nothing else (a skip connection, a functional op) computes
    after ``layer``. ``later`` layers (other ablated ones) must all start after ``layer`` ends.
    """
    import torch

    from layerscope.capture import _model_device

    names = {module: name for name, module in model.named_modules() if name}
    events: list[tuple[str, str, Any]] = []  # ("start", name, first input) / ("end", name, first output)
    handles = []
    try:
        for module, name in names.items():
            handles.append(
                module.register_forward_pre_hook(lambda m, args, n=name: events.append(("start", n, _first(args))))
            )
            handles.append(
                module.register_forward_hook(lambda m, args, out, n=name: events.append(("end", n, _first(out))))
            )
        with torch.inference_mode():
            logits = model(torch.zeros((1, *image_shape), device=_model_device(model)))
    finally:
        for handle in handles:
            handle.remove()
    ends = [i for i, (kind, name, _) in enumerate(events) if kind == "end" and name == layer]
    starts = {name: i for i, (kind, name, _) in reversed(list(enumerate(events))) if kind == "start"}
    if len(ends) != 1 or not isinstance(events[ends[0]][2], torch.Tensor):
        return None
    end = ends[0]
    if any(starts.get(name, -1) < end for name in later):
        return None
    current = events[end][2]
    shape = tuple(int(s) for s in current.shape[1:])
    modules = dict(model.named_modules())
    chain: list[nn.Module] = []
    i = end + 1
    while i < len(events):
        kind, name, tensor = events[i]
        if kind == "end":  # a container enclosing ``layer`` finishing: it must hand the tensor on untouched
            if tensor is not current:
                return None
            i += 1
            continue
        if tensor is not current:
            return None
        finish = next(j for j in range(i + 1, len(events)) if events[j][:2] == ("end", name))
        chain.append(modules[name])
        current = events[finish][2]
        i = finish + 1
    return (shape, chain) if logits is current else None


def _first(value: Any) -> Any:
    if isinstance(value, (tuple, list)):
        return value[0] if len(value) == 1 else None
    return value


def _resume_plan(
    run: Run, model: nn.Module, ablations: Sequence[Ablation], indices: np.ndarray
) -> tuple[str, np.ndarray, tuple[int, ...], list[nn.Module]] | None:
    """Start the pass from the stored activations of the first ablated layer, when that gives the same logits.

    Only dense layers are stored whole; the model must run as a plain chain of modules after the layer
    (``_resume_chain``), and on a few images of the split the stored activations must match what the model computes
    and the chain must reproduce the model's logits (so a model other than the Run's falls back to a full pass).
    """
    if not ablations:
        return None
    image_shape = run.dataset().image_shape
    order = [info.name for info in run.layers]
    first = min((a.layer for a in ablations), key=order.index)
    if run.layer(first).kind != "dense":
        return None
    others = [a.layer for a in ablations if a.layer != first]
    was_training = model.training
    try:
        model.eval()
        return _check_resume(run, model, first, _resume_chain(model, image_shape, first, others), indices)
    finally:
        model.train(was_training)


def _check_resume(
    run: Run,
    model: nn.Module,
    first: str,
    found: tuple[tuple[int, ...], list[nn.Module]] | None,
    indices: np.ndarray,
) -> tuple[str, np.ndarray, tuple[int, ...], list[nn.Module]] | None:
    import torch

    from layerscope.capture import ActivationRecorder, _model_device

    if found is None:
        return None
    shape, chain = found
    try:
        stored = run.activations(first)
    except RunError:
        return None
    if stored.shape[1] != int(np.prod(shape)):
        return None
    # the check: a few images through the whole model against the stored activations resumed through the chain
    sample = indices[:16]
    saved = torch.from_numpy(np.array(stored[sample]))  # (n, D)
    device = _model_device(model)
    with ActivationRecorder(model, [first]) as rec, torch.inference_mode():
        outputs = rec.run(run.dataset().pixels(sample).to(device), stop_early=False)
        computed, logits = outputs[first].float().cpu(), outputs["__logits__"].float().cpu()
        resumed = saved.view(len(sample), *shape).to(device)
        for module in chain:
            resumed = module(resumed)
    if not torch.allclose(computed.reshape(saved.shape), saved, rtol=1e-4, atol=1e-4):
        return None  # the stored activations are not this model's
    if not torch.allclose(resumed.float().cpu(), logits, rtol=1e-4, atol=1e-4):
        return None
    return first, stored, shape, chain


def evaluate_ablation(
    run: Run,
    ablations: Sequence[Ablation],
    split: int | None = TEST,
    model: nn.Module | None = None,
    batch_size: int = 1000,
    progress: ProgressFn = no_progress,
    use_stored: bool = True,
) -> AblationResult:
    """Re-run ``split`` (``TEST``, ``TRAIN`` or None for every image) of the Run with the ablations, against the
    Run's stored predictions.

    ``model`` defaults to ``run.load_model()``; pass one to reuse it across calls (it is put in channels-last memory
    format, as capture does). "Before" is always the Run's stored probabilities, so a model other than the Run's
    compares against those.

    When the first ablated layer is a dense layer the Run stores whole, and the model after it is a plain chain of
    modules, the pass starts from the stored activations instead of the pixels (checked on a few images to give the
    model's own logits; ``use_stored=False`` always starts from the pixels): the layers before it do not change, and
    the convolutions, most of the work, are skipped. ``result.resumed_from`` says which layer it started from.
    """
    import torch

    from layerscope.capture import _model_device
    from layerscope.training import preferred_memory_format

    ablations = tuple(ablations)
    if model is None and not run.has_model:
        raise RunError(
            f"{run.path} has no model (it was imported from a file), and ablation re-runs the model: "
            "build a Run with 'layerscope import-model' or 'layerscope train'."
        )
    check_ablations(run, ablations)
    if batch_size < 1:
        raise LayerscopeError(f"batch_size must be at least 1 (got {batch_size}).")
    if model is None:
        model = run.load_model()
    dataset = run.dataset()
    indices = dataset.indices(split).astype(np.int64)
    labels = np.asarray(dataset.labels[indices], dtype=np.int64)
    stored = np.asarray(run.probs[indices])
    k = stored.shape[1]
    if len(indices) == 0:
        raise RunError(f"{run.path} has no {'test' if split == TEST else 'training'} images to evaluate.")
    start = time.perf_counter()
    device = _model_device(model)
    # channels-last runs the convolutions ~1.7x faster on the CPU (oneDNN); hooks see logical (N, C, H, W) shapes
    memory_format = preferred_memory_format(model, dataset.image_shape)
    plan = _resume_plan(run, model, ablations, indices) if use_stored else None
    probs = np.empty((len(indices), k), np.float32)
    progress("ablation", 0, len(indices))
    # in place: nothing here keeps a layer's output, and a fresh (1000, 32, 24, 24) map per batch costs ~0.4 s in all
    with ablated(model, ablations, in_place=True), torch.inference_mode():
        for lo in range(0, len(indices), batch_size):
            batch = indices[lo : lo + batch_size]
            if plan is None:
                logits = model(dataset.pixels(batch).to(device, memory_format=memory_format))
            else:
                # (n, D) stored activations of the first ablated layer -> its output shape, ablated -> the rest
                first, activations, shape, chain = plan
                logits = torch.from_numpy(np.array(activations[batch])).to(device).view(len(batch), *shape)
                logits = _scaled(logits, first, [(a.units, a.scale) for a in ablations if a.layer == first], True)
                for module in chain:
                    logits = module(logits)
            p = torch.softmax(logits.float(), dim=1).cpu().numpy()
            if p.shape[1] != k:
                raise RunError(f"the model gives {p.shape[1]} classes but the Run's stored predictions have {k}.")
            probs[lo : lo + len(batch)] = p
            progress("ablation", lo + len(batch), len(indices))
    predicted_before = stored.argmax(axis=1)
    return AblationResult(
        ablations=ablations,
        split=split,
        indices=indices,
        labels=labels,
        predicted_before=predicted_before,
        probs=probs,
        confusion_before=_confusion(labels, predicted_before, k),
        confusion_after=_confusion(labels, probs.argmax(axis=1), k),
        seconds=time.perf_counter() - start,
        resumed_from=plan[0] if plan is not None else None,
    )


def _check_name(name: str) -> str:
    return check_label(name, "name of an ablation")


def save_ablation(run: Run, name: str, ablations: Sequence[Ablation], result: AblationResult | None = None) -> None:
    """Store the ablations (and, with ``result``, its summary figures) in the Run's manifest under ``name``.

    Saving under a name that exists replaces it. The manifest is rewritten atomically under a lock.
    """
    name = _check_name(name)
    ablations = tuple(ablations)
    if not ablations:
        raise LayerscopeError(f"ablation {name!r} has nothing to save; add at least one layer and unit.")
    check_ablations(run, ablations)
    if result is not None and result.ablations != ablations:
        raise LayerscopeError(f"the result given for ablation {name!r} is of other ablations; evaluate these first.")
    entry: dict[str, Any] = {
        "ablations": [a.to_dict() for a in ablations],
        "label": "; ".join(a.label for a in ablations),
        "saved": now(),
    }
    if result is not None:
        entry["result"] = result.summary()

    def change(manifest: dict[str, Any]) -> None:
        manifest.setdefault(MANIFEST_KEY, {})[name] = entry

    run.update_manifest(change)


@dataclass(frozen=True)
class SavedAblation:
    """An ablation saved in a Run: its name, the ablations, when, and the summary figures if a result was saved."""

    name: str
    ablations: tuple[Ablation, ...]
    label: str
    saved: str
    result: dict[str, Any] | None


def list_ablations(run: Run) -> list[SavedAblation]:
    """The Run's saved ablations, in the order they were first saved."""
    saved = []
    for name, entry in (run.manifest.get(MANIFEST_KEY) or {}).items():
        ablations = tuple(Ablation.from_dict(d) for d in entry.get("ablations", []))
        label = str(entry.get("label") or "; ".join(a.label for a in ablations))
        saved.append(SavedAblation(str(name), ablations, label, str(entry.get("saved", "")), entry.get("result")))
    return saved


def remove_ablation(run: Run, name: str) -> None:
    """Remove a saved ablation; a name the Run does not have is an error that lists those it has."""
    name = _check_name(name)

    def change(manifest: dict[str, Any]) -> None:
        saved = manifest.get(MANIFEST_KEY) or {}
        if name not in saved:
            have = ", ".join(repr(n) for n in saved) or "none"
            raise LayerscopeError(f"no saved ablation {name!r} in {run.path}; it has {have}.")
        del saved[name]
        manifest[MANIFEST_KEY] = saved

    run.update_manifest(change)
