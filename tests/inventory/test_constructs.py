"""Channel groups through the constructs real model libraries use (tests/inventory/arch_models.py)."""

from __future__ import annotations

import copy

import torch
from torch import nn

from hirelc.compress.prune import apply_masks_, kept_indices, prune_physically
from hirelc.compress.slots import SLOTS, GatherLinear, ScatterLinear
from hirelc.inventory import inspect
from hirelc.plan import Plan
from inventory.arch_models import (
    TiedHeadLM,
    BagClassifier, CatBranches, EfficientNetish, GroupedConvNet, TinyBert, TorchEncoder, WidthViT,
    randomize_norms_,
)


def test_squeeze_excite_gate_rows_follow_the_gated_channels_and_fused_bn_act_is_a_batchnorm():
    inv = inspect(EfficientNetish(), torch.randn(2, 3, 16, 16))
    g = inv.groups["blocks.0.conv_pw"]
    assert g.producers == ("blocks.0.conv_pw", "blocks.0.se.expand")  # the gate's rows are tied
    assert g.depthwise == ("blocks.0.conv_dw",) and g.batchnorms == ("blocks.0.bn1", "blocks.0.bn2")
    assert ("blocks.0.se.reduce", 1) in g.consumers and ("blocks.0.conv_pwl", 1) in g.consumers
    assert inv.groups["blocks.0.se.reduce"].consumers == (("blocks.0.se.expand", 1),)
    assert inv.groups["conv_stem"].prunable  # residual stream through BatchNormAct2d
    assert "bn1" in inv.groups["conv_stem"].batchnorms


