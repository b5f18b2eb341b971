"""How a Run names and describes its layers, without importing torch (``layerscope info`` starts in a moment)."""

from __future__ import annotations

import math
import re
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from layerscope.errors import LayerscopeError

INPUT = "input"  # the name of the input image, layer 0 of every Run
CLS = "#cls"  # a token layer's class token, recorded beside its patch grid: ``outputs["blocks.0.add_1#cls"]``


TOKEN_SOURCES = ("cls", "mean")  # what a token layer's projections are computed from (`LayerInfo.project_from`)


def token_grid(tokens: int) -> tuple[int, int] | None:
    """(extra tokens before the patches, grid side) for ``tokens`` tokens: 65 -> (1, 8), 64 -> (0, 8); None when
    no count of up to 4 extra tokens leaves a square grid."""
    for extra in (1, 0, 2, 3, 4):
        side = math.isqrt(max(tokens - extra, 0))
        if side > 1 and side * side == tokens - extra:
            return extra, side
    return None


def token_layout(shape: Sequence[int]) -> tuple[int, int] | None:
    """(extra tokens, grid side) when a layer's (T, D) output per image is a transformer's tokens: T tokens whose
    last T - extra are patches on a square grid (`token_grid`), each of D features. None for any other shape, and
    for a (C, H*W) flattened feature map (its D = H*W makes a square grid itself: C channels, not tokens)."""
    if len(shape) != 2:
        return None
    layout = token_grid(int(shape[0]))
    return layout if layout is not None and token_grid(int(shape[1])) is None else None


@dataclass(frozen=True)
class LayerInfo:
    """One layer as a Run describes it. ``kind`` is "image" (the input), "conv" (C, H, W), "dense" (D,), or
    "projection": a layer known only by a 2-D projection someone else computed (an NN_data.json file), shape ().

    A transformer's token layer, (T, D) per image, is a conv layer of its D embedding channels over the patch
    tokens' grid, (D, side, side): feature maps, top images, Grad-CAM and ablation see it as one. ``tokens`` is the
    number of extra tokens before the patches (1: a class token; None: not a token layer), ``project_from`` what its
    projections are computed from: the class token's features ("cls") or the patch tokens' mean ("mean")."""

    name: str
    kind: str
    shape: tuple[int, ...]
    op: str = ""  # what computes it: a module's class name (Conv2d, BatchNorm2d) or a graph op (add, cat)
    tokens: int | None = None
    project_from: str = ""

    @property
    def projected_dims(self) -> int:
        """How many values per image the layer's projections are computed from: a token layer's D, else ``dims``."""
        return self.shape[0] if self.tokens is not None else self.dims

    @property
    def recomputed(self) -> bool:
        """A conv layer that a Run keeps only summaries of: its projections recompute its maps from the model."""
        return self.kind == "conv" and self.tokens is None

    @property
    def token_features(self) -> str | None:
        """The stored (N, D) array a token layer's projections come from ("cls" or "mean"); None for other layers."""
        if self.tokens is None:
            return None
        return self.project_from or ("cls" if self.tokens else "mean")

    @property
    def dims(self) -> int:
        return math.prod(self.shape)

    def to_dict(self) -> dict[str, Any]:
        stored = {"image": "images", "conv": "channel_summary", "dense": "full", "projection": "projection"}[self.kind]
        d = {"name": self.name, "kind": self.kind, "shape": list(self.shape), "dims": self.dims, "stored": stored}
        if self.tokens is not None:
            d["tokens"] = {"extra": self.tokens, "project_from": self.token_features}
        return d | ({"op": self.op} if self.op else {})

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> LayerInfo:
        tokens = d.get("tokens") or {}
        return cls(
            str(d["name"]),
            str(d["kind"]),
            tuple(int(s) for s in d["shape"]),
            str(d.get("op", "")),
            int(tokens["extra"]) if tokens else None,
            str(tokens.get("project_from", "")),
        )

    @property
    def normalisation(self) -> bool:
        """A batch, layer or group norm: each unit a rescaled copy of the layer before, not a layer to open on."""
        return self.op.startswith(("BatchNorm", "LayerNorm", "GroupNorm", "InstanceNorm"))


def projection_values(info: LayerInfo, outputs: Mapping[str, Any]) -> Any:
    """(n, ``info.projected_dims``) what the layer's projections take, from a batch of recorded outputs
    (``layerscope.capture.ActivationRecorder``; numpy arrays or torch tensors): a token layer's class token
    (``<layer>#cls``) or its patch tokens' mean, any other layer's whole output, flattened."""
    values = outputs[info.name]
    source = info.token_features
    if source == "cls":
        return outputs[info.name + CLS]
    if source == "mean":
        return values.mean((2, 3))
    return values.reshape(len(values), -1)


def image_projection_values(info: LayerInfo, outputs: Mapping[str, Any]) -> Any:
    """``projection_values`` of one image, whose ``outputs`` have no batch dimension: (``info.projected_dims``,)."""
    keys = (info.name, info.name + CLS)
    return projection_values(info, {key: outputs[key][None] for key in keys if key in outputs})[0]


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
