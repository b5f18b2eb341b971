"""Small models that are not the report's CNN, importable as ``tests.models:MLP``, ``tests.models:LeNetBN`` and
``tests.models:PooledCNN``.

They exercise what an arbitrary PyTorch model brings: Sequential containers, Dropout, BatchNorm, and functional
operations in ``forward`` that are not modules (``F.relu``, ``F.max_pool2d``, ``torch.flatten``).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class MLP(nn.Module):
    """Flatten, Linear, ReLU, Dropout, Linear, ReLU, Linear: layers ``net.1``, ``net.4``, ``net.6``."""

    def __init__(self, in_channels: int = 1, num_classes: int = 10, image_size: int = 28, hidden: int = 32) -> None:
        super().__init__()
        self.net = nn.Sequential(
            nn.Flatten(),
            nn.Linear(in_channels * image_size * image_size, hidden),
            nn.ReLU(),
            nn.Dropout(0.1),
            nn.Linear(hidden, hidden // 2),
            nn.ReLU(),
            nn.Linear(hidden // 2, num_classes),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


class LeNetBN(nn.Module):
    """conv 6@3x3 + BN, functional ReLU and max-pool, conv 12@3x3 + BN, torch.flatten, dense 32 + BN1d, dense out."""

    def __init__(self, in_channels: int = 1, num_classes: int = 10, image_size: int = 28) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, 6, 3, padding=1)
        self.bn1 = nn.BatchNorm2d(6)
        self.conv2 = nn.Conv2d(6, 12, 3, padding=1)
        self.bn2 = nn.BatchNorm2d(12)
        side = image_size // 2 // 2
        self.fc1 = nn.Linear(12 * side * side, 32)
        self.bn3 = nn.BatchNorm1d(32)
        self.drop = nn.Dropout(0.1)
        self.fc2 = nn.Linear(32, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.max_pool2d(F.relu(self.bn1(self.conv1(x))), 2)  # (N, 6, H/2, W/2)
        x = F.max_pool2d(F.relu(self.bn2(self.conv2(x))), 2)  # (N, 12, H/4, W/4)
        x = torch.flatten(x, 1)  # (N, 12 * H/4 * W/4)
        x = self.drop(F.relu(self.bn3(self.fc1(x))))
        return self.fc2(x)


class PooledCNN(nn.Module):
    """conv 8@3x3, ReLU, a global average pool (``pool``: a conv layer of 8 x 1 x 1, narrow enough to feed t-SNE, UMAP,
    LDA and Isomap as it is), dense out."""

    def __init__(self, in_channels: int = 1, num_classes: int = 10, image_size: int = 28) -> None:
        super().__init__()
        self.conv = nn.Conv2d(in_channels, 8, 3, padding=1)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(8, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(torch.flatten(self.pool(F.relu(self.conv(x))), 1))
