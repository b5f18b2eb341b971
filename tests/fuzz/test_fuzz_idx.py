"""Malformed IDX files and dataset directories: each loads, or is one line of ``LayerscopeError``; never a traceback,
never memory that follows what a header claims, never a file written."""

from __future__ import annotations

import gzip
import math
import random
import struct

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from layerscope.data import load_dataset, read_idx, write_idx
from layerscope.data.idx import MAX_BYTES
from layerscope.errors import IdxError, LayerscopeError
from tests.conftest import make_idx_dir, one_line_error
from tests.fuzz import sandbox, tree

# The IDX format's type codes (the spec, written out here so the oracle does not borrow the reader's table)
SPEC = {0x08: ">u1", 0x09: ">i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}
FUZZ = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])

dims = st.one_of(
    st.integers(0, 6),
    st.sampled_from([2**8, 2**16, 2**31 - 1, 2**31, 2**32 - 1]),  # 65536**4 wraps an int64 product to 0
    st.integers(0, 2**32 - 1),
)


@st.composite
def idx_files(draw: st.DrawFn) -> tuple[bytes, bool]:
    """(the bytes an IDX file holds before any compression, whether they were mutated after being built)."""
    if draw(st.integers(0, 9)) == 0:
        return draw(st.binary(max_size=40)), True
    zero = draw(st.sampled_from([0, 0, 0, 0, 1, 0x0100, 0xFFFF]))
    code = draw(st.one_of(st.sampled_from(sorted(SPEC)), st.integers(0, 255)))
    ndim = draw(st.one_of(st.integers(0, 4), st.integers(0, 255)))
    shape = draw(st.lists(dims, min_size=ndim, max_size=ndim))
    header = struct.pack(">HBB", zero, code, ndim) + struct.pack(f">{ndim}I", *shape)
    size = math.prod(shape) * (np.dtype(SPEC[code]).itemsize if code in SPEC else 1)
    lengths = [size, size, size - 1, size + 1] if size <= 4096 else []
    length = max(0, draw(st.sampled_from(lengths) if lengths and draw(st.booleans()) else st.integers(0, 64)))
    raw = header + random.Random(draw(st.integers(0, 2**32))).randbytes(length)
    mutated = draw(st.booleans())
    if mutated and raw:
        at = draw(st.integers(0, len(raw) - 1))
        if draw(st.booleans()):
            raw = raw[:at]
        else:
            raw = raw[:at] + bytes([draw(st.integers(0, 255))]) + raw[at + 1 :]
    return raw, mutated


def _expected(raw: bytes) -> np.ndarray | None:
    """What the IDX format says ``raw`` holds, or None when it is not a valid file (or declares more than 4 GiB)."""
    if len(raw) < 4:
        return None
    zero, code, ndim = struct.unpack(">HBB", raw[:4])
    header = 4 + 4 * ndim
    if zero != 0 or code not in SPEC or not 1 <= ndim <= 64 or len(raw) < header:  # numpy holds 64 dimensions
        return None
    shape = struct.unpack(f">{ndim}I", raw[4:header])
    dtype = np.dtype(SPEC[code])
    size = math.prod(shape) * dtype.itemsize
    if math.prod(d for d in shape if d) * dtype.itemsize > MAX_BYTES or len(raw) - header != size:
        return None
    return np.frombuffer(raw, dtype, offset=header).reshape(shape)


def _one_line(error: LayerscopeError) -> None:
    assert len(str(error).splitlines()) == 1 and str(error).strip(), repr(str(error))


@FUZZ
@given(idx_files(), st.sampled_from(["plain", "gzip", "gzip cut", "gzip flipped"]), st.data())
def test_read_idx_loads_or_refuses_in_one_line(file, storage, data):
    raw, _ = file
    payload = raw if storage == "plain" else gzip.compress(raw, mtime=0)
    if storage != "plain" and storage != "gzip":
        at = data.draw(st.integers(0, len(payload) - 1))
        payload = (
            payload[:at] if storage == "gzip cut" else payload[:at] + bytes([payload[at] ^ 0xFF]) + payload[at + 1 :]
        )
    with sandbox() as tmp:
        path = tmp / ("x-idx.gz" if storage != "plain" else "x-idx")
        path.write_bytes(payload)
        before = tree(tmp)
        try:
            array = read_idx(path)
        except IdxError as e:
            _one_line(e)
            array = None
        assert tree(tmp) == before
    if storage in ("plain", "gzip"):  # the stream is intact: the format decides exactly
        expected = _expected(raw)
        if expected is None:
            assert array is None, "an invalid file was read"
        else:
            assert array is not None and array.dtype.isnative
            np.testing.assert_array_equal(array, expected)
    elif array is not None:  # a damaged stream may still inflate to a valid file: then it is read as one
        assert array.dtype.isnative and array.ndim >= 1


