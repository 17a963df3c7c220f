"""CNN trunks written with torchvision's parameter names, so torchvision weight files load.

``R3D18``: torchvision's ``r3d_18`` video ResNet (stem 3x7x7, four stages of two basic blocks
of 3x3x3 convolutions). ``resnet18_layers``: the 2-D ResNet-18 stages. Widths are overridable
(``width``) for small CPU variants; ``width=64`` is the published architecture.
"""

from __future__ import annotations

import torch
from torch import nn


class _Block3d(nn.Module):
    def __init__(self, cin: int, cout: int, stride: int) -> None:
        super().__init__()
        self.conv1 = nn.Sequential(
            nn.Conv3d(cin, cout, 3, stride, 1, bias=False), nn.BatchNorm3d(cout), nn.ReLU(inplace=True)
        )
        self.conv2 = nn.Sequential(nn.Conv3d(cout, cout, 3, 1, 1, bias=False), nn.BatchNorm3d(cout))
        self.relu = nn.ReLU(inplace=True)
        self.downsample = (
            nn.Sequential(nn.Conv3d(cin, cout, 1, stride, bias=False), nn.BatchNorm3d(cout))
            if stride != 1 or cin != cout
            else None
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        return self.relu(self.conv2(self.conv1(x)) + identity)


def r3d18_features(width: int = 64) -> nn.Sequential:
    """torchvision ``r3d_18`` without its ``fc``: indices 0 stem, 1-4 stages, 5 global pool."""
    widths = [width, 2 * width, 4 * width, 8 * width]
    stem = nn.Sequential(
        nn.Conv3d(3, width, (3, 7, 7), (1, 2, 2), (1, 3, 3), bias=False), nn.BatchNorm3d(width), nn.ReLU(inplace=True)
    )
    stages, cin = [], width
    for i, w in enumerate(widths):
        stride = 1 if i == 0 else 2
        stages.append(nn.Sequential(_Block3d(cin, w, stride), _Block3d(w, w, 1)))
        cin = w
    return nn.Sequential(stem, *stages, nn.AdaptiveAvgPool3d(1))


class BasicBlock2d(nn.Module):
    """ResNet-18's basic block (two 3x3 convolutions with batch norm, a projected shortcut when the shape changes), torchvision's layout."""

    def __init__(self, cin: int, cout: int, stride: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.downsample = (
            nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))
            if stride != 1 or cin != cout
            else None
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        return self.relu(self.bn2(self.conv2(out)) + identity)


def resnet_stage(cin: int, cout: int, stride: int, blocks: int = 2) -> nn.Sequential:
    """A ResNet stage: ``blocks`` basic blocks from ``cin`` to ``cout`` channels, the first with ``stride``."""
    return nn.Sequential(BasicBlock2d(cin, cout, stride), *[BasicBlock2d(cout, cout, 1) for _ in range(blocks - 1)])


def init_resnet(module: nn.Module) -> None:
    """torchvision's ResNet initialisation (Kaiming fan-out for convolutions, BN at 1/0)."""
    for m in module.modules():
        if isinstance(m, (nn.Conv2d, nn.Conv3d)):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
        elif isinstance(m, (nn.BatchNorm2d, nn.BatchNorm3d)):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)
