"""Where a Run reads its images when it references them instead of copying them into ``images.npy``.

An ``ImageSource`` holds ``(N, C, H, W)`` uint8 images the way ``images.npy`` does (index ``i`` is the same image
everywhere in layerscope) and reads them only when asked: ``source[i]``, ``source[a:b]``, ``source[indices]`` and
``np.asarray(source[a:b])`` give numpy arrays, as slices of a memory map would. Two kinds:

- ``IdxSource``: shards of uncompressed IDX image files (a range of images in one file each), memory-mapped and read
  in place. Each file's SHA-256 is recorded when the Run is created, with its size and modification time; a file whose
  size or time changed is hashed again when the Run is opened, and refused if its contents changed.
- ``FileSource``: one image file per image (an image folder, a list of files, a Parquet manifest), decoded with
  Pillow exactly as ``load_image_folder`` decodes them (grey or RGB, resized to ``size``). Each file's SHA-256 is
  recorded the first time it is read and checked on every later read, which costs little beside decoding it.

A referencing Run stores what its source needs (``save``/``load_source``)::

    images.json          {"kind": "idx", "shards": [{"path", "start", "count", "sha256", "size", "mtime_ns"}, ...]}
                         or {"kind": "files", "root", "channels", "height", "width", "resize"}
    images.paths.npy     (N,) bytes: each file's path, UTF-8, relative to ``root`` (or absolute)   [files only]
    images.sha256.npy    (N, 32) uint8: each file's SHA-256                                         [files only]
    thumbnails.npy       (N, C, h, w) uint8: every image at most ``THUMBNAIL_SIDE`` pixels a side
    class_means.npy      (K, C, H, W) uint8: each class's mean image (the dashboard's class averages)

Written in one pass over the images when the Run is created (``write_reference``), so nothing later has to read them
all again for a picture of each.
"""

from __future__ import annotations

import hashlib
import json
import math
import operator
import os
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, TypeAlias

import numpy as np

from layerscope.atomic import atomic_write
from layerscope.errors import LayerscopeError, RunError
from layerscope.progress import ProgressFn, no_progress

__all__ = [
    "IMAGES_JSON",
    "REFERENCE_BYTES",
    "REFERENCE_FILES",
    "THUMBNAIL_SIDE",
    "FileSource",
    "IdxShard",
    "IdxSource",
    "ImageArray",
    "ImageSource",
    "decode_image",
    "load_source",
    "take",
    "thumbnail_shape",
    "thumbnails",
    "write_reference",
]

IMAGES_JSON = "images.json"
# everything a referencing Run keeps of its images (the snapshots of training link to the same files)
REFERENCE_FILES = (IMAGES_JSON, "images.paths.npy", "images.sha256.npy", "thumbnails.npy", "class_means.npy")
# A Run copies its images when they take less than this (every IDX dataset of the MNIST family: EMNIST ByClass, the
# largest, is 0.6 GB) and references them above it, where a copy would double a dataset already over a gigabyte
# on disk; ``--images copy|reference`` chooses either.
REFERENCE_BYTES = 1 << 30
# the gallery shows its thumbnails at 56 px with sharp pixels: 32 px keeps a digit's strokes and a photo's shape
THUMBNAIL_SIDE = 32
_BATCH = 1024  # images per step of the pass that writes thumbnails and class means
_FORMAT = 1

# Pillow modes whose pixels are one grey value; every other mode is read as RGB
GREY_MODES = ("1", "L", "LA", "I", "I;16", "F")