def test_attention_with_per_head_parameters_is_refused_zero_filled_slots():
    from inventory.arch_models import WidthAttention

    class BiasedAttention(WidthAttention):  # a per-head bias: heads are not interchangeable
        def __init__(self, dim: int, num_heads: int) -> None:
            super().__init__(dim, num_heads)
            self.head_bias = nn.Parameter(torch.randn(num_heads, 1, dim // num_heads))

        def forward(self, x):
            B, N, C = x.shape
            qkv = self.qkv(x).reshape(B, N, 3, self.num_heads, C // self.num_heads).permute(2, 0, 3, 1, 4)
            out = (qkv[0] @ qkv[1].transpose(-2, -1)).softmax(-1) @ qkv[2] + self.head_bias
            return self.proj(out.transpose(1, 2).reshape(B, N, C))

    net = nn.Sequential(nn.Linear(4, 16), BiasedAttention(16, 4))
    g = inspect(net, torch.randn(2, 5, 4)).groups["1.qkv"]
    assert not g.prunable and "zero-filled head slots" in g.reason


def test_a_batchnorm_subclass_that_mixes_channels_is_refused_by_behaviour():
    class MixingBN(nn.BatchNorm2d):  # named like a norm, computes across channels
        def forward(self, x):
            return super().forward(x) + x.mean(1, keepdim=True)

    net = nn.Sequential(nn.Conv2d(3, 6, 1), MixingBN(6), nn.Conv2d(6, 2, 1))
    spec = inspect(net.eval(), torch.randn(2, 3, 4, 4)).spec("0")
    assert not spec.prunable and "not computed channel by channel" in spec.prune_reason


def test_grouped_conv_keeps_the_same_count_in_every_group():
    model = randomize_norms_(GroupedConvNet()).eval()
    inv = inspect(model, torch.randn(2, 3, 8, 8))
    g = inv.groups["conv2"]
    assert g.prunable and g.segments == 4 and g.size == 16
    kept = kept_indices(model, inv.groups, Plan.uniform(inv, bits=8, keep_ratio=0.5))["conv2"]
    assert [int(((kept >= 4 * i) & (kept < 4 * i + 4)).sum()) for i in range(4)] == [2, 2, 2, 2]
    inputs = inv.groups["conv1"]  # pruned at the same positions of each of conv2's 4 input groups
    assert inputs.prunable and (inputs.size, inputs.row_chunks) == (4, 4) and inputs.consumers == (("conv2", 1),)
    small = prune_physically(model, {"conv1": torch.tensor([0, 3])}, inv.groups)
    assert small.conv1.out_channels == 8 and small.bn1.num_features == 8
    assert small.conv2.weight.shape == (16, 2, 3, 3) and small.conv2.in_channels == 8
    x = torch.randn(2, 3, 8, 8)
    with torch.no_grad():
        expected = apply_masks_(copy.deepcopy(model), {"conv1": torch.tensor([0, 3])}, inv.groups)(x)
        torch.testing.assert_close(small(x), expected, rtol=0, atol=1e-6)


def test_concatenated_branches_own_slices_of_the_batchnorm_and_the_consumer():
    model = randomize_norms_(CatBranches()).eval()
    x = torch.randn(2, 3, 8, 8)
    inv = inspect(model, x)
    a, b = inv.groups["branch_a"], inv.groups["branch_b"]
    assert set(a.spans) == {("bn", 0, 16), ("mix", 0, 16)} and set(b.spans) == {("bn", 6, 16), ("mix", 6, 16)}
    kept = {"branch_b": torch.tensor([0, 9])}  # branch_a untouched: its 6 channels all stay
    small = prune_physically(model, kept, inv.groups)
    assert small.bn.num_features == 8 and small.mix.in_channels == 8
    with torch.no_grad():
        expected = apply_masks_(copy.deepcopy(model), kept, inv.groups)(x)
        torch.testing.assert_close(small(x), expected, rtol=0, atol=1e-6)


def test_width_derived_attention_stores_only_kept_heads_in_zero_filled_slots():
    model = WidthViT().eval()
    x = torch.randn(2, 3, 16, 16)
    inv = inspect(model, x)
    g = inv.groups["blocks.0.attn.qkv"]
    assert g.padded and g.prunable
    small = prune_physically(model, {g.id: torch.tensor([0, 3])}, inv.groups)
    attn = small.blocks[0].attn
    assert isinstance(attn.qkv, ScatterLinear) and isinstance(attn.proj, GatherLinear)
    assert attn.qkv.weight.shape == (3 * 2 * 8, 32) and attn.proj.weight.shape == (32, 16)
    assert attn.num_heads == 4  # the module's code keeps every slot
    assert hasattr(attn.qkv, SLOTS) and not any(SLOTS in k for k in small.state_dict())  # nothing stored


def test_split_qkv_attention_prunes_heads_through_q_k_v_and_the_output():
    inv = inspect(TinyBert(), torch.randint(0, 50, (2, 12)))
    g = inv.groups["layers.0.attention.query"]
    assert g.kind == "heads" and g.prunable and not g.padded and g.heads_attr == "heads"
    assert g.producers == tuple(f"layers.0.attention.{n}" for n in ("query", "key", "value"))
    assert g.consumers == (("layers.0.attention.output", 8),)


class ValueCheckedBert(TinyBert):
    """Control flow on the input's values: no single graph, even with the example's shapes."""

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        if (ids >= self.word_embeddings.num_embeddings).any():
            raise ValueError("token id out of range")
        return super().forward(ids)


def test_untraceable_model_keeps_block_local_widths_prunable_and_says_why_not_the_rest():
    inv = inspect(ValueCheckedBert(), torch.randint(0, 50, (2, 12)))
    assert "TraceError" in inv.trace_error
    assert inv.spec("layers.0.ffn.dense").prunable
    assert inv.groups["layers.0.ffn.dense"].consumers == (("layers.0.ffn.out", 1),)
    assert "could not be traced" in inv.spec("transform").prune_reason


def test_torch_encoder_layer_feed_forward_and_heads_are_prunable():
    inv = inspect(TorchEncoder(), torch.randn(2, 6, 12))
    assert inv.groups["encoder.linear1"].consumers == (("encoder.linear2", 1),)
    assert inv.spec("encoder.linear1").prunable and inv.spec("encoder.self_attn.in_proj").prunable


def test_embedding_bag_prunes_its_dimension_through_its_columns():
    model = BagClassifier()
    ids = torch.randint(0, 40, (3, 7))
    inv = inspect(model, ids)
    g = inv.groups["bag"]
    assert g.embeddings == ("bag",) and g.producers == () and g.consumers == (("hidden", 1),)
    small = prune_physically(model, {"bag": torch.tensor([1, 5, 9])}, inv.groups)
    assert small.bag.weight.shape == (40, 3) and small.hidden.in_features == 3


def test_a_non_kernel_module_tied_to_an_embedding_reads_the_compressed_weight():
    from hirelc.compress.apply import apply_plan

    model, ids = TiedHeadLM(), torch.randint(0, 20, (2, 5))
    inv = inspect(model, ids)
    assert [s.name for s in inv] == ["emb"] and not inv.unsupported
    small = apply_plan(model, Plan.uniform(inv, bits=2), inventory=inv)
    assert torch.equal(small.head.table, small.emb.weight)
    assert small.emb.weight.unique().numel() < model.emb.weight.unique().numel()


def test_coverage_classes_sum_to_the_parameters():
    inv = inspect(TinyBert(), torch.randint(0, 50, (2, 12)))
    c = inv.coverage
    assert c.kernels + c.fp32_by_design + c.unsupported == c.total
    assert c.total == sum(p.numel() for p in TinyBert().parameters())  # the tied matrix once
    assert c.prunable_rows == c.prunable == c.kernels and c.unsupported == 0  # the stream reaches every kernel


def test_the_residual_stream_shrinks_everywhere_it_is_read_and_written():
    from inventory.arch_models import prenorm_vit

    from hirelc.compress.apply import apply_plan, to_physical
    from hirelc.compress.tokens import MaskedLayerNorm

    model, x = prenorm_vit().eval(), torch.randn(2, 3, 8, 8)
    inv = inspect(model, x)
    half = Plan.uniform(inv, bits=8, keep_ratio=0.5)  # the stream's producers all ask for half
    plan = Plan({n: half[n] for n in inv.groups["patch_embed"].producers})
    small = apply_plan(model, plan, inventory=inv)
    assert isinstance(small.norm, MaskedLayerNorm)  # statistics over the kept channels only
    plain = to_physical(small)
    assert plain.cls_token.shape == (1, 1, 16) and plain.pos_embed.shape == (1, 5, 16)
    assert type(plain.norm) is nn.LayerNorm and plain.norm.normalized_shape == (16,)
    assert plain.blocks[0].attn.qkv.weight.shape == (96, 16) and plain.blocks[0].attn.proj.weight.shape == (16, 32)
    assert plain.head.in_features == 16 and plain.patch_embed.out_channels == 16
    with torch.no_grad():
        torch.testing.assert_close(plain(x), small(x), rtol=0, atol=1e-5)
