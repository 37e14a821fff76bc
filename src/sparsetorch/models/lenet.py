"""LeNet-300-100 and LeNet-5 for 1x28x28 images (LeCun et al. 1998, "Gradient-based learning applied
to document recognition").

Both are the usual modern renditions used throughout the pruning literature (Han et al. 2015,
Frankle & Carbin 2019): ReLU instead of scaled tanh, max pooling instead of trainable subsampling,
and a plain 10-way linear output instead of RBF units. LeNet-5 pads the first convolution by 2 so a
28x28 input behaves like the paper's 32x32 one (feature maps 28 -> 14 -> 10 -> 5).

Modules are flat and named (`fc1`, `conv2`, ...), so pruning targets read as FQNs; `fc3` is the
final classifier (`classifier_fqn`) and is left dense by default pruning targets.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from sparsetorch.models.registry import MODELS, ModelSpec

PAPER = "LeCun et al. 1998, Gradient-based learning applied to document recognition"


@dataclass(frozen=True)
class MLPConfig:
    """LeNet-300-100: `in_features -> hidden[0] -> hidden[1] -> num_classes`, ReLU between."""

    in_features: int = 784
    hidden: tuple[int, int] = (300, 100)
    num_classes: int = 10

    def __post_init__(self) -> None:
        if len(self.hidden) != 2 or min(self.hidden) < 1:
            raise ValueError(f"hidden must be two positive widths, got {self.hidden!r}")


class LeNet300100(nn.Module):
    """Fully-connected LeNet-300-100; flattens its input, so `(B, 1, 28, 28)` or `(B, 784)` both work."""

    classifier_fqn = "fc3"

    def __init__(self, config: MLPConfig | None = None) -> None:
        super().__init__()
        self.config = config = config or MLPConfig()
        self.flatten = nn.Flatten()
        self.fc1 = nn.Linear(config.in_features, config.hidden[0])
        self.fc2 = nn.Linear(config.hidden[0], config.hidden[1])
        self.fc3 = nn.Linear(config.hidden[1], config.num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.flatten(x)  # (B, 1, 28, 28) -> (B, 784)
        x = F.relu(self.fc1(x))
        x = F.relu(self.fc2(x))
        return self.fc3(x)  # (B, num_classes) logits


@dataclass(frozen=True)
class LeNet5Config:
    """LeNet-5 for square `in_channels x image_size x image_size` inputs."""

    in_channels: int = 1
    image_size: int = 28
    num_classes: int = 10

    def __post_init__(self) -> None:
        if self.image_size < 12 or self.image_size % 4:
            raise ValueError(f"image_size must be a multiple of 4 and >= 12, got {self.image_size}")


class LeNet5(nn.Module):
    """conv 6@5x5 (pad 2) -> pool -> conv 16@5x5 -> pool -> fc 120 -> fc 84 -> fc 10, ReLU."""

    classifier_fqn = "fc3"

    def __init__(self, config: LeNet5Config | None = None) -> None:
        super().__init__()
        self.config = config = config or LeNet5Config()
        self.conv1 = nn.Conv2d(config.in_channels, 6, kernel_size=5, padding=2)
        self.conv2 = nn.Conv2d(6, 16, kernel_size=5)
        side = config.image_size // 2 - 4  # 28 -> pool 14 -> conv 10
        side //= 2  # -> pool 5
        self.fc1 = nn.Linear(16 * side * side, 120)
        self.fc2 = nn.Linear(120, 84)
        self.fc3 = nn.Linear(84, config.num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.max_pool2d(F.relu(self.conv1(x)), 2)  # (B, 6, 14, 14)
        x = F.max_pool2d(F.relu(self.conv2(x)), 2)  # (B, 16, 5, 5)
        x = x.flatten(1)  # (B, 400)
        x = F.relu(self.fc1(x))
        x = F.relu(self.fc2(x))
        return self.fc3(x)  # (B, num_classes) logits


def _lenet_300_100(**config) -> LeNet300100:
    return LeNet300100(MLPConfig(**config))


def _lenet_5(**config) -> LeNet5:
    return LeNet5(LeNet5Config(**config))


MODELS.register(
    "lenet-300-100",
    ModelSpec(
        name="lenet-300-100",
        factory=_lenet_300_100,
        summary="MLP 784-300-100-10 for 28x28 grayscale images (266k params)",
        task="image-classification",
        input_kind="image",
        input_shape=(1, 28, 28),
        paper=PAPER,
    ),
)
MODELS.register(
    "lenet-5",
    ModelSpec(
        name="lenet-5",
        factory=_lenet_5,
        summary="CNN conv6-pool-conv16-pool-120-84-10 for 1x28x28 images (62k params)",
        task="image-classification",
        input_kind="image",
        input_shape=(1, 28, 28),
        paper=PAPER,
    ),
)
