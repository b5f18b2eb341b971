"""Datasets: the bundled MNIST, any directory holding the four IDX files of the MNIST layout, image folders (one
folder of images per class, as torchvision's ImageFolder reads them), and lists of image files (a CSV file, or a
Parquet manifest).

A dataset is held as uint8 images ``(N, C, H, W)`` with the training images first and the test images after them, in
the files' order, so index ``i`` names the same image everywhere in layerscope. Pixels become float32 in [0, 1] only
when a batch is handed to a model. ``images="reference"`` leaves the images where they are, read when asked for
(``layerscope.data.sources``): a Run of such a dataset references them instead of copying them.

A list of image files is a CSV file with a header line and the columns ``path,label`` and optionally ``split``::

    path,label,split
    photos/cat/0001.jpg,cat,train
    /data/more/dog/0002.jpg,dog,test

``path``: relative to the CSV file's folder, or absolute. ``label``: a class name; when every label is a whole number
they are class indices 0 .. K-1 instead. ``split``: ``train`` or ``test``; without the column a seeded, stratified
sixth of each class is the test split, as for an image folder. A Parquet file (``.parquet``, read with pyarrow) holds
the same columns.

WebDataset shards: a ``.tar`` file, or a directory of them (read in the order of their sorted names), whose members
are grouped into samples by key, the member's name up to the first dot of its file name::

    000000.png   000000.cls   000000.split
    000001.jpg   000001.cls   000001.split

``<key>.png|.jpg|.jpeg``: the image. ``<key>.cls``: its class index as text (0 .. K-1; the class names are the
indices unless ``class_names`` gives K). ``<key>.split``: optionally ``train`` or ``test`` (every sample has one or
none; without, a seeded sixth of each class is the test split). Other members are left alone. Samples keep their
order in the tar files, train split first. ``images="reference"`` reads each image at its byte offset in the tar file,
so the files must be uncompressed; compressed ones (``.tar.gz``, ``.tgz``, ...) are copied.
"""

from __future__ import annotations

import os
import tarfile
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO

import numpy as np

from layerscope.data.idx import idx_header, read_idx
from layerscope.data.sources import (
    REFERENCE_BYTES,
    THUMBNAIL_SIDE,
    IdxShard,
    IdxSource,
    ImageArray,
    TarShard,
    decode_image,
    scan_files,
    scan_tar,
    take,
)
from layerscope.errors import LayerscopeError
from layerscope.progress import ProgressFn, no_progress

if TYPE_CHECKING:
    import torch

__all__ = [
    "IMAGE_MODES",
    "IMAGE_SUFFIXES",
    "MAX_CLASSES",
    "MNIST_DIR",
    "TAR_SUFFIXES",
    "TEST",
    "TRAIN",
    "Dataset",
    "is_image_folder",
    "load_dataset",
    "load_file_list",
    "load_idx_dir",
    "load_image_folder",
    "load_mnist",
    "load_webdataset",
    "parse_class_names",
]

MNIST_DIR = Path(__file__).parent / "mnist"
TRAIN, TEST = 0, 1
# Labels are class indices 0 .. MAX_CLASSES - 1: a corrupt label of 2**31 - 1 must not build 2**31 class names
MAX_CLASSES = 10_000
# whether a Run copies the dataset's images or references them where they are ("auto": by REFERENCE_BYTES)
IMAGE_MODES = ("auto", "copy", "reference")

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
    images: ImageArray  # (N, C, H, W) uint8: an array, or a source read when indexed (``images="reference"``)
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
            self.name, take(self.images, keep), self.labels[keep], self.split[keep], self.class_names, self.source, info
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


def _check_mode(images: str) -> None:
    if images not in IMAGE_MODES:
        raise LayerscopeError(f"--images {images!r}: choose {', '.join(IMAGE_MODES)}.")


def _references(mode: str, n: int, image_bytes: int, side: int) -> bool:
    """Whether ``n`` images of ``image_bytes`` each, ``side`` pixels on their longer side, are referenced: asked
    for, or ("auto") their copy would pass ``REFERENCE_BYTES`` and they are larger than their thumbnails (a
    referencing Run keeps those: of smaller images, as many bytes as the copy)."""
    if mode != "auto":
        return mode == "reference"
    return n * image_bytes > REFERENCE_BYTES and side > THUMBNAIL_SIDE


