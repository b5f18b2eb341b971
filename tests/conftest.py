"""Shared fixtures: tiny real data, and one tiny Run trained once per test session."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import numpy as np
import pytest
from hypothesis import settings

from layerscope.data.idx import write_idx

# CI runs the fuzz tests on the same generated examples every time (a failure there is reproducible from its log);
# a developer's run explores new ones and keeps what failed in .hypothesis/
settings.register_profile("ci", derandomize=True, database=None, print_blob=True)
if os.environ.get("CI"):
    settings.load_profile("ci")


def cli(capsys: pytest.CaptureFixture[str], *args: object) -> tuple[int, str, str]:
    """(exit code, stdout, stderr) of ``layerscope ARGS`` run in-process through the console entry point: the real
    ``main``, seconds faster than a subprocess."""
    from layerscope.cli import main

    argv = sys.argv
    sys.argv = ["layerscope", *map(str, args)]
    try:
        main()
        code = 0
    except SystemExit as e:
        code = int(e.code or 0)
    finally:
        sys.argv = argv
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def one_line_error(capsys: pytest.CaptureFixture[str], *args: object) -> str:
    """Run ``layerscope ARGS``, which must fail with exit code 2 and one line on stderr; returns that line."""
    code, _, err = cli(capsys, *args)
    lines = [line for line in err.splitlines() if line.strip()]
    assert code == 2 and len(lines) == 1 and lines[0].startswith("error: "), err
    return lines[0]


def make_idx_dir(directory: Path, n_train: int = 60, n_test: int = 20, size: int = 8, classes: int = 3) -> Path:
    """A dataset directory of the MNIST layout with learnable images: class c lights up row block c."""
    rng = np.random.default_rng(0)
    directory.mkdir(parents=True, exist_ok=True)
    for split, n in (("train", n_train), ("t10k", n_test)):
        labels = (np.arange(n) % classes).astype(np.uint8)
        images = rng.integers(0, 40, size=(n, size, size), dtype=np.uint8)
        band = size // classes
        for i, c in enumerate(labels):
            images[i, c * band : (c + 1) * band] = 255
        write_idx(directory / f"{split}-images-idx3-ubyte.gz", images)
        write_idx(directory / f"{split}-labels-idx1-ubyte", labels)
    return directory


def make_images(n: int, size: int = 16, channels: int = 3, classes: int = 4, seed: int = 0):
    """(n, size, size, channels) uint8 images and (n,) labels: class c lights up quadrant c % 4 in channel c % 3."""
    rng = np.random.default_rng(seed)
    labels = (np.arange(n) % classes).astype(np.uint8)
    images = rng.integers(0, 60, size=(n, size, size, channels), dtype=np.uint8)
    half = size // 2
    for i, c in enumerate(labels):
        top, left = (c % 4) // 2 * half, (c % 4) % 2 * half
        images[i, top : top + half, left : left + half, c % channels] = 255
    return images, labels


def make_image_folder(
    directory: Path,
    n: int = 48,
    size: int = 16,
    channels: int = 3,
    classes: int = 4,
    splits: bool = False,
    names: tuple[str, ...] = ("cat", "dog", "owl", "yak", "emu", "fox"),
) -> Path:
    """DIR/<class>/<i>.png (or DIR/train|test/<class>/...) with ``make_images`` pixels; grey PNGs when channels is 1."""
    from PIL import Image

    images, labels = make_images(n, size, channels, classes)
    for i, (image, label) in enumerate(zip(images, labels, strict=True)):
        split = ("test" if i % 4 == 3 else "train") if splits else ""
        folder = directory / split / names[label]
        folder.mkdir(parents=True, exist_ok=True)
        Image.fromarray(image[:, :, 0] if channels == 1 else image).save(folder / f"{i:04d}.png")
    return directory


@pytest.fixture
def idx_dir(tmp_path: Path) -> Path:
    return make_idx_dir(tmp_path / "toy")


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory: pytest.TempPathFactory):
    """The report's CNN trained with --preset tiny on the bundled MNIST: 3,000 + 1,000 images, 1 epoch."""
    from layerscope.data import load_mnist
    from layerscope.pipeline import train_run
    from layerscope.training import PRESETS, TrainConfig

    out = tmp_path_factory.mktemp("runs") / "tiny"
    return train_run(out, load_mnist(), TrainConfig(device="cpu", **PRESETS["tiny"]))  # type: ignore[arg-type]


def sheet_tiles(path: Path) -> list[tuple[int, int]]:
    """(height, width) of every image on a sheet PNG the command line wrote (``layerscope.sheets``), in reading
    order, found by the light-grey frame drawn around each one."""
    from PIL import Image

    from layerscope.sheets import FRAME

    with Image.open(path) as image:
        frame = (np.asarray(image.convert("RGB")) == FRAME).all(-1)
    height = frame.shape[0]
    sizes = []
    for y in range(height):
        edges = np.flatnonzero(np.diff(np.concatenate([[False], frame[y], [False]]).astype(np.int8)))
        for x0, x1 in zip(edges[::2], edges[1::2], strict=True):
            if x1 - x0 < 8 or (y and frame[y - 1, x0:x1].all()):  # too short, or not a frame's top edge
                continue
            y1 = y
            while y1 + 1 < height and frame[y1 + 1, x0] and frame[y1 + 1, x1 - 1]:
                y1 += 1
            if y1 - y >= 8:
                sizes.append((y1 - y - 1, int(x1 - x0 - 2)))
    return sizes
