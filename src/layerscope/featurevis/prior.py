"""What the dataset's images look like, for feature visualisation: the statistics an optimised image is drawn from
(``DataImage``, ``SpectrumImage``) and compared with (``image_statistics``, ``distance_to_data``).

An ``ImagePrior`` holds, estimated from a sample of the dataset's images:
- their mean image and the eigenvectors and eigenvalues of their pixel covariance (PCA): a Gaussian model of the
  data, the generalisation of Lucid's colour decorrelation from 3 colour channels to all C*H*W pixels. Only for
  images of at most ``MAX_COVARIANCE_DIM`` pixels (4,096: 3 x 32 x 32 and smaller); past that its eigendecomposition
  costs more than a render and it is left out (from fewer images than pixels it is their SVD, much cheaper);
- the mean magnitude of their 2-D Fourier spectrum per frequency (MACO's fixed magnitude, Fel et al. 2023);
- the median ink share and high-frequency share of single images (see ``image_statistics``).

MNIST's digits are mostly black with thin strokes: a median 13% of pixels above 0.5 and 9% of the spectral energy
above half the Nyquist radius. The demo model's naive feature visualisations of its class logits have 48% and 43%.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

__all__ = [
    "FAR",
    "MAX_COVARIANCE_DIM",
    "ImagePrior",
    "distance_to_data",
    "high_frequency_share",
    "image_prior",
    "image_statistics",
    "ink_share",
]

MAX_COVARIANCE_DIM = 4096  # pixels (C*H*W) up to which the prior keeps the full covariance
SAMPLE = 10_000  # images the prior is estimated from: the eigenvalues of MNIST's 784 x 784 covariance settle by then
HIGH = 0.25  # cycles per pixel: half the Nyquist frequency, the edge of "high" frequencies
FAR = 1.5  # an image whose ink or high-frequency share is more than 1.5x (or less than 1/1.5x) the data's is "far"


def _as_tensor(images: np.ndarray | Tensor) -> Tensor:
    """(N, C, H, W) or (C, H, W) images in [0, 1] (uint8 in [0, 255]) -> (N, C, H, W) float32."""
    t = torch.as_tensor(np.asarray(images) if not isinstance(images, Tensor) else images)
    t = t.float() / 255.0 if t.dtype == torch.uint8 else t.float()
    return t[None] if t.ndim == 3 else t


def ink_share(images: np.ndarray | Tensor) -> np.ndarray:
    """(N,) share of each image's pixel values above 0.5: how much of the image is drawn (MNIST's strokes)."""
    return (_as_tensor(images) > 0.5).float().flatten(1).mean(1).numpy()


def high_frequency_share(images: np.ndarray | Tensor) -> np.ndarray:
    """(N,) share of each image's spectral energy (mean removed) above half the Nyquist radius, 0.25 cycles/pixel.

    Real handwriting is smooth strokes (MNIST: a median 0.09); adversarial noise and maze patterns put 0.3-0.5 of
    their energy there. The mean (the DC term) is left out so that brightness does not count.
    """
    x = _as_tensor(images)
    h, w = x.shape[-2:]
    power = torch.fft.rfft2(x, norm="ortho").abs().square()  # (N, C, H, W//2 + 1)
    fy = torch.fft.fftfreq(h)[:, None]
    fx = torch.fft.rfftfreq(w)[None, :]
    radius = (fy.square() + fx.square()).sqrt()  # (H, W//2 + 1)
    weight = torch.full_like(radius, 2.0)  # the half spectrum: columns other than 0 and Nyquist stand for two
    weight[:, 0] = 1.0
    if w % 2 == 0:
        weight[:, -1] = 1.0
    weight[0, 0] = 0.0  # the mean
    power = power * weight
    total = power.flatten(1).sum(1).clamp(min=1e-12)
    return (power[..., radius > HIGH].flatten(1).sum(1) / total).numpy()


def image_statistics(images: np.ndarray | Tensor) -> dict[str, float]:
    """Median ink share and high-frequency share of ``images``."""
    return {
        "ink_share": float(np.median(ink_share(images))),
        "high_frequency_share": float(np.median(high_frequency_share(images))),
    }


@dataclass(frozen=True, eq=False)
class ImagePrior:
    """Statistics of a dataset's images (see the module's text); build one with ``image_prior``."""

    mean: np.ndarray  # (C, H, W) float32 in [0, 1]
    eigenvectors: np.ndarray | None  # (D, D) float32, columns in decreasing order of variance; D = C*H*W
    eigenvalues: np.ndarray | None  # (D,) float32, decreasing, >= 0
    magnitude: np.ndarray  # (C, H, W//2 + 1) float32: mean |rfft2(image, norm="ortho")|
    ink_share: float  # medians over the sample
    high_frequency_share: float
    n_images: int  # how many images it was estimated from
    # (C, C) Lucid's colour decorrelation, estimated from the data (Lucid's is ImageNet's): the square root of the
    # channels' covariance over every pixel, U sqrt(S), scaled so its largest column has norm 1; None for one channel
    colour: np.ndarray | None = None

    @property
    def shape(self) -> tuple[int, int, int]:
        c, h, w = self.mean.shape
        return int(c), int(h), int(w)

    @property
    def has_covariance(self) -> bool:
        return self.eigenvectors is not None


def image_prior(images: np.ndarray, *, sample: int = SAMPLE, seed: int = 0) -> ImagePrior:
    """The prior of ``images`` (N, C, H, W), uint8 or floats in [0, 1], from ``sample`` of them drawn with ``seed``
    (all when fewer). Seconds for MNIST (784 pixels); the covariance is skipped past ``MAX_COVARIANCE_DIM`` pixels.
    From fewer images than pixels its eigenvectors come from their SVD, in well under a second."""
    n = len(images)
    if n == 0:
        raise ValueError("an image prior needs at least one image.")
    pick = np.sort(np.random.default_rng(seed).choice(n, size=min(n, sample), replace=False))
    x = _as_tensor(np.asarray(images[pick]))  # (S, C, H, W) float32
    flat = x.flatten(1).double()  # (S, D)
    mean = flat.mean(0)
    eigenvectors = eigenvalues = None
    s, d = flat.shape
    if d <= MAX_COVARIANCE_DIM and s > 1:
        centred = flat - mean
        if s < d:
            # fewer images than pixels (a small colour dataset: 133 images of 3 x 32 x 32): the covariance has rank
            # below S, and its eigenvectors are the centred images' right singular vectors. The full SVD completes
            # them to an orthonormal basis of every image (the zero-variance directions a start image may need) in
            # O(S D^2), where eigh of the (D, D) covariance is O(D^3): 0.6 s against 5-30 s for D = 3,072 on 2 cores
            _, singular, vh = torch.linalg.svd(centred, full_matrices=True)  # (S,), (D, D); decreasing
            values = torch.zeros(d, dtype=flat.dtype)
            values[: len(singular)] = singular.square() / (s - 1)
            eigenvalues = values.float().numpy()
            eigenvectors = vh.T.float().numpy()  # (D, D), columns
        else:
            covariance = centred.T @ centred / (s - 1)  # (D, D)
            values, vectors = torch.linalg.eigh(covariance)  # increasing
            eigenvalues = values.flip(0).clamp(min=0).float().numpy()
            eigenvectors = vectors.flip(1).float().numpy()
    magnitude = torch.fft.rfft2(x, norm="ortho").abs().mean(0)  # (C, H, W//2 + 1)
    colour = colour_correlation(x) if x.shape[1] > 1 else None
    stats = image_statistics(x)
    return ImagePrior(
        mean=mean.float().view(x.shape[1:]).numpy(),
        eigenvectors=eigenvectors,
        eigenvalues=eigenvalues,
        magnitude=magnitude.numpy(),
        ink_share=stats["ink_share"],
        high_frequency_share=stats["high_frequency_share"],
        n_images=len(pick),
        colour=colour,
    )


def colour_correlation(images: Tensor) -> np.ndarray:
    """(C, C) the square root of the channels' covariance over every pixel of ``images`` (S, C, H, W), U sqrt(S) from
    its SVD, divided by its largest column norm: Lucid's ``color_correlation_svd_sqrt`` / ``max_norm_svd_sqrt``,
    measured on the dataset. An image parameterised in decorrelated colours becomes RGB through it."""
    channels = images.transpose(0, 1).reshape(images.shape[1], -1).double()  # (C, S*H*W)
    covariance = torch.cov(channels)
    u, singular, _ = torch.linalg.svd(covariance)
    root = u * singular.clamp(min=0).sqrt()  # columns scaled
    return (root / root.norm(dim=0).max().clamp(min=1e-12)).float().numpy()


def distance_to_data(images: np.ndarray | Tensor, prior: ImagePrior) -> dict[str, float | bool]:
    """How far ``images`` are from the data: their median ink and high-frequency shares as ratios to the data's,
    and ``far``, true when either ratio is above ``FAR`` or below 1 / ``FAR``."""
    stats = image_statistics(images)
    ink = stats["ink_share"] / max(prior.ink_share, 1e-6)
    high = stats["high_frequency_share"] / max(prior.high_frequency_share, 1e-6)
    far = not (1 / FAR <= ink <= FAR and 1 / FAR <= high <= FAR)
    return {**stats, "ink_ratio": ink, "high_frequency_ratio": high, "far": far}