def _idx_source(path: Path) -> IdxSource:
    """The images of one uncompressed IDX file, in place."""
    header = idx_header(path)
    shape = header.shape
    if header.dtype != np.dtype(">u1") or len(shape) not in (3, 4) or (len(shape) == 4 and shape[-1] not in (1, 3)):
        _images_nchw(np.zeros((1, *shape[1:]), header.dtype.newbyteorder("=")), path)  # its one-line refusal
    if shape[0] == 0 or 0 in shape:
        _images_nchw(np.zeros(shape, np.uint8), path)
    image_shape = (1, *shape[1:3]) if len(shape) == 3 else (shape[3], shape[1], shape[2])
    shard = IdxShard(str(path.resolve()), header.offset, 0, shape[0]).stat()
    return IdxSource([shard], image_shape, len(shape) == 4)


def load_idx_dir(
    directory: str | os.PathLike[str],
    class_names: str | os.PathLike[str] | list[str] | tuple[str, ...] | None = None,
    name: str | None = None,
    images: str = "copy",
) -> Dataset:
    """Load a directory holding the four IDX files of the MNIST layout (``.gz`` or not).

    ``images``: "copy" reads them into memory; "reference" memory-maps the uncompressed images files in place (a
    ``.gz`` file is refused); "auto" references uncompressed files whose images are larger than thumbnails and pass
    ``REFERENCE_BYTES`` in all, and copies the rest."""
    _check_mode(images)
    directory = Path(directory)
    if not directory.is_dir():
        raise LayerscopeError(f"{directory}: no such dataset directory.")
    files = {role: _find(directory, role) for role in _ROLES}
    image_files = [files["train_images"], files["test_images"]]
    if images == "reference":
        compressed = [p for p in image_files if p.suffix == ".gz"]
        if compressed:
            raise LayerscopeError(
                f"{compressed[0]}: a compressed IDX file cannot be read in place; gunzip it to reference its "
                "images, or leave out --images reference to copy them."
            )
    sources = [_idx_source(p) for p in image_files] if not any(p.suffix == ".gz" for p in image_files) else None
    if sources is not None:
        c, h, w = sources[0].shape[1:]
        if not _references(images, sum(len(src) for src in sources), c * h * w, max(h, w)):
            sources = None
    parts = []
    for i, split_name in enumerate(("train", "test")):
        pixels: ImageArray = (
            sources[i] if sources is not None else _images_nchw(read_idx(image_files[i]), image_files[i])
        )
        label_file = files[f"{split_name}_labels"]
        labels = _labels(read_idx(label_file), label_file, len(pixels))
        parts.append((pixels, labels))
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
    if (
        isinstance(train_x, IdxSource)
        and isinstance(test_x, IdxSource)
        and train_x.channels_last == test_x.channels_last
    ):
        both: ImageArray = IdxSource([*train_x.shards, *test_x.shards], train_x.shape[1:], train_x.channels_last)
    else:
        both = np.concatenate([train_x, test_x])
    return Dataset(
        name=name or directory.name,
        images=both,
        labels=labels,
        split=split,
        class_names=names,
        source=str(directory.resolve()),
        info={"images": "reference"} if isinstance(both, IdxSource) else {},
    )


IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".ppm", ".pgm", ".pbm")
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


