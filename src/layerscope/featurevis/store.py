"""Feature visualisations kept in a Run, one file per unit, and drawn to PNG.

    featurevis/<layer>/<unit>.npz   images (n, C, H, W) float32 regularised, naive (C, H, W) float32,
                                    activation (n,), naive_activation (), settings (JSON text), and when the Run
                                    has the layer's top-k: accent (C, H, W) float32, the unit's top dataset image
                                    accentuated toward it (``accentuate``)

The settings text also holds how far to trust the images (``trust``): the best dataset image's activation, the
regularised images' distance to the data (``prior.distance_to_data``) and how alike the random starts end.

A file is written under a temporary name and renamed, read without unpickling, and reused only when its settings
are the ones asked for; an unreadable one is recomputed.
"""

from __future__ import annotations

import json
import os
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image
from torch import nn

from layerscope.atomic import atomic_write
from layerscope.errors import LayerscopeError
from layerscope.featurevis.prior import SAMPLE, ImagePrior, distance_to_data, image_prior
from layerscope.featurevis.render import ACCENT_STEPS, Accentuation, accentuate, visualize
from layerscope.names import check_path_name
from layerscope.progress import ProgressFn, in_parts, no_progress
from layerscope.run import Run

__all__ = [
    "FORMAT",
    "FeatureVis",
    "cached_featurevis",
    "image_accentuation",
    "layer_featurevis",
    "run_prior",
    "save_png",
    "unit_featurevis",
]

FORMAT = 2  # bump when the recipe changes, so cached images made by an older one are recomputed
RESTARTS = 3  # random starts per image: the best is kept, and how alike they end says how far to trust it


@dataclass(frozen=True, eq=False)
class FeatureVis:
    """One unit's feature visualisation: regularised images beside the naive one, with their activations."""

    layer: str
    unit: int
    images: np.ndarray  # (n_diverse, C, H, W) float32 in [0, 1]: regularised
    naive: np.ndarray  # (C, H, W) float32 in [0, 1]: plain gradient ascent on the pixels
    activation: np.ndarray  # (n_diverse,) float32: unit_activation of each regularised image
    naive_activation: float
    settings: dict[str, Any] = field(default_factory=dict)
    accent: np.ndarray | None = None  # (C, H, W): the top dataset image accentuated toward the unit; see settings

    @property
    def trust(self) -> dict[str, Any]:
        """``dataset_max`` (the best dataset image's activation, or None without top-k), ``ink_ratio``,
        ``high_frequency_ratio`` and ``far`` (``distance_to_data`` of the regularised images), ``start_similarity``
        (None from one start), and ``accent_from``/``accent_start_activation``/``accent_activation``/``accent_change``
        when there is an accentuation."""
        return dict(self.settings.get("trust", {}))

    @property
    def parameterisation(self) -> str:
        return str(self.settings.get("regularised", {}).get("parameterisation", "pixel"))


def _path(run: Run, layer: str, unit: int) -> Path:
    # a stored unit's file: the layer name is a plain name (the Run's manifest is checked) and the unit a number
    return run.path / "featurevis" / check_path_name(layer) / f"{int(unit)}.npz"


def run_prior(run: Run) -> ImagePrior:
    """The image prior of the Run's training images (``image_prior``: a sample of 10,000, under a second)."""
    from layerscope.data.datasets import TRAIN

    train = np.flatnonzero(run.split == TRAIN)
    pool = train if len(train) else np.arange(run.n_images)
    # the sample image_prior draws, read alone: a referencing Run does not read every image file for it
    pick = np.sort(np.random.default_rng(0).choice(len(pool), size=min(len(pool), SAMPLE), replace=False))
    return image_prior(run.images[pool[pick]])


def _dataset_best(run: Run, layer: str, unit: int) -> tuple[float, int] | None:
    """The unit's highest activation over the dataset and the image that has it, from the Run's top-k."""
    if layer not in (run.manifest.get("topk") or {}).get("layers", []):
        return None
    top = run.topk(layer)
    return float(top.values[unit, 0]), int(top.indices[unit, 0])


def _settings(steps: int, n_diverse: int, restarts: int, seed: int) -> dict[str, Any]:
    return {"format": FORMAT, "steps": steps, "n_diverse": n_diverse, "restarts": restarts, "seed": seed}


