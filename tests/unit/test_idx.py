import gzip
import hashlib

import numpy as np
import pytest

from layerscope.data import load_mnist, read_idx, write_idx
from layerscope.data.datasets import MNIST_DIR, TEST, TRAIN
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
