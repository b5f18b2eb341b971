"""Image parameterisations: the numbers the optimiser changes, and how they become a valid (B, C, H, W) image.

``PixelImage`` optimises the pixels themselves; ``FourierImage`` optimises a spectrum scaled by 1/f (lucent's
``fft_image``), which evens out the gradient across frequencies, so low frequencies are not starved. Both squash with
a sigmoid into (0, 1), the range of the pixels the models are trained on, so no step can leave it.

Two more are estimated from the dataset (``prior.ImagePrior``), as Lucid's colour decorrelation is from ImageNet:
- ``DataImage``: the image is the data's mean plus its principal components, each scaled by its standard deviation
  (PCA whitening, inverted). Adam moves every coordinate by about the same step, so directions the data varies in
  (strokes) move fast and directions it never varies in (the always-black border, pixel noise) barely move.
- ``SpectrumImage``: MACO (Fel et al. 2023): the magnitude of the image's Fourier spectrum is fixed to the data's
  mean magnitude and only the phase is optimised, so the image's power spectrum is the data's by construction.
Both clip to [0, 1] with a straight-through gradient: a sigmoid would fix their grey level at 0.5, and MNIST's
background is black.
"""

from __future__ import annotations

import math
from typing import Protocol

import numpy as np
import torch
from torch import Tensor

from layerscope.errors import LayerscopeError
from layerscope.featurevis.prior import ImagePrior

__all__ = ["DataImage", "FourierImage", "ImageParam", "PixelImage", "SpectrumImage"]


class ImageParam(Protocol):
    """``parameters()`` are the leaf tensors to optimise; calling it gives the (B, C, H, W) image in (0, 1)."""

    def parameters(self) -> list[Tensor]: ...

    def __call__(self) -> Tensor: ...


def _normal(shape: tuple[int, ...], sd: float, seed: int, device: torch.device | str | None) -> Tensor:
    # drawn on the CPU from its own generator so a seed gives the same start on every device
    g = torch.Generator().manual_seed(seed)
    return (torch.randn(shape, generator=g) * sd).to(device).requires_grad_(True)


def _decorrelated(colour: np.ndarray | None, device: torch.device | str | None) -> Tensor | None:
    return None if colour is None else torch.as_tensor(colour, dtype=torch.float32, device=device)


def _to_rgb(t: Tensor, colour: Tensor | None) -> Tensor:
    """(B, C, H, W) decorrelated colours -> the image's channels (Lucid's ``linear_decorrelate_color``): each
    pixel's C values times ``colour``'s transpose; unchanged without one."""
    return t if colour is None else torch.einsum("dc,bchw->bdhw", colour, t)


class PixelImage:
    """The pixels, through a sigmoid: ``sigmoid(t)`` with t ~ N(0, sd) at the start (mid-grey). ``colour``: a colour
    image's (C, C) decorrelation (``ImagePrior.colour``): t is in decorrelated colours, so a step moves the colours
    the data varies in together, not one channel at a time."""

    def __init__(
        self,
        shape: tuple[int, int, int],
        batch: int = 1,
        *,
        sd: float = 0.01,
        seed: int = 0,
        device: torch.device | str | None = None,
        colour: np.ndarray | None = None,
    ) -> None:
        self.tensor = _normal((batch, *shape), sd, seed, device)  # (B, C, H, W)
        self.colour = _decorrelated(colour, device)

    def parameters(self) -> list[Tensor]:
        return [self.tensor]

    def __call__(self) -> Tensor:
        return torch.sigmoid(_to_rgb(self.tensor, self.colour))


class FourierImage:
    """An image made by the inverse real FFT of a spectrum scaled by 1/max(f, 1/size)^decay_power, then a sigmoid;
    in decorrelated colours with ``colour`` (as ``PixelImage``), Lucid's ``fft_image`` + ``to_valid_rgb``."""

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
        colour: np.ndarray | None = None,
    ) -> None:
        c, h, w = shape
        self.size = (h, w)
        self.colour = _decorrelated(colour, device)
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
        return torch.sigmoid(_to_rgb(image, self.colour) / self.MAGIC)


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


def _clip(x: Tensor) -> Tensor:
    """x clipped to [0, 1] in the forward pass, with the gradient of the identity (straight-through): a pixel pushed
    past the range still feels the objective, so it can come back."""
    return x + (x.clamp(0.0, 1.0) - x).detach()


class DataImage:
    """``mean + (z * sqrt(eigenvalues)) @ eigenvectors.T`` of the data's pixel covariance, clipped to [0, 1].

    ``start``: images (B or 1, C, H, W) in [0, 1] to begin from (their exact coordinates: the basis spans every
    image, zero-variance directions kept with a tiny floor); otherwise the data's mean plus N(0, sd) coordinates.
    """

    FLOOR = 1e-6  # of the largest eigenvalue: the border pixels of MNIST never vary, yet a start image must fit

    def __init__(
        self,
        prior: ImagePrior,
        batch: int = 1,
        *,
        sd: float = 0.1,
        seed: int = 0,
        start: Tensor | np.ndarray | None = None,
        device: torch.device | str | None = None,
    ) -> None:
        if prior.eigenvectors is None or prior.eigenvalues is None:
            raise LayerscopeError(
                f"images of {int(np.prod(prior.shape)):,} pixels are too large for the data-covariance "
                "parameterisation; use 'spectrum' or 'pixel'."
            )
        self.shape = prior.shape
        values = torch.as_tensor(prior.eigenvalues)
        scale = values.clamp(min=float(values[0]) * self.FLOOR).sqrt()  # (D,)
        vectors = torch.as_tensor(prior.eigenvectors)  # (D, D)
        self.mean = torch.as_tensor(prior.mean).flatten().to(device)  # (D,)
        self.basis = (vectors * scale).T.contiguous().to(device)  # (D, D): row k is component k times its sd
        if start is None:
            self.z = _normal((batch, len(scale)), sd, seed, device)
        else:
            x = torch.as_tensor(np.asarray(start) if not isinstance(start, Tensor) else start).float()
            x = x.reshape(-1, len(scale)).to(device).expand(batch, -1)  # (B, D)
            coords = (x - self.mean) @ vectors.to(device) / scale.to(device)  # the inverse of __call__'s map
            self.z = coords.clone().requires_grad_(True)

    def parameters(self) -> list[Tensor]:
        return [self.z]

    def __call__(self) -> Tensor:
        image = self.mean + self.z @ self.basis  # (B, D)
        return _clip(image.view(-1, *self.shape))


class SpectrumImage:
    """MACO: ``irfft2(magnitude * exp(i * phase))`` with the data's mean magnitude, the phase optimised, clipped."""

    def __init__(
        self,
        prior: ImagePrior,
        batch: int = 1,
        *,
        seed: int = 0,
        device: torch.device | str | None = None,
    ) -> None:
        c, h, w = prior.shape
        self.size = (h, w)
        self.magnitude = torch.as_tensor(prior.magnitude).to(device)  # (C, H, W//2 + 1)
        g = torch.Generator().manual_seed(seed)
        phase = (torch.rand((batch, c, h, w // 2 + 1), generator=g) * 2 - 1) * math.pi
        self.phase = phase.to(device).requires_grad_(True)

    def parameters(self) -> list[Tensor]:
        return [self.phase]

    def __call__(self) -> Tensor:
        spectrum = torch.polar(self.magnitude.expand_as(self.phase), self.phase)
        return _clip(torch.fft.irfft2(spectrum, s=self.size, norm="ortho"))
