"""Datasets: the bundled MNIST, any directory holding the four IDX files of the MNIST layout, and image folders
(one folder of images per class, as torchvision's ImageFolder reads them).

A dataset is held as uint8 images ``(N, C, H, W)`` with the training images first and the test images after them, in
the files' order, so index ``i`` names the same image everywhere in layerscope. Pixels become float32 in [0, 1] only
when a batch is handed to a model.
"""

from __future__ import annotations

import os
import warnings
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from layerscope.data.idx import read_idx
from layerscope.errors import LayerscopeError
from layerscope.progress import ProgressFn, no_progress

if TYPE_CHECKING:
    import torch

__all__ = [
    "IMAGE_SUFFIXES",
    "MAX_CLASSES",
    "MNIST_DIR",
    "TEST",
    "TRAIN",
    "Dataset",
    "is_image_folder",
    "load_dataset",
    "load_idx_dir",
    "load_image_folder",
    "load_mnist",
    "parse_class_names",
]

MNIST_DIR = Path(__file__).parent / "mnist"
TRAIN, TEST = 0, 1
# Labels are class indices 0 .. MAX_CLASSES - 1: a corrupt label of 2**31 - 1 must not build 2**31 class names
MAX_CLASSES = 10_000

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
        import torch  # here: reading a dataset (the dashboard's first page) needs no torch

        images = np.ascontiguousarray(self.images[index])
        if not images.flags.writeable:  # a slice of a Run's read-only memory map: torch wants a writable array
            images = images.copy()
        return torch.from_numpy(images).float().div_(255.0)

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
    if images.ndim not in (3, 4) or (images.ndim == 4 and images.shape[-1] not in (1, 3)):
        raise LayerscopeError(f"{path}: images must be (N, H, W) or (N, H, W, 1|3), found shape {images.shape}.")
    if images.shape[0] == 0:
        raise LayerscopeError(f"{path}: holds 0 images; a dataset needs training and test images in its IDX files.")
    if 0 in images.shape:
        raise LayerscopeError(f"{path}: images of shape {images.shape} have no pixels; the file is corrupt.")
    if images.ndim == 3:  # (N, H, W) -> (N, 1, H, W)
        return images[:, None]
    return np.ascontiguousarray(images.transpose(0, 3, 1, 2))  # (N, H, W, C) -> (N, C, H, W)


def _labels(labels: np.ndarray, path: Path, n_images: int) -> np.ndarray:
    """(N,) int64 class indices of an IDX labels file that must describe ``n_images`` images."""
    if labels.ndim != 1:
        raise LayerscopeError(
            f"{path}: a labels file holds one label per image (1 dimension), found shape {labels.shape}."
        )
    if labels.dtype.kind not in "iu":
        raise LayerscopeError(f"{path}: labels must be whole numbers (class indices), found {labels.dtype}.")
    if labels.shape[0] != n_images:
        raise LayerscopeError(
            f"{path}: {labels.shape[0]} labels for {n_images} images; the image and label files must describe the "
            "same images."
        )
    if len(labels) and (labels.min() < 0 or labels.max() >= MAX_CLASSES):
        bad = int(labels.min()) if labels.min() < 0 else int(labels.max())
        raise LayerscopeError(
            f"{path}: label {bad} is not a class index from 0 to {MAX_CLASSES - 1}; the file is corrupt, or not a "
            "labels file."
        )
    return labels.astype(np.int64)


def _check_class_count(count: int, what: str) -> None:
    if count > MAX_CLASSES:
        raise LayerscopeError(f"{count:,} {what}: layerscope handles at most {MAX_CLASSES:,} classes.")


