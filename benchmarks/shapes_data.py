"""Write a generated RGB dataset of simple shapes in the IDX layout that ``layerscope train --dataset DIR`` reads.

    python benchmarks/shapes_data.py OUT_DIR [--n 10000] [--size 32] [--seed 0]

Ten classes, each a shape (square, disc, ring, cross, bars, diagonal, triangle, frame, dot grid, stripes) in a
colour of its own, at a random place and size, over a noisy background with some colour noise: easy enough that one
epoch of a ResNet learns it, varied enough that its activations are not constant. Five sixths of the images are the
training split (train-images/labels), the rest the test split (t10k-images/labels), uint8 (N, H, W, 3).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from layerscope.data.idx import write_idx

__all__ = ["CLASS_NAMES", "make_shapes", "write_shapes_idx"]

CLASS_NAMES = ("square", "disc", "ring", "cross", "bars", "diagonal", "triangle", "frame", "dots", "stripes")
_COLOURS = np.array(
    [
        [230, 40, 40],
        [40, 200, 40],
        [50, 80, 240],
        [240, 220, 40],
        [220, 60, 220],
        [40, 220, 220],
        [250, 140, 30],
        [240, 240, 240],
        [140, 90, 40],
        [120, 40, 200],
    ],
    np.float32,
)


def _mask(label: int, size: int, rng: np.random.Generator) -> np.ndarray:
    """(size, size) bool: where class ``label``'s shape lies, placed and sized at random."""
    y, x = np.mgrid[0:size, 0:size].astype(np.float32)
    r = rng.uniform(0.2, 0.35) * size
    cy, cx = rng.uniform(r, size - r, 2)
    dy, dx = y - cy, x - cx
    inside = (np.abs(dy) <= r) & (np.abs(dx) <= r)
    if label == 0:
        return inside
    if label == 1:
        return dy**2 + dx**2 <= r**2
    if label == 2:
        d = np.sqrt(dy**2 + dx**2)
        return (d <= r) & (d >= 0.6 * r)
    if label == 3:
        return inside & ((np.abs(dy) <= r / 4) | (np.abs(dx) <= r / 4))
    if label == 4:
        return inside & ((y.astype(int) // 3) % 2 == 0)
    if label == 5:
        return inside & (np.abs(dy - dx) <= r / 4)
    if label == 6:
        return inside & (dy >= -r) & (np.abs(dx) <= (dy + r) / 2)
    if label == 7:
        return inside & ~((np.abs(dy) <= 0.6 * r) & (np.abs(dx) <= 0.6 * r))
    if label == 8:
        return inside & ((y.astype(int) % 4 == 0) & (x.astype(int) % 4 == 0))
    return inside & ((x.astype(int) // 3) % 2 == 0)


def make_shapes(n: int = 10_000, size: int = 32, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """(n, size, size, 3) uint8 images and (n,) uint8 labels, the classes in turn (0, 1, ..., 9, 0, ...)."""
    rng = np.random.default_rng(seed)
    labels = (np.arange(n) % len(CLASS_NAMES)).astype(np.uint8)
    images = np.empty((n, size, size, 3), np.uint8)
    for i, label in enumerate(labels):
        background = rng.uniform(0, 80, 3).astype(np.float32) + rng.normal(0, 20, (size, size, 3)).astype(np.float32)
        colour = _COLOURS[label] + rng.normal(0, 15, 3).astype(np.float32)
        mask = _mask(int(label), size, rng)
        image = np.where(mask[:, :, None], colour, background)
        images[i] = np.clip(image, 0, 255).astype(np.uint8)
    return images, labels


def write_shapes_idx(out: str | Path, n: int = 10_000, size: int = 32, seed: int = 0) -> Path:
    """``make_shapes`` written as train-images-idx3-ubyte etc. into ``out``; returns ``out``."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    images, labels = make_shapes(n, size, seed)
    test = np.arange(n) % 6 == 5  # a sixth of every class
    write_idx(out / "train-images-idx3-ubyte", images[~test])
    write_idx(out / "train-labels-idx1-ubyte", labels[~test])
    write_idx(out / "t10k-images-idx3-ubyte", images[test])
    write_idx(out / "t10k-labels-idx1-ubyte", labels[test])
    (out / "class_names.txt").write_text("\n".join(CLASS_NAMES) + "\n", encoding="utf-8")
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("out", type=Path, help="directory to write the four IDX files (and class_names.txt) into")
    parser.add_argument("--n", type=int, default=10_000, help="images in all (default 10,000)")
    parser.add_argument("--size", type=int, default=32, help="image side in pixels (default 32)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    out = write_shapes_idx(args.out, args.n, args.size, args.seed)
    print(f"{args.n:,} RGB {args.size}x{args.size} images of {len(CLASS_NAMES)} classes written to {out}")


if __name__ == "__main__":
    main()
