"""The residual stream (the model width every block reads and writes) pruned as one group
through the constructs of tests/inventory/arch_models.py: removed == masked everywhere."""

from __future__ import annotations

import copy

import pytest
import torch
from torch import nn

from hirelc.compress.apply import apply_plan, to_physical
from hirelc.compress.mha import HeadPrunedMHA
from hirelc.compress.slots import PadInput
from hirelc.compress.prune import apply_masks_, prune_physically
from hirelc.inventory import inspect
from hirelc.plan import Plan
from inventory.arch_models import TorchEncoder, WidthViT


def _removed_equals_masked(model: nn.Module, x: torch.Tensor, gid: str, kept: torch.Tensor) -> nn.Module:
    inv = inspect(model, x)
    assert inv.groups[gid].prunable, inv.groups[gid].reason
    with torch.no_grad():
        masked = apply_masks_(copy.deepcopy(model), {gid: kept}, inv.groups)(x)
        small = prune_physically(model, {gid: kept}, inv.groups)
        torch.testing.assert_close(small(x), masked, rtol=0, atol=1e-5)
    return small


@pytest.mark.parametrize("norm_first", [False, True])
def test_torch_encoder_layer_stream_is_written_by_out_proj_and_linear2_and_read_by_in_proj_and_linear1(norm_first):
    torch.manual_seed(0)
    model, x = TorchEncoder().eval(), torch.randn(2, 6, 12)
    model.encoder.norm_first = norm_first
    stream = inspect(model, x).groups["embed"]
    assert stream.producers == ("embed", "encoder.self_attn.out_proj", "encoder.linear2")
    assert {c for c, _ in stream.consumers} == {"encoder.self_attn.in_proj", "encoder.linear1", "head"}
    assert set(stream.layernorms) == {"encoder.norm1", "encoder.norm2"}
    small = _removed_equals_masked(model, x, "embed", torch.tensor([0, 3, 4, 9, 17, 20, 30, 31]))
    attn = small.encoder.self_attn  # a query narrower than heads x head_dim: torch's MHA refuses it
    assert isinstance(attn, HeadPrunedMHA) and attn.in_proj_weight.shape == (96, 8) and attn.num_heads == 4
    assert small.encoder.norm1.normalized_shape == (8,) and small.head.in_features == 8


def test_the_masked_encoder_layer_leaves_torch_fused_kernel_which_skips_the_masked_norms():
    torch.manual_seed(0)
    model, x = TorchEncoder().eval(), torch.randn(2, 6, 12)
    inv = inspect(model, x)
    plan = Plan({n: Plan.uniform(inv, bits=8, keep_ratio=0.5)[n] for n in inv.groups["embed"].producers})
    small = apply_plan(model, plan, inventory=inv).eval()
    with torch.no_grad():  # eval + no grad: where torch would take its fast path
        torch.testing.assert_close(to_physical(small)(x), small(x), rtol=0, atol=1e-5)


def test_width_vit_stream_reaches_every_block_through_a_zero_filled_attention_input():
    torch.manual_seed(0)
    model, x = WidthViT().eval(), torch.randn(2, 3, 16, 16)
    small = _removed_equals_masked(model, x, "patch_embed", torch.arange(1, 32, 2))
    attn = small.blocks[0].attn
    assert any(isinstance(h, PadInput) and h.width == 32 for h in attn._forward_pre_hooks.values())
    assert attn.qkv.weight.shape == (96, 16) and attn.proj.weight.shape == (16, 32)
