"""Small models that are not the report's CNN, importable as ``tests.models:<Name>``.

``MLP``, ``LeNetBN`` and ``PooledCNN`` exercise what an arbitrary PyTorch model brings: Sequential containers, Dropout,
BatchNorm, and functional operations in ``forward`` that are not modules (``F.relu``, ``F.max_pool2d``,
``torch.flatten``).

The others are the architectures beyond a plain chain of layers:

- ``ResNet18``: torchvision's resnet18 (the copy in ``tests/torchvision_resnet.py``) with the usual CIFAR/MNIST stem,
  a 3x3 stride-1 ``conv1``; module names are torchvision's (``conv1``, ``layer1.0.conv1``, ..., ``fc``), and its
  residual adds are in-place (``out += identity``).
- ``SmallResNet``: a hand-written residual net, ``stem``, ``block1``..``block3`` (``ResidualBlock``, functional
  ``F.relu(self.shortcut(x) + out)`` with an identity or a 1x1-conv shortcut), ``pool``, ``fc``.
- ``BranchNet``: an Inception-like ``BranchBlock`` (``mix``) whose two branches are joined by ``torch.cat``.
- ``TinyViT``: a small vision transformer with hand-written attention; the attention maps are the output of
  ``blocks.<i>.attn.softmax`` (an ``nn.Softmax`` module, so a forward hook sees them).

Every model takes (N, C, H, W) images in [0, 1], returns (N, num_classes) logits, accepts ``in_channels``,
``num_classes`` and ``image_size`` keywords (defaults 3x32x32 and 10 classes for the new ones; they also work on
1x28x28), and is traceable by ``torch.fx.symbolic_trace``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from tests.torchvision_resnet import BasicBlock, ResNet


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


class ResNet18(ResNet):
    """torchvision's resnet18 (``BasicBlock``, [2, 2, 2, 2]) with ``conv1`` a 3x3 stride-1 conv for small images (the
    usual CIFAR/MNIST adaptation); ``maxpool`` stays as in torchvision. ``image_size`` is accepted for the common
    signature and not needed: ``avgpool`` is adaptive."""

    def __init__(self, in_channels: int = 3, num_classes: int = 10, image_size: int = 32) -> None:
        super().__init__(BasicBlock, [2, 2, 2, 2], num_classes=num_classes)
        self.conv1 = nn.Conv2d(in_channels, 64, kernel_size=3, stride=1, padding=1, bias=False)
        nn.init.kaiming_normal_(self.conv1.weight, mode="fan_out", nonlinearity="relu")  # as ResNet inits its convs


class ResidualBlock(nn.Module):
    """conv 3x3 + BN, ReLU, conv 3x3 + BN, plus the shortcut, ReLU. The shortcut is an empty ``nn.Sequential``
    (identity) when the shape stays, a 1x1 conv + BN with the block's stride when channels or size change."""

    def __init__(self, in_channels: int, out_channels: int, stride: int = 1) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(out_channels)
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(out_channels)
        self.shortcut = nn.Sequential()
        if stride != 1 or in_channels != out_channels:
            self.shortcut = nn.Sequential(
                nn.Conv2d(in_channels, out_channels, 1, stride=stride, bias=False), nn.BatchNorm2d(out_channels)
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.bn2(self.conv2(F.relu(self.bn1(self.conv1(x)))))
        return F.relu(self.shortcut(x) + out)


class SmallResNet(nn.Module):
    """stem (conv 3x3 + BN + ReLU, ``width`` channels), ``block1`` (identity shortcut), ``block2`` and ``block3``
    (twice the channels, half the size, 1x1-conv shortcuts), global average ``pool``, torch.flatten, ``fc``."""

    def __init__(self, in_channels: int = 3, num_classes: int = 10, image_size: int = 32, width: int = 8) -> None:
        super().__init__()
        self.stem = nn.Sequential(
            nn.Conv2d(in_channels, width, 3, padding=1, bias=False), nn.BatchNorm2d(width), nn.ReLU()
        )
        self.block1 = ResidualBlock(width, width)
        self.block2 = ResidualBlock(width, 2 * width, stride=2)
        self.block3 = ResidualBlock(2 * width, 4 * width, stride=2)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(4 * width, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.block3(self.block2(self.block1(self.stem(x))))  # (N, 4 * width, H/4, W/4)
        return self.fc(torch.flatten(self.pool(x), 1))


class BranchBlock(nn.Module):
    """Two parallel branches over the same input, ``branch3`` (conv 3x3) and ``branch5`` (conv 3x3, ReLU, conv 3x3:
    a 5x5 receptive field), joined by ``torch.cat`` along the channels, then ReLU."""

    def __init__(self, in_channels: int, branch_channels: int) -> None:
        super().__init__()
        self.branch3 = nn.Conv2d(in_channels, branch_channels, 3, padding=1)
        self.branch5 = nn.Sequential(
            nn.Conv2d(in_channels, branch_channels, 3, padding=1),
            nn.ReLU(),
            nn.Conv2d(branch_channels, branch_channels, 3, padding=1),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        a = self.branch3(x)
        b = self.branch5(x)
        return F.relu(torch.cat([a, b], dim=1))


class BranchNet(nn.Module):
    """``stem`` conv 16@3x3 + ReLU, ``mix`` (a BranchBlock, 2 x 16 channels), max-``pool`` 2, global average pool
    (``gap``), torch.flatten, ``fc``. ``image_size`` is accepted for the common signature: the pool is adaptive."""

    def __init__(self, in_channels: int = 3, num_classes: int = 10, image_size: int = 32) -> None:
        super().__init__()
        self.stem = nn.Conv2d(in_channels, 16, 3, padding=1)
        self.mix = BranchBlock(16, 16)
        self.pool = nn.MaxPool2d(2)
        self.gap = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(32, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.pool(self.mix(F.relu(self.stem(x))))  # (N, 32, H/2, W/2)
        return self.fc(torch.flatten(self.gap(x), 1))


class Attention(nn.Module):
    """Multi-head self-attention written out: ``qkv`` Linear, split into heads, ``q @ k^T * scale``, ``softmax`` (a
    module, so a forward hook on it records the (N, heads, tokens, tokens) attention maps), ``@ v``, ``proj``."""

    def __init__(self, dim: int, heads: int) -> None:
        super().__init__()
        if dim % heads:
            raise ValueError(f"dim ({dim}) must be divisible by heads ({heads})")
        self.dim = dim
        self.heads = heads
        self.head_dim = dim // heads
        self.scale = self.head_dim**-0.5
        self.qkv = nn.Linear(dim, 3 * dim)
        self.softmax = nn.Softmax(dim=-1)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n = x.shape[0]
        qkv = self.qkv(x).reshape(n, -1, 3, self.heads, self.head_dim).permute(2, 0, 3, 1, 4)  # (3, N, h, T, d)
        q, k, v = qkv[0], qkv[1], qkv[2]
        attn = self.softmax(q @ k.transpose(-2, -1) * self.scale)  # (N, heads, T, T)
        out = (attn @ v).transpose(1, 2).reshape(n, -1, self.dim)  # (N, T, dim)
        return self.proj(out)


class EncoderBlock(nn.Module):
    """Pre-norm transformer encoder block: ``x + attn(norm1(x))``, then ``x + mlp(norm2(x))``."""

    def __init__(self, dim: int, heads: int) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(dim)
        self.attn = Attention(dim, heads)
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = nn.Sequential(nn.Linear(dim, 2 * dim), nn.GELU(), nn.Linear(2 * dim, dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.norm1(x))
        x = x + self.mlp(self.norm2(x))
        return x


class TinyViT(nn.Module):
    """A small vision transformer: ``patch_embed`` (conv ``patch`` x ``patch``, stride ``patch``) to
    (image_size / patch)^2 tokens, a learnable ``cls_token`` in front, learnable ``pos_embed`` added, ``depth``
    EncoderBlocks (``blocks``), final LayerNorm (``norm``) and ``head`` on the CLS token. 32x32 with patch 4 gives 8x8
    tokens + CLS, 28x28 gives 7x7 + CLS."""

    def __init__(
        self,
        in_channels: int = 3,
        num_classes: int = 10,
        image_size: int = 32,
        patch: int = 4,
        dim: int = 32,
        depth: int = 4,
        heads: int = 4,
    ) -> None:
        super().__init__()
        if image_size % patch:
            raise ValueError(f"image_size ({image_size}) must be divisible by patch ({patch})")
        num_patches = (image_size // patch) ** 2
        self.patch_embed = nn.Conv2d(in_channels, dim, patch, stride=patch)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, dim))
        self.pos_embed = nn.Parameter(torch.zeros(1, num_patches + 1, dim))
        nn.init.trunc_normal_(self.cls_token, std=0.02)
        nn.init.trunc_normal_(self.pos_embed, std=0.02)
        self.blocks = nn.ModuleList([EncoderBlock(dim, heads) for _ in range(depth)])
        self.norm = nn.LayerNorm(dim)
        self.head = nn.Linear(dim, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.patch_embed(x).flatten(2).transpose(1, 2)  # (N, T, dim), T = (H / patch) * (W / patch)
        cls = self.cls_token.expand(x.shape[0], -1, -1)
        x = torch.cat([cls, x], dim=1) + self.pos_embed  # (N, T + 1, dim)
        for block in self.blocks:
            x = block(x)
        x = self.norm(x)
        return self.head(x[:, 0])  # the CLS token
