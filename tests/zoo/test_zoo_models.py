"""Every registered model: forward and backward on tiny batches, plus per-model structure."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from hirelc.zoo import create_model, list_models
from hirelc.zoo.vit import Attention


@pytest.mark.parametrize("name", list_models())
@pytest.mark.parametrize("in_channels, image_size", [(1, 8), (1, 28), (3, 32)])
def test_forward_backward(name: str, in_channels: int, image_size: int) -> None:
    torch.manual_seed(0)
    model = create_model(name, in_channels=in_channels, num_classes=7, image_size=image_size)
    images = torch.randn(3, in_channels, image_size, image_size)
    logits = model(images)
    assert logits.shape == (3, 7) and torch.isfinite(logits).all()
    F.cross_entropy(logits, torch.tensor([0, 3, 6])).backward()
    for param_name, param in model.named_parameters():
        assert param.grad is not None and torch.isfinite(param.grad).all(), param_name
    assert any(p.grad.abs().sum() > 0 for p in model.parameters())


@pytest.mark.parametrize("name", list_models())
def test_same_seed_same_weights(name: str) -> None:
    torch.manual_seed(3)
    a = create_model(name, 1, 10, 28)
    torch.manual_seed(3)
    b = create_model(name, 1, 10, 28)
    assert all(torch.equal(x, y) for x, y in zip(a.state_dict().values(), b.state_dict().values()))


def test_releq_lenet_matches_the_releq_code() -> None:
    model = create_model("releq_lenet", 1, 10, 28)
    convs = [m for m in model.modules() if isinstance(m, nn.Conv2d)]
    fcs = [m for m in model.modules() if isinstance(m, nn.Linear)]
    assert [(c.out_channels, c.kernel_size) for c in convs] == [(20, (5, 5)), (50, (5, 5))]
    assert [(f.in_features, f.out_features) for f in fcs] == [(800, 500), (500, 10)]
    assert sum(isinstance(m, nn.MaxPool2d) for m in model.modules()) == 2


def test_resnet20_uses_projection_shortcuts() -> None:
    model = create_model("resnet20", 3, 10, 32)
    convs = [m for m in model.modules() if isinstance(m, nn.Conv2d)]
    assert len(convs) == 1 + 18 + 2  # stem, 9 blocks x 2, two 1x1 projections
    blocks = [b for layer in (model.layer1, model.layer2, model.layer3) for b in layer]
    projections = [b.shortcut for b in blocks if not isinstance(b.shortcut, nn.Identity)]
    assert len(projections) == 2
    for shortcut in projections:
        conv, bn = shortcut
        assert conv.kernel_size == (1, 1) and conv.stride == (2, 2) and isinstance(bn, nn.BatchNorm2d)
    assert [layer[0].conv1.out_channels for layer in (model.layer1, model.layer2, model.layer3)] == [16, 32, 64]


def test_mobilenetv2_has_depthwise_convs_and_width_multiplier() -> None:
    small = create_model("mobilenetv2", 3, 10, 32, width_mult=0.35)
    default = create_model("mobilenetv2", 3, 10, 32)
    depthwise = [m for m in default.modules() if isinstance(m, nn.Conv2d) and m.groups > 1]
    assert depthwise and all(m.groups == m.in_channels == m.out_channels for m in depthwise)
    assert sum(p.numel() for p in small.parameters()) < sum(p.numel() for p in default.parameters())
    assert any(getattr(m, "use_residual", False) for m in default.modules())
    with pytest.raises(ValueError, match="width_mult"):
        create_model("mobilenetv2", 3, 10, 32, width_mult=0)


def test_vit_layout_is_timm_style() -> None:
    model = create_model("vit_tiny", 3, 10, 32)
    names = dict(model.named_modules())
    for name in ("patch_embed.proj", "blocks.0.attn.qkv", "blocks.0.attn.proj", "blocks.0.mlp.fc1",
                 "blocks.0.mlp.fc2", "blocks.0.norm1", "norm", "head"):
        assert name in names, name
    attn = names["blocks.0.attn"]
    assert isinstance(attn, Attention) and attn.num_heads * attn.head_dim == attn.qkv.in_features
    assert attn.qkv.out_features == 3 * attn.qkv.in_features
    assert model.patch_embed.proj.kernel_size == (1, 1)  # the default conv stem
    plain = create_model("vit_tiny", 3, 10, 32, stem="patch")
    assert plain.patch_embed.proj.kernel_size == plain.patch_embed.proj.stride == (4, 4)
    assert model.pos_embed.shape == (1, 8 * 8 + 1, model.cls_token.shape[-1])


@pytest.mark.parametrize("stem", ["patch", "conv"])
def test_vit_stems_give_the_same_token_grid(stem: str) -> None:
    model = create_model("vit_tiny", 3, 10, 32, stem=stem)
    tokens = model.patch_embed(torch.zeros(2, 3, 32, 32))
    assert tokens.shape == (2, 64, model.cls_token.shape[-1])  # 8x8 patches of 4x4 pixels
    assert isinstance(model.patch_embed.proj, nn.Conv2d)
    with pytest.raises(ValueError, match="stem must be 'patch' or 'conv'"):
        create_model("vit_tiny", 3, 10, 32, stem="hybrid")


def test_vit_pads_sizes_that_are_not_a_patch_multiple() -> None:
    model = create_model("vit_tiny", 1, 10, 30)
    assert model(torch.zeros(2, 1, 30, 30)).shape == (2, 10)
    assert model.pos_embed.shape[1] == 8 * 8 + 1


def test_attention_heads_can_be_removed() -> None:
    """Dropping heads from qkv/proj (and num_heads) equals zeroing them in the full module."""
    torch.manual_seed(0)
    attn = Attention(dim=32, num_heads=4)
    x = torch.randn(2, 5, 32)
    keep, d = [0, 2], attn.head_dim
    rows = torch.cat([torch.arange(part * 32 + h * d, part * 32 + (h + 1) * d) for part in range(3) for h in keep])
    cols = torch.cat([torch.arange(h * d, (h + 1) * d) for h in keep])
    pruned = Attention(dim=32, num_heads=4)
    pruned.qkv = nn.Linear(32, len(rows))
    pruned.proj = nn.Linear(len(cols), 32)
    pruned.num_heads = len(keep)
    with torch.no_grad():
        pruned.qkv.weight.copy_(attn.qkv.weight[rows])
        pruned.qkv.bias.copy_(attn.qkv.bias[rows])
        pruned.proj.weight.copy_(attn.proj.weight[:, cols])
        pruned.proj.bias.copy_(attn.proj.bias)
        masked_proj = attn.proj.weight.clone()
        masked_proj[:, [c for c in range(32) if c not in cols.tolist()]] = 0
        attn.proj.weight.copy_(masked_proj)
    torch.testing.assert_close(pruned(x), attn(x), atol=1e-5, rtol=1e-5)


def test_cnn1d_has_exactly_five_kernels_and_takes_signals_of_any_length() -> None:
    from hirelc.inventory import inspect

    model = create_model("cnn1d", in_channels=1, num_classes=10, image_size=40).eval()
    convs = [m for m in model.modules() if isinstance(m, nn.Conv1d)]
    assert [(c.in_channels, c.out_channels, c.kernel_size, c.stride) for c in convs] == [
        (1, 32, (5,), (1,)), (32, 32, (3,), (2,)), (32, 64, (3,), (2,)), (64, 64, (3,), (2,)),
    ]
    inv = inspect(model, torch.randn(2, 1, 40))
    assert [(s.name, s.kind) for s in inv] == [
        ("features.0", "conv1d"), ("features.3", "conv1d"), ("features.6", "conv1d"), ("features.9", "conv1d"),
        ("classifier.1", "linear"),
    ]
    assert inv.prunable_names() == ["features.0", "features.3", "features.6", "features.9"]
    assert inv.spec("features.3").n_macs == 20 * 32 * 32 * 3  # 40 samples -> 20 after stride 2
    assert model(torch.randn(3, 1, 100)).shape == (3, 10)
    with pytest.raises(ValueError, match="widths must be four positive integers"):
        type(model)(1, 10, widths=(8, 8, 8))


def test_cnn1d_reads_images_as_raster_scanned_signals() -> None:
    model = create_model("cnn1d", in_channels=2, num_classes=4, image_size=8).eval()
    images = torch.randn(3, 2, 8, 8)
    with torch.no_grad():
        torch.testing.assert_close(model(images), model(images.reshape(3, 2, 64)), rtol=0, atol=0)


@pytest.mark.slow
def test_cnn1d_recipe_reaches_90_percent_on_mnist1d() -> None:
    from hirelc.data import load_dataset
    from hirelc.train import train_baseline

    _, info = train_baseline("cnn1d", load_dataset("mnist1d"), seed=0, progress=False, cache=False)
    assert info.test_accuracy >= 0.90 and info.val_accuracy >= 0.90, info.summary()
