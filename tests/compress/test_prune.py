"""hirelc.compress.prune: ranking, kept indices, masks and physical removal."""

from __future__ import annotations

import copy

import pytest
import torch
from torch import nn

from hirelc.compress.prune import (
    apply_masks_,
    group_importance,
    kept_indices,
    kernel_slices,
    prune_physically,
    select_kept,
)
from hirelc.inventory import ChannelGroup, inspect
from hirelc.plan import LayerConfig, Plan
from inventory.toy_models import LeNet, ResNetish, TinyViT, randomize_batchnorm_


def test_select_kept_count_rule_order_and_ties():
    scores = torch.tensor([0.5, 3.0, 1.0, 2.0, 1.0])
    assert select_kept(scores, 0.5).tolist() == [1, 2, 3]  # floor(2.5 + 0.5) = 3; tie -> lower index
    assert select_kept(scores, [0.2, 0.6]).tolist() == [1, 2, 3]  # the largest count asked wins
    assert select_kept(scores, 0.01).tolist() == [1]  # never zero
    assert select_kept(scores, 1.0).tolist() == [0, 1, 2, 3, 4]


def test_group_importance_l1_l2_and_heads():
    net = nn.Sequential(nn.Linear(2, 2, bias=False), nn.Linear(2, 2, bias=False))
    with torch.no_grad():
        net[0].weight.copy_(torch.tensor([[3.0, -4.0], [1.0, 0.0]]))
        net[1].weight.copy_(torch.tensor([[1.0, 1.0], [0.0, -2.0]]))
    tied = ChannelGroup("0", "channels", 2, ("0", "1"))  # summed over producers
    assert group_importance(net, tied, "l1").tolist() == [7.0 + 2.0, 1.0 + 2.0]
    assert group_importance(net, tied, "l2").tolist() == pytest.approx([5.0 + 2**0.5, 1.0 + 2.0])
    qkv = nn.Sequential(nn.Linear(1, 6, bias=False))  # 2 heads x head_dim 1 x [q, k, v]
    with torch.no_grad():
        qkv[0].weight.copy_(torch.tensor([[1.0], [10.0], [2.0], [20.0], [3.0], [30.0]]))
    heads = ChannelGroup("0", "heads", 2, ("0",), unit=1, row_chunks=3)
    assert group_importance(qkv, heads).tolist() == [6.0, 60.0]
    with pytest.raises(ValueError, match="criterion"):
        group_importance(net, tied, "fisher")


def test_residual_group_keeps_the_largest_count_asked():
    model = ResNetish()
    inv = inspect(model, torch.randn(2, 3, 8, 8))
    plan = Plan({"block2.conv2": LayerConfig(8, keep_ratio=0.25),
                 "block2.shortcut.0": LayerConfig(8, keep_ratio=0.5),
                 "block3.project": LayerConfig(8, keep_ratio=0.3)})
    kept = kept_indices(model, inv.groups, plan)
    assert list(kept) == ["block2.conv2"] and len(kept["block2.conv2"]) == 6  # 12 * 0.5
    # a producer left out of the plan asks to keep everything
    plan = Plan({"block2.conv2": LayerConfig(8, keep_ratio=0.25)})
    assert kept_indices(model, inv.groups, plan) == {}


def test_supplied_importance_decides_and_is_checked():
    model = LeNet()
    inv = inspect(model, torch.randn(1, 1, 28, 28))
    plan = Plan({"conv1": LayerConfig(8, keep_ratio=0.5)})
    fisher = {"conv1": torch.tensor([0.0, 5.0, 0.0, 4.0, 3.0, 0.0])}
    assert kept_indices(model, inv.groups, plan, fisher)["conv1"].tolist() == [1, 3, 4]
    with pytest.raises(ValueError, match="6 channels"):
        kept_indices(model, inv.groups, plan, {"conv1": torch.ones(5)})


