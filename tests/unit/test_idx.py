import gzip
import hashlib
import struct
import tracemalloc
import zlib

import numpy as np
import pytest

from layerscope.data import load_mnist, read_idx, write_idx
from layerscope.data.datasets import MNIST_DIR, TEST, TRAIN
from layerscope.data.idx import MAX_BYTES, MAX_BYTES_ENV, max_bytes
from layerscope.errors import IdxError


@pytest.mark.parametrize("dtype", ["uint8", "int8", "int16", "int32", "float32", "float64"])
@pytest.mark.parametrize("name", ["a.idx", "a.idx.gz"])
def test_round_trip(tmp_path, dtype, name):
    array = (np.arange(2 * 3 * 5) - 7).reshape(2, 3, 5).astype(dtype)
    write_idx(tmp_path / name, array)
    back = read_idx(tmp_path / name)
    assert back.dtype == np.dtype(dtype)
    np.testing.assert_array_equal(back, array)


def test_header_is_big_endian_mnist_layout(tmp_path):
    write_idx(tmp_path / "x", np.zeros((3, 2, 2), np.uint8))
    raw = (tmp_path / "x").read_bytes()
    assert raw[:4] == b"\x00\x00\x08\x03"
    assert raw[4:16] == b"\x00\x00\x00\x03\x00\x00\x00\x02\x00\x00\x00\x02"
    assert len(raw) == 16 + 12


def test_truncated_file_names_the_file(tmp_path):
    write_idx(tmp_path / "imgs", np.zeros((10, 4, 4), np.uint8))
    raw = (tmp_path / "imgs").read_bytes()
    (tmp_path / "imgs").write_bytes(raw[:-5])
    with pytest.raises(IdxError, match=r"imgs: truncated: header \(10, 4, 4\) needs 160 bytes of data, found 155"):
        read_idx(tmp_path / "imgs")


