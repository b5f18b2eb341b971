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
- ``TarSource``: image files stored as members of uncompressed tar files (WebDataset shards), each read with one
  seek and one read at its member's byte offset and decoded as ``FileSource`` decodes a file. The tar files are
  checked as ``IdxSource`` checks its files: SHA-256, size and modification time recorded, stat on open.

A referencing Run stores what its source needs (``save``/``load_source``)::

    images.json          {"kind": "idx", "shards": [{"path", "start", "count", "sha256", "size", "mtime_ns"}, ...]}
                         or {"kind": "files", "root", "channels", "height", "width", "resize"}
                         or {"kind": "tar", "shards": [{"path", "sha256", "size", "mtime_ns"}, ...], "resize"}
    images.paths.npy     (N,) bytes: each file's path, UTF-8, relative to ``root`` (or absolute)   [files only]
    images.sha256.npy    (N, 32) uint8: each file's SHA-256                                         [files only]
    images.members.npy   (N, 3) int64: each image's tar file (index into shards), byte offset, size  [tar only]
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
from collections.abc import Callable, Iterable, Iterator, Sequence
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
    "TarShard",
    "TarSource",
    "decode_image",
    "load_source",
    "scan_files",
    "scan_tar",
    "take",
    "thumbnail_shape",
    "thumbnails",
    "write_reference",
]

IMAGES_JSON = "images.json"
# everything a referencing Run keeps of its images (the snapshots of training link to the same files)
REFERENCE_FILES = (
    IMAGES_JSON,
    "images.paths.npy",
    "images.sha256.npy",
    "images.members.npy",
    "thumbnails.npy",
    "class_means.npy",
)
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


def _verify(path: Path, size: int, mtime_ns: int, sha256: str | None, owner: str) -> None:
    """Refuse ``path`` unless its size is ``size`` and its time ``mtime_ns`` or, its time changed, its SHA-256
    ``sha256``: a file only touched passes, and a large file is hashed again only when it may have changed."""
    try:
        st = path.stat()
    except FileNotFoundError:
        raise _missing(path, owner) from None
    if st.st_size != size or (st.st_mtime_ns != mtime_ns and _sha256(path) != sha256):
        raise _changed(path, owner)


def _hash_recorded(path: Path, size: int, mtime_ns: int, owner: str) -> tuple[str, int, int]:
    """(SHA-256, size, mtime_ns) of ``path`` now, refused if it changed since ``size`` and ``mtime_ns`` were
    recorded (as the dataset was read) or while it was hashed."""
    before = os.stat(path)
    if size and (before.st_size, before.st_mtime_ns) != (size, mtime_ns):
        raise _changed(path, owner)
    digest = _sha256(path)
    after = os.stat(path)
    if (after.st_size, after.st_mtime_ns) != (before.st_size, before.st_mtime_ns):
        raise _changed(path, owner)
    return digest, after.st_size, after.st_mtime_ns


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
            if shard.path not in verified:
                _verify(Path(shard.path), shard.size, shard.mtime_ns, shard.sha256, self.owner)
                verified.add(shard.path)

    def hashed(self, progress: ProgressFn = no_progress) -> IdxSource:
        """The source with each file's SHA-256, size and time recorded now (about 1 s a gigabyte); a file that
        changed since the dataset was read is refused."""
        digests: dict[str, IdxShard] = {}
        paths = sorted({s.path for s in self.shards})
        for i, path in enumerate(paths):
            progress("hash the image files", i, len(paths))
            recorded = next(s for s in self.shards if s.path == path)
            digest, size, mtime_ns = _hash_recorded(Path(path), recorded.size, recorded.mtime_ns, self.owner)
            digests[path] = replace(recorded, sha256=digest, size=size, mtime_ns=mtime_ns)
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
def decode_image(data: bytes | Path, path: Path | str, size: int | None) -> tuple[np.ndarray, bool, bool]:
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