def parse_class_names(value: str | os.PathLike[str] | list[str] | tuple[str, ...] | None) -> tuple[str, ...] | None:
    """Class names from a comma-separated string, a text file with one name per line, or a list."""
    if value is None:
        return None
    if isinstance(value, (list, tuple)):
        return tuple(str(v) for v in value)
    path = Path(value)
    try:
        is_file = path.is_file()
    except OSError:  # a long list of names is too long for a file name (ENAMETOOLONG)
        is_file = False
    if is_file:
        try:
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as e:
            reason = " ".join(str(e).split())
            raise LayerscopeError(f"{path}: cannot read the class names ({reason}); give a UTF-8 text file.") from e
        return tuple(line.strip() for line in text.splitlines() if line.strip())
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
        images = _images_nchw(arrays[f"{split_name}_images"], _find(directory, f"{split_name}_images"))
        labels = _labels(arrays[f"{split_name}_labels"], _find(directory, f"{split_name}_labels"), len(images))
        parts.append((images, labels))
    (train_x, train_y), (test_x, test_y) = parts
    if train_x.shape[1:] != test_x.shape[1:]:
        raise LayerscopeError(
            f"{directory}: train images {train_x.shape[1:]} and test images {test_x.shape[1:]} differ."
        )
    labels = np.concatenate([train_y, test_y])
    n_classes = int(labels.max()) + 1  # at most MAX_CLASSES: _labels checked every label
    names = parse_class_names(class_names) or tuple(str(i) for i in range(n_classes))
    _check_class_count(len(names), "class names")
    if len(names) != n_classes:
        raise LayerscopeError(
            f"{directory}: labels go from 0 to {n_classes - 1} ({n_classes} classes) but {len(names)} class names "
            f"were given; give {n_classes} names."
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


IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".ppm", ".pgm", ".pbm")
# Pillow modes whose pixels are one grey value; every other mode is read as RGB
_GREY_MODES = ("1", "L", "LA", "I", "I;16", "F")
# 1 image in 6 per class is held out for testing when a folder has no train/ and test/ (MNIST's 10,000 of 70,000)
TEST_FRACTION = 1 / 6


def _image_files(directory: Path) -> list[Path]:
    return sorted(
        p for p in directory.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES and p.name[0] != "."
    )


def _class_dirs(directory: Path) -> list[Path]:
    return sorted(p for p in directory.iterdir() if p.is_dir() and not p.name.startswith("."))


def is_image_folder(directory: str | os.PathLike[str]) -> bool:
    """Whether ``directory`` looks like an image folder: class folders holding images, possibly under train/test."""
    directory = Path(directory)
    if not directory.is_dir():
        return False
    roots = [directory / "train"] if (directory / "train").is_dir() else [directory]
    return any(_image_files(c) for root in roots for c in _class_dirs(root))


def _read_images(files: list[Path], size: int | None, progress: ProgressFn) -> tuple[np.ndarray, bool]:
    """(N, C, H, W) uint8 of ``files``, one channel when every image is grey, else RGB; and whether any was resized."""
    from PIL import Image, UnidentifiedImageError

    # Pillow refuses images above 2 x MAX_IMAGE_PIXELS (DecompressionBombError) and only warns above MAX_IMAGE_PIXELS
    # (89 million pixels, 268 MB as RGB): refuse those too, a class folder of such images cannot fit in memory.
    unreadable = (
        OSError,
        UnidentifiedImageError,
        ValueError,
        Image.DecompressionBombError,
        Image.DecompressionBombWarning,
    )

    progress("load images", 0, len(files))
    pixels: list[np.ndarray] = []
    grey = True
    first: tuple[Path, tuple[int, int]] | None = None
    resized = False
    for i, path in enumerate(files):
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("error", Image.DecompressionBombWarning)
                opened = Image.open(path)
            with opened:
                mode_grey = opened.mode in _GREY_MODES
                image = opened.convert("L" if mode_grey else "RGB")
                if size is not None and image.size != (size, size):
                    image = image.resize((size, size), Image.Resampling.BILINEAR)
                    resized = True
                array = np.asarray(image, dtype=np.uint8)
        except unreadable as e:
            reason = " ".join(str(e).split()) or type(e).__name__  # one line, whatever the decoder said
            raise LayerscopeError(f"{path}: cannot read the image ({reason}); replace or remove the file.") from e
        grey &= mode_grey
        if first is None:
            first = (path, image.size)
        elif image.size != first[1]:
            (w0, h0), (w1, h1) = first[1], image.size
            raise LayerscopeError(
                f"images differ in size: {first[0]} is {w0}x{h0} but {path} is {w1}x{h1}; resize them to one "
                f"size, or pass --image-size N to resize every image to NxN."
            )
        pixels.append(array)
        if (i + 1) % 256 == 0 or i + 1 == len(files):
            progress("load images", i + 1, len(files))
    # (H, W) grey or (H, W, 3) RGB -> (N, C, H, W); grey images join RGB ones as three equal channels
    rgb = [p if p.ndim == 3 else np.repeat(p[:, :, None], 3, axis=2) for p in pixels] if not grey else pixels
    stacked = np.stack(rgb)
    images = stacked[:, None] if grey else stacked.transpose(0, 3, 1, 2)
    return np.ascontiguousarray(images), resized