def _load(path: Path, layer: str, unit: int, wanted: dict[str, Any]) -> FeatureVis | None:
    """The cached result, or None when missing, unreadable or made with other settings."""
    try:
        with np.load(path, allow_pickle=False) as z:
            settings = json.loads(str(z["settings"]))
            if {k: settings.get(k) for k in wanted} != wanted:
                return None
            return FeatureVis(
                layer=layer,
                unit=unit,
                images=np.asarray(z["images"], dtype=np.float32),
                naive=np.asarray(z["naive"], dtype=np.float32),
                activation=np.asarray(z["activation"], dtype=np.float32),
                naive_activation=float(z["naive_activation"]),
                settings=settings,
                accent=np.asarray(z["accent"], dtype=np.float32) if "accent" in z.files else None,
            )
    except (OSError, KeyError, ValueError, EOFError, zipfile.BadZipFile, json.JSONDecodeError):
        return None


def _save(path: Path, fv: FeatureVis) -> None:
    arrays: dict[str, Any] = {
        "images": fv.images,
        "naive": fv.naive,
        "activation": fv.activation,
        "naive_activation": np.float32(fv.naive_activation),
        "settings": np.array(json.dumps(fv.settings)),  # a unicode array: loads without pickle
    }
    if fv.accent is not None:
        arrays["accent"] = fv.accent
    with atomic_write(path) as f:
        np.savez(f, **arrays)


def _check(run: Run, layer: str, units: Sequence[int]) -> None:
    info = run.layer(layer)
    if info.kind == "image":
        raise LayerscopeError(
            f"layer {layer!r} is the input image: feature visualisation is for conv and dense layers "
            f"({', '.join(n for n in run.layer_names if n != layer)})."
        )
    n = info.shape[0]  # conv (C, H, W): channels; dense (D,): neurons
    bad = [u for u in units if not 0 <= u < n]
    if bad:
        raise LayerscopeError(f"unit {bad[0]} is out of range for layer {layer!r}: it has {n} units, 0 to {n - 1}.")


def cached_featurevis(
    run: Run,
    layer: str,
    unit: int,
    *,
    steps: int = 256,
    n_diverse: int = 1,
    restarts: int = RESTARTS,
    seed: int = 0,
) -> FeatureVis | None:
    """The unit's stored feature visualisation made with these settings, or None; never computes (cheap: one file)."""
    _check(run, layer, [unit])
    return _load(_path(run, layer, unit), layer, unit, _settings(steps, n_diverse, restarts, seed))


def layer_featurevis(
    run: Run,
    layer: str,
    units: Sequence[int] | None = None,
    *,
    model: nn.Module | None = None,
    recompute: bool = False,
    steps: int = 256,
    n_diverse: int = 1,
    restarts: int = RESTARTS,
    seed: int = 0,
    progress: ProgressFn = no_progress,
    store: bool = True,
) -> list[FeatureVis]:
    """Feature visualisations of ``units`` (default: all) of ``layer``, from the Run's cache where present.

    The missing ones are optimised together, one batch for the regularised images (the recipe ``visualize`` picks
    with the Run's image prior) and one for the naive, and stored (unless ``store`` is False: then the Run is left as
    it was). When the Run has the layer's top-k, each unit's top image is also accentuated toward it. ``model``
    defaults to the Run's. ``progress`` sees one task, "featurevis <layer>", rising through all of it (by steps).
    """
    unit_list = [int(u) for u in units] if units is not None else list(range(run.layer(layer).shape[0]))
    _check(run, layer, unit_list)
    wanted = _settings(steps, n_diverse, restarts, seed)
    found: dict[int, FeatureVis] = {}
    if not recompute:
        for u in unit_list:
            cached = _load(_path(run, layer, u), layer, u, wanted)
            if cached is not None:
                found[u] = cached
    missing = [u for u in unit_list if u not in found]
    if missing:
        model = model if model is not None else run.load_model()
        shape = tuple(int(s) for s in run.manifest["dataset"]["image_shape"])
        image_shape = (shape[0], shape[1], shape[2])
        bests = {u: _dataset_best(run, layer, u) for u in missing}
        accented = [u for u in missing if bests[u] is not None]
        # one bar over the regularised batch, the naive batch and each accentuation, weighted by their steps
        parts = in_parts(progress, f"featurevis {layer}", [steps, steps] + [ACCENT_STEPS] * len(accented))
        accent_progress = dict(zip(accented, parts[2:], strict=True))
        common: dict[str, Any] = {"image_shape": image_shape, "steps": steps, "restarts": restarts, "seed": seed}
        prior = run_prior(run)
        regularised = visualize(model, layer, missing, n_diverse=n_diverse, prior=prior, progress=parts[0], **common)
        naive = visualize(model, layer, missing, regularised=False, progress=parts[1], **common)
        for i, u in enumerate(missing):
            trust: dict[str, Any] = {**distance_to_data(regularised.images[i], prior), "dataset_max": None}
            similarity = regularised.start_similarity
            trust["start_similarity"] = float(similarity[i].mean()) if similarity is not None else None
            accent = None
            best = bests[u]
            if best is not None:
                trust["dataset_max"] = best[0]
                start = run.images[best[1]].astype(np.float32) / 255.0
                acc = accentuate(model, layer, u, start, prior=prior, seed=seed, progress=accent_progress[u])
                accent = acc.image
                trust.update(_accent_trust(acc, best[1]))
            fv = FeatureVis(
                layer=layer,
                unit=u,
                images=regularised.images[i],
                naive=naive.images[i, 0],
                activation=regularised.activation[i],
                naive_activation=float(naive.activation[i, 0]),
                settings={**wanted, "regularised": regularised.settings, "naive": naive.settings, "trust": trust},
                accent=accent,
            )
            if store:
                _save(_path(run, layer, u), fv)
            found[u] = fv
    return [found[u] for u in unit_list]


