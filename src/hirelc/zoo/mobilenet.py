"""A small MobileNet-V2 (Sandler et al. 2018) for 8..32 px images: inverted residuals, depthwise convs.

Changes to the ImageNet network for small images on a CPU: a stride-1 stem (so 28..32 px
inputs are downsampled 16x, not 32x), fewer repeated blocks, and a stride-2 block becomes
stride-1 once the feature map is down to one pixel.

>>> import torch
>>> MobileNetV2(in_channels=3, num_classes=10, image_size=32)(torch.zeros(2, 3, 32, 32)).shape
torch.Size([2, 10])
"""

from __future__ import annotations

import torch
from torch import nn

from hirelc.zoo.layers import init_conv_bn_linear

# (expansion t, output channels c, repeats n, first stride s), as in Table 2 of the paper
# with the repeats cut down (1, 2, 3, 4, 3, 3, 1 -> 1, 2, 2, 2, 1, 1, 1) for CPU training.
# The stride-1 stem plus these strides: 28x28 -> 14 -> 7 -> 4 -> 2.
SMALL_SETTINGS = (
    (1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 2, 2), (6, 64, 2, 2), (6, 96, 1, 1), (6, 160, 1, 2), (6, 320, 1, 1),
)


def make_divisible(value: float, divisor: int = 8) -> int:
    """Round channels to a multiple of `divisor`, never below 90% of `value` (torchvision's rule)."""
    rounded = max(divisor, int(value + divisor / 2) // divisor * divisor)
    return rounded + divisor if rounded < 0.9 * value else rounded


def conv_bn_relu6(in_ch: int, out_ch: int, kernel: int, stride: int = 1, groups: int = 1) -> nn.Sequential:
    """Conv-BN-ReLU6 (depthwise when groups == in_ch == out_ch)."""
    return nn.Sequential(
        nn.Conv2d(in_ch, out_ch, kernel, stride, padding=kernel // 2, groups=groups, bias=False),
        nn.BatchNorm2d(out_ch), nn.ReLU6(),
    )


class InvertedResidual(nn.Module):
    """1x1 expand -> 3x3 depthwise -> 1x1 linear projection, residual when shapes match."""

    def __init__(self, in_ch: int, out_ch: int, stride: int, expansion: int) -> None:
        super().__init__()
        hidden = in_ch * expansion
        layers: list[nn.Module] = [conv_bn_relu6(in_ch, hidden, 1)] if expansion != 1 else []
        layers += [
            conv_bn_relu6(hidden, hidden, 3, stride, groups=hidden),
            nn.Conv2d(hidden, out_ch, 1, bias=False), nn.BatchNorm2d(out_ch),
        ]
        self.conv = nn.Sequential(*layers)
        self.use_residual = stride == 1 and in_ch == out_ch

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.conv(x) if self.use_residual else self.conv(x)


class MobileNetV2(nn.Module):
    """Stem conv -> inverted residual blocks -> 1x1 conv -> avg pool -> fc; widths x `width_mult`."""

    def __init__(
        self, in_channels: int = 3, num_classes: int = 10, image_size: int = 32, width_mult: float = 0.5,
        settings: tuple[tuple[int, int, int, int], ...] = SMALL_SETTINGS,
    ) -> None:
        super().__init__()
        if not 0.0 < width_mult <= 4.0:
            raise ValueError(f"width_mult must be in (0, 4], got {width_mult!r}")
        channels = make_divisible(32 * width_mult)
        layers: list[nn.Module] = [conv_bn_relu6(in_channels, channels, 3)]
        side = image_size
        for t, c, n, s in settings:
            out = make_divisible(c * width_mult)
            for i in range(n):
                stride = s if i == 0 and side >= 2 else 1
                side = (side + 1) // stride if stride == 2 else side
                layers.append(InvertedResidual(channels, out, stride, t))
                channels = out
        self.last_channels = make_divisible(1280 * width_mult)
        layers.append(conv_bn_relu6(channels, self.last_channels, 1))
        self.features = nn.Sequential(*layers)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Sequential(nn.Flatten(), nn.Linear(self.last_channels, num_classes))
        init_conv_bn_linear(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.pool(self.features(x)))  # (B, C, H, W) -> (B, classes)
