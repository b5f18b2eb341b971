"""A digit drawn by hand, made to look like an MNIST digit, and the training images nearest to it in a layer.

MNIST's digits were size-normalised to fit a 20x20 box with their aspect ratio kept, anti-aliased to grey levels,
and centred in the 28x28 field by their centre of mass (LeCun et al.). ``preprocess_digit`` does the same to a
drawing, so the network sees what it was trained on: a stroke drawn small in a corner becomes a centred digit.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageDraw

from layerscope.data.datasets import TRAIN
from layerscope.errors import LayerscopeError
from layerscope.run import Run

__all__ = [
    "NeighbourIndex",
    "Neighbours",
    "center_of_mass",
    "draw_over",
    "drawing_off",
    "preprocess_digit",
    "render_strokes",
]

Stroke = Sequence[tuple[float, float]]


def render_strokes(strokes: Sequence[Stroke], size: int = 280, width: float | None = None) -> np.ndarray:
    """Polylines of (x, y) points in [0, 1] (as a canvas reports them, origin top left) -> (size, size) float32 in
    [0, 1], white strokes on black, ``width`` pixels wide (default: size / 14, a pen like MNIST's)."""
    width = width or size / 14
    image = Image.new("L", (size, size), 0)
    draw = ImageDraw.Draw(image)
    r = width / 2
    for stroke in strokes:
        points = [(float(x) * (size - 1), float(y) * (size - 1)) for x, y in stroke]
        if len(points) > 1:
            draw.line(points, fill=255, width=max(1, round(width)), joint="curve")
        for x, y in points[:1] + points[-1:]:  # round caps, and a dot for a single tap
            draw.ellipse((x - r, y - r, x + r, y + r), fill=255)
    return np.asarray(image, dtype=np.float32) / 255.0


def center_of_mass(image: np.ndarray) -> tuple[float, float]:
    """(row, column) of the intensity-weighted centre of a 2-D image; the middle for an empty one."""
    total = float(image.sum())
    if total <= 0:
        return (image.shape[0] - 1) / 2, (image.shape[1] - 1) / 2
    rows, cols = np.indices(image.shape)
    return float((rows * image).sum() / total), float((cols * image).sum() / total)


def preprocess_digit(canvas: np.ndarray, box: int = 20, field: int = 28, threshold: float = 0.05) -> np.ndarray:
    """A drawing (H, W) in [0, 1] -> (field, field) float32 as MNIST digits were made: the ink's bounding box scaled
    to fit ``box`` x ``box`` with its aspect ratio, anti-aliased, then moved so its centre of mass is the field's
    centre. An empty drawing gives an empty field."""
    canvas = np.asarray(canvas, dtype=np.float32)
    if canvas.ndim != 2:
        raise LayerscopeError(f"a drawing is one 2-D grey image, found shape {canvas.shape}.")
    ink = np.argwhere(canvas > threshold)
    out = np.zeros((field, field), np.float32)
    if len(ink) == 0:
        return out
    (top, left), (bottom, right) = ink.min(0), ink.max(0) + 1
    crop = canvas[top:bottom, left:right]
    scale = box / max(crop.shape)
    h, w = max(1, round(crop.shape[0] * scale)), max(1, round(crop.shape[1] * scale))
    # LANCZOS averages the ink under each new pixel: the grey edges MNIST's anti-aliasing gave
    small = Image.fromarray(np.round(crop * 255).astype(np.uint8)).resize((w, h), Image.Resampling.LANCZOS)
    digit = np.asarray(small, dtype=np.float32) / 255.0
    cy, cx = center_of_mass(digit)
    # whole-pixel placement, kept inside the field, that puts the centre of mass within half a pixel of (14, 14):
    # where MNIST's digits have theirs (every one of them lies in [13.5, 14.5] on both axes)
    middle = field / 2
    y0 = int(np.clip(round(middle - cy), 0, field - h))
    x0 = int(np.clip(round(middle - cx), 0, field - w))
    out[y0 : y0 + h, x0 : x0 + w] = digit
    return np.clip(out, 0.0, 1.0)


def drawing_off(image_shape: Sequence[int]) -> str | None:
    """Why a drawing cannot be given to a model of images ``image_shape`` (C, H, W), in a sentence; None where it
    can: a drawing is grey and square, made as MNIST made its digits at the images' size (`preprocess_digit`)."""
    c, h, w = (int(v) for v in image_shape)
    if c != 1:
        return f"Drawing works on grey images; this Run's are in colour ({c} x {h} x {w}), so the Draw view is off."
    if h != w:
        return f"Drawing works on square images; this Run's are {h} x {w}, so the Draw view is off."
    return None


def draw_over(image: np.ndarray, strokes: Sequence[Stroke], scale: int = 10) -> np.ndarray:
    """An image (H, W) in [0, 1] with ``strokes`` drawn over it, as a canvas ``scale`` times its size shows it: the
    pen's ink averaged down to the image's pixels, each pixel the brighter of the two. Unlike a drawing from scratch
    (`preprocess_digit`) nothing is moved or resized: the pixels the pen did not touch stay as they were, so what
    the network makes of the change is the change alone. A uint8 image is read as 0 .. 255."""
    image = np.asarray(image)
    image = image.astype(np.float32) / 255.0 if image.dtype == np.uint8 else image.astype(np.float32)
    if image.ndim != 2:
        raise LayerscopeError(f"one draws over one 2-D grey image, found shape {image.shape}.")
    if not strokes:
        return image.copy()
    h, w = image.shape
    size = scale * max(h, w)  # the canvas is square; a wide or tall image sits in its top left corner
    ink = Image.fromarray(np.round(render_strokes(strokes, size) * 255).astype(np.uint8))
    small = np.asarray(ink.resize((size // scale, size // scale), Image.Resampling.BOX), dtype=np.float32) / 255.0
    return np.maximum(image, small[:h, :w])


@dataclass(frozen=True)
class Neighbours:
    indices: np.ndarray  # (k,) dataset indices, nearest first
    distances: np.ndarray  # (k,) Euclidean distances in the layer's space


class NeighbourIndex:
    """The training images of a Run in one layer's activation space, for nearest-neighbour queries of new inputs.

    The space is the one projections use: a dense layer of up to 100 units as it is, any wider layer (the input,
    conv layers) by its 50 leading PCA scores. Built once per layer (a (60,000, 64) matrix for fc1) and queried
    by brute force, a few milliseconds each.
    """

    def __init__(self, run: Run, layer: str) -> None:
        # the projections' own code (and torch, for a conv layer's PCA): drawing a digit needs neither
        from layerscope.projections.compute import RAW_MAX_DIMS, compute_pca

        info = run.layer(layer)
        if info.kind == "projection":
            raise LayerscopeError(f"layer {layer!r} has no activations in this Run to compare images in.")
        self.run, self.layer = run, layer
        tokens = info.tokens is not None  # a token layer: its class token or token mean, as its projections
        self.raw = (info.kind == "dense" or tokens) and info.projected_dims <= RAW_MAX_DIMS
        self.train = np.flatnonzero(np.asarray(run.split) == TRAIN)
        if self.raw:
            space = np.asarray(run.token_features(layer) if tokens else run.activations(layer))[self.train]
        else:
            if not run.has_features(layer, "pca") or not run.has_features(layer, "pca_components"):
                compute_pca(run, [layer])  # Runs made before the fitted map was stored get it now
            space = np.asarray(run.features(layer, "pca"))[self.train]
        self.space = np.ascontiguousarray(space, dtype=np.float32)  # (n_train, d)
        self.norms = (self.space.astype(np.float64) ** 2).sum(1)

    def features(self, values: np.ndarray) -> np.ndarray:
        """(n, ...) values of the layer as its projections take them (``layers.projection_values``: the full output,
        a token layer's class token or token mean) -> (n, d) points of this space."""
        from layerscope.projections.compute import pca_transform

        flat = np.asarray(values, np.float32).reshape(len(values), -1)
        return flat if self.raw else pca_transform(self.run, self.layer, flat)

    def query(self, values: np.ndarray, k: int = 8) -> Neighbours:
        """The ``k`` training images nearest to one input whose layer values are ``values`` (its full output, or a
        token layer's ``layers.image_projection_values``)."""
        point = self.features(np.asarray(values)[None])[0].astype(np.float64)
        # ||a - b||^2 = ||a||^2 - 2 a.b + ||b||^2, over every training image at once
        squared = self.norms - 2 * (self.space @ point) + point @ point
        k = min(k, len(squared))
        nearest = np.argpartition(squared, k - 1)[:k]
        nearest = nearest[np.argsort(squared[nearest], kind="stable")]
        return Neighbours(self.train[nearest], np.sqrt(np.maximum(squared[nearest], 0)))