def unit_featurevis(
    run: Run,
    layer: str,
    unit: int,
    *,
    model: nn.Module | None = None,
    recompute: bool = False,
    steps: int = 256,
    n_diverse: int = 1,
    restarts: int = RESTARTS,
    seed: int = 0,
    progress: ProgressFn = no_progress,
    store: bool = True,
) -> FeatureVis:
    """One unit's feature visualisation, from the Run's cache when present (see ``layer_featurevis``)."""
    return layer_featurevis(
        run,
        layer,
        [unit],
        model=model,
        recompute=recompute,
        steps=steps,
        n_diverse=n_diverse,
        restarts=restarts,
        seed=seed,
        progress=progress,
        store=store,
    )[0]


def _accent_trust(acc: Accentuation, index: int) -> dict[str, Any]:
    return {
        "accent_from": index,
        "accent_start_activation": acc.start_activation,
        "accent_activation": acc.activation,
        "accent_change": acc.change,
    }


def image_accentuation(
    run: Run,
    layer: str,
    unit: int,
    index: int,
    *,
    model: nn.Module | None = None,
    steps: int | None = None,
    seed: int = 0,
    progress: ProgressFn = no_progress,
) -> Accentuation:
    """Image ``index`` of the Run accentuated toward ``unit`` of ``layer`` (``accentuate`` with the Run's prior).
    Not stored: it is one image of the dataset's, made in a second."""
    _check(run, layer, [unit])
    if not 0 <= index < run.n_images:
        raise LayerscopeError(
            f"image {index} is out of range: the Run has {run.n_images:,} images, 0 to {run.n_images - 1}."
        )
    model = model if model is not None else run.load_model()
    start = run.images[index].astype(np.float32) / 255.0
    more = {} if steps is None else {"steps": steps}
    return accentuate(model, layer, unit, start, prior=run_prior(run), seed=seed, progress=progress, **more)


def save_png(images: np.ndarray, path: str | os.PathLike[str], *, scale: int = 8, gap: int = 1) -> Path:
    """Draw images in [0, 1] to a PNG, enlarged ``scale`` times (nearest neighbour, so pixels stay sharp).

    ``images``: one (C, H, W), a row (N, C, H, W), or rows (R, N, C, H, W); C is 1 (grey) or 3 (RGB). Images are
    separated by ``gap`` source pixels of mid grey. Written atomically; returns the path.
    """
    a = np.asarray(images, dtype=np.float32)
    if a.ndim == 3:
        a = a[None, None]
    elif a.ndim == 4:
        a = a[None]
    if a.ndim != 5 or a.shape[2] not in (1, 3):
        raise LayerscopeError(
            f"save_png draws (C, H, W), (N, C, H, W) or (R, N, C, H, W) images with C = 1 or 3; got {a.shape}."
        )
    rows, cols, c, h, w = a.shape
    canvas = np.full((rows * (h + gap) - gap, cols * (w + gap) - gap, c), 0.5, np.float32)
    for r in range(rows):
        for k in range(cols):
            canvas[r * (h + gap) : r * (h + gap) + h, k * (w + gap) : k * (w + gap) + w] = a[r, k].transpose(1, 2, 0)
    pixels = (np.clip(canvas, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)
    pixels = pixels.repeat(scale, axis=0).repeat(scale, axis=1)  # nearest-neighbour enlargement
    image = Image.fromarray(pixels[..., 0] if c == 1 else pixels)  # uint8 (H, W) -> "L", (H, W, 3) -> "RGB"
    path = Path(path)
    with atomic_write(path) as f:
        image.save(f, format="PNG")
    return path