def _kept(model: nn.Module, inv, ratio: float) -> dict[str, torch.Tensor]:
    return kept_indices(model, inv.groups, Plan.uniform(inv, bits=8, keep_ratio=ratio), "l2")


@pytest.mark.parametrize("make, shape", [(LeNet, (3, 1, 28, 28)), (ResNetish, (3, 3, 8, 8)), (TinyViT, (3, 3, 8, 8))])
@pytest.mark.parametrize("ratio", [0.3, 0.7])
def test_physical_removal_computes_what_masking_computes(make, shape, ratio):
    model = randomize_batchnorm_(make()).eval()
    x = torch.randn(shape)
    inv = inspect(model, x)
    kept = _kept(model, inv, ratio)
    assert kept  # something is pruned
    masked = apply_masks_(copy.deepcopy(model), kept, inv.groups)
    small = prune_physically(model, kept, inv.groups)
    assert sum(p.numel() for p in small.parameters()) < sum(p.numel() for p in model.parameters())
    torch.testing.assert_close(small(x), masked(x), atol=1e-5, rtol=1e-5)


def test_physical_removal_updates_module_attributes_and_leaves_the_original():
    model = randomize_batchnorm_(ResNetish())
    before = {k: v.clone() for k, v in model.state_dict().items()}
    inv = inspect(model, torch.randn(2, 3, 8, 8))
    kept = _kept(model, inv, 0.5)
    small = prune_physically(model, kept, inv.groups)
    assert (small.stem.out_channels, small.bn.num_features) == (4, 4)
    assert small.bn.running_mean.shape == (4,)
    assert (small.block1.conv1.in_channels, small.block2.shortcut[0].in_channels) == (4, 4)
    dw = small.block3.dw
    assert dw.in_channels == dw.out_channels == dw.groups == 12 and dw.weight.shape == (12, 1, 3, 3)
    assert small.fc.in_features == 6 and small.fc.out_features == 5
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())


def test_heads_and_flatten_multiplier_are_removed():
    vit = TinyViT(dim=16, heads=4)
    inv = inspect(vit, torch.randn(2, 3, 8, 8))
    kept = {"blocks.0.attn.qkv": torch.tensor([1, 3])}
    small = prune_physically(vit, kept, inv.groups)
    attn = small.blocks[0].attn
    assert attn.num_heads == 2 and attn.qkv.weight.shape == (24, 16) and attn.qkv.bias.shape == (24,)
    assert attn.proj.weight.shape == (16, 8) and attn.proj.in_features == 8
    rows = inv.groups["blocks.0.attn.qkv"].rows(kept["blocks.0.attn.qkv"])
    torch.testing.assert_close(attn.qkv.weight, vit.blocks[0].attn.qkv.weight[rows])
    lenet = LeNet()
    inv = inspect(lenet, torch.randn(1, 1, 28, 28))
    small = prune_physically(lenet, {"conv2": torch.tensor([0, 5])}, inv.groups)
    assert small.fc1.weight.shape == (32, 2 * 16)
    torch.testing.assert_close(small.fc1.weight[:, 16:], lenet.fc1.weight[:, 80:96])


def test_masks_and_refusals():
    model = LeNet()
    inv = inspect(model, torch.randn(1, 1, 28, 28))
    sl = kernel_slices(inv.groups, {"conv1": torch.tensor([0, 2])})
    assert sl["conv1"].rows.tolist() == [0, 2] and sl["conv2"].cols.tolist() == [0, 2]
    mask = sl["conv2"].mask((16, 6, 5, 5))
    assert mask.shape == (16, 6, 5, 5) and mask[:, [0, 2]].all() and not mask[:, [1, 3, 4, 5]].any()
    with pytest.raises(ValueError, match="'fc3' cannot be pruned"):
        prune_physically(model, {"fc3": torch.tensor([0])}, inv.groups)
    with pytest.raises(ValueError, match="'nope'"):
        prune_physically(model, {"nope": torch.tensor([0])}, inv.groups)
