"""Small building blocks shared by the zoo models."""

from __future__ import annotations

from torch import nn


def upsample_to(image_size: int, min_size: int) -> nn.Module:
    """Bilinear upsampling to `min_size` for inputs smaller than a model's design size, else identity.

    Lets fixed-geometry models (the LeNets) take 8x8 digits; it has no weights, so it
    changes nothing that hirelc compresses.
    """
    if image_size >= min_size:
        return nn.Identity()
    return nn.Upsample(size=(min_size, min_size), mode="bilinear", align_corners=False)


def conv_bn_relu(
    in_channels: int, out_channels: int, kernel_size: int = 3, stride: int = 1
) -> list[nn.Module]:
    """Conv (no bias, BN follows) + BatchNorm + ReLU, as a list to splice into a Sequential."""
    conv = nn.Conv2d(in_channels, out_channels, kernel_size, stride, padding=kernel_size // 2, bias=False)
    return [conv, nn.BatchNorm2d(out_channels), nn.ReLU()]


def scaled(channels: int, width: float, minimum: int = 4) -> int:
    """`channels * width` rounded to a multiple of 4 (>= minimum), for width multipliers."""
    return max(minimum, int(channels * width + 2) // 4 * 4)


def init_conv_bn_linear(model: nn.Module) -> None:
    """Kaiming-normal convs and unit BatchNorm (linears keep torch defaults): the usual CNN init."""
    for m in model.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, (nn.BatchNorm2d, nn.GroupNorm)):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)
