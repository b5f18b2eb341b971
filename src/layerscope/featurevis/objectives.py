"""What an optimised image should make the model do: small objectives that add and scale (after lucent's
``objectives.py``), and ``unit_activation``, the one definition of "a unit's activation" used across layerscope.

An ``Objective`` maps the outputs of one forward pass, ``{layer: tensor}``, to one score per batch element, shape
(B,). Higher is better: ``render`` maximises it (lucent's objectives are losses, minimised; ours are not). Besides
layer names the dict holds ``LOGITS`` (the model's output, when the forward pass ran to the end) and ``IMAGE`` (the
parameterised image before the robustness transforms, for penalties).

A unit is an int, or one unit per batch element (a sequence or (B,) tensor: element i targets unit[i]), so that
every channel of a layer is visualised in one batched optimisation.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from layerscope.capture import token_map
from layerscope.errors import LayerscopeError

__all__ = [
    "IMAGE",
    "LOGITS",
    "Objective",
    "Unit",
    "activation",
    "as_units",
    "channel",
    "class_logit",
    "class_margin",
    "closeness",
    "diversity",
    "high_frequency",
    "ink_excess",
    "neuron",
    "total_variation",
    "unit_activation",
]

LOGITS = "__logits__"  # the key ActivationRecorder.run(stop_early=False) gives the model's output
IMAGE = "__image__"

Unit = int | Sequence[int] | Tensor | np.ndarray
Outputs = Mapping[str, Tensor]


def _as_unit(unit: Unit) -> int | Tensor:
    """An int, or a (B,) int64 tensor of per-element units."""
    if isinstance(unit, (int, np.integer)):
        return int(unit)
    t = torch.as_tensor(np.asarray(unit) if not isinstance(unit, Tensor) else unit).long()
    if t.ndim == 0:
        return int(t)
    if t.ndim != 1:
        raise LayerscopeError(f"a unit is an int or one int per batch element; got shape {tuple(t.shape)}.")
    return t


def _pick(output: Tensor, unit: int | Tensor) -> Tensor:
    """(B, U, ...) -> (B, ...): unit ``unit`` of every element, or unit[i] of element i."""
    if isinstance(unit, int):
        return output[:, unit]
    if len(unit) != output.shape[0]:
        raise LayerscopeError(f"{len(unit)} per-element units for a batch of {output.shape[0]}; give one per element.")
    return output[torch.arange(output.shape[0], device=output.device), unit.to(output.device)]


def as_units(output: Tensor) -> Tensor:
    """A layer's output shaped as a Run counts its units: (N, C, H, W) stays, a conv layer of C channels; a
    transformer's tokens (N, T, D) become their patch grid (N, D, side, side), D channels (``capture.token_map``, as
    the Run records them); any other shape is flattened to (N, D), a dense layer of D neurons."""
    tokens = token_map(output)
    if tokens is not None:
        return tokens[0]
    return output.flatten(1) if output.ndim > 2 and output.ndim != 4 else output


def unit_activation(output: Tensor, unit: Unit | None = None) -> Tensor:
    """A unit's activation, as layerscope means it everywhere (DeepVis ranks its top images by it).

    dense ``output`` (N, D): ``output[:, unit]``; conv (N, C, H, W): the spatial max of channel ``unit``; any other
    shape is flattened first (``as_units``). Returns (N,) for an int unit or per-element units (element i's unit[i]),
    and (N, units) for every unit when ``unit`` is None.
    """
    if output.ndim < 2:
        raise LayerscopeError(f"a layer output has a batch and a unit dimension; got shape {tuple(output.shape)}.")
    output = as_units(output)
    values = output if output.ndim == 2 else output.flatten(2).amax(2)  # (N, C, H, W) -> (N, C)
    return values if unit is None else _pick(values, _as_unit(unit))


def _unit_text(unit: int | Tensor) -> str:
    return str(unit) if isinstance(unit, int) else str(unit.tolist())


@dataclass(frozen=True, eq=False)
class Objective:
    """A score per batch element, shape (B,), from the recorded outputs; ``layers`` are the keys it reads.

    Objectives add, subtract, negate, scale by a float and ``sum``:
    ``channel("conv2", 7) - 0.05 * total_variation()``.
    """

    fn: Callable[[Outputs], Tensor]
    layers: tuple[str, ...]
    name: str = "objective"

    def __call__(self, outputs: Outputs) -> Tensor:
        return self.fn(outputs)

    def __repr__(self) -> str:
        return f"Objective({self.name})"

    def _join(self, other: Objective, sign: float, op: str) -> Objective:
        a, b = self.fn, other.fn
        layers = tuple(dict.fromkeys(self.layers + other.layers))
        return Objective(lambda o: a(o) + sign * b(o), layers, f"{self.name} {op} {other.name}")

    def __add__(self, other: Objective | float) -> Objective:
        if isinstance(other, Objective):
            return self._join(other, 1.0, "+")
        if isinstance(other, (int, float)):
            fn, c = self.fn, float(other)
            # sum() starts from 0: adding 0 leaves the name alone
            return self if c == 0 else Objective(lambda o: fn(o) + c, self.layers, f"{self.name} + {c:g}")
        return NotImplemented

    __radd__ = __add__

    def __sub__(self, other: Objective | float) -> Objective:
        if isinstance(other, Objective):
            return self._join(other, -1.0, "-")
        if isinstance(other, (int, float)):
            return self + (-float(other))
        return NotImplemented

    def __rsub__(self, other: float) -> Objective:
        return (-self) + other

    def __neg__(self) -> Objective:
        return -1.0 * self

    def __mul__(self, k: float) -> Objective:
        if not isinstance(k, (int, float)):
            return NotImplemented
        fn, c = self.fn, float(k)
        return Objective(lambda o: c * fn(o), self.layers, f"{c:g} * ({self.name})")

    __rmul__ = __mul__

    def __truediv__(self, k: float) -> Objective:
        if not isinstance(k, (int, float)):
            return NotImplemented
        return self * (1.0 / float(k))

    @staticmethod
    def sum(objectives: Iterable[Objective]) -> Objective:
        items = list(objectives)
        if not items:
            raise LayerscopeError("Objective.sum needs at least one objective.")
        total = items[0]
        for item in items[1:]:
            total = total + item
        return total


def channel(layer: str, unit: Unit) -> Objective:
    """The mean of conv channel ``unit`` over all positions; for a dense layer, neuron ``unit``."""
    u = _as_unit(unit)

    def fn(outputs: Outputs) -> Tensor:
        picked = _pick(outputs[layer], u)  # (B, H, W) for conv, (B,) for dense
        return picked if picked.ndim == 1 else picked.flatten(1).mean(1)

    return Objective(fn, (layer,), f"channel({layer}, {_unit_text(u)})")


def neuron(layer: str, unit: Unit, y: int | None = None, x: int | None = None) -> Objective:
    """Conv channel ``unit`` at one position (default the centre); for a dense layer, neuron ``unit``."""
    u = _as_unit(unit)

    def fn(outputs: Outputs) -> Tensor:
        picked = _pick(outputs[layer], u)  # (B, H, W) for conv, (B,) for dense
        if picked.ndim == 1:
            return picked
        h, w = picked.shape[-2:]
        return picked[:, h // 2 if y is None else y, w // 2 if x is None else x]

    where = "" if y is None and x is None else f", y={y}, x={x}"
    return Objective(fn, (layer,), f"neuron({layer}, {_unit_text(u)}{where})")


def class_logit(k: Unit) -> Objective:
    """The model's output logit ``k`` (before the softmax, so other classes are not pushed down for it)."""
    u = _as_unit(k)
    return Objective(lambda o: _pick(o[LOGITS], u), (LOGITS,), f"class_logit({_unit_text(u)})")


def class_margin(k: Unit, layer: str = LOGITS) -> Objective:
    """Logit ``k`` minus the largest other logit: what makes the model call the image class k, not merely what
    raises one number. Maximising the logit alone also raises the others' (the image grows brighter everywhere)."""
    u = _as_unit(k)

    def fn(outputs: Outputs) -> Tensor:
        logits = outputs[layer]  # (B, K)
        own = _pick(logits, u)  # (B,)
        index = torch.full((logits.shape[0],), u) if isinstance(u, int) else u
        others = logits.masked_fill(F.one_hot(index.to(logits.device), logits.shape[1]).bool(), float("-inf"))
        return own - others.amax(1)

    return Objective(fn, (layer,), f"class_margin({_unit_text(u)})")


def activation(layer: str, unit: Unit) -> Objective:
    """``unit_activation``: a dense neuron, or a conv channel's spatial max. What the results report."""
    u = _as_unit(unit)
    return Objective(lambda o: unit_activation(o[layer], u), (layer,), f"activation({layer}, {_unit_text(u)})")


def diversity(layer: str, groups: Unit | None = None) -> Objective:
    """Minus the mean cosine similarity of each element's Gram matrix of ``layer`` to the others' (lucent's term).

    Add it, weighted, to a unit's objective to get several different images of that unit. ``groups`` (one id per
    element) limits the comparison to elements of the same group, so one batch can hold diverse images of many units.
    For a dense layer the activation vectors themselves are compared. In [-1, 0] for non-negative activations.
    """
    g = None if groups is None else _as_unit(groups)

    def fn(outputs: Outputs) -> Tensor:
        out = outputs[layer]
        b = out.shape[0]
        if out.ndim > 2:
            flat = out.flatten(2)  # (B, C, H*W)
            feats = flat @ flat.transpose(1, 2)  # (B, C, C) Gram: which channels fire together, not where
        else:
            feats = out
        feats = F.normalize(feats.flatten(1), dim=1)  # (B, K)
        sim = feats @ feats.T  # (B, B) cosine similarities
        same = torch.ones(b, b, dtype=torch.bool, device=out.device)
        if isinstance(g, Tensor):
            gd = g.to(out.device)
            same = gd[:, None] == gd[None, :]
        elif isinstance(g, int):
            raise LayerscopeError("diversity groups are one id per batch element.")
        same &= ~torch.eye(b, dtype=torch.bool, device=out.device)
        others = same.sum(1).clamp(min=1)
        return -(sim * same).sum(1) / others

    return Objective(fn, (layer,), f"diversity({layer})")


def total_variation() -> Objective:
    """Mean absolute difference of neighbouring pixels of the (untransformed) image, per element: a penalty."""

    def fn(outputs: Outputs) -> Tensor:
        img = outputs[IMAGE]  # (B, C, H, W)
        dy = (img[..., 1:, :] - img[..., :-1, :]).abs().flatten(1).mean(1)
        dx = (img[..., :, 1:] - img[..., :, :-1]).abs().flatten(1).mean(1)
        return dy + dx

    return Objective(fn, (IMAGE,), "total_variation")


def high_frequency(cutoff: float = 0.25, p: float = 2.0) -> Objective:
    """Mean |spectrum|^p of the image above ``cutoff`` cycles per pixel (0.5 is Nyquist), per element: a penalty."""

    def fn(outputs: Outputs) -> Tensor:
        img = outputs[IMAGE]  # (B, C, H, W)
        h, w = img.shape[-2:]
        spectrum = torch.fft.rfft2(img, norm="ortho").abs()  # (B, C, H, W//2 + 1)
        fy = torch.fft.fftfreq(h, device=img.device)[:, None]
        fx = torch.fft.rfftfreq(w, device=img.device)[None, :]
        high = (fy**2 + fx**2).sqrt() > cutoff  # (H, W//2 + 1)
        if not bool(high.any()):
            return img.new_zeros(img.shape[0])
        return spectrum[..., high].pow(p).flatten(1).mean(1)

    return Objective(fn, (IMAGE,), f"high_frequency({cutoff:g}, p={p:g})")


def ink_excess(level: float) -> Objective:
    """How far the image's mean pixel value is above ``level`` (the data's mean), per element: a penalty that keeps
    an optimised digit as sparse as real ones; an image darker than the data is not penalised."""
    return Objective(lambda o: F.relu(o[IMAGE].flatten(1).mean(1) - level), (IMAGE,), f"ink_excess({level:.3g})")


def closeness(start: Tensor) -> Objective:
    """Mean squared difference of the image from ``start`` (B or 1, C, H, W), per element: a penalty that keeps an
    accentuated image near the real image it began as."""
    return Objective(
        lambda o: (o[IMAGE] - start.to(o[IMAGE].device)).square().flatten(1).mean(1), (IMAGE,), "closeness"
    )
