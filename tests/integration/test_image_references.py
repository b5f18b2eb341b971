"""A Run that references its images where they are (``--images reference``, ``layerscope.data.sources``) holds the
same images, activations and top images as a Run that copies them, and refuses, in one line, a source file that
changed or went."""

import csv
import os
from pathlib import Path

import numpy as np
import pytest
import torch

from layerscope.analysis import class_mean_images
from layerscope.data.datasets import load_dataset
from layerscope.data.idx import read_idx, write_idx
from layerscope.data.sources import FileSource, IdxSource, thumbnails
from layerscope.errors import LayerscopeError, RunError
from layerscope.models.seed_cnn import SeedCNN
from layerscope.pipeline import create_run, seed_cnn_spec
from layerscope.run import Run
from tests.conftest import cli, make_idx_dir, make_image_folder, one_line_error

SIZE = 40  # larger than the 32-pixel thumbnails, so they are smaller than the images


def _uncompressed_idx_dir(directory: Path) -> Path:
    """``make_idx_dir`` with its images files gunzipped (a compressed file cannot be read in place)."""
    make_idx_dir(directory, n_train=60, n_test=20, size=SIZE)
    for path in directory.glob("*.gz"):
        write_idx(path.with_suffix(""), read_idx(path))
        path.unlink()
    return directory


def _runs(tmp_path: Path, spec: str | Path) -> tuple[Run, Run]:
    """A copying and a referencing Run of the dataset ``spec``, from one model."""
    copied = load_dataset(spec, images="copy")
    referenced = load_dataset(spec, images="reference")
    assert isinstance(copied.images, np.ndarray) and not isinstance(referenced.images, np.ndarray)
    torch.manual_seed(0)
    spec_ = seed_cnn_spec(copied)
    model = SeedCNN(**spec_["args"])
    runs = tuple(
        create_run(tmp_path / name, dataset, model, spec_, device="cpu")
        for name, dataset in (("copy", copied), ("reference", referenced))
    )
    return runs[0], runs[1]


def _assert_same(copy: Run, reference: Run) -> None:
    assert reference.references_images and not copy.references_images
    assert not (reference.path / "images.npy").exists() and (copy.path / "images.npy").is_file()
    assert reference.images.shape == copy.images.shape
    np.testing.assert_array_equal(reference.images[:], copy.images)
    picked = np.array([7, 0, len(copy.labels) - 1, 7])
    np.testing.assert_array_equal(reference.images[picked], copy.images[picked])
    np.testing.assert_array_equal(reference.images[3], copy.images[3])
    np.testing.assert_array_equal(np.asarray(reference.images[2:9]), copy.images[2:9])
    np.testing.assert_array_equal(reference.labels, copy.labels)
    np.testing.assert_array_equal(reference.probs, copy.probs)
    for info in copy.layers:
        if info.kind == "dense":
            np.testing.assert_array_equal(reference.activations(info.name), copy.activations(info.name))
        elif info.kind == "conv":
            for stat in ("mean", "max"):
                np.testing.assert_array_equal(
                    reference.channel_summary(info.name, stat), copy.channel_summary(info.name, stat)
                )
        if info.kind != "image":
            a, b = reference.topk(info.name), copy.topk(info.name)
            np.testing.assert_array_equal(a.indices, b.indices)
            np.testing.assert_array_equal(a.values, b.values)
    # the thumbnails and class means it keeps, so that nothing reads every image file again for them
    n, c = copy.images.shape[:2]
    small = reference.thumbnails
    assert small is not None and small.shape == (n, c, 32, 32) and small.dtype == np.uint8
    np.testing.assert_array_equal(small[5], thumbnails(copy.images[5:6], (32, 32))[0])
    assert copy.thumbnails is None
    np.testing.assert_array_equal(
        reference.class_means(), class_mean_images(copy.images, np.asarray(copy.labels), len(copy.class_names))
    )
    np.testing.assert_array_equal(reference.class_means(), copy.class_means())


