"""Registered zoo entries: one 3-line factory per model, with its default training recipe.

Recipes are tuned to train on a 2-core CPU on `mnist5k` (3,000 training images; `cnn1d`
on `mnist1d`'s 3,000 training signals); see benchmarks/train_baselines.py. All models take
1- or 3-channel inputs; sizes down to 8x8 work (the LeNets upsample small inputs to 28x28
inside the model; `cnn1d` takes signals (B, C, L) and reads images as raster scans).

>>> from hirelc.zoo import create_model, list_models
>>> list_models()
['cnn1d', 'lenet5', 'mobilenetv2', 'releq_lenet', 'resnet20', 'simplenet', 'vgg11', 'vit_tiny']
"""

from __future__ import annotations

from torch import nn

from hirelc.zoo.cnn import ConvNet, LeNet5, ReLeQLeNet, simplenet_cfg, vgg11_cfg
from hirelc.zoo.cnn1d import CNN1d
from hirelc.zoo.mobilenet import MobileNetV2
from hirelc.zoo.recipe import TrainRecipe
from hirelc.zoo.registry import register_model
from hirelc.zoo.resnet import ResNet
from hirelc.zoo.vit import VisionTransformer


# Small random rotations/zooms/shifts: the digits' natural variation, worth ~1 point on mnist5k.
DIGIT_AUGMENT = {"shift": 2, "rotate": 10.0, "scale": 0.1}


@register_model(recipe=TrainRecipe(epochs=20, batch_size=64, lr=3e-3, weight_decay=1e-4, **DIGIT_AUGMENT))
def lenet5(in_channels: int = 1, num_classes: int = 10, image_size: int = 28) -> nn.Module:
    """LeNet-5: conv6-conv16-fc120-fc84-fc with ReLU and max-pooling."""
    return LeNet5(in_channels, num_classes, image_size)


@register_model(recipe=TrainRecipe(epochs=15, batch_size=64, lr=1e-3, weight_decay=1e-4, **DIGIT_AUGMENT))
def releq_lenet(in_channels: int = 1, num_classes: int = 10, image_size: int = 28) -> nn.Module:
    """The ReLeQ code's LeNet: conv20 (5x5) - conv50 (5x5) - fc500 - fc, with max-pooling."""
    return ReLeQLeNet(in_channels, num_classes, image_size)


@register_model(recipe=TrainRecipe(epochs=15, optimizer="sgd", lr=0.05, weight_decay=5e-4, shift=2))
def simplenet(
    in_channels: int = 3, num_classes: int = 10, image_size: int = 32, width: float = 1.0
) -> nn.Module:
    """Small CIFAR-style CNN: conv32-conv32-pool-conv64-conv64-pool-conv128-pool-fc, BatchNorm."""
    return ConvNet(simplenet_cfg(width), in_channels, num_classes, image_size)


@register_model(recipe=TrainRecipe(epochs=15, optimizer="sgd", lr=0.05, weight_decay=5e-4, shift=2))
def vgg11(
    in_channels: int = 3, num_classes: int = 10, image_size: int = 32, width: float = 0.25
) -> nn.Module:
    """VGG-11 with BatchNorm, channels x `width` (default 0.25: 16..128), global-pool classifier."""
    return ConvNet(vgg11_cfg(width), in_channels, num_classes, image_size)


@register_model(recipe=TrainRecipe(epochs=15, optimizer="sgd", lr=0.1, weight_decay=5e-4, shift=2))
def resnet20(in_channels: int = 3, num_classes: int = 10, image_size: int = 32) -> nn.Module:
    """ResNet-20 (CIFAR-style, 16/32/64 channels, BatchNorm, 1x1-conv projection shortcuts)."""
    return ResNet((3, 3, 3), in_channels, num_classes)


@register_model(recipe=TrainRecipe(epochs=15, optimizer="sgd", lr=0.05, weight_decay=4e-5, shift=2))
def mobilenetv2(
    in_channels: int = 3, num_classes: int = 10, image_size: int = 32, width_mult: float = 0.5
) -> nn.Module:
    """Small MobileNet-V2: inverted residuals with depthwise convs, width multiplier (default 0.5)."""
    return MobileNetV2(in_channels, num_classes, image_size, width_mult)


VIT_RECIPE = TrainRecipe(
    epochs=30, batch_size=32, lr=2e-3, weight_decay=0.05, warmup_epochs=2, **DIGIT_AUGMENT
)


@register_model(recipe=VIT_RECIPE)
def vit_tiny(
    in_channels: int = 3, num_classes: int = 10, image_size: int = 32, **kwargs: int | float | str
) -> nn.Module:
    """Small ViT: 4x4-pixel tokens from a conv stem, dim 64, depth 6, 4 heads, MLP ratio 2, cls token.

    `stem="patch"` gives the plain patchify ViT; on mnist5k it learns ~5x slower (47% val
    after 10 epochs vs 92% with the conv stem), too slow for the CPU budget.
    """
    options = {"dim": 64, "depth": 6, "num_heads": 4, "mlp_ratio": 2.0, "stem": "conv", **kwargs}
    return VisionTransformer(image_size, in_channels, num_classes, **options)  # type: ignore[arg-type]


@register_model(recipe=TrainRecipe(epochs=20, batch_size=64, lr=3e-3, weight_decay=1e-4))
def cnn1d(in_channels: int = 1, num_classes: int = 10, image_size: int = 40) -> nn.Module:
    """1-D CNN for signals (mnist1d): four Conv1d-BN-ReLU (32-32-64-64), global pool, fc; 5 kernels.

    image_size (the signal length) is accepted for the common factory signature; the net
    does not depend on it (global pooling). No augmentation: mnist1d's generator already
    shifts, scales, shears and adds noise.
    """
    return CNN1d(in_channels, num_classes)
