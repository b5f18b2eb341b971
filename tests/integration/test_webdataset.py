"""WebDataset shards (tar files of ``<key>.png`` + ``<key>.cls`` [+ ``<key>.split``]) as a dataset: a Run that
references the images inside them holds what a Run that copies them holds, reads each at its byte offset, and refuses
a changed shard or a compressed one (for ``--images reference``) in one line."""

import io
import os
import tarfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from layerscope.data.datasets import TEST, TRAIN, load_dataset
from layerscope.data.sources import TarSource
from layerscope.errors import RunError
from layerscope.run import Run
from tests.conftest import make_images, one_line_error
from tests.integration.test_image_references import _assert_same, _runs

SIZE = 40  # larger than the 32-pixel thumbnails, so a reference keeps smaller ones
N = 36


def _png(pixels: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG")
    return buffer.getvalue()


def _add(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    tar.addfile(info, io.BytesIO(data))


def _shards(directory: Path, splits: bool = True, suffix: str = ".tar", images: np.ndarray | None = None) -> Path:
    """Two shards of N images (``make_images``), 20 and 16, each sample's members in the order .cls, image[, .split]
    (a key's members need not come image first); every third image with ``splits`` is marked test."""
    pixels, labels = make_images(N, size=SIZE) if images is None else (images, make_images(N, size=SIZE)[1])
    directory.mkdir(parents=True, exist_ok=True)
    mode = "w:gz" if suffix == ".tar.gz" else "w"
    for shard, (start, stop) in enumerate(((0, 20), (20, N))):
        with tarfile.open(directory / f"shard-{shard:06d}{suffix}", mode) as tar:
            for i in range(start, stop):
                _add(tar, f"{i:06d}.cls", str(labels[i]).encode())
                _add(tar, f"{i:06d}.png", _png(pixels[i]))
                if splits:
                    _add(tar, f"{i:06d}.split", b"test" if i % 3 == 0 else b"train")
    return directory


def test_a_run_referencing_webdataset_shards_equals_a_run_copying_them(tmp_path):
    shards = _shards(tmp_path / "shards")
    copy, reference = _runs(tmp_path, shards)
    assert isinstance(reference.images, TarSource) and len(reference.images.shards) == 2
    assert reference.manifest["dataset"]["images"] == "reference"
    _assert_same(copy, reference)
    # exactly the images written, train split first, each split in the shards' order
    pixels, labels = make_images(N, size=SIZE)
    order = [i for i in range(N) if i % 3] + [i for i in range(N) if i % 3 == 0]
    np.testing.assert_array_equal(reference.images[:], pixels[order].transpose(0, 3, 1, 2))
    np.testing.assert_array_equal(reference.labels, labels[order])
    np.testing.assert_array_equal(reference.split, [TRAIN] * 24 + [TEST] * 12)
    assert reference.class_names == ["0", "1", "2", "3"]
    # each image is its member's bytes at its offset in the tar file, not a copy
    members = np.load(reference.path / "images.members.npy")
    first = reference.images.shards[0].path
    with open(first, "rb") as f:
        f.seek(int(members[0, 1]))
        assert f.read(int(members[0, 2])) == _png(pixels[order[0]])


def test_shards_without_splits_are_split_as_image_lists_are(tmp_path):
    shards = _shards(tmp_path / "shards", splits=False)
    referenced = load_dataset(shards, images="reference", class_names="a,b,c,d")
    copied = load_dataset(shards, images="copy", class_names="a,b,c,d")
    assert isinstance(referenced.images, TarSource)
    np.testing.assert_array_equal(referenced.images[:], copied.images)
    np.testing.assert_array_equal(referenced.split, copied.split)
    np.testing.assert_array_equal(referenced.labels, copied.labels)
    assert referenced.class_names == ("a", "b", "c", "d") and "test_split" in referenced.info
    # a seeded sixth of each class (9 images each): 2 test images per class, the same on every load
    assert np.bincount(referenced.labels[referenced.split == TEST]).tolist() == [2, 2, 2, 2]
    np.testing.assert_array_equal(load_dataset(shards, images="copy").split, copied.split)
    # one shard given as a file: its 20 images
    one = load_dataset(shards / "shard-000000.tar", images="reference")
    assert isinstance(one.images, TarSource) and len(one) == 20


def test_a_changed_or_missing_shard_is_refused_in_one_line(tmp_path, capsys):
    shards = _shards(tmp_path / "shards")
    run = _runs(tmp_path, shards)[1]
    before = run.images[:]
    shard = shards / "shard-000001.tar"
    pixels, _ = make_images(N, size=SIZE)
    pixels[25] = 255 - pixels[25]
    _shards(shards, images=pixels)  # both shards written again: the first the same, the second changed
    with pytest.raises(RunError, match=f"{shard} changed after the Run {run.path} recorded its SHA-256"):
        _ = Run(run.path).images
    line = one_line_error(capsys, "capture", run.path, "--device", "cpu")
    assert str(shard) in line and "changed" in line
    # written again as it was: only its time changed, and it is hashed again and passes
    _shards(shards)
    np.testing.assert_array_equal(Run(run.path).images[:], before)
    os.remove(shard)
    with pytest.raises(RunError, match=f"{shard} is missing; the Run {run.path} reads its images from there"):
        _ = Run(run.path).images


def test_compressed_shards_are_copied_and_refused_for_reference(tmp_path, capsys):
    packed = _shards(tmp_path / "packed", suffix=".tar.gz")
    line = one_line_error(
        capsys, "train", "--dataset", packed, "--images", "reference", "--out", tmp_path / "r", "--device", "cpu"
    )
    assert "shard-000000.tar.gz: a compressed tar file cannot be read by byte offset" in line
    assert not (tmp_path / "r").exists()
    plain = load_dataset(_shards(tmp_path / "plain"), images="copy")
    for images in ("auto", "copy"):
        copied = load_dataset(packed, images=images)
        assert isinstance(copied.images, np.ndarray)
        np.testing.assert_array_equal(copied.images, plain.images)
        np.testing.assert_array_equal(copied.labels, plain.labels)
        np.testing.assert_array_equal(copied.split, plain.split)