def test_a_run_referencing_idx_files_equals_a_run_copying_them(tmp_path):
    directory = _uncompressed_idx_dir(tmp_path / "idx")
    copy, reference = _runs(tmp_path, directory)
    assert isinstance(reference.images, IdxSource)
    assert reference.manifest["dataset"]["images"] == "reference"
    _assert_same(copy, reference)
    # the training snapshots' subset of an IDX dataset stays two shards of the files, read in place
    tiny = load_dataset(directory, images="reference").subset(10, 5)
    assert isinstance(tiny.images, IdxSource) and [s.count for s in tiny.images.shards] == [10, 5]
    np.testing.assert_array_equal(tiny.images[:], np.concatenate([copy.images[:10], copy.images[60:65]]))


def test_a_run_referencing_an_image_folder_equals_a_run_copying_it(tmp_path):
    folder = make_image_folder(tmp_path / "folder", n=40, size=SIZE)
    copy, reference = _runs(tmp_path, folder)
    assert isinstance(reference.images, FileSource)
    _assert_same(copy, reference)


def test_a_changed_idx_file_is_refused_in_one_line(tmp_path, capsys):
    directory = _uncompressed_idx_dir(tmp_path / "idx")
    run = _runs(tmp_path, directory)[1]
    images = directory / "t10k-images-idx3-ubyte"
    pixels = read_idx(images)
    pixels[3] = 255 - pixels[3]
    write_idx(images, pixels)
    with pytest.raises(RunError, match=f"{images} changed after the Run {run.path} recorded its SHA-256"):
        _ = Run(run.path).images
    line = one_line_error(capsys, "capture", run.path, "--device", "cpu")
    assert str(images) in line and "changed" in line
    # a file only touched, its pixels the same, is hashed again and passes
    pixels[3] = 255 - pixels[3]
    write_idx(images, pixels)
    np.testing.assert_array_equal(Run(run.path).images[60:], pixels[:, None])
    images.unlink()
    with pytest.raises(RunError, match=f"{images} is missing; the Run {run.path} reads its images from there"):
        _ = Run(run.path).images


def test_a_changed_or_missing_image_file_is_refused_in_one_line(tmp_path, capsys):
    folder = make_image_folder(tmp_path / "folder", n=40, size=SIZE)
    run = _runs(tmp_path, folder)[1]
    source = Run(run.path).images
    assert isinstance(source, FileSource)
    changed, gone = source.path(4), source.path(9)
    from PIL import Image

    with Image.open(changed) as image:
        flipped = image.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
    flipped.save(changed)
    np.testing.assert_array_equal(Run(run.path).images[3], source[3])  # the others read as before
    with pytest.raises(RunError, match=f"{changed} changed after the Run {run.path} recorded its SHA-256"):
        _ = Run(run.path).images[4]
    line = one_line_error(capsys, "capture", run.path, "--device", "cpu")
    assert str(changed) in line and "changed" in line
    before = (run.path / "probs.npy").read_bytes()
    gone.unlink()
    flipped.transpose(Image.Transpose.FLIP_LEFT_RIGHT).save(changed)  # back as it was: but it is not the same file
    with pytest.raises(RunError, match=f"{gone} is missing; the Run {run.path} reads its images from there"):
        _ = Run(run.path).images[9]
    line = one_line_error(capsys, "capture", run.path, "--device", "cpu")
    assert str(gone) in line and "missing" in line
    assert (Run(run.path).path / "probs.npy").read_bytes() == before  # a failed capture leaves the Run as it was