def test_truncated_gzip(tmp_path):
    write_idx(tmp_path / "imgs.gz", np.arange(5000, dtype=np.int32))
    raw = (tmp_path / "imgs.gz").read_bytes()
    (tmp_path / "imgs.gz").write_bytes(raw[: len(raw) // 2])
    with pytest.raises(IdxError, match="imgs.gz: cannot decompress"):
        read_idx(tmp_path / "imgs.gz")


@pytest.mark.parametrize(
    "raw, message",
    [
        (b"\x00\x00", "too short for an IDX header"),
        (b"\x01\x02\x08\x01\x00\x00\x00\x01\x00", "not an IDX file"),
        (b"\x00\x00\x07\x01\x00\x00\x00\x01\x00", "unknown IDX type code 0x07"),
        (b"\x00\x00\x08\x02\x00\x00\x00\x01", "truncated inside the header"),
        (b"\x00\x00\x08\x01\x00\x00\x00\x01\x00\x00", "longer than its header says"),
    ],
)
def test_corrupt_headers(tmp_path, raw, message):
    (tmp_path / "bad").write_bytes(raw)
    with pytest.raises(IdxError, match=message):
        read_idx(tmp_path / "bad")


def test_missing_file(tmp_path):
    with pytest.raises(IdxError, match="no such IDX file"):
        read_idx(tmp_path / "nope.idx")


def test_error_messages_are_one_line(tmp_path):
    (tmp_path / "bad").write_bytes(b"\x00\x00\x08\x01\x00\x00\x00\x05\x00")
    with pytest.raises(IdxError) as info:
        read_idx(tmp_path / "bad")
    assert "\n" not in str(info.value)


def test_bundled_mnist_is_the_canonical_database():
    expected = {
        "train-images-idx3-ubyte.gz": "ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db",
        "t10k-labels-idx1-ubyte.gz": "ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2",
    }
    for name, sha in expected.items():
        with gzip.open(MNIST_DIR / name, "rb") as f:
            assert hashlib.sha256(f.read()).hexdigest() == sha
    assert "CC BY-SA 3.0" in (MNIST_DIR / "README.md").read_text()


def test_load_mnist_split_order_and_counts():
    d = load_mnist()
    assert d.images.shape == (70_000, 1, 28, 28) and d.images.dtype == np.uint8
    assert (d.split[:60_000] == TRAIN).all() and (d.split[60_000:] == TEST).all()
    assert list(d.labels[:8]) == [5, 0, 4, 1, 9, 2, 1, 3]
    assert list(d.labels[60_000:60_008]) == [7, 2, 1, 0, 4, 1, 4, 9]
    assert list(np.bincount(d.labels[:60_000])) == [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949]
    assert list(np.bincount(d.labels[60_000:])) == [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]
    pixels = d.pixels(np.arange(4))
    assert pixels.dtype.is_floating_point and pixels.shape == (4, 1, 28, 28)
    assert float(pixels.min()) == 0.0 and float(pixels.max()) == 1.0


# -- sizes are checked against the header and a budget before anything is allocated -----------------------------------


def _header(code: int, *dims: int) -> bytes:
    return struct.pack(">HBB", 0, code, len(dims)) + struct.pack(f">{len(dims)}I", *dims)


def test_dimensions_whose_product_wraps_int64_are_refused(tmp_path):
    # 65536**4 is 2**64, which an int64 product wraps to 0: the old check then took the empty data for a match
    (tmp_path / "bad").write_bytes(_header(0x08, 65536, 65536, 65536, 65536))
    with pytest.raises(
        IdxError, match=r"bad: header \(65536, 65536, 65536, 65536\) declares 18,446,744,073,709,551,616 bytes"
    ):
        read_idx(tmp_path / "bad")


def test_declared_size_over_the_budget_is_refused_before_reading(tmp_path, monkeypatch):
    write_idx(tmp_path / "x.idx", np.zeros((4, 5, 5), np.float64))  # 800 bytes of data
    monkeypatch.setenv(MAX_BYTES_ENV, "799")
    with pytest.raises(IdxError, match=rf"declares 800 bytes of data, more than the 799 .*set {MAX_BYTES_ENV}"):
        read_idx(tmp_path / "x.idx")
    monkeypatch.setenv(MAX_BYTES_ENV, "800")
    assert read_idx(tmp_path / "x.idx").shape == (4, 5, 5)
    monkeypatch.delenv(MAX_BYTES_ENV)
    assert max_bytes() == MAX_BYTES == 4 * 2**30


@pytest.mark.parametrize("value", ["lots", "-5", "0", "1e9", "²"])
def test_a_bad_budget_variable_is_one_line(tmp_path, monkeypatch, value):
    write_idx(tmp_path / "x.idx", np.zeros(3, np.uint8))
    monkeypatch.setenv(MAX_BYTES_ENV, value)
    with pytest.raises(IdxError, match=rf"^{MAX_BYTES_ENV}=.* is not a positive whole number of bytes"):
        read_idx(tmp_path / "x.idx")


def _gzip_bomb(path, header: bytes, inflated: int) -> None:
    """A valid gzip file of ``header`` + 16 zero bytes + ``inflated`` zero bytes, about 1 KB per MB inflated.

    Deflate blocks ended by a full flush are byte-aligned and refer to nothing before them, so one compressed block
    of 16 MiB of zeros can be repeated: the file is built in a fraction of a second instead of deflating a GiB."""

    def block(data: bytes) -> bytes:
        c = zlib.compressobj(9, zlib.DEFLATED, -15)  # raw deflate: the gzip header and trailer are written here
        return c.compress(data) + c.flush(zlib.Z_FULL_FLUSH)

    zeros = bytes(16 * 2**20)
    first = header + bytes(16)
    crc, total = zlib.crc32(first), len(first)
    zero_block = block(zeros)
    with open(path, "wb") as f:
        f.write(b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\xff" + block(first))
        for _ in range(inflated // len(zeros)):
            f.write(zero_block)
            crc, total = zlib.crc32(zeros, crc), total + len(zeros)
        f.write(zlib.compressobj(9, zlib.DEFLATED, -15).flush(zlib.Z_FINISH))  # the final, empty block
        f.write(struct.pack("<II", crc, total % 2**32))


def test_gzip_bomb_is_refused_without_inflating_it(tmp_path):
    """1 GiB of zeros after a header that declares 16 bytes: refused after reading 17, memory stays flat."""
    bomb = tmp_path / "train-images-idx3-ubyte.gz"
    _gzip_bomb(bomb, _header(0x08, 1, 4, 4), inflated=2**30)
    assert bomb.stat().st_size < 2 * 2**20
    tracemalloc.start()
    try:
        with pytest.raises(IdxError, match=r"longer than its header says: header \(1, 4, 4\) needs 16 bytes"):
            read_idx(bomb)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 100 * 2**20, f"{peak:,} bytes allocated"


def test_truncated_data_is_not_allocated_at_its_declared_size(tmp_path, monkeypatch):
    """A header declaring 1 GiB over 10 bytes of data: memory follows the data found, not the header."""
    (tmp_path / "x.gz").write_bytes(gzip.compress(_header(0x08, 2**15, 2**15) + bytes(10)))
    tracemalloc.start()
    try:
        with pytest.raises(IdxError, match=r"truncated: header \(32768, 32768\) needs 1073741824 bytes .*found 10\."):
            read_idx(tmp_path / "x.gz")
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 100 * 2**20, f"{peak:,} bytes allocated"


def test_a_zero_dimension_reads_as_an_empty_array(tmp_path):
    write_idx(tmp_path / "x.idx", np.zeros((0, 28, 28), np.uint8))
    assert read_idx(tmp_path / "x.idx").shape == (0, 28, 28)  # the dataset refuses it (tests/unit/test_datasets.py)


def test_multi_byte_values_are_native_and_writable(tmp_path):
    array = np.array([[1.5, -2.25], [3e9, 0.0]])
    write_idx(tmp_path / "x.idx.gz", array)
    back = read_idx(tmp_path / "x.idx.gz")
    assert back.dtype == np.dtype("=f8") and back.flags.writeable
    np.testing.assert_array_equal(back, array)


def test_more_dimensions_than_numpy_holds(tmp_path):
    (tmp_path / "x").write_bytes(_header(0x08, *[1] * 65) + b"\x00")
    with pytest.raises(IdxError, match=r"x: IDX header declares 65 dimensions; numpy arrays have at most 64\."):
        read_idx(tmp_path / "x")
    (tmp_path / "y").write_bytes(_header(0x08, *[1] * 64) + b"\x07")
    assert read_idx(tmp_path / "y").reshape(-1).tolist() == [7]


def test_an_empty_array_with_huge_other_dimensions_is_refused(tmp_path):
    # numpy cannot make (0, 256, 2**31 - 1, 2**31 - 1) although it holds no element
    (tmp_path / "x").write_bytes(_header(0x08, 0, 256, 2**31 - 1, 2**31 - 1))
    with pytest.raises(IdxError, match=r"declares 1,180,591,619,617,899,675,904 bytes in its nonzero dimensions"):
        read_idx(tmp_path / "x")
