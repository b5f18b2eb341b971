"""A model of your own, as ``layerscope train --model`` and ``import-model --model`` take it (see the README's
"Four ways in"): any ``nn.Module`` whose constructor takes keyword arguments and whose forward maps a batch of
images (N, C, H, W) in [0, 1] to class scores (N, K).

    layerscope train --model examples.mymodels:Net --preset tiny --out runs/mine
"""

import torch
from torch import nn


class Net(nn.Module):
    """Two convolutions with batch norm, an average pool to 4x4 and one dense layer: images of any size, 1 channel
    and 10 classes by default; ``--model-arg in_channels=3 --model-arg num_classes=4`` for other data."""

    def __init__(self, in_channels: int = 1, num_classes: int = 10, width: int = 16) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(in_channels, width, 3, padding=1),
            nn.BatchNorm2d(width),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Conv2d(width, 2 * width, 3, padding=1),
            nn.BatchNorm2d(2 * width),
            nn.ReLU(),
        )
        self.pool = nn.AdaptiveAvgPool2d(4)
        self.classifier = nn.Linear(2 * width * 4 * 4, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(torch.flatten(self.pool(self.features(x)), 1))
