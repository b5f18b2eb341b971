import struct
import zlib

import numpy as np
import pytest

from layerscope.data import load_dataset, load_idx_dir, write_idx
from layerscope.data.datasets import MAX_CLASSES
from layerscope.errors import LayerscopeError


def test_idx_dir_with_class_names(idx_dir):
    d = load_idx_dir(idx_dir, class_names="low,mid,high")
    assert d.images.shape == (80, 1, 8, 8)
    assert d.class_names == ("low", "mid", "high")
    assert len(d.indices(0)) == 60 and len(d.indices(1)) == 20
    assert d.name == "toy"


def test_class_names_from_file(idx_dir, tmp_path):
    (tmp_path / "names.txt").write_text("a\nb\nc\n")
    assert load_dataset(idx_dir, str(tmp_path / "names.txt")).class_names == ("a", "b", "c")


def test_too_few_or_too_many_class_names(idx_dir):
    with pytest.raises(LayerscopeError, match=r"labels go from 0 to 2 \(3 classes\) but 2 class names"):
        load_idx_dir(idx_dir, class_names="a,b")
    with pytest.raises(LayerscopeError, match=r"\(3 classes\) but 5 class names were given; give 3"):
        load_idx_dir(idx_dir, class_names="a,b,c,d,e")


def test_missing_file(idx_dir):
    (idx_dir / "t10k-labels-idx1-ubyte").unlink()
    with pytest.raises(LayerscopeError, match="no test labels file"):
        load_idx_dir(idx_dir)


def test_label_count_mismatch(idx_dir):
    write_idx(idx_dir / "t10k-labels-idx1-ubyte", np.zeros(7, np.uint8))
    with pytest.raises(LayerscopeError, match="t10k-labels-idx1-ubyte: 7 labels for 20 images; the image and label"):
        load_idx_dir(idx_dir)


# -- malformed IDX directories: each one line, before anything large is built -----------------------------------------


def _one_line(call, match):
    with pytest.raises(LayerscopeError, match=match) as error:
        call()
    assert "\n" not in str(error.value)


@pytest.mark.parametrize(
    "labels, message",
    [
        # 2**31 - 1 used to build 2**31 class names until memory ran out
        (
            np.full(20, 2**31 - 1, np.int32),
            r"t10k-labels-idx1-ubyte: label 2147483647 is not a class index from 0 to 9999",
        ),
        (np.full(20, MAX_CLASSES, np.int32), r"label 10000 is not a class index from 0 to 9999"),
        (np.full(20, -1, np.int8), r"label -1 is not a class index from 0 to 9999"),
        (
            np.zeros((20, 1), np.uint8),
            r"a labels file holds one label per image \(1 dimension\), found shape \(20, 1\)",
        ),
        (np.zeros(20, np.float32), r"labels must be whole numbers \(class indices\), found float32"),
    ],
)
def test_bad_labels(idx_dir, labels, message):
    write_idx(idx_dir / "t10k-labels-idx1-ubyte", labels)
    _one_line(lambda: load_idx_dir(idx_dir), message)


def test_the_largest_label_allowed_loads(idx_dir):
    labels = np.zeros(20, np.int16)
    labels[3] = MAX_CLASSES - 1
    write_idx(idx_dir / "t10k-labels-idx1-ubyte", labels)
    assert load_idx_dir(idx_dir).num_classes == MAX_CLASSES


def test_labels_must_fit_the_class_names_given(idx_dir):
    write_idx(idx_dir / "t10k-labels-idx1-ubyte", np.full(20, 7, np.uint8))
    _one_line(
        lambda: load_idx_dir(idx_dir, class_names="a,b,c"), r"labels go from 0 to 7 \(8 classes\) but 3 class names"
    )


def test_too_many_class_names(idx_dir):
    names = ",".join(f"c{i}" for i in range(MAX_CLASSES + 1))
    _one_line(lambda: load_idx_dir(idx_dir, class_names=names), "10,001 class names: layerscope handles at most 10,000")
    (idx_dir.parent / "names.txt").write_text("\n".join(names.split(",")))
    _one_line(lambda: load_idx_dir(idx_dir, class_names=idx_dir.parent / "names.txt"), "10,001 class names")


def test_a_class_names_file_that_is_not_text(idx_dir):
    (idx_dir.parent / "names.bin").write_bytes(b"\xff\xfe\x00cat")
    _one_line(
        lambda: load_idx_dir(idx_dir, class_names=idx_dir.parent / "names.bin"),
        "names.bin: cannot read the class names",
    )