def _read_images(
    files: Iterable[tuple[Path | str, Path | bytes]], n: int, size: int | None, progress: ProgressFn
) -> tuple[np.ndarray, bool]:
    """(N, C, H, W) uint8 of ``n`` images, ``(name, file or its bytes)`` each, one channel when every image is grey,
    else RGB; and whether any was resized."""
    progress("load images", 0, n)
    pixels: list[np.ndarray] = []
    grey = True
    first: tuple[Path | str, tuple[int, int]] | None = None
    resized = False
    for i, (path, data) in enumerate(files):
        array, mode_grey, was_resized = decode_image(data, path, size)  # as a referencing Run reads it later
        resized |= was_resized
        grey &= mode_grey
        found = (array.shape[1], array.shape[0])
        if first is None:
            first = (path, found)
        elif found != first[1]:
            (w0, h0), (w1, h1) = first[1], found
            raise LayerscopeError(
                f"images differ in size: {first[0]} is {w0}x{h0} but {path} is {w1}x{h1}; resize them to one "
                f"size, or pass --image-size N to resize every image to NxN."
            )
        pixels.append(array)
        if (i + 1) % 256 == 0 or i + 1 == n:
            progress("load images", i + 1, n)
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
    images: str = "copy",
) -> Dataset:
    """Load images kept one folder per class, ``DIR/<class>/*.png`` (as torchvision's ImageFolder reads them).

    With ``DIR/train/<class>/`` and ``DIR/test/<class>/`` those are the splits; without, a seeded, stratified sixth of
    each class becomes the test split (``Dataset.info`` says so). Every image must have one size, or give
    ``image_size`` to resize all to ``image_size`` x ``image_size``. Grey images give one channel; if any image has
    colour, all are RGB. Class names are the folder names, sorted, unless ``class_names`` (as many) replaces them.
    Formats: whatever Pillow reads among ``IMAGE_SUFFIXES``. ``images``: "copy" decodes them now, "reference"
    reads each file's header now and its pixels when asked for, "auto" chooses by ``REFERENCE_BYTES``.
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
    info: dict[str, object] = {"layout": "image_folder"}
    if not has_splits:
        info["test_split"] = f"no train/ and test/ folders: a random 1/6 of each class (seed {seed}) is the test split"
    return _file_dataset(name or directory.name, directory, parts, names, info, image_size, images, progress)


def _stratified_test(labels: Sequence[int], seed: int) -> np.ndarray:
    """(N,) bool: a seeded sixth of each class, the test split of images that come without one."""
    labels_array = np.asarray(labels)
    test = np.zeros(len(labels_array), bool)
    rng = np.random.default_rng(seed)
    for label in np.unique(labels_array):
        members = np.flatnonzero(labels_array == label)
        n_test = int(round(len(members) * TEST_FRACTION)) if len(members) > 1 else 0
        test[members[rng.permutation(len(members))[:n_test]]] = True
    return test


def _list_rows(path: Path) -> tuple[list[str], list[str], list[str] | None]:
    """(paths, labels, splits or None) of a CSV file or a Parquet manifest of image files."""
    if path.suffix.lower() == ".parquet":
        try:
            import pyarrow.parquet as pq
        except ImportError:
            raise LayerscopeError(
                f"{path}: reading a Parquet manifest needs pyarrow (pip install pyarrow); or give a CSV file."
            ) from None
        try:
            table = pq.read_table(path)
        except (OSError, ValueError) as e:  # pyarrow's ArrowInvalid is a ValueError
            reason = " ".join(str(e).split())[:200]
            raise LayerscopeError(f"{path}: not a readable Parquet file ({reason}).") from None
        columns = {name.lower(): name for name in table.column_names}
        if "image" in columns and "path" not in columns:
            raise LayerscopeError(
                f"{path}: images stored inside a Parquet file are not read yet; give a 'path' column of image files."
            )
        rows = {
            key: [str(v) for v in table.column(columns[key]).to_pylist()]
            for key in columns
            if key in ("path", "label", "split")
        }
    else:
        import csv

        try:
            with path.open(newline="", encoding="utf-8") as f:
                reader = csv.DictReader(f)
                fields = {name.strip().lower(): name for name in reader.fieldnames or []}
                raw = list(reader)
        except (OSError, UnicodeDecodeError, csv.Error) as e:
            reason = " ".join(str(e).split())[:200]
            raise LayerscopeError(f"{path}: cannot read the list of images ({reason}); give a UTF-8 CSV file.") from e
        rows = {
            key: [(r.get(fields[key]) or "").strip() for r in raw]
            for key in fields
            if key in ("path", "label", "split")
        }
    missing = [key for key in ("path", "label") if key not in rows]
    if missing:
        raise LayerscopeError(
            f"{path}: no {missing[0]!r} column; a list of images has the columns path,label and optionally split."
        )
    return rows["path"], rows["label"], rows.get("split")


def load_file_list(
    path: str | os.PathLike[str],
    class_names: str | os.PathLike[str] | list[str] | tuple[str, ...] | None = None,
    name: str | None = None,
    image_size: int | None = None,
    seed: int = 0,
    progress: ProgressFn = no_progress,
    images: str = "copy",
) -> Dataset:
    """Load the image files a CSV file or a Parquet manifest lists (the format is in the module's docstring): a
    dataset too large for one folder, or spread over disks. Otherwise as ``load_image_folder``."""
    path = Path(path)
    if not path.is_file():
        raise LayerscopeError(f"{path}: no such list of images.")
    if image_size is not None and image_size < 1:
        raise LayerscopeError(f"--image-size must be at least 1 (got {image_size}).")
    paths, labels, splits = _list_rows(path)
    if not paths:
        raise LayerscopeError(f"{path} lists no images; give one line per image: path,label[,split].")
    for i, (file, label) in enumerate(zip(paths, labels, strict=True)):
        if not file or not label:
            raise LayerscopeError(f"{path}: row {i + 1} has no {'path' if not file else 'label'}; give both.")
    if all(label.isdigit() for label in labels):
        indices = [int(label) for label in labels]
        _check_class_count(max(indices) + 1, "classes")
        folders = [str(k) for k in range(max(indices) + 1)]
    else:
        folders = sorted(set(labels))
        _check_class_count(len(folders), "classes")
        position = {label: k for k, label in enumerate(folders)}
        indices = [position[label] for label in labels]
    names = parse_class_names(class_names) or tuple(folders)
    if len(names) != len(folders):
        raise LayerscopeError(
            f"{path} has {len(folders)} classes but {len(names)} class names were given; give {len(folders)}."
        )
    if splits is not None:
        bad = sorted({s for s in splits} - {"train", "test"})
        if bad:
            raise LayerscopeError(f"{path}: split {bad[0]!r}; a split is 'train' or 'test'.")
        test = np.array([s == "test" for s in splits])
    else:
        test = _stratified_test(indices, seed)
    if test.all():
        raise LayerscopeError(f"{path} lists no training images; mark some 'train'.")
    root = path.parent
    parts: dict[int, list[tuple[Path, int]]] = {TRAIN: [], TEST: []}
    for file, k, is_test in zip(paths, indices, test.tolist(), strict=True):
        parts[TEST if is_test else TRAIN].append((root / file, k))
    info: dict[str, object] = {"layout": "file_list"}
    if splits is None:
        info["test_split"] = f"no split column: a random 1/6 of each class (seed {seed}) is the test split"
    return _file_dataset(name or path.stem, root, parts, names, info, image_size, images, progress)


def _file_dataset(
    name: str,
    root: Path,
    parts: dict[int, list[tuple[Path, int]]],
    names: tuple[str, ...],
    info: dict[str, object],
    image_size: int | None,
    images: str,
    progress: ProgressFn,
) -> Dataset:
    """A dataset of image files, ``parts[TRAIN]`` then ``parts[TEST]`` as (file, class index): decoded now ("copy"),
    or read when asked for ("reference"; "auto": by ``_references``, from the first image's size and mode)."""
    _check_mode(images)
    ordered = parts[TRAIN] + parts[TEST]
    files = [f for f, _ in ordered]
    pixels: ImageArray
    reference = images == "reference"
    if images == "auto" and files:
        from PIL import Image

        try:
            with Image.open(files[0]) as first:
                w, h = (image_size, image_size) if image_size is not None else first.size
                channels = 3 if first.mode not in ("1", "L", "LA", "I", "I;16", "F") else 1
            reference = _references(images, len(files), channels * h * w, max(h, w))
        except (OSError, ValueError):
            reference = False  # the copy's reading says, in one line, what is wrong with it
    if reference:
        pixels, resized = scan_files(files, image_size, root, progress)
        info = {**info, "images": "reference"}
    else:
        pixels, resized = _read_images(((f, f) for f in files), len(files), image_size, progress)
    if image_size is not None:
        info = {**info, "image_size": image_size, "resized": resized}
    return Dataset(
        name=name,
        images=pixels,
        labels=np.array([label for _, label in ordered], dtype=np.int64),
        split=np.array([TRAIN] * len(parts[TRAIN]) + [TEST] * len(parts[TEST]), dtype=np.uint8),
        class_names=names,
        source=str(root.resolve()),
        info=info,
    )


# names of tar files, uncompressed first: WebDataset shards (only ``.tar`` files can be referenced in place)
TAR_SUFFIXES = (".tar", ".tar.gz", ".tgz", ".tar.bz2", ".tar.xz")
# the members of a WebDataset sample that layerscope reads, by extension: an image, its class index, its split
_SAMPLE_IMAGES = ("png", "jpg", "jpeg")


def _is_tar(path: Path) -> bool:
    return path.name.lower().endswith(TAR_SUFFIXES) and not path.name.startswith(".") and path.is_file()


def _tar_files(directory: Path) -> list[Path]:
    return sorted(p for p in directory.iterdir() if _is_tar(p))


def _compressed(path: Path) -> bool:
    """Whether the tar file ``path`` is compressed (gzip, bzip2, xz): its members have no byte offset in it."""
    try:
        with tarfile.open(path, "r:"):
            return False
    except tarfile.ReadError:
        pass
    except OSError as e:
        raise LayerscopeError(f"{path}: cannot read the tar file ({' '.join(str(e).split())}).") from None
    try:
        with tarfile.open(path, "r:*"):
            return True
    except tarfile.ReadError:
        raise LayerscopeError(f"{path}: not a tar file, plain or compressed (gzip, bzip2, xz).") from None
    except (OSError, tarfile.TarError, EOFError) as e:
        reason = " ".join(str(e).split())[:200] or type(e).__name__
        raise LayerscopeError(f"{path}: not a readable tar file ({reason}).") from None


@dataclass
class _Sample:
    """One WebDataset sample as read from its tar file (``shard``: its index): the image member's ``name``, byte
    ``offset`` and ``size`` (and its bytes, where they were read), its class index and split."""

    shard: int
    key: str
    name: str = ""
    offset: int = 0
    size: int = 0
    data: bytes | None = None
    label: str | None = None
    split: str | None = None


def _tar_samples(path: Path, shard: int, keep_bytes: bool) -> list[_Sample]:
    """The samples of one tar file in the order of their first member; ``keep_bytes``: read each image's bytes
    (the only way to a compressed file's)."""
    samples: dict[str, _Sample] = {}
    try:
        with tarfile.open(path, "r:*") as tar:
            for info in tar:
                base = info.name.rsplit("/", 1)[-1]
                if not info.isfile() or base.startswith(".") or "." not in base:
                    continue
                key = info.name[: len(info.name) - len(base)] + base.split(".", 1)[0]
                ext = base.split(".", 1)[1].lower()
                if ext not in (*_SAMPLE_IMAGES, "cls", "split"):
                    continue
                sample = samples.setdefault(key, _Sample(shard, key))
                if ext in _SAMPLE_IMAGES:
                    if sample.name:
                        raise LayerscopeError(
                            f"{path}: sample {key!r} has two images ({sample.name}, {info.name}); keep one."
                        )
                    if info.issparse():
                        raise LayerscopeError(f"{path}: {info.name} is a sparse member; write the tar file again.")
                    sample.name, sample.offset, sample.size = info.name, info.offset_data, info.size
                    member = tar.extractfile(info) if keep_bytes else None
                    sample.data = member.read() if member is not None else None
                else:
                    member = tar.extractfile(info)
                    text = member.read(64).decode("utf-8", "replace").strip() if member is not None else ""
                    if ext == "cls":
                        sample.label = text
                    else:
                        sample.split = text
    except (OSError, tarfile.TarError, EOFError) as e:
        reason = " ".join(str(e).split())[:200] or type(e).__name__
        raise LayerscopeError(f"{path}: not a readable tar file ({reason}).") from None
    for sample in samples.values():
        if not sample.name:
            raise LayerscopeError(
                f"{path}: sample {sample.key!r} has no image; a sample is <key>.png (or .jpg) with <key>.cls."
            )
        if sample.label is None:
            raise LayerscopeError(f"{path}: sample {sample.key!r} has no .cls member holding its class index.")
        if not sample.label.isdigit():
            raise LayerscopeError(
                f"{path}: {sample.key}.cls holds {sample.label[:20]!r}, not a class index (0, 1, 2, ...)."
            )
        if sample.split is not None and sample.split not in ("train", "test"):
            raise LayerscopeError(f"{path}: {sample.key}.split is {sample.split[:20]!r}; a split is train or test.")
    return list(samples.values())


def load_webdataset(
    path: str | os.PathLike[str],
    class_names: str | os.PathLike[str] | list[str] | tuple[str, ...] | None = None,
    name: str | None = None,
    image_size: int | None = None,
    seed: int = 0,
    progress: ProgressFn = no_progress,
    images: str = "copy",
) -> Dataset:
    """Load WebDataset shards: a ``.tar`` file or a directory of them (the format is in the module's docstring).

    ``images``: "copy" decodes every image now; "reference" reads each image's header now and its pixels, at its
    byte offset in the tar file, when asked for (a compressed tar file is refused); "auto" references uncompressed
    files by ``REFERENCE_BYTES`` and copies the rest. Otherwise as ``load_image_folder``."""
    _check_mode(images)
    path = Path(path)
    if image_size is not None and image_size < 1:
        raise LayerscopeError(f"--image-size must be at least 1 (got {image_size}).")
    shards = _tar_files(path) if path.is_dir() else [path] if _is_tar(path) else []
    if not shards:
        raise LayerscopeError(
            f"{path}: no tar files ({', '.join(TAR_SUFFIXES)}); give a WebDataset shard or a directory of them."
        )
    compressed = [_compressed(shard) for shard in shards]
    if images == "reference" and any(compressed):
        raise LayerscopeError(
            f"{shards[compressed.index(True)]}: a compressed tar file cannot be read by byte offset; uncompress it "
            "to reference its images, or leave out --images reference to copy them."
        )
    # stat before reading: a file that changes after this is refused when its SHA-256 is recorded
    recorded = [TarShard(str(shard.resolve())).stat() for shard in shards]
    samples: list[_Sample] = []
    for i, shard in enumerate(shards):
        progress("read tar files", i, len(shards))
        samples += _tar_samples(shard, i, keep_bytes=compressed[i] or images == "copy")
    progress("read tar files", len(shards), len(shards))
    if not samples:
        raise LayerscopeError(f"{path} holds no samples; a sample is <key>.png (or .jpg) with <key>.cls.")
    labels = [int(sample.label or 0) for sample in samples]
    _check_class_count(max(labels) + 1, "classes")
    names = parse_class_names(class_names) or tuple(str(k) for k in range(max(labels) + 1))
    if len(names) != max(labels) + 1:
        raise LayerscopeError(
            f"{path}: class indices go from 0 to {max(labels)} ({max(labels) + 1} classes) but {len(names)} class "
            f"names were given; give {max(labels) + 1}."
        )
    info: dict[str, object] = {"layout": "webdataset"}
    with_split = [sample.split is not None for sample in samples]
    if all(with_split):
        test = np.array([sample.split == "test" for sample in samples])
    elif any(with_split):
        odd = samples[with_split.index(False)]
        raise LayerscopeError(
            f"{shards[odd.shard]}: sample {odd.key!r} has no .split member where others have one; give every "
            "sample one, or none."
        )
    else:
        test = _stratified_test(labels, seed)
        info["test_split"] = f"no .split members: a random 1/6 of each class (seed {seed}) is the test split"
    if test.all():
        raise LayerscopeError(f"{path} holds no training images; mark some samples' .split 'train'.")
    order = np.concatenate([np.flatnonzero(~test), np.flatnonzero(test)])  # train split first, each in tar order
    ordered = [samples[i] for i in order.tolist()]
    shown = [f"{shards[sample.shard]} ({sample.name})" for sample in ordered]
    pixels: ImageArray | None = None
    if not any(compressed) and images != "copy":
        members = np.array([(sample.shard, sample.offset, sample.size) for sample in ordered], np.int64)
        source, resized = scan_tar(recorded, members, shown, image_size, progress)
        c, h, w = source.shape[1:]
        if _references(images, len(source), c * h * w, max(h, w)):
            pixels = source
            info["images"] = "reference"
    if pixels is None:
        pixels, resized = _read_images(_sample_bytes(ordered, shards, shown), len(ordered), image_size, progress)
    if image_size is not None:
        info = {**info, "image_size": image_size, "resized": resized}
    return Dataset(
        name=name or (path.name if path.is_dir() else path.name.split(".", 1)[0]),
        images=pixels,
        labels=np.array(labels, np.int64)[order],
        split=np.where(test[order], TEST, TRAIN).astype(np.uint8),
        class_names=names,
        source=str(path.resolve()),
        info=info,
    )


def _sample_bytes(
    samples: Sequence[_Sample], shards: Sequence[Path], shown: Sequence[str]
) -> Iterator[tuple[str, bytes]]:
    """(name, bytes) of each sample's image: read already, or one seek and one read in its (uncompressed) tar file."""
    opened: dict[int, BinaryIO] = {}
    try:
        for sample, label in zip(samples, shown, strict=True):
            if sample.data is not None:
                yield label, sample.data
                continue
            f = opened.get(sample.shard)
            if f is None:
                f = opened[sample.shard] = open(shards[sample.shard], "rb")
            f.seek(sample.offset)
            yield label, f.read(sample.size)
    finally:
        for f in opened.values():
            f.close()


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
    images: str = "auto",
) -> Dataset:
    """``None`` or ``"mnist"``: the bundled MNIST; a directory of IDX files (the MNIST layout); an image folder
    (``DIR/<class>/*.png``, optionally under ``train/`` and ``test/``), told apart by what the directory holds; or a
    list of image files (a ``.csv`` file, or a ``.parquet`` manifest); or WebDataset shards (a ``.tar`` file, or a
    directory of them). ``image_size`` resizes image files (IDX
    images are used as they are). ``images``: copy them, reference them where they are, or "auto" (see
    ``IMAGE_MODES`` and ``load_idx_dir``)."""
    _check_mode(images)
    if spec is None or str(spec) in ("mnist", "bundled:mnist"):
        if images == "reference":
            raise LayerscopeError(
                "the bundled MNIST is compressed and small (55 MB as pixels): a Run copies it. Leave out --images "
                "reference."
            )
        dataset = load_mnist(class_names)
    else:
        directory = Path(spec)
        if directory.is_file() and directory.suffix.lower() in (".csv", ".parquet"):
            return load_file_list(directory, class_names, image_size=image_size, progress=progress, images=images)
        if _is_tar(directory):
            return load_webdataset(directory, class_names, image_size=image_size, progress=progress, images=images)
        if not directory.is_dir():
            raise LayerscopeError(
                f"{directory}: no such dataset directory; give 'mnist', a directory of IDX files, an image "
                "folder (DIR/<class>/*.png), a list of image files (.csv, .parquet), or WebDataset shards (.tar)."
            )
        if _is_idx_dir(directory):
            dataset = load_idx_dir(directory, class_names=class_names, images=images)
        elif is_image_folder(directory):
            return load_image_folder(directory, class_names, image_size=image_size, progress=progress, images=images)
        elif _tar_files(directory):
            return load_webdataset(directory, class_names, image_size=image_size, progress=progress, images=images)
        else:
            raise LayerscopeError(
                f"{directory} holds neither IDX files (train-images, train-labels, t10k-images, t10k-labels), "
                "class folders of images (DIR/<class>/*.png), nor WebDataset shards (*.tar)."
            )
    if image_size is not None and dataset.image_shape[1:] != (image_size, image_size):
        raise LayerscopeError(
            f"--image-size resizes image files only; {dataset.name} has {dataset.image_shape[1]}x"
            f"{dataset.image_shape[2]} IDX images. Leave --image-size out."
        )
    return dataset