class ImageSource:
    """``(N, C, H, W)`` uint8 images read when indexed; see the module's docstring."""

    kind = ""
    dtype = np.dtype(np.uint8)
    ndim = 4

    def __init__(self, shape: tuple[int, int, int, int]) -> None:
        self.shape = shape

    def __len__(self) -> int:
        return self.shape[0]

    @property
    def size(self) -> int:
        return math.prod(self.shape)

    @property
    def nbytes(self) -> int:
        return self.size

    def __repr__(self) -> str:
        return f"{type(self).__name__}(shape={self.shape})"

    def __getitem__(self, key: Any) -> np.ndarray:
        rest: tuple[Any, ...] = ()
        if isinstance(key, tuple):
            key, rest = (key[0], key[1:]) if key else (slice(None), ())
        n = len(self)
        if isinstance(key, (int, np.integer)):
            i = operator.index(key)
            if not -n <= i < n:
                raise IndexError(f"index {i} is out of bounds for {n} images")
            return self._read(np.array([i % n], np.int64))[0][rest]
        if isinstance(key, slice):
            out = self._read(np.arange(n, dtype=np.int64)[key])
        elif key is Ellipsis:
            out = self._read(np.arange(n, dtype=np.int64))
        else:
            index = np.asarray(key)
            if index.dtype == bool:
                if index.shape != (n,):
                    raise IndexError(f"a boolean index of shape {index.shape} does not fit {n} images")
                index = np.flatnonzero(index)
            elif index.dtype.kind not in "iu" and index.size:
                raise IndexError(f"images are indexed by whole numbers, not {index.dtype}")
            index = index.astype(np.int64)
            if index.size and not (-n <= int(index.min()) and int(index.max()) < n):
                raise IndexError(f"an index is out of bounds for {n} images")
            flat = self._read(np.where(index < 0, index + n, index).reshape(-1))
            out = flat.reshape(*index.shape, *self.shape[1:])
        return out[(slice(None), *rest)] if rest else out

    def __array__(self, dtype: Any = None, copy: Any = None) -> np.ndarray:
        """Every image at once: what ``np.asarray(source)`` gives. Read slices instead where N may be large."""
        images = self[:]
        return images if dtype is None else images.astype(dtype)

    def _read(self, indices: np.ndarray) -> np.ndarray:
        """(len(indices), C, H, W) uint8 of ``indices`` (int64, in range, any order, repeats allowed)."""
        raise NotImplementedError

    def take(self, indices: np.ndarray) -> ImageSource:
        """The source of images ``indices`` only, in that order, read as lazily (``Dataset.subset``)."""
        raise NotImplementedError

    def check(self) -> None:
        """Refuse, in one line, a source whose files changed or went; cheap where it can be (see the kinds)."""

    def save(self, directory: Path) -> None:
        """Write ``images.json`` (and the arrays a kind needs) into a Run's ``directory``."""
        raise NotImplementedError

    def describe(self) -> str:
        """A few words on where the images are, for messages and the manifest."""
        raise NotImplementedError


# what a Run's images are: a memory-mapped ``images.npy``, or the source it references
ImageArray: TypeAlias = "np.ndarray | ImageSource"


def take(images: ImageArray, indices: np.ndarray) -> ImageArray:
    """``images[indices]``, lazily for a source (a source's images stay where they are)."""
    return images.take(indices) if isinstance(images, ImageSource) else images[indices]


