"""Plain CNNs: LeNet-5, the ReLeQ LeNet, a small CIFAR-style CNN and a narrow VGG-11.

>>> import torch
>>> LeNet5(in_channels=1, num_classes=10, image_size=8)(torch.zeros(2, 1, 8, 8)).shape
torch.Size([2, 10])
"""

from __future__ import annotations

import torch
from torch import nn

from hirelc.zoo.layers import conv_bn_relu, init_conv_bn_linear, scaled, upsample_to


class LeNet5(nn.Module):
    """LeNet-5 (LeCun et al. 1998) with ReLU and max-pooling: conv6-conv16-fc120-fc84-fc.

    Designed for 28x28 (the first conv pads by 2, as for 32x32 MNIST); smaller inputs are
    upsampled to 28x28 inside the model.
    """

    def __init__(self, in_channels: int = 1, num_classes: int = 10, image_size: int = 28) -> None:
        super().__init__()
        self.resize = upsample_to(image_size, 28)
        size = max(image_size, 28)
        self.features = nn.Sequential(
            nn.Conv2d(in_channels, 6, 5, padding=2), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(6, 16, 5), nn.ReLU(), nn.MaxPool2d(2),
        )
        side = (size // 2 - 4) // 2  # after conv(pad 2)-pool-conv(5)-pool
        self.classifier = nn.Sequential(
            nn.Flatten(), nn.Linear(16 * side * side, 120), nn.ReLU(),
            nn.Linear(120, 84), nn.ReLU(), nn.Linear(84, num_classes),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(self.resize(x)))  # (B, C, H, W) -> (B, classes)


class ReLeQLeNet(nn.Module):
    """The 4-layer LeNet of the ReLeQ code: conv20 (5x5) - conv50 (5x5) - fc500 - fc.

    Each conv is followed by ReLU and 2x2 max-pooling (28x28 input -> 50x4x4 = 800
    features). Inputs smaller than 28x28 are upsampled to 28x28 inside the model.
    """

    def __init__(self, in_channels: int = 1, num_classes: int = 10, image_size: int = 28) -> None:
        super().__init__()
        self.resize = upsample_to(image_size, 28)
        size = max(image_size, 28)
        self.features = nn.Sequential(
            nn.Conv2d(in_channels, 20, 5), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(20, 50, 5), nn.ReLU(), nn.MaxPool2d(2),
        )
        side = ((size - 4) // 2 - 4) // 2
        self.classifier = nn.Sequential(
            nn.Flatten(), nn.Linear(50 * side * side, 500), nn.ReLU(), nn.Linear(500, num_classes)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(self.resize(x)))  # (B, C, H, W) -> (B, classes)


def conv_stack(cfg: list[int | str], in_channels: int, image_size: int) -> tuple[nn.Sequential, int]:
    """3x3 conv-BN-ReLU layers from a VGG-style cfg ("M" = 2x2 max-pool); returns (stack, channels).

    A pool is skipped once the feature map is down to 1 pixel, so one cfg serves 8x8 to
    32x32 (and larger) inputs; a global average pool follows in the models.
    """
    layers: list[nn.Module] = []
    channels, side = in_channels, image_size
    for item in cfg:
        if item == "M":
            if side >= 2:
                layers.append(nn.MaxPool2d(2))
                side //= 2
        else:
            layers += conv_bn_relu(channels, int(item))
            channels = int(item)
    return nn.Sequential(*layers), channels


class ConvNet(nn.Module):
    """conv stack -> global average pool -> linear classifier (SimpleNet, VGG)."""

    def __init__(self, cfg: list[int | str], in_channels: int, num_classes: int, image_size: int) -> None:
        super().__init__()
        self.features, channels = conv_stack(cfg, in_channels, image_size)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Sequential(nn.Flatten(), nn.Linear(channels, num_classes))
        init_conv_bn_linear(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.pool(self.features(x)))  # (B, C, H, W) -> (B, classes)


def simplenet_cfg(width: float = 1.0) -> list[int | str]:
    """conv32-conv32-M-conv64-conv64-M-conv128-M, channels scaled by `width`."""
    base: list[int | str] = [32, 32, "M", 64, 64, "M", 128, "M"]
    return [scaled(c, width) if isinstance(c, int) else c for c in base]


def vgg11_cfg(width: float = 0.25) -> list[int | str]:
    """VGG-11 (configuration A of Simonyan & Zisserman 2015), channels scaled by `width`."""
    full: list[int | str] = [64, "M", 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M"]
    return [scaled(c, width) if isinstance(c, int) else c for c in full]
