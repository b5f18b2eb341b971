"""Image parameterisations: the numbers the optimiser changes, and how they become a valid (B, C, H, W) image.

Both squash with a sigmoid into (0, 1), the range of the pixels the models are trained on, so no step can leave it.
``PixelImage`` optimises the pixels themselves; ``FourierImage`` optimises a spectrum scaled by 1/f (lucent's
``fft_image``), which evens out the gradient across frequencies, so low frequencies are not starved and the result
is far less noisy. No colour decorrelation: that matrix is ImageNet's, and these inputs are any C x H x W.
"""

from __future__ import annotations

import math
from typing import Protocol

import numpy as np
import torch
from torch import Tensor

__all__ = ["FourierImage", "ImageParam", "PixelImage"]


class ImageParam(Protocol):
    """``parameters()`` are the leaf tensors to optimise; calling it gives the (B, C, H, W) image in (0, 1)."""

    def parameters(self) -> list[Tensor]: ...

    def __call__(self) -> Tensor: ...


def _normal(shape: tuple[int, ...], sd: float, seed: int, device: torch.device | str | None) -> Tensor:
    # drawn on the CPU from its own generator so a seed gives the same start on every device
    g = torch.Generator().manual_seed(seed)
    return (torch.randn(shape, generator=g) * sd).to(device).requires_grad_(True)


class PixelImage:
    """The pixels, through a sigmoid: ``sigmoid(t)`` with t ~ N(0, sd) at the start (mid-grey)."""

    def __init__(
        self,
        shape: tuple[int, int, int],
        batch: int = 1,
        *,
        sd: float = 0.01,
        seed: int = 0,
        device: torch.device | str | None = None,
    ) -> None:
        self.tensor = _normal((batch, *shape), sd, seed, device)  # (B, C, H, W)

    def parameters(self) -> list[Tensor]:
        return [self.tensor]

    def __call__(self) -> Tensor:
        return torch.sigmoid(self.tensor)


class FourierImage:
    """An image made by the inverse real FFT of a spectrum scaled by 1/max(f, 1/size)^decay_power, then a sigmoid."""

    # lucid's constant: the inverse FFT's output is divided by it before the sigmoid; larger means less saturation
    MAGIC = 4.0

    def __init__(
        self,
        shape: tuple[int, int, int],
        batch: int = 1,
        *,
        sd: float = 0.01,
        decay_power: float = 1.0,
        seed: int = 0,
        device: torch.device | str | None = None,
    ) -> None:
        c, h, w = shape
        self.size = (h, w)
        fy = np.fft.fftfreq(h)[:, None]
        fx = np.fft.rfftfreq(w)[None, :]  # w // 2 + 1 columns, odd or even w (lucent's fft_image is off by one for odd)
        freqs = np.sqrt(fx * fx + fy * fy)  # (H, W//2 + 1) cycles per pixel
        scale = 1.0 / np.maximum(freqs, 1.0 / max(h, w)) ** decay_power
        self.scale = torch.tensor(scale, dtype=torch.float32, device=device)[None, None, :, :, None]
        self.spectrum = _normal((batch, c, h, w // 2 + 1, 2), sd, seed, device)  # (B, C, H, W//2 + 1, re/im)
        self._rows, self._cols = (m.to(device) for m in _inverse_rdft2(h, w))

    def parameters(self) -> list[Tensor]:
        return [self.spectrum]

    def __call__(self) -> Tensor:
        scaled = self.scale * self.spectrum  # (B, C, H, Kx, 2)
        stacked = torch.cat([scaled[..., 0], scaled[..., 1]], dim=-2)  # (B, C, 2H, Kx): real parts over imaginary
        half = self._rows @ stacked  # (B, C, 2H, Kx): inverse DFT along H, real over imaginary
        h = self.size[0]
        image = torch.cat([half[..., :h, :], half[..., h:, :]], dim=-1) @ self._cols  # (B, C, H, 2Kx) -> (B, C, H, W)
        return torch.sigmoid(image / self.MAGIC)


def _inverse_rdft2(h: int, w: int) -> tuple[Tensor, Tensor]:
    """Real matrices computing ``torch.fft.irfftn(spectrum, s=(h, w), norm="ortho")`` by two matmuls.

    At these sizes (28 x 28) two small matmuls are as cheap as an FFT, and torch's CPU FFT (MKL) was measured to
    stall ~16 ms per call when its worker threads have to be woken on a busy machine; a 28 x 28 matmul does not.
    Rows (2H, 2H): [[cos, -sin], [sin, cos]] of 2 pi y ky / H over the stacked real and imaginary parts.
    Columns (2Kx, W): the real part of the inverse along W, bins other than 0 and Nyquist counted twice (Hermitian).
    """
    ky = torch.arange(h, dtype=torch.float64)
    a = 2 * math.pi * torch.outer(ky, ky) / h  # (H, H), symmetric: [y, ky]
    cos_y, sin_y = a.cos(), a.sin()
    rows = torch.cat([torch.cat([cos_y, -sin_y], 1), torch.cat([sin_y, cos_y], 1)], 0) / math.sqrt(h * w)
    kx = torch.arange(w // 2 + 1, dtype=torch.float64)
    b = 2 * math.pi * torch.outer(kx, torch.arange(w, dtype=torch.float64)) / w  # (Kx, W)
    weight = torch.full((w // 2 + 1, 1), 2.0, dtype=torch.float64)
    weight[0] = 1.0
    if w % 2 == 0:
        weight[-1] = 1.0
    cols = torch.cat([weight * b.cos(), -weight * b.sin()], 0)  # (2Kx, W)
    return rows.float(), cols.float()