def _sha256(path: Path) -> str:
    with open(path, "rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


def _changed(path: Path, owner: str) -> RunError:
    return RunError(
        f"{path} changed after {owner} recorded its SHA-256 (it reads its images from there); put the original "
        "back, or create the Run again."
    )


def _missing(path: Path, owner: str) -> RunError:
    return RunError(
        f"{path} is missing; {owner} reads its images from there. Put it back, or create the Run again "
        "(--images copy keeps a copy of the images in the Run)."
    )


# -- IDX files --------------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class IdxShard:
    """Images ``start`` to ``start + count`` of the uncompressed IDX images file ``path`` (shape (n, H, W) or
    (n, H, W, C)), its values from byte ``offset``; ``sha256``, ``size`` and ``mtime_ns`` of the file as recorded."""

    path: str
    offset: int
    start: int
    count: int
    sha256: str | None = None
    size: int = 0
    mtime_ns: int = 0

    def stat(self) -> IdxShard:
        st = os.stat(self.path)
        return replace(self, size=st.st_size, mtime_ns=st.st_mtime_ns)


class IdxSource(ImageSource):
    """Shards of uncompressed IDX images files, memory-mapped; ``image_shape`` is (C, H, W) and ``channels_last``
    says whether the files hold (n, H, W, C) rather than (n, H, W)."""

    kind = "idx"

    def __init__(
        self, shards: Sequence[IdxShard], image_shape: tuple[int, int, int], channels_last: bool, owner: str = ""
    ) -> None:
        super().__init__((sum(s.count for s in shards), *image_shape))
        self.shards = list(shards)
        self.channels_last = channels_last
        self.owner = owner or "the dataset"
        self.ends = np.cumsum([s.count for s in self.shards])
        self._maps: dict[str, np.ndarray] = {}

    def describe(self) -> str:
        return ", ".join(sorted({s.path for s in self.shards}))

    def _map(self, shard: IdxShard) -> np.ndarray:
        mapped = self._maps.get(shard.path)
        if mapped is None:
            c, h, w = self.shape[1:]
            per_image = (h, w, c) if self.channels_last else (h, w)
            try:
                n = (os.stat(shard.path).st_size - shard.offset) // math.prod(per_image)
                mapped = np.memmap(shard.path, np.uint8, "r", offset=shard.offset, shape=(n, *per_image))
            except FileNotFoundError:
                raise _missing(Path(shard.path), self.owner) from None
            self._maps[shard.path] = mapped
        return mapped

    def _read(self, indices: np.ndarray) -> np.ndarray:
        out = np.empty((len(indices), *self.shape[1:]), np.uint8)
        which = np.searchsorted(self.ends, indices, side="right")
        for s in np.unique(which):
            shard = self.shards[int(s)]
            rows = np.flatnonzero(which == s)
            local = indices[rows] - (int(self.ends[s]) - shard.count) + shard.start
            pixels = self._map(shard)[local]  # (b, H, W) or (b, H, W, C): one read per shard
            out[rows] = pixels[:, None] if not self.channels_last else pixels.transpose(0, 3, 1, 2)
        return out

    def take(self, indices: np.ndarray) -> IdxSource:
        # runs of consecutive images stay one shard each: a prefix of each split (--preset tiny) is two shards
        indices = np.asarray(indices, np.int64)
        shards: list[IdxShard] = []
        if len(indices):
            breaks = np.flatnonzero(np.diff(indices) != 1) + 1
            for run in np.split(indices, breaks):
                first, last = int(run[0]), int(run[-1])
                while first <= last:
                    s = int(np.searchsorted(self.ends, first, side="right"))
                    shard = self.shards[s]
                    base = int(self.ends[s]) - shard.count
                    count = min(last, int(self.ends[s]) - 1) - first + 1
                    shards.append(replace(shard, start=shard.start + first - base, count=count))
                    first += count
        return IdxSource(shards, self.shape[1:], self.channels_last, self.owner)

    def check(self) -> None:
        """Each file's size and modification time as recorded, or else its SHA-256 (a file only touched passes)."""
        verified: set[str] = set()
        for shard in self.shards:
            if shard.path in verified:
                continue
            path = Path(shard.path)
            try:
                st = path.stat()
            except FileNotFoundError:
                raise _missing(path, self.owner) from None
            if st.st_size != shard.size or (st.st_mtime_ns != shard.mtime_ns and _sha256(path) != shard.sha256):
                raise _changed(path, self.owner)
            verified.add(shard.path)

    def hashed(self, progress: ProgressFn = no_progress) -> IdxSource:
        """The source with each file's SHA-256, size and time recorded now (about 1 s a gigabyte); a file that
        changed since the dataset was read is refused."""
        digests: dict[str, IdxShard] = {}
        paths = sorted({s.path for s in self.shards})
        for i, path in enumerate(paths):
            progress("hash the image files", i, len(paths))
            before = os.stat(path)
            recorded = next(s for s in self.shards if s.path == path)
            if recorded.size and (before.st_size, before.st_mtime_ns) != (recorded.size, recorded.mtime_ns):
                raise _changed(Path(path), self.owner)
            digest = _sha256(Path(path))
            after = os.stat(path)
            if (after.st_size, after.st_mtime_ns) != (before.st_size, before.st_mtime_ns):
                raise _changed(Path(path), self.owner)
            digests[path] = replace(recorded, sha256=digest, size=after.st_size, mtime_ns=after.st_mtime_ns)
        progress("hash the image files", len(paths), len(paths))
        shards = [
            replace(s, sha256=digests[s.path].sha256, size=digests[s.path].size, mtime_ns=digests[s.path].mtime_ns)
            for s in self.shards
        ]
        return IdxSource(shards, self.shape[1:], self.channels_last, self.owner)

    def save(self, directory: Path) -> None:
        source = self if all(s.sha256 for s in self.shards) else self.hashed()
        shards = [
            {k: getattr(s, k) for k in ("path", "offset", "start", "count", "sha256", "size", "mtime_ns")}
            for s in source.shards
        ]
        _write_json(
            directory,
            {
                "kind": self.kind,
                "image_shape": list(self.shape[1:]),
                "channels_last": self.channels_last,
                "shards": shards,
            },
        )


# -- image files ------------------------------------------------------------------------------------------------------
def decode_image(data: bytes | Path, path: Path, size: int | None) -> tuple[np.ndarray, bool, bool]:
    """(H, W) grey or (H, W, 3) RGB uint8 pixels of one image file (its bytes, or its path), resized to ``size`` x
    ``size`` if given; whether it is grey; whether it was resized. Unreadable: a one-line ``LayerscopeError``."""
    import io

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
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            opened = Image.open(io.BytesIO(data) if isinstance(data, bytes) else data)
        with opened:
            grey = opened.mode in GREY_MODES
            image = opened.convert("L" if grey else "RGB")
            resized = size is not None and image.size != (size, size)
            if resized:
                image = image.resize((size, size), Image.Resampling.BILINEAR)  # type: ignore[arg-type]
            return np.asarray(image, dtype=np.uint8), grey, resized
    except unreadable as e:
        reason = " ".join(str(e).split()) or type(e).__name__  # one line, whatever the decoder said
        raise LayerscopeError(f"{path}: cannot read the image ({reason}); replace or remove the file.") from e


class FileSource(ImageSource):
    """One image file per image, ``root / paths[i]``, decoded to ``channels`` (1: grey, 3: RGB) and, with ``resize``,
    resized to (H, W). ``sha256`` (N, 32) uint8 holds each file's SHA-256 once ``known[i]``: recorded on the first
    read, checked on every read after it."""

    kind = "files"

    def __init__(
        self,
        root: Path,
        paths: np.ndarray,
        image_shape: tuple[int, int, int],
        resize: bool,
        sha256: np.ndarray | None = None,
        owner: str = "",
    ) -> None:
        super().__init__((len(paths), *image_shape))
        self.root = Path(root)
        self.paths = paths  # (N,) bytes, UTF-8
        self.resize = resize
        self.owner = owner or "the dataset"
        if sha256 is None:
            self.sha256 = np.zeros((len(paths), 32), np.uint8)
            self.known = np.zeros(len(paths), bool)
        else:
            self.sha256 = sha256
            self.known = np.ones(len(paths), bool)

    def describe(self) -> str:
        return f"{len(self):,} image files under {self.root}"

    def path(self, i: int) -> Path:
        return self.root / os.fsdecode(bytes(self.paths[i]))

    def _one(self, i: int) -> np.ndarray:
        path = self.path(i)
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            raise _missing(path, self.owner) from None
        except OSError as e:
            raise LayerscopeError(f"{path}: cannot read the image ({' '.join(str(e).split())}).") from None
        digest = np.frombuffer(hashlib.sha256(data).digest(), np.uint8)
        if not self.known[i]:
            self.sha256[i] = digest
            self.known[i] = True
        elif not np.array_equal(self.sha256[i], digest):
            raise _changed(path, self.owner)
        c, h, w = self.shape[1:]
        pixels, _, _ = decode_image(data, path, h if self.resize else None)
        if pixels.shape[:2] != (h, w):
            raise _changed(path, self.owner)
        if pixels.ndim == 2:  # (H, W) -> (1, H, W); a grey image among colour ones is three equal channels
            return pixels[None] if c == 1 else np.repeat(pixels[None], 3, axis=0)
        if c == 1:
            raise _changed(path, self.owner)  # was grey when the dataset was read
        return pixels.transpose(2, 0, 1)

    def _read(self, indices: np.ndarray) -> np.ndarray:
        # one file after another: decoding small images on threads was slower (3,900 against 5,300 64 px PNGs a
        # second on 2 cores), Pillow holding the GIL for most of a small image's decode
        out = np.empty((len(indices), *self.shape[1:]), np.uint8)
        for row, i in enumerate(indices.tolist()):
            out[row] = self._one(i)
        return out

    def take(self, indices: np.ndarray) -> FileSource:
        indices = np.asarray(indices, np.int64)
        sub = FileSource(self.root, self.paths[indices], self.shape[1:], self.resize, owner=self.owner)
        sub.sha256[:] = self.sha256[indices]
        sub.known[:] = self.known[indices]
        return sub

    def save(self, directory: Path) -> None:
        missing = np.flatnonzero(~self.known)
        for start in range(0, len(missing), _BATCH):  # files never read yet: read (and hash) them now
            self._read(missing[start : start + _BATCH])
        c, h, w = self.shape[1:]
        _write_array(directory / "images.paths.npy", np.asarray(self.paths))
        _write_array(directory / "images.sha256.npy", self.sha256)
        _write_json(
            directory,
            {"kind": self.kind, "root": str(self.root), "image_shape": [c, h, w], "resize": self.resize},
        )


def scan_files(
    files: Sequence[Path], size: int | None, root: Path, progress: ProgressFn = no_progress
) -> tuple[FileSource, bool]:
    """A ``FileSource`` of ``files`` (their paths kept relative to ``root`` where they are under it), once each
    file's header says its size and mode: one size for all unless ``size`` resizes them, grey (one channel) unless
    some image has colour; and whether any will be resized. Decodes nothing; refuses as ``load_image_folder`` does,
    in one line."""
    from PIL import Image, UnidentifiedImageError

    unreadable = (OSError, UnidentifiedImageError, ValueError, Image.DecompressionBombError)
    grey = True
    resized = False
    first: tuple[Path, tuple[int, int]] | None = None
    progress("read image headers", 0, len(files))
    for i, path in enumerate(files):
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("error", Image.DecompressionBombWarning)
                with Image.open(path) as opened:
                    mode, found = opened.mode, opened.size
        except (*unreadable, Image.DecompressionBombWarning) as e:
            reason = " ".join(str(e).split()) or type(e).__name__
            raise LayerscopeError(f"{path}: cannot read the image ({reason}); replace or remove the file.") from e
        grey &= mode in GREY_MODES
        resized |= size is not None and found != (size, size)
        if first is None:
            first = (path, found)
        elif size is None and found != first[1]:
            (w0, h0), (w1, h1) = first[1], found
            raise LayerscopeError(
                f"images differ in size: {first[0]} is {w0}x{h0} but {path} is {w1}x{h1}; resize them to one "
                f"size, or pass --image-size N to resize every image to NxN."
            )
        if (i + 1) % 4096 == 0 or i + 1 == len(files):
            progress("read image headers", i + 1, len(files))
    assert first is not None
    w, h = (size, size) if size is not None else first[1]
    root = root.resolve()
    names = []
    for path in files:
        absolute = path.resolve()
        names.append(os.fsencode(absolute.relative_to(root) if absolute.is_relative_to(root) else absolute))
    return FileSource(root, np.array(names, dtype=bytes), (1 if grey else 3, h, w), size is not None), resized


# -- a Run's files ----------------------------------------------------------------------------------------------------
def _write_json(directory: Path, data: dict[str, Any]) -> None:
    with atomic_write(directory / IMAGES_JSON, "w") as f:
        json.dump({"format": _FORMAT, **data}, f, indent=2)
        f.write("\n")


def _write_array(path: Path, array: np.ndarray) -> None:
    with atomic_write(path) as f:
        np.save(f, array)


def load_source(
    directory: Path, image_shape: Sequence[int], n_images: int, array: Callable[..., np.ndarray]
) -> ImageSource:
    """The source a Run at ``directory`` references (its ``images.json``), checked (``ImageSource.check``) and of
    the manifest's ``n_images`` x ``image_shape``; ``array(relpath, shape, kinds)`` reads the Run's arrays."""
    owner = f"the Run {directory}"
    path = directory / IMAGES_JSON
    try:
        meta = json.loads(path.read_text(encoding="utf-8"))
        shape = tuple(int(s) for s in meta["image_shape"])
        kind = meta["kind"]
        if kind == "idx":
            shards = [
                IdxShard(
                    str(s["path"]),
                    int(s["offset"]),
                    int(s["start"]),
                    int(s["count"]),
                    str(s["sha256"]),
                    int(s["size"]),
                    int(s["mtime_ns"]),
                )
                for s in meta["shards"]
            ]
            source: ImageSource = IdxSource(shards, shape, bool(meta["channels_last"]), owner)  # type: ignore[arg-type]
        elif kind == "files":
            paths = array("images.paths.npy", (n_images,), "S")
            sha256 = array("images.sha256.npy", (n_images, 32), "u")
            source = FileSource(Path(meta["root"]), paths, shape, bool(meta["resize"]), np.array(sha256), owner)  # type: ignore[arg-type]
        else:
            raise ValueError(f"unknown kind {kind!r}")
    except (OSError, ValueError, KeyError, TypeError) as e:
        reason = " ".join(str(e).split())[:100] or type(e).__name__
        raise RunError(f"{path} cannot be read ({reason}); the Run is damaged, create it again.") from None
    if source.shape != (n_images, *image_shape):
        raise RunError(
            f"{path} describes {source.shape[0]:,} images of {source.shape[1:]}, the manifest {n_images:,} of "
            f"{tuple(image_shape)}; the Run is damaged, create it again."
        )
    source.check()
    return source


def thumbnail_shape(height: int, width: int, side: int = THUMBNAIL_SIDE) -> tuple[int, int]:
    """(h, w) of a thumbnail: the image's own size when neither side passes ``side``, else scaled to ``side``."""
    scale = side / max(height, width)
    if scale >= 1:
        return height, width
    return max(1, round(height * scale)), max(1, round(width * scale))


def thumbnails(images: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """(b, C, h, w) uint8 thumbnails of (b, C, H, W) uint8 images: each thumbnail pixel the mean of the pixels it
    covers (an area filter: no aliasing of thin strokes)."""
    if images.shape[2:] == shape:
        return np.ascontiguousarray(images)
    import torch
    from torch.nn.functional import adaptive_avg_pool2d

    pooled = adaptive_avg_pool2d(torch.from_numpy(np.array(images, dtype=np.float32)), shape)
    return pooled.round_().clamp_(0, 255).to(torch.uint8).numpy()


def write_reference(
    directory: Path, source: ImageSource, labels: np.ndarray, classes: int, progress: ProgressFn = no_progress
) -> None:
    """Write a referencing Run's image files into ``directory`` (see the module's docstring) in one pass over the
    images: thumbnails, class means, and the source with every file's SHA-256."""
    n, c, h, w = source.shape
    small = thumbnail_shape(h, w)
    sums = np.zeros((classes, c, h, w), np.float64)  # sums of whole numbers below 2**53: exact, as a mean of all is
    counts = np.zeros(classes, np.int64)
    header = {
        "descr": np.lib.format.dtype_to_descr(np.dtype(np.uint8)),
        "fortran_order": False,
        "shape": (n, c, *small),
    }
    with atomic_write(directory / "thumbnails.npy") as f:
        np.lib.format.write_array_header_1_0(f, header)
        for start in range(0, n, _BATCH):
            progress("thumbnails", start, n)
            stop = min(start + _BATCH, n)
            batch = source[start:stop]
            f.write(thumbnails(batch, small).tobytes())
            batch_labels = labels[start:stop]
            for k in np.unique(batch_labels):
                mine = batch_labels == k
                sums[k] += batch[mine].sum(0, dtype=np.float64)
                counts[k] += int(mine.sum())
        progress("thumbnails", n, n)
    means = np.zeros_like(sums)
    seen = counts > 0
    means[seen] = np.rint(sums[seen] / counts[seen, None, None, None])
    _write_array(directory / "class_means.npy", means.astype(np.uint8))
    source.save(directory)
