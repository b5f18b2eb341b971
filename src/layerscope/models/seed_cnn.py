"""The CNN of the report that started layerscope (section 5.1), in PyTorch.

input (1, 28, 28)
conv1  16 @ 3x3, ReLU           -> (16, 26, 26)
conv2  32 @ 3x3, ReLU           -> (32, 24, 24)
pool   max 2x2                  -> (32, 12, 12)
fc1    flatten, dense 64, ReLU  -> (64,)
fc2    dense 64, ReLU           -> (64,)
out    dense 10                 -> (10,) logits; softmax gives the class probabilities

Each named block ends with its activation, so recording ``conv1`` records what the next layer sees, as Keras reports
it. ``out`` returns logits (softmax is applied for display and in the loss).
"""

from __future__ import annotations

import torch
from torch import nn

__all__ = ["SeedCNN"]


class SeedCNN(nn.Module):
    """conv 16@3x3, conv 32@3x3, max-pool 2x2, dense 64, dense 64, dense 10 (works for any C x H x W input)."""

    layerscope_layers = ("conv1", "conv2", "pool", "fc1", "fc2", "out")

    def __init__(self, in_channels: int = 1, num_classes: int = 10, image_size: int = 28) -> None:
        super().__init__()
        for name, value, low, high in (
            ("in_channels", in_channels, 1, 64),
            ("num_classes", num_classes, 1, 100_000),
            ("image_size", image_size, 6, 4096),  # two 3x3 convs and a 2x2 pool need 6 pixels
        ):
            if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
                raise ValueError(f"{name} must be a whole number from {low} to {high}, not {value!r}")
        pooled = (image_size - 4) // 2
        self.conv1 = nn.Sequential(nn.Conv2d(in_channels, 16, 3), nn.ReLU())
        self.conv2 = nn.Sequential(nn.Conv2d(16, 32, 3), nn.ReLU())
        self.pool = nn.MaxPool2d(2)
        self.fc1 = nn.Sequential(nn.Flatten(), nn.Linear(32 * pooled * pooled, 64), nn.ReLU())
        self.fc2 = nn.Sequential(nn.Linear(64, 64), nn.ReLU())
        self.out = nn.Linear(64, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # (N, C, 28, 28) -> (N, 16, 26, 26) -> (N, 32, 24, 24) -> (N, 32, 12, 12) -> (N, 64) -> (N, 64) -> (N, 10)
        return self.out(self.fc2(self.fc1(self.pool(self.conv2(self.conv1(x))))))
