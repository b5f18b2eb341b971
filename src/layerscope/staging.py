"""Where a Ray capture's workers put their rows: one chunked, compressed Zarr v3 array, addressed by image index,
in a staging directory every worker can write to; the driver then copies it, a bounded number of rows at a time,
into the Run's memory-mapped ``.npy`` files.

Every array a capture writes (`capture.output_shapes`: ``probs.npy`` and the layers' ``activations/``) is a block
of columns of one (N, W) float32 array, W the sum of their widths (308 for the report's CNN), chunked by the
capture's batch: a worker's batch is one chunk, written whole in one call, so workers never write the same chunk
and a batch run again (a restarted worker) writes its chunk again. One array rather than one per file: a chunk
write costs about a millisecond of Zarr's own work whatever its size (measured), and ten arrays made that ten
writes per batch.

Why a staging array at all, and not the workers writing the Run's ``.npy`` files in place: on a cluster the Run's
directory is on the driver's disk, which the workers may only read, or not at all; a shared directory (NFS, Lustre,
a mounted bucket) or an object store holds chunk files well, and compressed rows cost less on the network. And why
the Run keeps ``.npy`` files rather than Zarr: the dashboard and the projections memory-map them, reading any rows
at the cost of a page fault, where a compressed chunk would be decompressed whole for one image's row.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from layerscope.capture import open_outputs, output_shapes
from layerscope.errors import LayerscopeError
from layerscope.layers import LayerInfo

__all__ = ["BatchRows", "StagedRows", "create_rows", "copy_rows"]

COPY_BYTES = 64 << 20  # rows the driver copies at a time, about this many bytes


def _columns(layers: Sequence[LayerInfo], n: int, num_classes: int) -> dict[str, tuple[int, int]]:
    """Each capture file's columns (start, stop) in the staged array, in `output_shapes`' order."""
    columns, at = {}, 0
    for name, (_, width) in output_shapes(layers, n, num_classes).items():
        columns[name] = (at, at + width)
        at += width
    return columns


def _codec() -> Any:
    from zarr.codecs import BloscCodec

    # lz4 with byte shuffle: measured here at 0.8 ms per 256-row chunk written, zstd at 1.7 ms; it keeps the
    # report's CNN's 70,000 x 308 rows in 72 MiB of 82 (float32 activations do not compress much)
    return BloscCodec(cname="lz4", clevel=5, shuffle="shuffle")


def create_rows(path: Path, layers: Sequence[LayerInfo], n: int, num_classes: int, batch: int) -> None:
    """Create the staged (N, W) array at ``path`` (a directory not there yet), chunked by ``batch`` rows."""
    import zarr

    columns = _columns(layers, n, num_classes)
    width = max((stop for _, stop in columns.values()), default=0)
    zarr.create_array(
        store=str(path),
        shape=(n, width),
        chunks=(batch, width),
        dtype="float32",
        compressors=_codec(),
        fill_value=np.float32(np.nan),
        zarr_format=3,
        attributes={"layerscope": {"columns": {name: list(span) for name, span in columns.items()}}},
    )


def _stored_columns(array: Any) -> dict[str, tuple[int, int]]:
    """The columns `create_rows` recorded in the staged array's attributes."""
    recorded: dict[str, Any] = array.attrs["layerscope"]["columns"]
    return {name: (int(span[0]), int(span[1])) for name, span in recorded.items()}


class _Columns:
    """One capture file's columns of a batch's buffer: ``write_outputs`` writes ``array[lo:hi] = rows`` into it."""

    def __init__(self, buffer: np.ndarray, start: int, stop: int, first: int) -> None:
        self.buffer, self.start, self.stop, self.first = buffer, start, stop, first

    def __setitem__(self, rows: slice, values: np.ndarray) -> None:
        self.buffer[int(rows.start) - self.first : int(rows.stop) - self.first, self.start : self.stop] = values


class BatchRows:
    """A worker's handle on the staged array: ``arrays = rows.batch(lo, hi)`` gives ``write_outputs`` its arrays for
    images ``lo`` to ``hi``, then ``rows.write()`` stores them as one chunk."""

    def __init__(self, path: Path) -> None:
        import zarr

        self.array = zarr.open_array(store=str(path), mode="r+")
        self.columns = _stored_columns(self.array)
        self._buffer: np.ndarray | None = None
        self._lo = 0

    def batch(self, lo: int, hi: int) -> Mapping[str, _Columns]:
        self._buffer = np.empty((hi - lo, self.array.shape[1]), np.float32)
        self._lo = lo
        return {name: _Columns(self._buffer, a, b, lo) for name, (a, b) in self.columns.items()}

    def write(self) -> None:
        assert self._buffer is not None
        self.array[self._lo : self._lo + len(self._buffer)] = self._buffer
        self._buffer = None


class StagedRows:
    """The driver's view of the staged array once the workers are done."""

    def __init__(self, path: Path) -> None:
        import zarr

        self.path = path
        self.array = zarr.open_array(store=str(path), mode="r")

    def check_complete(self) -> None:
        """Every chunk must be there: a worker whose writes went to a directory the driver does not see (a
        --staging path that is not shared) left none, and its rows would read as the fill value."""
        found, wanted = self.array.nchunks_initialized, self.array.nchunks
        if found != wanted:
            raise LayerscopeError(
                f"{wanted - found} of the capture's {wanted} batches are not in {self.path.parent}: the workers wrote "
                "them elsewhere; give --staging a directory every Ray worker and this machine share."
            )


def copy_rows(staged: StagedRows, out_dir: Path, layers: Sequence[LayerInfo], num_classes: int) -> list[str]:
    """Copy the staged rows into the capture's ``.npy`` files under ``out_dir`` (`capture.open_outputs`), whole
    chunks of about ``COPY_BYTES`` at a time, so the driver never holds more than that; returns the files."""
    array = staged.array
    n, width = array.shape
    chunk = int(array.chunks[0])
    step = max(COPY_BYTES // max(width * 4 * chunk, 1), 1) * chunk
    columns = _stored_columns(array)
    outputs = open_outputs(out_dir, layers, n, num_classes)
    if set(outputs) != set(columns):
        raise LayerscopeError(f"{staged.path} holds other arrays than this capture's; run the capture again.")
    for lo in range(0, n, step):
        rows = np.asarray(array[lo : min(lo + step, n)])  # (step, W) float32, decompressed
        for name, (a, b) in columns.items():
            outputs[name][lo : lo + len(rows)] = rows[:, a:b]
    for output in outputs.values():
        if isinstance(output, np.memmap):
            output.flush()
    return list(outputs)
