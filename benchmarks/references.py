"""A Run that references its images (``--images reference``) against one that copies them: what creating the
reference costs (hashing, thumbnails and class means) and how fast capture-sized batches read through it, per million
images, on generated data.

    PYTHONPATH=. .venv/bin/python benchmarks/references.py [--idx-images 50000] [--files 4000] [--side 64]

IDX: ``--idx-images`` grey ``--side`` x ``--side`` images in one uncompressed IDX file. Files: ``--files`` RGB PNGs
of that size in an image folder. Figures per million images are the measured ones scaled linearly (every step is one
pass over the images).
"""

from __future__ import annotations

import argparse
import hashlib
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from common import Table, machine

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from layerscope.data.datasets import load_dataset  # noqa: E402
from layerscope.data.idx import write_idx  # noqa: E402
from layerscope.data.sources import write_reference  # noqa: E402

BATCH = 256  # capture's batch (capture.CAPTURE_BATCH)
MILLION = 1_000_000


def _idx_dataset(directory: Path, n: int, side: int) -> Path:
    rng = np.random.default_rng(0)
    directory.mkdir()
    for split, count in (("train", n - n // 7), ("t10k", n // 7)):
        write_idx(directory / f"{split}-images-idx3-ubyte", rng.integers(0, 256, (count, side, side), np.uint8))
        write_idx(directory / f"{split}-labels-idx1-ubyte", (np.arange(count) % 10).astype(np.uint8))
    return directory


def _image_folder(directory: Path, n: int, side: int) -> Path:
    from PIL import Image

    rng = np.random.default_rng(0)
    for i in range(n):
        folder = directory / str(i % 10)
        folder.mkdir(parents=True, exist_ok=True)
        Image.fromarray(rng.integers(0, 256, (side, side, 3), np.uint8)).save(folder / f"{i:06d}.png")
    return directory


def _read_batches(images: object, n: int, order: np.ndarray) -> float:
    """Seconds to read ``n`` images in capture-sized batches, in ``order``."""
    start = time.perf_counter()
    for b in range(0, n, BATCH):
        np.asarray(images[np.sort(order[b : b + BATCH])])  # type: ignore[index]
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--idx-images", type=int, default=50_000)
    parser.add_argument("--files", type=int, default=4_000)
    parser.add_argument("--side", type=int, default=64)
    args = parser.parse_args()
    table = Table("references")
    print(machine())
    per_million = MILLION

    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        # -- IDX ------------------------------------------------------------------------------------------------
        n, side = args.idx_images, args.side
        directory = _idx_dataset(tmp / "idx", n, side)
        dataset = load_dataset(directory, images="reference")
        gigabytes = n * side * side / 1e9
        start = time.perf_counter()
        for path in directory.glob("*-images-*"):
            with open(path, "rb") as f:
                hashlib.file_digest(f, "sha256")
        hashing = time.perf_counter() - start
        table.add(f"IDX: SHA-256 of the images files ({gigabytes:.2f} GB)", hashing / gigabytes, "s/GB")
        out = tmp / "idx-run"
        out.mkdir()
        start = time.perf_counter()
        write_reference(out, dataset.images, dataset.labels, dataset.num_classes)  # type: ignore[arg-type]
        made = time.perf_counter() - start
        table.add(f"IDX: creating the reference ({n:,} images of {side}x{side})", made * per_million / n, "s/M")
        stored = sum(p.stat().st_size for p in out.iterdir())
        table.add("IDX: the reference on disk (thumbnails, class means, images.json)", stored * per_million / n / 1e6,
                  "MB/M", f"a copy: {side * side * per_million / 1e6:,.0f} MB/M")  # fmt: skip
        copy = tmp / "images.npy"
        np.save(copy, np.asarray(dataset.images[:]))
        mapped = np.load(copy, mmap_mode="r")
        order = np.random.default_rng(1).permutation(n)
        _read_batches(mapped, n, order)  # both files in the page cache
        seconds = {name: _read_batches(images, n, order) for name, images in (("reference", dataset.images),
                                                                                ("copy", mapped))}  # fmt: skip
        for name, s in seconds.items():
            table.add(f"IDX: reading shuffled batches of {BATCH} through the {name}", n / s, "images/s")
        table.ratio("IDX: reference / copy, reading time", seconds["reference"], seconds["copy"])

        # -- image files -------------------------------------------------------------------------------------------
        n = args.files
        folder = _image_folder(tmp / "folder", n, side)
        start = time.perf_counter()
        dataset = load_dataset(folder, images="reference")
        scanned = time.perf_counter() - start
        table.add(f"files: listing and reading headers ({n:,} PNGs, {side}x{side} RGB)", scanned * per_million / n,
                  "s/M")  # fmt: skip
        source = dataset.images
        start = time.perf_counter()
        for path in sorted(folder.rglob("*.png")):
            hashlib.sha256(path.read_bytes()).digest()
        hashing = time.perf_counter() - start
        table.add("files: reading and hashing each file alone", hashing * per_million / n, "s/M")
        out = tmp / "files-run"
        out.mkdir()
        start = time.perf_counter()
        write_reference(out, source, dataset.labels, dataset.num_classes)  # type: ignore[arg-type]
        made = time.perf_counter() - start
        table.add("files: creating the reference (hash, decode, thumbnails, class means)", made * per_million / n,
                  "s/M")  # fmt: skip
        start = time.perf_counter()
        eager = load_dataset(folder, images="copy")
        copying = time.perf_counter() - start
        table.add("files: decoding every image into a copy (--images copy)", copying * per_million / n, "s/M")
        mapped_files = tmp / "files.npy"
        np.save(mapped_files, eager.images)
        mapped = np.load(mapped_files, mmap_mode="r")
        order = np.random.default_rng(1).permutation(n)
        seconds = {name: _read_batches(images, n, order) for name, images in (("reference", source),
                                                                                ("copy", mapped))}  # fmt: skip
        for name, s in seconds.items():
            table.add(f"files: reading shuffled batches of {BATCH} through the {name}", n / s, "images/s")


if __name__ == "__main__":
    main()
