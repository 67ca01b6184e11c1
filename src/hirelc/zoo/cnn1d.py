"""A small 1-D CNN for signals such as MNIST-1D: exactly five kernels (four Conv1d + a Linear head).

Five kernels keep the full bitwidth landscape small enough to enumerate ({2,3,4,5,8}^5 =
3,125 plans), while the signals are hard enough that the plan matters.

>>> import torch
>>> CNN1d(in_channels=1, num_classes=10)(torch.zeros(2, 1, 40)).shape
torch.Size([2, 10])
>>> CNN1d(in_channels=3, num_classes=7)(torch.zeros(2, 3, 8, 8)).shape  # images: raster-scanned
torch.Size([2, 7])
"""

from __future__ import annotations

import torch
from torch import nn


def conv1d_bn_relu(in_channels: int, out_channels: int, kernel_size: int, stride: int = 1) -> list[nn.Module]:
    """Conv1d (no bias, BN follows) + BatchNorm1d + ReLU, as a list to splice into a Sequential."""
    conv = nn.Conv1d(in_channels, out_channels, kernel_size, stride, padding=kernel_size // 2, bias=False)
    return [conv, nn.BatchNorm1d(out_channels), nn.ReLU()]


class CNN1d(nn.Module):
    """conv32 (k5) - conv32 (k3, /2) - conv64 (k3, /2) - conv64 (k3, /2) - global average pool - fc.

    Every conv is followed by BatchNorm and ReLU. The global pool makes the net independent
    of the signal length. Images (B, C, H, W) are read as raster-scanned signals of length
    H*W (as in "sequential MNIST"), so the net also runs on image datasets; `flatten(2)` is
    a no-op on signals (B, C, L) and keeps the forward traceable by torch.fx (no branch).
    """

    def __init__(self, in_channels: int = 1, num_classes: int = 10, widths: tuple[int, ...] = (32, 32, 64, 64)):
        super().__init__()
        if len(widths) != 4 or any(isinstance(w, bool) or not isinstance(w, int) or w < 1 for w in widths):
            raise ValueError(f"widths must be four positive integers (one per conv), got {widths!r}")
        a, b, c, d = widths
        self.features = nn.Sequential(
            *conv1d_bn_relu(in_channels, a, 5),
            *conv1d_bn_relu(a, b, 3, stride=2),
            *conv1d_bn_relu(b, c, 3, stride=2),
            *conv1d_bn_relu(c, d, 3, stride=2),
        )
        self.pool = nn.AdaptiveAvgPool1d(1)
        self.classifier = nn.Sequential(nn.Flatten(), nn.Linear(d, num_classes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.flatten(2)  # (B, C, L) unchanged; (B, C, H, W) -> (B, C, H*W)
        return self.classifier(self.pool(self.features(x)))  # (B, classes)