def load_image_folder(
    directory: str | os.PathLike[str],
    class_names: str | os.PathLike[str] | list[str] | tuple[str, ...] | None = None,
    name: str | None = None,
    image_size: int | None = None,
    seed: int = 0,
    progress: ProgressFn = no_progress,
) -> Dataset:
    """Load images kept one folder per class, ``DIR/<class>/*.png`` (as torchvision's ImageFolder reads them).

    With ``DIR/train/<class>/`` and ``DIR/test/<class>/`` those are the splits; without, a seeded, stratified sixth of
    each class becomes the test split (``Dataset.info`` says so). Every image must have one size, or give
    ``image_size`` to resize all to ``image_size`` x ``image_size``. Grey images give one channel; if any image has
    colour, all are RGB. Class names are the folder names, sorted, unless ``class_names`` (as many) replaces them.
    Formats: whatever Pillow reads among ``IMAGE_SUFFIXES``.
    """
    directory = Path(directory)
    if not directory.is_dir():
        raise LayerscopeError(f"{directory}: no such dataset directory.")
    if image_size is not None and image_size < 1:
        raise LayerscopeError(f"--image-size must be at least 1 (got {image_size}).")
    split_dirs = {s: directory / s for s in ("train", "test")}
    has_splits = [s for s, d in split_dirs.items() if d.is_dir()]
    if len(has_splits) == 1:
        missing = ({"train", "test"} - set(has_splits)).pop()
        raise LayerscopeError(
            f"{directory} has a {has_splits[0]}/ folder but no {missing}/; give both, or put the class folders "
            "directly in the directory."
        )
    roots = [split_dirs["train"], split_dirs["test"]] if has_splits else [directory]
    folders = sorted({c.name for root in roots for c in _class_dirs(root)})
    _check_class_count(len(folders), f"class folders in {directory}")
    files_of = {
        (i, c): _image_files(root / c) if (root / c).is_dir() else [] for i, root in enumerate(roots) for c in folders
    }
    empty = [c for c in folders if not any(files_of[i, c] for i in range(len(roots)))]
    if not folders or empty:
        where = f"{directory}/{empty[0]}" if empty else str(directory)
        raise LayerscopeError(
            f"{where}: no images ({', '.join(IMAGE_SUFFIXES[:4])}, ...). An image folder holds one folder of images "
            "per class (DIR/<class>/*.png), optionally under DIR/train/ and DIR/test/."
        )
    if has_splits:
        extra = [c for c in folders if not files_of[0, c]]
        if extra:
            raise LayerscopeError(f"{directory}/test/{extra[0]} has no training images in {directory}/train/.")
    names = parse_class_names(class_names) or tuple(folders)
    if len(names) != len(folders):
        raise LayerscopeError(
            f"{directory} has {len(folders)} class folders ({', '.join(folders)}) but {len(names)} class names were "
            f"given; give {len(folders)}."
        )
    parts: dict[int, list[tuple[Path, int]]] = {TRAIN: [], TEST: []}
    rng = np.random.default_rng(seed)
    for label, folder in enumerate(folders):
        if has_splits:
            parts[TRAIN] += [(f, label) for f in files_of[0, folder]]
            parts[TEST] += [(f, label) for f in files_of[1, folder]]
            continue
        files = files_of[0, folder]
        n_test = int(round(len(files) * TEST_FRACTION)) if len(files) > 1 else 0
        test = set(rng.permutation(len(files))[:n_test].tolist())
        parts[TRAIN] += [(f, label) for i, f in enumerate(files) if i not in test]
        parts[TEST] += [(f, label) for i, f in enumerate(files) if i in test]
    ordered = parts[TRAIN] + parts[TEST]
    images, resized = _read_images([f for f, _ in ordered], image_size, progress)
    info: dict[str, object] = {"layout": "image_folder"}
    if not has_splits:
        info["test_split"] = f"no train/ and test/ folders: a random 1/6 of each class (seed {seed}) is the test split"
    if image_size is not None:
        info["image_size"] = image_size
        info["resized"] = resized
    return Dataset(
        name=name or directory.name,
        images=images,
        labels=np.array([label for _, label in ordered], dtype=np.int64),
        split=np.array([TRAIN] * len(parts[TRAIN]) + [TEST] * len(parts[TEST]), dtype=np.uint8),
        class_names=names,
        source=str(directory.resolve()),
        info=info,
    )