ROLES = ["train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte"]


@FUZZ
@given(st.sampled_from(ROLES), idx_files(), st.booleans())
def test_a_dataset_with_one_malformed_file_loads_or_refuses_in_one_line(role, file, compress):
    raw, _ = file
    with sandbox() as tmp:
        directory = make_idx_dir(tmp / "data", n_train=6, n_test=3, size=4, classes=3)
        (directory / role).write_bytes(gzip.compress(raw, mtime=0) if role.endswith(".gz") and compress else raw)
        before = tree(tmp)
        try:
            dataset = load_dataset(directory)
        except LayerscopeError as e:
            _one_line(e)
        else:
            assert len(dataset) > 0 and dataset.images.ndim == 4 and dataset.images.dtype == np.uint8
            assert 0 <= dataset.labels.min() and dataset.labels.max() < dataset.num_classes <= 10_000
        assert tree(tmp) == before


@FUZZ
@given(st.sampled_from([(8, 1), (8, 3), (0x0C, 1), (0x0E, 2)]), st.lists(st.integers(1, 5), min_size=1, max_size=4))
def test_valid_files_round_trip(kind, shape):
    """The other side of the oracle: a valid file is never refused."""
    code, scale = kind
    array = (np.arange(math.prod(shape)) * scale).reshape(shape).astype(np.dtype(SPEC[code]).newbyteorder("="))
    with sandbox() as tmp:
        for name in ("a", "a.gz"):
            write_idx(tmp / name, array)
            np.testing.assert_array_equal(read_idx(tmp / name), array)


# -- through the real command line, in-process ------------------------------------------------------------------------


def _header(code: int, *shape: int) -> bytes:
    return struct.pack(">HBB", 0, code, len(shape)) + struct.pack(f">{len(shape)}I", *shape)


CLI_CASES = {
    "images header wrapping int64": (
        "train-images-idx3-ubyte.gz",
        gzip.compress(_header(8, 65536, 65536, 65536, 65536)),
        "declares 18,446,744,073,709,551,616 bytes",
    ),
    "labels of 2**31 - 1": (
        "t10k-labels-idx1-ubyte",
        _header(0x0C, 3) + struct.pack(">3i", 0, 1, 2**31 - 1),
        "label 2147483647 is not a class index",
    ),
    "0 images": ("t10k-images-idx3-ubyte.gz", gzip.compress(_header(8, 0, 4, 4)), "holds 0 images"),
    "truncated gzip": (
        "train-images-idx3-ubyte.gz",
        gzip.compress(_header(8, 6, 4, 4) + bytes(96))[:-9],
        "cannot decompress",
    ),
    "not gzip": ("train-images-idx3-ubyte.gz", b"plain text", "cannot decompress"),
    "labels of two dimensions": ("train-labels-idx1-ubyte", _header(8, 6, 1) + bytes(6), "one label per image"),
    "bad type code": ("t10k-labels-idx1-ubyte", b"\x00\x00\x07\x01\x00\x00\x00\x03abc", "unknown IDX type code 0x07"),
}


@pytest.mark.parametrize("case", sorted(CLI_CASES))
def test_train_on_a_malformed_dataset_is_one_line(capsys, monkeypatch, tmp_path, case):
    role, content, fragment = CLI_CASES[case]
    directory = make_idx_dir(tmp_path / "data", n_train=6, n_test=3, size=4, classes=3)
    (directory / role).write_bytes(content)
    monkeypatch.chdir(tmp_path)
    before = tree(tmp_path)
    line = one_line_error(capsys, "train", "--dataset", directory, "--preset", "tiny", "--out", tmp_path / "run")
    assert fragment in line and "Traceback" not in line
    assert not (tmp_path / "run").exists() and tree(tmp_path) == before
