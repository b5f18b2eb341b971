"""Read and write IDX files, the format MNIST, Fashion-MNIST, KMNIST and EMNIST are distributed in.

An IDX file is a 4-byte magic number (two zero bytes, a type code, the number of dimensions), one big-endian uint32
per dimension, then the values, big-endian, in C order. Files ending in ``.gz`` are gzip-compressed.
"""

from __future__ import annotations

import gzip
import os
import struct
import zlib
from pathlib import Path

import numpy as np

from layerscope.atomic import atomic_write
from layerscope.errors import IdxError

__all__ = ["read_idx", "write_idx"]

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


def _read_bytes(path: Path) -> bytes:
    if not path.is_file():
        raise IdxError(f"{path}: no such IDX file. Check the path (a dataset directory holds the four IDX files).")
    try:
        if path.suffix == ".gz":
            with gzip.open(path, "rb") as f:
                return f.read()
        return path.read_bytes()
    except (OSError, EOFError, zlib.error) as e:
        raise IdxError(f"{path}: cannot decompress ({e}); the file is corrupt or truncated, download it again.") from e


def read_idx(path: str | os.PathLike[str]) -> np.ndarray:
    """Read an IDX file (optionally ``.gz``) into a native-endian numpy array, validating header and length."""
    path = Path(path)
    raw = _read_bytes(path)
    if len(raw) < 4:
        raise IdxError(f"{path}: {len(raw)} bytes is too short for an IDX header; the file is truncated.")
    zero, code, ndim = struct.unpack(">HBB", raw[:4])
    if zero != 0:
        raise IdxError(f"{path}: not an IDX file (magic number 0x{raw[:4].hex()} does not start with 0x0000).")
    if code not in _DTYPES:
        raise IdxError(f"{path}: unknown IDX type code 0x{code:02x} (expected one of 08 09 0b 0c 0d 0e).")
    if ndim == 0:
        raise IdxError(f"{path}: IDX header declares 0 dimensions.")
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise IdxError(f"{path}: truncated inside the header ({len(raw)} of {header} bytes).")
    shape = struct.unpack(f">{ndim}I", raw[4:header])
    dtype = _DTYPES[code]
    expected = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    found = len(raw) - header
    if found != expected:
        what = "truncated" if found < expected else "longer than its header says"
        raise IdxError(
            f"{path}: {what}: header {tuple(shape)} needs {expected} bytes of data, found {found}. "
            "Download the file again."
        )
    data = np.frombuffer(raw, dtype=dtype, offset=header).reshape(shape)
    return data.astype(dtype.newbyteorder("="), copy=True)


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