def test_train_a_run_referencing_a_csv_list_of_images(tmp_path, capsys):
    """The command line: a CSV list of image files (relative and absolute paths), --images reference."""
    folder = make_image_folder(tmp_path / "photos", n=40, size=SIZE, channels=1)
    files = sorted(folder.rglob("*.png"))
    listing = tmp_path / "images.csv"
    with listing.open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["path", "label", "split"])
        for i, path in enumerate(files):
            shown = path.relative_to(tmp_path) if i % 2 else path
            writer.writerow([shown, path.parent.name, "test" if i % 5 == 0 else "train"])
    out = tmp_path / "run"
    code, stdout, err = cli(
        capsys, "train", "--dataset", listing, "--images", "reference", "--out", out, "--preset", "tiny",
        "--epochs", "1", "--device", "cpu",
    )  # fmt: skip
    assert code == 0, err
    assert "images read where they are" in stdout
    run = Run(out)
    assert run.references_images and run.images.shape == (40, 1, SIZE, SIZE)
    assert run.manifest["dataset"]["n_test"] == 8 and run.class_names == ["cat", "dog", "owl", "yak"]
    copied = load_dataset(listing, images="copy")
    np.testing.assert_array_equal(run.images[:], copied.images)
    np.testing.assert_array_equal(run.labels, copied.labels)
    assert run.thumbnails is not None and run.thumbnails.shape == (40, 1, 32, 32)
    # the dashboard's gallery thumbnails come from them, its card's large image from the file
    from layerscope.dashboard.state import DashboardState

    reads: list[int] = []
    one = FileSource._one
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(FileSource, "_one", lambda self, i: reads.append(i) or one(self, i))
        state = DashboardState(run)
        thumbs = [state.thumbnail(i) for i in range(len(files))]
        assert reads == []  # opening the dashboard and a gallery of every image read no image file
        state.thumbnail(0, 224)
        assert reads == [0]
    assert len(set(thumbs)) > 30
    os.rename(files[0], files[0].with_suffix(".gone"))
    shown = [i for i in range(len(files)) if Path(os.fsdecode(bytes(run.images.paths[i]))).name == files[0].name]
    assert state.thumbnail(shown[0]).startswith("data:image/png;base64,")
    with pytest.raises(LayerscopeError, match="is missing"):
        state.thumbnail(shown[0], 224)


def test_bad_image_modes_are_one_line(tmp_path, capsys):
    make_idx_dir(tmp_path / "gz", size=8)
    line = one_line_error(
        capsys, "train", "--dataset", tmp_path / "gz", "--images", "reference", "--out", tmp_path / "r"
    )
    assert "compressed IDX file cannot be read in place" in line
    line = one_line_error(capsys, "train", "--images", "elsewhere", "--out", tmp_path / "r")
    assert "--images 'elsewhere'" in line
    assert not (tmp_path / "r").exists()


def test_a_parquet_manifest_of_image_files(tmp_path):
    pa = pytest.importorskip("pyarrow")
    import pyarrow.parquet as pq

    folder = make_image_folder(tmp_path / "photos", n=24, size=SIZE, classes=3, splits=True)
    files = sorted(folder.rglob("*.png"))
    table = pa.table(
        {
            "path": [str(p.relative_to(tmp_path)) for p in files],
            "label": [p.parent.name for p in files],
            "split": [p.parent.parent.name for p in files],
        }
    )
    pq.write_table(table, tmp_path / "images.parquet")
    referenced = load_dataset(tmp_path / "images.parquet", images="reference")
    copied = load_dataset(tmp_path / "images.parquet", images="copy")
    as_folder = load_dataset(folder, images="copy")
    assert isinstance(referenced.images, FileSource)
    np.testing.assert_array_equal(referenced.images[:], copied.images)
    # the same images as the folder they list, train split first
    np.testing.assert_array_equal(copied.images, as_folder.images)
    np.testing.assert_array_equal(copied.split, as_folder.split)
    assert copied.class_names == as_folder.class_names


def test_training_snapshots_of_a_referencing_run_share_its_reference(tmp_path):
    from layerscope.pipeline import train_run
    from layerscope.training import TrainConfig

    dataset = load_dataset(_uncompressed_idx_dir(tmp_path / "idx"), images="reference")
    run = train_run(tmp_path / "run", dataset, TrainConfig(epochs=1, batch_size=16, device="cpu"), snapshots=3)
    first = run.snapshot(0)
    assert first.references_images and not (first.path / "images.npy").exists()
    assert os.path.samefile(first.path / "thumbnails.npy", run.path / "thumbnails.npy")
    np.testing.assert_array_equal(first.images[:], run.images[:])
