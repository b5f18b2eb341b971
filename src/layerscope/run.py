"""The Run directory: everything layerscope knows about one model on one dataset, and the single source of truth the
dashboard reads.

    manifest.json            format version, dataset, model spec, layers and shapes, metrics, history, what is computed
    weights.safetensors      the trained weights
    images.npy               (N, C, H, W) uint8, train split first
    labels.npy  split.npy    (N,) int64 class indices, (N,) uint8 0 = train / 1 = test
    probs.npy                (N, K) float32 softmax probabilities
    activations/<layer>.npy               (N, D) float32, dense layers whole
    activations/<layer>.mean.npy|max.npy  (N, C) float32, conv layers: per-channel spatial mean and max
    features/<layer>.pca.npy              (N, 50) float32, leading PCA scores (input to t-SNE, UMAP, LDA, Isomap)
    features/<layer>.pca_components.npy   (50, D) float32, and .pca_mean.npy (D,): the fitted map, for new inputs
    projections/<layer>/<method>.npy      (N, 2) float32
    topk/<layer>.values.npy|indices.npy   (U, k) float32 descending / int64: the k images activating each unit most
    topk/<layer>.positions.npy            (U, k, 2) int32 (y, x) of each conv channel's maximum (see topk.py)

A Run imported from an NN_data.json file (``layerscope.interop``) has no model ("model": null in the manifest) and
may also hold:

    names.npy                (N,) the file's instance names
    aggregates/images.npy    (M, C, H, W) uint8: instances that stand for a group, such as the per-digit averages
    aggregates/activations/<layer>.npy, aggregates/projections/<layer>.npy   their values, NaN where the file has none

Arrays are opened memory-mapped. Every file is written under a temporary name and renamed into place, and a new Run
is built in a temporary directory that is renamed only once complete, so an interrupted command never leaves a
broken Run and never damages an existing one.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.torch import save_file
from torch import nn

from layerscope.atomic import atomic_write
from layerscope.capture import LayerInfo
from layerscope.data.datasets import Dataset
from layerscope.errors import LayerNotFoundError, RunError
from layerscope.models.loading import build_model, load_weights
from layerscope.topk import TopK

__all__ = [
    "FORMAT_VERSION",
    "Aggregates",
    "Run",
    "dataset_manifest",
    "now",
    "save_weights",
    "staging_dir",
    "write_array",
    "write_dataset_arrays",
    "write_json",
]

FORMAT_VERSION = 1
MANIFEST = "manifest.json"


def write_json(path: Path, data: Any) -> None:
    """Write JSON atomically."""
    with atomic_write(path, "w") as f:
        json.dump(data, f, indent=2)
        f.write("\n")


def write_array(path: Path, array: np.ndarray) -> None:
    """Write a ``.npy`` file atomically."""
    with atomic_write(path) as f:
        np.save(f, array)


def save_weights(model: nn.Module, path: Path) -> None:
    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    save_file(state, str(path))


@contextlib.contextmanager
def staging_dir(out: str | os.PathLike[str], force: bool = False) -> Iterator[Path]:
    """Build a new Run in a temporary sibling directory and move it to ``out`` only when the block succeeds.

    An existing ``out`` is refused unless ``force``; with ``force`` it is replaced only after the new Run is complete.
    """
    out = Path(out)
    if out.exists() and not force:
        raise RunError(f"{out} already exists; pass --force to replace it, or choose another --out.")
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=out.parent, prefix=f".{out.name}.", suffix=".tmp"))
    try:
        yield tmp
        if out.exists():
            old = out.with_name(f".{out.name}.old-{os.getpid()}")
            os.replace(out, old)
            os.replace(tmp, out)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, out)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


def now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


@dataclass(frozen=True)
class Aggregates:
    """Instances that stand for a group of images rather than one image (an NN_data.json file's per-digit averages),
    kept as the file gave them. ``labels[i]`` is the class an aggregate stands for, or -1 when the file does not say."""

    names: list[str]
    labels: np.ndarray  # (M,) int64
    images: np.ndarray  # (M, C, H, W) uint8
    activations: dict[str, np.ndarray]  # layer -> (M, D) float32, NaN rows where the file has none
    projections: dict[str, np.ndarray]  # layer -> (M, 2) float32, NaN rows where the file has none

    def of_class(self, k: int) -> int | None:
        """The position of the one aggregate that stands for class ``k``, if there is exactly one."""
        hits = np.flatnonzero(self.labels == k)
        return int(hits[0]) if len(hits) == 1 else None


class Run:
    """A Run directory, opened read-only; ``update_manifest`` and ``write_array`` add results atomically."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        manifest_path = self.path / MANIFEST
        if not manifest_path.is_file():
            if self.path.is_dir():
                raise RunError(
                    f"{self.path} is not a layerscope Run (no {MANIFEST}); create one with 'layerscope train'."
                )
            raise RunError(f"{self.path}: no such Run; create one with 'layerscope train --out {self.path}'.")
        try:
            self.manifest: dict[str, Any] = json.loads(manifest_path.read_text())
        except (json.JSONDecodeError, UnicodeDecodeError) as e:
            raise RunError(
                f"{manifest_path} is not valid JSON ({e}); re-create the Run with 'layerscope train'."
            ) from e
        version = self.manifest.get("format_version")
        if not isinstance(version, int):
            raise RunError(f"{manifest_path} has no format_version; it was not written by layerscope.")
        if version > FORMAT_VERSION:
            raise RunError(
                f"{self.path} was written by a newer layerscope (Run format {version}; this version reads up to "
                f"{FORMAT_VERSION}). Upgrade: pip install -U layerscope."
            )
        missing = [key for key in ("dataset", "model", "layers", "metrics") if key not in self.manifest]
        if missing:
            raise RunError(f"{manifest_path} lacks {', '.join(missing)}; re-create the Run with 'layerscope train'.")
        self.layers = [LayerInfo.from_dict(d) for d in self.manifest["layers"]]

    def __repr__(self) -> str:
        return f"Run({str(self.path)!r})"

    # -- layers ---------------------------------------------------------------------------------------------------
    @property
    def layer_names(self) -> list[str]:
        return [info.name for info in self.layers]

    def layer(self, name: str) -> LayerInfo:
        for info in self.layers:
            if info.name == name:
                return info
        raise LayerNotFoundError(
            f"unknown layer {name!r}; this Run has {', '.join(self.layer_names)}. "
            f"Hint: 'layerscope layers {self.path}' lists them."
        )

    # -- arrays ---------------------------------------------------------------------------------------------------
    def _load(self, relpath: str) -> np.ndarray:
        path = self.path / relpath
        if not path.is_file():
            raise RunError(f"{self.path}: {relpath} is missing; the Run is incomplete, re-create it.")
        return np.load(path, mmap_mode="r")

    @property
    def images(self) -> np.ndarray:
        return self._load("images.npy")

    @property
    def labels(self) -> np.ndarray:
        return self._load("labels.npy")

    @property
    def split(self) -> np.ndarray:
        return self._load("split.npy")

    @property
    def probs(self) -> np.ndarray:
        return self._load("probs.npy")

    @property
    def class_names(self) -> list[str]:
        return list(self.manifest["dataset"]["class_names"])

    def activations(self, layer: str) -> np.ndarray:
        """(N, D) activations of a dense layer."""
        info = self.layer(layer)
        if info.kind != "dense":
            raise RunError(
                f"layer {layer!r} is {info.kind}; only dense layers are stored whole (conv: channel_summary)."
            )
        return self._load(f"activations/{layer}.npy")

    def channel_summary(self, layer: str, stat: str = "mean") -> np.ndarray:
        """(N, C) per-channel spatial mean or max of a conv layer."""
        info = self.layer(layer)
        if info.kind != "conv" or stat not in ("mean", "max"):
            raise RunError(f"channel summaries exist for conv layers, stat 'mean' or 'max' (got {layer!r}, {stat!r}).")
        return self._load(f"activations/{layer}.{stat}.npy")

    def dataset(self) -> Dataset:
        """The Run's images and labels as a Dataset (memory-mapped)."""
        d = self.manifest["dataset"]
        return Dataset(
            name=d["name"],
            images=self.images,
            labels=self.labels,
            split=self.split,
            class_names=tuple(d["class_names"]),
            source=d.get("source", ""),
        )

    @property
    def names(self) -> np.ndarray:
        """(N,) the name of each image: the instance names of an imported file, else "train-12" / "test-3"."""
        if (self.path / "names.npy").is_file():
            return np.load(self.path / "names.npy")
        split = np.asarray(self.split)
        return np.char.add(np.where(split == 0, "train-", "test-"), np.arange(len(split)).astype(str))

    @property
    def aggregates(self) -> Aggregates | None:
        """The file's aggregate instances (per-digit averages), for Runs imported from NN_data.json."""
        listed = self.manifest.get("aggregates")
        if not listed:
            return None
        return Aggregates(
            names=[str(a["name"]) for a in listed],
            labels=np.array([-1 if a.get("label") is None else int(a["label"]) for a in listed], np.int64),
            images=np.asarray(self._load("aggregates/images.npy")),
            activations={
                layer: np.asarray(self._load(f"aggregates/activations/{layer}.npy"))
                for layer in self.manifest.get("aggregate_layers", {}).get("activations", [])
            },
            projections={
                layer: np.asarray(self._load(f"aggregates/projections/{layer}.npy"))
                for layer in self.manifest.get("aggregate_layers", {}).get("projections", [])
            },
        )

    @property
    def has_model(self) -> bool:
        """False for a Run imported from an NN_data.json file: it has the file's values but no weights."""
        return self.manifest.get("model") is not None

    def load_model(self, device: str | torch.device = "cpu") -> nn.Module:
        if not self.has_model:
            source = self.manifest.get("source", {}).get("file", "a file")
            raise RunError(
                f"{self.path} has no model (it was imported from {source}); feature maps, top images and "
                "feature visualisation need one: "
                "build a Run with 'layerscope import-model' or 'layerscope train'."
            )
        model = build_model(self.manifest["model"])
        load_weights(model, self.path / "weights.safetensors")
        return model.to(device).eval()

    # -- projections ----------------------------------------------------------------------------------------------
    def projection_meta(self, layer: str, method: str) -> dict[str, Any] | None:
        meta = self.manifest.get("projections", {}).get(layer, {}).get(method)
        return dict(meta) if meta is not None else None

    def projection(self, layer: str, method: str) -> np.ndarray:
        self.layer(layer)
        if self.projection_meta(layer, method) is None:
            raise RunError(
                f"no {method} projection of {layer!r} in {self.path}; compute it with "
                f"'layerscope project {self.path} --layer {layer} --method {method}'."
            )
        return self._load(f"projections/{layer}/{method}.npy")

    # -- top-k images ---------------------------------------------------------------------------------------------
    def topk(self, layer: str) -> TopK:
        """The k dataset images that activate each unit of ``layer`` most (see ``layerscope.topk``)."""
        info = self.layer(layer)
        if info.kind == "image":
            raise RunError("the input has no units to rank images by; choose a conv or dense layer.")
        if layer not in (self.manifest.get("topk") or {}).get("layers", []):
            raise RunError(
                f"no top-k images of {layer!r} in {self.path}; compute them with "
                f"'layerscope topk {self.path} --layer {layer} --unit 0'."
            )
        positions = self._load(f"topk/{layer}.positions.npy") if info.kind == "conv" else None
        return TopK(
            values=np.array(self._load(f"topk/{layer}.values.npy")),
            indices=np.array(self._load(f"topk/{layer}.indices.npy")),
            positions=np.array(positions) if positions is not None else None,
        )

    def computed(self) -> dict[str, Any]:
        """What the Run holds, for ``info``: stored activations and projections per layer, layers with top-k."""
        stored = {info.name: info.to_dict()["stored"] for info in self.layers}
        projections = {layer: sorted(methods) for layer, methods in self.manifest.get("projections", {}).items()}
        topk = (self.manifest.get("topk") or {}).get("layers", [])
        return {"activations": stored, "projections": projections, "topk": list(topk)}

    # -- updating -------------------------------------------------------------------------------------------------
    def write_array(self, relpath: str, array: np.ndarray) -> None:
        write_array(self.path / relpath, array)

    def update_manifest(self, change: Callable[[dict[str, Any]], None]) -> None:
        """Re-read, change and atomically rewrite the manifest, under a lock so concurrent writers do not clash."""
        with open(self.path / ".lock", "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                manifest = json.loads((self.path / MANIFEST).read_text())
                change(manifest)
                manifest["updated"] = now()
                write_json(self.path / MANIFEST, manifest)
                self.manifest = manifest
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)


def dataset_manifest(dataset: Dataset) -> dict[str, Any]:
    return {
        "name": dataset.name,
        "source": dataset.source,
        "n_images": len(dataset),
        "n_train": int((dataset.split == 0).sum()),
        "n_test": int((dataset.split == 1).sum()),
        "image_shape": list(dataset.image_shape),
        "class_names": list(dataset.class_names),
        **{k: v for k, v in dataset.info.items() if v is not None},
    }


def write_dataset_arrays(directory: Path, dataset: Dataset) -> None:
    write_array(directory / "images.npy", np.ascontiguousarray(dataset.images, dtype=np.uint8))
    write_array(directory / "labels.npy", np.asarray(dataset.labels, dtype=np.int64))
    write_array(directory / "split.npy", np.asarray(dataset.split, dtype=np.uint8))