@pytest.mark.parametrize(
    "images, message",
    [
        (np.zeros((0, 8, 8), np.uint8), r"t10k-images-idx3-ubyte.gz: holds 0 images; a dataset needs"),
        (np.zeros((20, 0, 8), np.uint8), r"images of shape \(20, 0, 8\) have no pixels"),
        (np.zeros((20, 64), np.uint8), r"images must be \(N, H, W\) or \(N, H, W, 1\|3\), found shape \(20, 64\)"),
        (np.zeros((20, 8, 8, 2), np.uint8), r"images must be \(N, H, W\) or \(N, H, W, 1\|3\)"),
        (np.zeros((20, 8, 8), np.int16), r"images must be uint8 \(0-255\), found int16"),
    ],
)
def test_bad_images(idx_dir, images, message):
    write_idx(idx_dir / "t10k-images-idx3-ubyte.gz", images)
    _one_line(lambda: load_idx_dir(idx_dir), message)


def test_an_empty_dataset(idx_dir):
    """0 training and 0 test images (and labels): one line, not numpy's 'zero-size array' traceback."""
    for split in ("train", "t10k"):
        write_idx(idx_dir / f"{split}-images-idx3-ubyte.gz", np.zeros((0, 8, 8), np.uint8))
        write_idx(idx_dir / f"{split}-labels-idx1-ubyte", np.zeros(0, np.uint8))
    _one_line(lambda: load_dataset(idx_dir), "train-images-idx3-ubyte.gz: holds 0 images")


def test_a_corrupt_idx_file_is_one_line_from_load_dataset(idx_dir):
    (idx_dir / "train-labels-idx1-ubyte").write_bytes(b"\x00\x00\x08\x01\xff\xff\xff\xff")
    _one_line(lambda: load_dataset(idx_dir), r"train-labels-idx1-ubyte: truncated: header \(4294967295,\) needs")


def test_subset_keeps_canonical_order(idx_dir):
    d = load_idx_dir(idx_dir).subset(10, 5)
    assert len(d) == 15
    assert list(d.split) == [0] * 10 + [1] * 5
    assert d.info == {"train_limit": 10, "test_limit": 5}


# -- image folders ---------------------------------------------------------------------------------------------------


def test_image_folder_without_split_folders_holds_out_a_sixth_of_each_class(tmp_path):
    from layerscope.data import load_image_folder
    from tests.conftest import make_image_folder

    d = load_image_folder(make_image_folder(tmp_path / "rgb", n=48, size=16, channels=3, classes=4))
    assert d.images.shape == (48, 3, 16, 16) and d.images.dtype == np.uint8
    assert d.class_names == ("cat", "dog", "owl", "yak")
    test = d.indices(1)
    assert len(test) == 8 and np.bincount(d.labels[test]).tolist() == [2, 2, 2, 2]  # stratified
    assert list(d.split) == [0] * 40 + [1] * 8  # train first, then test
    assert "1/6 of each class" in str(d.info["test_split"])
    # class c lights quadrant c in channel c % 3: the pixels came through in (C, H, W) order
    first_owl = d.images[d.labels == 2][0]
    assert (first_owl[2, 8:, :8] == 255).all()
    again = load_image_folder(tmp_path / "rgb")
    assert (again.labels == d.labels).all() and (again.images == d.images).all()  # seeded


def test_image_folder_with_train_and_test_folders_and_grey_images(tmp_path):
    from tests.conftest import make_image_folder

    folder = make_image_folder(tmp_path / "grey", n=24, size=10, channels=1, classes=3, splits=True)
    d = load_dataset(folder, "zero,one,two")
    assert d.images.shape == (24, 1, 10, 10)
    assert len(d.indices(0)) == 18 and len(d.indices(1)) == 6
    assert d.class_names == ("zero", "one", "two") and "test_split" not in d.info


def test_image_folder_class_name_count_must_match(tmp_path):
    from tests.conftest import make_image_folder

    folder = make_image_folder(tmp_path / "f", n=12, classes=3)
    with pytest.raises(LayerscopeError, match=r"has 3 class folders \(cat, dog, owl\) but 2 class names"):
        load_dataset(folder, "a,b")


def test_image_folder_mixed_sizes_and_resizing(tmp_path):
    from PIL import Image

    from tests.conftest import make_image_folder

    folder = make_image_folder(tmp_path / "f", n=12, size=8, classes=2)
    Image.new("RGB", (9, 7)).save(folder / "dog" / "odd.png")
    with pytest.raises(
        LayerscopeError, match=r"images differ in size: .*cat.* is 8x8 but .*odd.png is 9x7.*--image-size"
    ):
        load_dataset(folder)
    d = load_dataset(folder, image_size=6)
    assert d.images.shape == (13, 3, 6, 6) and d.info["resized"] is True