def load_mnist(class_names: str | os.PathLike[str] | list[str] | tuple[str, ...] | None = None) -> Dataset:
    """The MNIST database bundled with layerscope: 60,000 training and 10,000 test images."""
    return replace(load_idx_dir(MNIST_DIR, class_names, name="mnist"), source="bundled:mnist")


def _is_idx_dir(directory: Path) -> bool:
    return any(
        fragment in p.name
        for p in directory.iterdir()
        if p.is_file()
        for fragments in _ROLES.values()
        for fragment in fragments
    )


def load_dataset(
    spec: str | os.PathLike[str] | None = None,
    class_names: str | os.PathLike[str] | list[str] | tuple[str, ...] | None = None,
    image_size: int | None = None,
    progress: ProgressFn = no_progress,
) -> Dataset:
    """``None`` or ``"mnist"``: the bundled MNIST; a directory of IDX files (the MNIST layout); or an image folder
    (``DIR/<class>/*.png``, optionally under ``train/`` and ``test/``), told apart by what the directory holds.
    ``image_size`` resizes an image folder's images (IDX images are used as they are)."""
    if spec is None or str(spec) in ("mnist", "bundled:mnist"):
        dataset = load_mnist(class_names)
    else:
        directory = Path(spec)
        if not directory.is_dir():
            raise LayerscopeError(
                f"{directory}: no such dataset directory; give 'mnist', a directory of IDX files, or an image "
                "folder (DIR/<class>/*.png)."
            )
        if _is_idx_dir(directory):
            dataset = load_idx_dir(directory, class_names=class_names)
        elif is_image_folder(directory):
            return load_image_folder(directory, class_names, image_size=image_size, progress=progress)
        else:
            raise LayerscopeError(
                f"{directory} holds neither IDX files (train-images, train-labels, t10k-images, t10k-labels) nor "
                "class folders of images (DIR/<class>/*.png)."
            )
    if image_size is not None and dataset.image_shape[1:] != (image_size, image_size):
        raise LayerscopeError(
            f"--image-size resizes image folders only; {dataset.name} has {dataset.image_shape[1]}x"
            f"{dataset.image_shape[2]} IDX images. Leave --image-size out."
        )
    return dataset