def _decode_chw(
    data: bytes, path: Path, image_shape: tuple[int, int, int], resize: bool, owner: str, where: str = ""
) -> np.ndarray:
    """(C, H, W) uint8 of one image's bytes from ``path`` as the dataset read it (``where``: the place inside it);
    an image that is no longer that shape or mode means the file changed."""
    c, h, w = image_shape
    pixels, _, _ = decode_image(data, f"{path}{where}", h if resize else None)
    if pixels.shape[:2] != (h, w):
        raise _changed(path, owner)
    if pixels.ndim == 2:  # (H, W) -> (1, H, W); a grey image among colour ones is three equal channels
        return pixels[None] if c == 1 else np.repeat(pixels[None], 3, axis=0)
    if c == 1:
        raise _changed(path, owner)  # was grey when the dataset was read
    return pixels.transpose(2, 0, 1)


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
        return _decode_chw(data, path, self.shape[1:], self.resize, self.owner)

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


# -- members of tar files (WebDataset shards) --------------------------------------------------------------------------
@dataclass(frozen=True)
class TarShard:
    """An uncompressed tar file whose members a ``TarSource`` reads; ``sha256``, ``size`` and ``mtime_ns`` of the
    file as recorded."""

    path: str
    sha256: str | None = None
    size: int = 0
    mtime_ns: int = 0

    def stat(self) -> TarShard:
        st = os.stat(self.path)
        return replace(self, size=st.st_size, mtime_ns=st.st_mtime_ns)


class TarSource(ImageSource):
    """Image files stored in uncompressed tar files: image ``i`` is the ``members[i, 2]`` bytes at byte
    ``members[i, 1]`` of ``shards[members[i, 0]]`` (a member's data, ``TarInfo.offset_data`` and ``.size``), decoded
    to ``image_shape`` as ``FileSource`` decodes a file. Reading an image is one seek and one read: nothing is
    extracted, and a tar file is opened once per batch."""

    kind = "tar"

    def __init__(
        self,
        shards: Sequence[TarShard],
        members: np.ndarray,
        image_shape: tuple[int, int, int],
        resize: bool,
        owner: str = "",
    ) -> None:
        super().__init__((len(members), *image_shape))
        self.shards = list(shards)
        self.members = members  # (N, 3) int64: tar file, byte offset, size
        self.resize = resize
        self.owner = owner or "the dataset"

    def describe(self) -> str:
        where = (
            self.shards[0].path
            if len(self.shards) == 1
            else f"{len(self.shards)} tar files, {self.shards[0].path}, ..."
        )
        return f"{len(self):,} images in {where}"

    def _read(self, indices: np.ndarray) -> np.ndarray:
        out = np.empty((len(indices), *self.shape[1:]), np.uint8)
        rows = self.members[indices]
        for s in np.unique(rows[:, 0]).tolist():
            path = Path(self.shards[s].path)
            mine = np.flatnonzero(rows[:, 0] == s)
            mine = mine[np.argsort(rows[mine, 1], kind="stable")]  # forward through the file
            try:
                f = open(path, "rb")
            except FileNotFoundError:
                raise _missing(path, self.owner) from None
            except OSError as e:
                raise LayerscopeError(f"{path}: cannot read the images ({' '.join(str(e).split())}).") from None
            with f:
                for row in mine.tolist():
                    _, offset, size = rows[row].tolist()
                    f.seek(offset)
                    data = f.read(size)
                    if len(data) != size:
                        raise _changed(path, self.owner)
                    where = f" (the image at byte {offset})"
                    out[row] = _decode_chw(data, path, self.shape[1:], self.resize, self.owner, where)
        return out

    def take(self, indices: np.ndarray) -> TarSource:
        return TarSource(
            self.shards, self.members[np.asarray(indices, np.int64)], self.shape[1:], self.resize, self.owner
        )

    def check(self) -> None:
        """Each tar file's size and modification time as recorded, or else its SHA-256 (as ``IdxSource.check``)."""
        for shard in self.shards:
            _verify(Path(shard.path), shard.size, shard.mtime_ns, shard.sha256, self.owner)

    def hashed(self, progress: ProgressFn = no_progress) -> TarSource:
        """The source with each tar file's SHA-256, size and time recorded now; a file that changed since the
        dataset was read is refused."""
        shards = []
        for i, shard in enumerate(self.shards):
            progress("hash the tar files", i, len(self.shards))
            digest, size, mtime_ns = _hash_recorded(Path(shard.path), shard.size, shard.mtime_ns, self.owner)
            shards.append(replace(shard, sha256=digest, size=size, mtime_ns=mtime_ns))
        progress("hash the tar files", len(self.shards), len(self.shards))
        return TarSource(shards, self.members, self.shape[1:], self.resize, self.owner)

    def save(self, directory: Path) -> None:
        source = self if all(s.sha256 for s in self.shards) else self.hashed()
        _write_array(directory / "images.members.npy", np.asarray(self.members, np.int64))
        _write_json(
            directory,
            {
                "kind": self.kind,
                "image_shape": list(self.shape[1:]),
                "resize": self.resize,
                "shards": [{k: getattr(s, k) for k in ("path", "sha256", "size", "mtime_ns")} for s in source.shards],
            },
        )


