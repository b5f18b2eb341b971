"""Read and write IDX files, the format MNIST, Fashion-MNIST, KMNIST and EMNIST are distributed in.

An IDX file is a 4-byte magic number (two zero bytes, a type code, the number of dimensions), one big-endian uint32
per dimension, then the values, big-endian, in C order. Files ending in ``.gz`` are gzip-compressed.

The header is read and checked before anything else: the data it declares must fit ``max_bytes()`` (4 GiB unless
``LAYERSCOPE_MAX_IDX_BYTES`` says otherwise), and the file is then read (or inflated) in chunks up to one byte past
the declared end, so a corrupt header or a gzip bomb is refused without allocating what it claims.
"""

from __future__ import annotations

import gzip
import math
import os
import struct
import zlib
from pathlib import Path
from typing import NamedTuple, Protocol

import numpy as np

from layerscope.atomic import atomic_write
from layerscope.errors import IdxError

__all__ = ["MAX_BYTES", "MAX_BYTES_ENV", "IdxHeader", "idx_header", "max_bytes", "read_idx", "write_idx"]

MAX_BYTES = 4 * 2**30  # EMNIST ByClass, the largest of the family, holds 0.6 GB of images
MAX_BYTES_ENV = "LAYERSCOPE_MAX_IDX_BYTES"
_MAX_NDIM = 64  # numpy's limit (the format allows 255)
_CHUNK = 16 * 2**20  # memory grows with the data actually found, never with what a header claims

# type code -> big-endian numpy dtype
_DTYPES: dict[int, np.dtype] = {
    0x08: np.dtype(">u1"),
    0x09: np.dtype(">i1"),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}
_CODES = {dt.newbyteorder("=").str: code for code, dt in _DTYPES.items()}


def max_bytes() -> int:
    """The most data bytes one IDX file may declare: ``MAX_BYTES``, or ``$LAYERSCOPE_MAX_IDX_BYTES`` when set."""
    value = os.environ.get(MAX_BYTES_ENV, "").strip()
    if not value:
        return MAX_BYTES
    if not value.isascii() or not value.isdigit() or int(value) < 1:
        raise IdxError(
            f"{MAX_BYTES_ENV}={value[:40]!r} is not a positive whole number of bytes; set it to one, or unset it."
        )
    return int(value)


class _Reader(Protocol):
    def read(self, size: int = -1, /) -> bytes: ...


def _read_at_most(f: _Reader, n: int) -> bytearray:
    """Up to ``n`` bytes of ``f``, read in chunks (``gzip`` inflates only as much as is asked for)."""
    data = bytearray()
    while len(data) < n:
        chunk = f.read(min(_CHUNK, n - len(data)))
        if not chunk:
            break
        data += chunk
    return data


def _parse(path: Path, f: _Reader) -> np.ndarray:
    shape, dtype, _ = _header(path, f)
    expected = math.prod(shape) * dtype.itemsize  # Python ints: 65536**4 does not wrap as an int64 product does
    # numpy refuses even an empty array whose nonzero dimensions multiply past its index range: count those too
    span = math.prod(d for d in shape if d) * dtype.itemsize
    budget = max_bytes()
    if max(expected, span) > budget:
        of = "of data" if span == expected else "in its nonzero dimensions"
        raise IdxError(
            f"{path}: header {tuple(shape)} declares {span:,} bytes {of}, more than the {budget:,} layerscope "
            f"reads from one IDX file; the header is corrupt, or set {MAX_BYTES_ENV} to allow more."
        )
    data = _read_at_most(f, expected + 1)  # one byte past the declared end tells a longer file apart
    if len(data) != expected:
        found = "more" if len(data) > expected else str(len(data))
        what = "truncated" if len(data) < expected else "longer than its header says"
        raise IdxError(
            f"{path}: {what}: header {tuple(shape)} needs {expected} bytes of data, found {found}. "
            "Download the file again."
        )
    array = np.frombuffer(data, dtype=dtype).reshape(shape)  # writable: it views the bytearray, no copy
    if not dtype.isnative:
        array = array.byteswap(inplace=True).view(dtype.newbyteorder("="))
    return array


