"""Datasets: the bundled MNIST and any directory holding the four IDX files of the MNIST layout.

A dataset is held as uint8 images ``(N, C, H, W)`` with the training images first and the test images after them, in
the files' order, so index ``i`` names the same image everywhere in layerscope. Pixels become float32 in [0, 1] only
when a batch is handed to a model.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import torch

from layerscope.data.idx import read_idx
from layerscope.errors import LayerscopeError

__all__ = ["Dataset", "load_dataset", "load_idx_dir", "load_mnist", "MNIST_DIR", "TRAIN", "TEST"]

MNIST_DIR = Path(__file__).parent / "mnist"
TRAIN, TEST = 0, 1

# Roles -> filename fragments, in the order they are tried. Fashion-MNIST, KMNIST and EMNIST use these names.
_ROLES = {
    "train_images": ("train-images",),
    "train_labels": ("train-labels",),
    "test_images": ("t10k-images", "test-images"),
    "test_labels": ("t10k-labels", "test-labels"),
}


@dataclass(frozen=True)
class Dataset:
    """Images and labels of a classification dataset, train split first, then test."""

    name: str
    images: np.ndarray  # (N, C, H, W) uint8
    labels: np.ndarray  # (N,) int64
    split: np.ndarray  # (N,) uint8, TRAIN or TEST
    class_names: tuple[str, ...]
    source: str = ""
    info: dict[str, object] = field(default_factory=dict)

    def __len__(self) -> int:
        return int(self.labels.shape[0])

    @property
    def image_shape(self) -> tuple[int, int, int]:
        c, h, w = self.images.shape[1:]
        return int(c), int(h), int(w)

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    def indices(self, split: int | None = None) -> np.ndarray:
        """Indices of one split (``TRAIN``/``TEST``), or of every image when ``split`` is None."""
        if split is None:
            return np.arange(len(self))
        return np.flatnonzero(self.split == split)

    def pixels(self, index: np.ndarray | slice) -> torch.Tensor:
        """Images ``index`` as a float32 tensor in [0, 1], shape (n, C, H, W)."""
        return torch.from_numpy(np.ascontiguousarray(self.images[index])).float().div_(255.0)

    def subset(self, train_limit: int | None = None, test_limit: int | None = None) -> Dataset:
        """The first ``train_limit`` training and first ``test_limit`` test images (the canonical order is kept)."""
        if train_limit is None and test_limit is None:
            return self
        train = self.indices(TRAIN)[:train_limit]
        test = self.indices(TEST)[:test_limit]
        keep = np.concatenate([train, test])
        info = dict(self.info, train_limit=train_limit, test_limit=test_limit)
        return Dataset(
            self.name, self.images[keep], self.labels[keep], self.split[keep], self.class_names, self.source, info
        )


def _find(directory: Path, role: str) -> Path:
    matches: list[Path] = []
    for fragment in _ROLES[role]:
        matches = sorted(p for p in directory.iterdir() if fragment in p.name and not p.name.startswith("."))
        if matches:
            break
    if not matches:
        wanted = " or ".join(f"*{f}*" for f in _ROLES[role])
        raise LayerscopeError(
            f"{directory}: no {role.replace('_', ' ')} file ({wanted}). "
            "A dataset directory holds train-images, train-labels, t10k-images and t10k-labels IDX files."
        )
    if len(matches) > 1:
        names = ", ".join(p.name for p in matches)
        raise LayerscopeError(f"{directory}: several {role.replace('_', ' ')} files ({names}); keep one.")
    return matches[0]


def _images_nchw(images: np.ndarray, path: Path) -> np.ndarray:
    if images.dtype != np.uint8:
        raise LayerscopeError(f"{path}: images must be uint8 (0-255), found {images.dtype}.")
    if images.ndim == 3:  # (N, H, W) -> (N, 1, H, W)
        return images[:, None]
    if images.ndim == 4 and images.shape[-1] in (1, 3):  # (N, H, W, C) -> (N, C, H, W)
        return np.ascontiguousarray(images.transpose(0, 3, 1, 2))
    raise LayerscopeError(f"{path}: images must be (N, H, W) or (N, H, W, 1|3), found shape {images.shape}.")


def parse_class_names(value: str | os.PathLike[str] | list[str] | tuple[str, ...] | None) -> tuple[str, ...] | None:
    """Class names from a comma-separated string, a text file with one name per line, or a list."""
    if value is None:
        return None
    if isinstance(value, (list, tuple)):
        return tuple(str(v) for v in value)
    path = Path(value)
    if path.is_file():
        return tuple(line.strip() for line in path.read_text().splitlines() if line.strip())
    return tuple(name.strip() for name in str(value).split(","))


def load_idx_dir(
    directory: str | os.PathLike[str],
    class_names: str | os.PathLike[str] | list[str] | tuple[str, ...] | None = None,
    name: str | None = None,
) -> Dataset:
    """Load a directory holding the four IDX files of the MNIST layout (``.gz`` or not)."""
    directory = Path(directory)
    if not directory.is_dir():
        raise LayerscopeError(f"{directory}: no such dataset directory.")
    arrays = {role: read_idx(_find(directory, role)) for role in _ROLES}
    parts = []
    for split_name in ("train", "test"):
        images_path = _find(directory, f"{split_name}_images")
        images = _images_nchw(arrays[f"{split_name}_images"], images_path)
        labels = arrays[f"{split_name}_labels"]
        if labels.ndim != 1 or labels.shape[0] != images.shape[0]:
            raise LayerscopeError(
                f"{directory}: {split_name} has {images.shape[0]} images but labels of shape {labels.shape}; "
                "the image and label files must describe the same images."
            )
        parts.append((images, labels.astype(np.int64)))
    (train_x, train_y), (test_x, test_y) = parts
    if train_x.shape[1:] != test_x.shape[1:]:
        raise LayerscopeError(
            f"{directory}: train images {train_x.shape[1:]} and test images {test_x.shape[1:]} differ."
        )
    labels = np.concatenate([train_y, test_y])
    if labels.min() < 0:
        raise LayerscopeError(f"{directory}: labels must be non-negative class indices, found {labels.min()}.")
    n_classes = int(labels.max()) + 1
    names = parse_class_names(class_names) or tuple(str(i) for i in range(n_classes))
    if len(names) < n_classes:
        raise LayerscopeError(
            f"{directory}: labels go up to {n_classes - 1} but only {len(names)} class names were given; "
            f"give {n_classes} names."
        )
    split = np.concatenate([np.full(len(train_y), TRAIN, np.uint8), np.full(len(test_y), TEST, np.uint8)])
    return Dataset(
        name=name or directory.name,
        images=np.concatenate([train_x, test_x]),
        labels=labels,
        split=split,
        class_names=names,
        source=str(directory.resolve()),
    )


def load_mnist(class_names: str | list[str] | tuple[str, ...] | None = None) -> Dataset:
    """The MNIST database bundled with layerscope: 60,000 training and 10,000 test images."""
    return replace(load_idx_dir(MNIST_DIR, class_names, name="mnist"), source="bundled:mnist")


def load_dataset(spec: str | os.PathLike[str] | None = None, class_names: str | None = None) -> Dataset:
    """``None`` or ``"mnist"``: the bundled MNIST; anything else: a directory of IDX files."""
    if spec is None or str(spec) in ("mnist", "bundled:mnist"):
        return load_mnist(class_names)
    return load_idx_dir(spec, class_names=class_names)