def _headers(
    items: Iterable[tuple[Path | str, Path | bytes]], n: int, size: int | None, progress: ProgressFn
) -> tuple[tuple[int, int, int], bool]:
    """(C, H, W) of ``n`` images, ``(name, file or its first bytes)`` each, from their headers: one size for all
    unless ``size`` resizes them, grey (one channel) unless some image has colour; and whether any will be resized.
    Decodes nothing; refuses as ``load_image_folder`` does, in one line."""
    import io

    from PIL import Image, UnidentifiedImageError

    unreadable = (OSError, UnidentifiedImageError, ValueError, Image.DecompressionBombError)
    grey = True
    resized = False
    first: tuple[Path | str, tuple[int, int]] | None = None
    progress("read image headers", 0, n)
    for i, (path, data) in enumerate(items):
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("error", Image.DecompressionBombWarning)
                with Image.open(io.BytesIO(data) if isinstance(data, bytes) else data) as opened:
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
        if (i + 1) % 4096 == 0 or i + 1 == n:
            progress("read image headers", i + 1, n)
    assert first is not None
    w, h = (size, size) if size is not None else first[1]
    return (1 if grey else 3, h, w), resized


def scan_files(
    files: Sequence[Path], size: int | None, root: Path, progress: ProgressFn = no_progress
) -> tuple[FileSource, bool]:
    """A ``FileSource`` of ``files`` (their paths kept relative to ``root`` where they are under it), once each
    file's header says its size and mode (``_headers``); and whether any will be resized."""
    shape, resized = _headers(((path, path) for path in files), len(files), size, progress)
    root = root.resolve()
    names = []
    for path in files:
        absolute = path.resolve()
        names.append(os.fsencode(absolute.relative_to(root) if absolute.is_relative_to(root) else absolute))
    return FileSource(root, np.array(names, dtype=bytes), shape, size is not None), resized


# an image's header lies in its first bytes: a PNG's in 33, a JPEG's after its metadata segments (at most 64 KB each)
_HEADER_BYTES = 1 << 20


def scan_tar(
    shards: Sequence[TarShard],
    members: np.ndarray,
    names: Sequence[str],
    size: int | None,
    progress: ProgressFn = no_progress,
) -> tuple[TarSource, bool]:
    """A ``TarSource`` of the tar members ``members`` ((N, 3) int64: tar file, byte offset, size; ``names`` for
    messages) once each one's header says its size and mode (``_headers``: the first bytes of each, one tar file
    open at a time); and whether any will be resized."""

    def first_bytes() -> Iterator[tuple[str, bytes]]:
        for s, shard in enumerate(shards):
            with open(shard.path, "rb") as f:
                for i in np.flatnonzero(members[:, 0] == s).tolist():
                    f.seek(int(members[i, 1]))
                    yield names[i], f.read(min(int(members[i, 2]), _HEADER_BYTES))

    shape, resized = _headers(first_bytes(), len(members), size, progress)
    return TarSource(shards, members, shape, size is not None), resized


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
        elif kind == "tar":
            tars = [
                TarShard(str(s["path"]), str(s["sha256"]), int(s["size"]), int(s["mtime_ns"])) for s in meta["shards"]
            ]
            members = np.array(array("images.members.npy", (n_images, 3), "i"), np.int64)
            if len(members) and not (0 <= members[:, 0].min() and members[:, 0].max() < len(tars)):
                raise ValueError("images.members.npy names a tar file images.json does not list")
            source = TarSource(tars, members, shape, bool(meta["resize"]), owner)  # type: ignore[arg-type]
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
