"""How a Run names and describes its layers, without importing torch (``layerscope info`` starts in a moment)."""

from __future__ import annotations

import math
import re
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from typing import Any

from layerscope.errors import LayerscopeError

INPUT = "input"  # the name of the input image, layer 0 of every Run


@dataclass(frozen=True)
class LayerInfo:
    """One layer as a Run describes it. ``kind`` is "image" (the input), "conv" (C, H, W), "dense" (D,), or
    "projection": a layer known only by a 2-D projection someone else computed (an NN_data.json file), shape ()."""

    name: str
    kind: str
    shape: tuple[int, ...]
    op: str = ""  # what computes it: a module's class name (Conv2d, BatchNorm2d) or a graph op (add, cat)

    @property
    def dims(self) -> int:
        return math.prod(self.shape)

    def to_dict(self) -> dict[str, Any]:
        stored = {"image": "images", "conv": "channel_summary", "dense": "full", "projection": "projection"}[self.kind]
        d = {"name": self.name, "kind": self.kind, "shape": list(self.shape), "dims": self.dims, "stored": stored}
        return d | ({"op": self.op} if self.op else {})

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> LayerInfo:
        return cls(str(d["name"]), str(d["kind"]), tuple(int(s) for s in d["shape"]), str(d.get("op", "")))

    @property
    def normalisation(self) -> bool:
        """A batch, layer or group norm: each unit a rescaled copy of the layer before, not a layer to open on."""
        return self.op.startswith(("BatchNorm", "LayerNorm", "GroupNorm", "InstanceNorm"))


def output_layer(layers: Sequence[LayerInfo], classes: int) -> str | None:
    """The model's output among ``layers`` (as a Run lists them, input first): the last layer when it is dense with
    one unit per class (the report CNN's ``out``); None when the Run leaves the output out."""
    if len(layers) > 1 and layers[-1].kind == "dense" and layers[-1].dims == classes:
        return layers[-1].name
    return None


def last_hidden_layer(layers: Sequence[LayerInfo], classes: int, kinds: Collection[str] = ("conv", "dense")) -> str:
    """The layer a view opens on when none is chosen: the last layer of one of ``kinds`` before the model's output
    (``output_layer``), e.g. ``fc2`` of the report's CNN or ``classifier.1`` of a torchvision-style
    ``features``/``classifier`` model. Without one, the last layer of ``kinds`` (the output itself), else the last
    layer."""
    output = output_layer(layers, classes)
    hidden = [info.name for info in layers if info.kind in kinds and info.name != output and not info.normalisation]
    if hidden:
        return hidden[-1]
    return next((info.name for info in reversed(layers) if info.kind in kinds), layers[-1].name)


MAX_UNITS = 1 << 20  # units one option may name: far more than any conv or dense layer has
UNITS_EXAMPLE = "7, fc2:3, conv2:7,9 or fc2:0-63"


def _shown(text: str) -> str:
    return repr(text) if len(text) <= 60 else repr(text[:57] + "...")


def parse_units(text: str, layer: str | None = None, option: str = "--unit") -> tuple[str, tuple[int, ...]]:
    """``--unit`` as every command and the page write it: ``"7"`` (of ``layer``, the ``--layer`` given beside it),
    ``"fc2:3"``, ``"conv2:7,9"`` or ``"fc2:0-63"`` (a range, both ends included) -> (layer, units). A unit is a conv
    layer's channel or a dense layer's neuron, from 0. Whether the layer has those units is checked against the Run,
    not here."""
    named, sep, spec = str(text).strip().rpartition(":")
    if sep and not named:
        raise LayerscopeError(f"{option} {_shown(text)}: write UNITS or LAYER:UNITS, e.g. {UNITS_EXAMPLE}.")
    if sep and layer is not None and named != layer:
        raise LayerscopeError(f"{option} {_shown(text)} names layer {named!r} but --layer is {layer!r}; give one.")
    chosen = named or layer
    if chosen is None and not re.fullmatch(r"[\d,\s-]+", spec):  # a layer alone ("fc2"), no units
        raise LayerscopeError(f"{option} {_shown(text)}: write LAYER:UNITS (or UNITS with --layer), e.g. fc2:3.")
    if chosen is None:
        raise LayerscopeError(f"{option} {_shown(text)}: which layer? Write LAYER:UNITS or add --layer, e.g. fc2:3.")
    units: list[int] = []
    try:
        for part in spec.split(","):
            lo, dash, hi = part.strip().partition("-")
            if dash:
                if int(hi) < int(lo):
                    raise ValueError(part)
                if int(hi) - int(lo) >= MAX_UNITS or len(units) >= MAX_UNITS:
                    raise LayerscopeError(
                        f"{option} {_shown(text)}: at most {MAX_UNITS:,} units at once; no layer here has more."
                    )
                units.extend(range(int(lo), int(hi) + 1))
            else:
                units.append(int(lo))
    except ValueError:
        raise LayerscopeError(
            f"{option} {_shown(text)}: units are whole numbers from 0, comma-separated or a range, e.g. "
            f"{UNITS_EXAMPLE}."
        ) from None
    return chosen, tuple(units)


def parse_unit(text: str, layer: str | None = None, option: str = "--unit") -> tuple[str, int]:
    """One unit, written as ``parse_units`` reads them (``"7"`` with ``layer``, or ``"fc1:7"``) -> (layer, unit)."""
    chosen, units = parse_units(text, layer, option)
    if len(units) != 1:
        raise LayerscopeError(f"{option} {_shown(text)}: this command takes one unit, e.g. 7 or {chosen}:7.")
    return chosen, units[0]