def _header(path: Path, f: _Reader) -> tuple[tuple[int, ...], np.dtype, int]:
    """(shape, dtype, header bytes) of the IDX file open as ``f``, its header read and checked."""
    head = _read_at_most(f, 4)
    if len(head) < 4:
        raise IdxError(f"{path}: {len(head)} bytes is too short for an IDX header; the file is truncated.")
    zero, code, ndim = struct.unpack(">HBB", head)
    if zero != 0:
        raise IdxError(f"{path}: not an IDX file (magic number 0x{head.hex()} does not start with 0x0000).")
    if code not in _DTYPES:
        raise IdxError(f"{path}: unknown IDX type code 0x{code:02x} (expected one of 08 09 0b 0c 0d 0e).")
    if ndim == 0:
        raise IdxError(f"{path}: IDX header declares 0 dimensions.")
    if ndim > _MAX_NDIM:
        raise IdxError(f"{path}: IDX header declares {ndim} dimensions; numpy arrays have at most {_MAX_NDIM}.")
    dims = _read_at_most(f, 4 * ndim)
    if len(dims) < 4 * ndim:
        raise IdxError(f"{path}: truncated inside the header ({4 + len(dims)} of {4 + 4 * ndim} bytes).")
    shape = struct.unpack(f">{ndim}I", dims)
    return tuple(int(d) for d in shape), _DTYPES[code], 4 + 4 * ndim


class IdxHeader(NamedTuple):
    """Where an uncompressed IDX file's values are: ``shape`` and ``dtype`` (big-endian), from byte ``offset``."""

    shape: tuple[int, ...]
    dtype: np.dtype
    offset: int


def idx_header(path: str | os.PathLike[str]) -> IdxHeader:
    """The header of an uncompressed IDX file, checked against the file's length, without reading its values: what
    reading them in place needs (``layerscope.data.sources``). A ``.gz`` file cannot be read in place."""
    path = Path(path)
    if path.suffix == ".gz":
        raise IdxError(f"{path}: a compressed IDX file cannot be read in place; gunzip it first.")
    if not path.is_file():
        raise IdxError(f"{path}: no such IDX file. Check the path (a dataset directory holds the four IDX files).")
    try:
        with path.open("rb") as f:
            shape, dtype, offset = _header(path, f)
            size = os.fstat(f.fileno()).st_size
    except OSError as e:
        raise IdxError(f"{path}: cannot read the file ({' '.join(str(e).split())}).") from e
    expected = math.prod(shape) * dtype.itemsize
    if size - offset != expected:
        what = "truncated" if size - offset < expected else "longer than its header says"
        raise IdxError(
            f"{path}: {what}: header {shape} needs {expected} bytes of data, found {size - offset}. "
            "Download the file again."
        )
    return IdxHeader(shape, dtype, offset)


def read_idx(path: str | os.PathLike[str]) -> np.ndarray:
    """Read an IDX file (optionally ``.gz``) into a native-endian numpy array, validating header and length."""
    path = Path(path)
    if not path.is_file():
        raise IdxError(f"{path}: no such IDX file. Check the path (a dataset directory holds the four IDX files).")
    gz = path.suffix == ".gz"
    try:
        with gzip.open(path, "rb") if gz else path.open("rb") as f:
            return _parse(path, f)
    except (OSError, EOFError, zlib.error) as e:
        reason = " ".join(str(e).split()) or type(e).__name__
        if gz:
            raise IdxError(
                f"{path}: cannot decompress ({reason}); the file is corrupt or truncated, download it again."
            ) from e
        raise IdxError(f"{path}: cannot read the file ({reason}).") from e


def write_idx(path: str | os.PathLike[str], array: np.ndarray) -> None:
    """Write ``array`` as an IDX file (gzip-compressed if the name ends in ``.gz``), atomically."""
    path = Path(path)
    array = np.asarray(array)
    key = array.dtype.newbyteorder("=").str
    if key not in _CODES:
        raise IdxError(
            f"{path}: IDX cannot store dtype {array.dtype}; use uint8, int8, int16, int32, float32 or float64."
        )
    if array.ndim == 0 or array.ndim > 255:
        raise IdxError(f"{path}: IDX stores 1 to 255 dimensions, not {array.ndim}.")
    code = _CODES[key]
    header = struct.pack(">HBB", 0, code, array.ndim) + struct.pack(f">{array.ndim}I", *array.shape)
    payload = header + np.ascontiguousarray(array, dtype=_DTYPES[code]).tobytes()
    with atomic_write(path) as f:
        f.write(gzip.compress(payload, mtime=0) if path.suffix == ".gz" else payload)
