"""ResNet-20, the CIFAR ResNet of He et al. 2016 ("Deep residual learning for image recognition",
section 4.2), adapted to 1x28x28 grayscale input.

Architecture: 3x3 conv (16 ch) -> 3 stages of n basic blocks (16 / 32 / 64 channels, the first block
of stages 2 and 3 strides by 2) -> global average pool -> linear classifier; depth = 6n + 2 (n = 3).
On 28x28 inputs the stages run at 28, 14 and 7 pixels (the paper: 32, 16, 8); nothing else changes.

Shortcuts: option A by default, as the paper uses for CIFAR: when a block changes shape the identity
is subsampled with stride 2 and zero-padded in channels, so shortcuts hold no parameters (0.27M
parameters in total, as in the paper's Table 6) and every prunable weight sits in a residual branch.
`shortcut="B"` uses a 1x1 conv + BN projection instead (named `layerN.0.shortcut.0`).

`width` multiplies all channel counts (`round(16 * width)` ...). `fc` is the final classifier.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

from sparsetorch.models.registry import MODELS, ModelSpec


@dataclass(frozen=True)
class ResNetConfig:
    """CIFAR-style ResNet of depth `6n + 2`."""

    depth: int = 20
    width: float = 1.0
    in_channels: int = 1
    num_classes: int = 10
    shortcut: Literal["A", "B"] = "A"

    def __post_init__(self) -> None:
        if self.depth < 8 or (self.depth - 2) % 6:
            raise ValueError(f"depth must be 6n + 2 with n >= 1 (20, 32, 44, 56, ...), got {self.depth}")
        if self.width <= 0:
            raise ValueError(f"width must be positive, got {self.width}")
        if self.shortcut not in ("A", "B"):
            raise ValueError(f"shortcut must be 'A' (zero-pad identity) or 'B' (1x1 conv): {self.shortcut!r}")


class PadShortcut(nn.Module):
    """Option-A shortcut: subsample by `stride`, zero-pad channels up to `out_channels`; no parameters."""

    def __init__(self, *, stride: int, in_channels: int, out_channels: int) -> None:
        super().__init__()
        self.stride = stride
        extra = out_channels - in_channels
        self.pad = (extra // 2, extra - extra // 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x[:, :, :: self.stride, :: self.stride]  # (B, C_in, H/s, W/s)
        return F.pad(x, (0, 0, 0, 0, *self.pad))  # (B, C_out, H/s, W/s)


class BasicBlock(nn.Module):
    """Two 3x3 conv-BN layers with ReLU and a shortcut: `relu(bn2(conv2(relu(bn1(conv1 x)))) + sc(x))`."""

    def __init__(self, in_channels: int, out_channels: int, *, stride: int, shortcut: str) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(out_channels)
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, stride=1, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(out_channels)
        self.shortcut: nn.Module = nn.Identity()
        if stride != 1 or in_channels != out_channels:
            if shortcut == "A":
                self.shortcut = PadShortcut(stride=stride, in_channels=in_channels, out_channels=out_channels)
            else:
                self.shortcut = nn.Sequential(
                    nn.Conv2d(in_channels, out_channels, 1, stride=stride, bias=False),
                    nn.BatchNorm2d(out_channels),
                )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return F.relu(out + self.shortcut(x))


class ResNet(nn.Module):
    """CIFAR ResNet (He et al. 2016) for small grayscale images; see the module docstring."""

    classifier_fqn = "fc"

    def __init__(self, config: ResNetConfig | None = None) -> None:
        super().__init__()
        self.config = config = config or ResNetConfig()
        n = (config.depth - 2) // 6
        widths = [max(1, round(c * config.width)) for c in (16, 32, 64)]
        self.conv1 = nn.Conv2d(config.in_channels, widths[0], 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(widths[0])
        in_channels = widths[0]
        stages = []
        for i, out_channels in enumerate(widths):
            blocks = []
            for j in range(n):
                stride = 2 if i > 0 and j == 0 else 1
                blocks.append(BasicBlock(in_channels, out_channels, stride=stride, shortcut=config.shortcut))
                in_channels = out_channels
            stages.append(nn.Sequential(*blocks))
        self.layer1, self.layer2, self.layer3 = stages
        self.fc = nn.Linear(widths[2], config.num_classes)
        for m in self.modules():  # He init for convs, as in the paper
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.relu(self.bn1(self.conv1(x)))  # (B, 16w, 28, 28)
        x = self.layer3(self.layer2(self.layer1(x)))  # (B, 64w, 7, 7)
        x = x.mean(dim=(2, 3))  # global average pool -> (B, 64w)
        return self.fc(x)  # (B, num_classes) logits


def _resnet_20(**config) -> ResNet:
    return ResNet(ResNetConfig(**config))


MODELS.register(
    "resnet-20",
    ModelSpec(
        name="resnet-20",
        factory=_resnet_20,
        summary="CIFAR ResNet-20 (16/32/64 ch, option-A shortcuts) for 1x28x28 images (0.27M params)",
        task="image-classification",
        input_kind="image",
        input_shape=(1, 28, 28),
        paper="He et al. 2016, Deep residual learning for image recognition",
    ),
)