def test_grey_and_colour_images_mixed_become_rgb(tmp_path):
    from PIL import Image

    for i, mode in enumerate(["L", "RGB", "L", "RGB"]):
        (tmp_path / "f" / f"c{i % 2}").mkdir(parents=True, exist_ok=True)
        Image.new(mode, (4, 4), 200 if mode == "L" else (10, 20, 30)).save(tmp_path / "f" / f"c{i % 2}" / f"{i}.png")
    d = load_dataset(tmp_path / "f")
    assert d.images.shape == (4, 3, 4, 4)
    grey = d.images[(d.labels == 0)][0]
    assert (grey == 200).all()


def test_neither_idx_nor_image_folder(tmp_path):
    (tmp_path / "notes.txt").write_text("hello")
    with pytest.raises(LayerscopeError, match="holds neither IDX files"):
        load_dataset(tmp_path)
    (tmp_path / "empty_class").mkdir()
    with pytest.raises(LayerscopeError, match="holds neither"):
        load_dataset(tmp_path)


def test_image_size_refused_for_idx(idx_dir):
    with pytest.raises(LayerscopeError, match="--image-size resizes image files only"):
        load_dataset(idx_dir, image_size=4)


def test_three_channel_idx_directory_trains(tmp_path):
    """An IDX directory other than MNIST, with (N, H, W, 3) images, through a short run like --preset tiny."""
    from layerscope.pipeline import train_run
    from layerscope.training import TrainConfig
    from tests.conftest import make_images

    (tmp_path / "idx").mkdir()
    for split, n in (("train", 60), ("t10k", 20)):
        images, labels = make_images(n, size=12, channels=3, classes=4, seed=n)
        write_idx(tmp_path / "idx" / f"{split}-images-idx3-ubyte", images)
        write_idx(tmp_path / "idx" / f"{split}-labels-idx1-ubyte", labels)
    data = load_dataset(tmp_path / "idx")
    assert data.image_shape == (3, 12, 12) and data.num_classes == 4
    run = train_run(tmp_path / "run", data, TrainConfig(epochs=3, batch_size=16, lr=5e-3, augment=0, device="cpu"))
    assert run.manifest["model"]["args"] == {"in_channels": 3, "num_classes": 4, "image_size": 12}
    assert {i.name: i.shape for i in run.layers}["pool"] == (32, 4, 4)
    assert run.manifest["metrics"]["train_accuracy"] > 0.5


def _png_without_pixels(width: int, height: int) -> bytes:
    """A PNG that declares ``width`` x ``height`` and holds no pixel data: Pillow opens it, then fails to load it."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)  # 8-bit grey
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", b"") + chunk(b"IEND", b"")


@pytest.mark.parametrize(
    "content, message",
    [
        (b"", r"cannot read the image \(cannot identify image file"),
        (b"not an image at all", r"cannot read the image \(cannot identify image file"),
        (_png_without_pixels(8, 8), r"cannot read the image \(image file is truncated"),
        # 40,000 x 40,000: Pillow raises DecompressionBombError, which is not an OSError
        (
            _png_without_pixels(40_000, 40_000),
            r"cannot read the image \(Image size \(1600000000 pixels\) exceeds limit",
        ),
        # 10,000 x 10,000: Pillow only warns; a folder of them cannot fit in memory either
        (_png_without_pixels(10_000, 10_000), r"cannot read the image \(Image size \(100000000 pixels\) exceeds limit"),
    ],
)
def test_an_unreadable_image_is_one_line(tmp_path, content, message):
    from tests.conftest import make_image_folder

    folder = make_image_folder(tmp_path / "f", n=8, size=8, classes=2)
    (folder / "dog" / "0099.png").write_bytes(content)
    _one_line(lambda: load_dataset(folder), r"dog/0099.png: " + message + r".*replace or remove the file\.$")


def test_an_image_folder_without_images(tmp_path):
    from layerscope.data import load_image_folder

    (tmp_path / "f" / "cat").mkdir(parents=True)
    (tmp_path / "f" / "cat" / "notes.txt").write_text("no image here")
    _one_line(lambda: load_image_folder(tmp_path / "f"), r"f/cat: no images \(.png, .jpg")
    _one_line(lambda: load_dataset(tmp_path / "f"), "holds neither IDX files")


def test_too_many_class_folders(tmp_path, monkeypatch):
    from layerscope.data import datasets, load_image_folder
    from tests.conftest import make_image_folder

    folder = make_image_folder(tmp_path / "f", n=8, size=8, classes=4)
    monkeypatch.setattr(datasets, "MAX_CLASSES", 3)
    _one_line(lambda: load_image_folder(folder), r"4 class folders in .*f: layerscope handles at most 3 classes")
