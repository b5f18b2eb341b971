"""Transformation robustness: small random changes applied to the image at every step, so the optimised image has to
work wherever it sits, and high-frequency patterns that only work at one exact offset are not rewarded.

Each transform is a value ``t(x, generator) -> x`` on (B, C, H, W) images in [0, 1] that keeps the shape and dtype
(the models take a fixed input size), drawing its randomness from ``generator`` so a render is repeatable. One draw
per call is shared by the batch, as in lucent. Where a transform moves content, the uncovered border takes ``fill``,
the background (0 for MNIST's black): this is what lucent's constant ``pad`` is for, without changing the size.

Sizes are for small inputs such as 28 x 28: lucent's pad 12 / jitter 8 / rotate +-10 deg are for 224 x 224.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Protocol

import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = [
    "Compose",
    "Jitter",
    "RandomRotate",
    "RandomScale",
    "Transform",
    "compose",
    "jitter",
    "random_rotate",
    "random_scale",
    "standard_transforms",
]


class Transform(Protocol):
    def __call__(self, x: Tensor, generator: torch.Generator | None = None) -> Tensor: ...


def _uniform(lo: float, hi: float, generator: torch.Generator | None) -> float:
    return lo + (hi - lo) * float(torch.rand((), generator=generator))


def _affine(x: Tensor, matrix: list[list[float]], fill: float) -> Tensor:
    """Resample x (B, C, H, W) at ``matrix`` (2 x 3, normalised coordinates), outside the image = ``fill``."""
    h, w = x.shape[-2:]
    # F.affine_grid's grid, built elementwise: affine_grid goes through a batched matmul (MKL), measured to stall
    # ~16 ms per call on a busy 2-core machine; this costs microseconds. Pixel centres, as align_corners=False.
    ys = (2 * torch.arange(h, dtype=x.dtype, device=x.device) + 1) / h - 1
    xs = (2 * torch.arange(w, dtype=x.dtype, device=x.device) + 1) / w - 1
    gy, gx = torch.meshgrid(ys, xs, indexing="ij")  # (H, W) each
    (a, b, c), (d, e, f) = matrix
    grid = torch.stack([a * gx + b * gy + c, d * gx + e * gy + f], dim=-1)  # (H, W, 2): (x, y) to sample at
    grid = grid.expand(x.shape[0], h, w, 2)
    # grid_sample pads with zeros: shift by fill so the border reads fill, exactly, under bilinear sampling too
    return F.grid_sample(x - fill, grid, mode="bilinear", padding_mode="zeros", align_corners=False) + fill


@dataclass(frozen=True)
class Jitter:
    """Shift by a random whole number of pixels in [-d, d] along each axis."""

    d: int
    fill: float = 0.0

    def __call__(self, x: Tensor, generator: torch.Generator | None = None) -> Tensor:
        if self.d <= 0:
            return x
        dy, dx = (int(v) for v in torch.randint(-self.d, self.d + 1, (2,), generator=generator))
        h, w = x.shape[-2:]
        padded = F.pad(x, (self.d, self.d, self.d, self.d), value=self.fill)  # (B, C, H + 2d, W + 2d)
        return padded[..., self.d - dy : self.d - dy + h, self.d - dx : self.d - dx + w]


@dataclass(frozen=True)
class RandomScale:
    """Zoom about the centre by a factor drawn uniformly from [lo, hi] (> 1 enlarges)."""

    lo: float
    hi: float
    fill: float = 0.0

    def __call__(self, x: Tensor, generator: torch.Generator | None = None) -> Tensor:
        s = _uniform(self.lo, self.hi, generator)
        return _affine(x, [[1 / s, 0.0, 0.0], [0.0, 1 / s, 0.0]], self.fill)


@dataclass(frozen=True)
class RandomRotate:
    """Rotate about the centre by an angle drawn uniformly from [-degrees, degrees]."""

    degrees: float
    fill: float = 0.0

    def __call__(self, x: Tensor, generator: torch.Generator | None = None) -> Tensor:
        a = math.radians(_uniform(-self.degrees, self.degrees, generator))
        h, w = x.shape[-2:]
        c, s = math.cos(a), math.sin(a)
        # a rotation in pixels, written in affine_grid's [-1, 1] coordinates, which stretch non-square images
        return _affine(x, [[c, -s * h / w, 0.0], [s * w / h, c, 0.0]], self.fill)


@dataclass(frozen=True)
class Compose:
    """The transforms in order."""

    transforms: tuple[Transform, ...]

    def __call__(self, x: Tensor, generator: torch.Generator | None = None) -> Tensor:
        for t in self.transforms:
            x = t(x, generator)
        return x


def jitter(d: int, fill: float = 0.0) -> Jitter:
    return Jitter(d, fill)


def random_scale(lo: float = 0.9, hi: float = 1.1, fill: float = 0.0) -> RandomScale:
    return RandomScale(lo, hi, fill)


def random_rotate(degrees: float = 10.0, fill: float = 0.0) -> RandomRotate:
    return RandomRotate(degrees, fill)


def compose(*transforms: Transform) -> Compose:
    return Compose(tuple(transforms))


def standard_transforms(fill: float = 0.0) -> Compose:
    """lucent's standard set scaled to 28 x 28: jitter 2, scale 0.9-1.1, rotate +-10 deg, jitter 1."""
    return compose(jitter(2, fill), random_scale(0.9, 1.1, fill), random_rotate(10.0, fill), jitter(1, fill))
