"""Channel groups for structured pruning (torch.fx analysis)."""

from __future__ import annotations

import copy

import pytest
import torch
from torch import nn

from hirelc.compress.prune import apply_masks_, prune_physically
from hirelc.inventory import ChannelGroup, inspect
from inventory.toy_models import LeNet, MHAModel, ResNetish, TimmAttention, TinyViT


def test_resnet_groups_tie_residual_producers_and_follow_bn_and_depthwise():
    inv = inspect(ResNetish(), torch.randn(2, 3, 8, 8))
    g = inv.groups
    stage1 = g["stem"]  # the stem and block1's residual branch write the same channels
    assert stage1.producers == ("stem", "block1.conv2")
    assert stage1.batchnorms == ("bn", "block1.bn2")
    assert [c for c, _ in stage1.consumers] == ["block1.conv1", "block2.conv1", "block2.shortcut.0"]
    stage2 = g["block2.conv2"]  # projection shortcut and the inverted residual's project
    assert stage2.producers == ("block2.conv2", "block2.shortcut.0", "block3.project")
    assert stage2.batchnorms == ("block2.bn2", "block2.shortcut.1", "block3.bn3")
    assert stage2.consumers == (("block3.expand", 1), ("fc", 1))  # pooled then flattened: x1
    hidden = g["block3.expand"]
    assert hidden.depthwise == ("block3.dw",) and hidden.batchnorms == ("block3.bn1", "block3.bn2")
    assert hidden.consumers == (("block3.project", 1),)
    assert all(x.prunable for x in (stage1, stage2, hidden, g["block1.conv1"]))
    for name in ("stem", "block1.conv2", "block3.dw", "block3.project"):
        assert inv.spec(name).prunable
    assert inv.spec("block3.dw").prune_group == "block3.expand"
    assert inv.spec("block2.shortcut.0").prune_group == "block2.conv2"
    assert inv.spec("block3.expand").consumers == ("block3.project",)
    assert not g["fc"].prunable and "model output" in inv.spec("fc").prune_reason


def test_linear_after_flatten_reads_each_channel_as_h_times_w_features():
    inv = inspect(LeNet(), torch.randn(1, 1, 28, 28))
    assert inv.groups["conv2"].consumers == (("fc1", 4 * 4),)
    assert inv.groups["conv1"].consumers == (("conv2", 1),)
    assert inv.prunable_names() == ["conv1", "conv2", "fc1", "fc2"]


def test_vit_prunes_heads_mlp_hidden_and_the_residual_stream():
    inv = inspect(TinyViT(dim=16, heads=4), torch.randn(2, 3, 8, 8))
    heads = inv.groups["blocks.0.attn.qkv"]
    assert (heads.kind, heads.size, heads.unit, heads.row_chunks) == ("heads", 4, 4, 3)
    assert heads.module == "blocks.0.attn" and heads.consumers == (("blocks.0.attn.proj", 4),)
    assert heads.prunable
    assert inv.groups["blocks.0.mlp.fc1"].consumers == (("blocks.0.mlp.fc2", 1),)
    stream = inv.groups["patch_embed"]  # the embedding width, from the patch embedding to the head
    assert stream.prunable, stream.reason
    assert stream.producers == ("patch_embed", "blocks.0.attn.proj", "blocks.0.mlp.fc2",
                                "blocks.1.attn.proj", "blocks.1.mlp.fc2")
    assert set(stream.layernorms) == {"blocks.0.norm1", "blocks.0.norm2", "blocks.1.norm1", "blocks.1.norm2", "norm"}
    assert set(stream.params) == {("cls_token", 2), ("pos_embed", 2)}
    assert {c for c, _ in stream.consumers} == {"blocks.0.attn.qkv", "blocks.0.mlp.fc1", "blocks.1.attn.qkv",
                                                "blocks.1.mlp.fc1", "head"}
    assert not inv.spec("head").prunable and "model output" in inv.spec("head").prune_reason


def test_attention_whose_code_needs_the_input_width_gets_its_input_zero_filled_back():
    model, x = TinyViT(attention=TimmAttention).eval(), torch.randn(2, 3, 8, 8)
    inv = inspect(model, x)
    stream = inv.groups["patch_embed"]
    assert stream.prunable, stream.reason
    assert stream.padded_inputs == ("blocks.0.attn", "blocks.1.attn")
    assert "blocks.0.attn.proj" in stream.producers  # the attention output writes the stream
    kept = {"patch_embed": torch.arange(0, 16, 2)}
    with torch.no_grad():
        masked = apply_masks_(copy.deepcopy(model), kept, inv.groups)(x)
        small = prune_physically(model, kept, inv.groups)
        assert small.blocks[0].attn.qkv.weight.shape == (48, 8)  # only kept input columns stored
        torch.testing.assert_close(small(x), masked, rtol=0, atol=1e-5)


class ChannelZeroAttention(TimmAttention):
    """Reads input channel 0 itself: zero-filling after the kept channels would move it."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return super().forward(x) + x[..., :1]


def test_attention_reading_input_channels_by_position_keeps_the_stream_whole():
    inv = inspect(TinyViT(attention=ChannelZeroAttention), torch.randn(2, 3, 8, 8))
    spec = inv.spec("patch_embed")
    assert not spec.prunable and "zero-filled to the full width" in spec.prune_reason


def test_attention_that_reshapes_with_the_input_width_prunes_heads_in_zero_filled_slots():
    inv = inspect(TinyViT(attention=TimmAttention), torch.randn(2, 3, 8, 8))
    spec, group = inv.spec("blocks.0.attn.qkv"), inv.groups["blocks.0.attn.qkv"]
    assert spec.prunable and group.padded and group.kind == "heads"
    assert not inv.groups["blocks.0.attn.qkv"].reason


def test_multihead_attention_prunes_heads_but_not_its_input():
    inv = inspect(MHAModel(), torch.randn(2, 5, 6))
    heads = inv.groups["attn.in_proj"]
    assert (heads.kind, heads.size, heads.unit, heads.row_chunks, heads.module) == ("heads", 2, 8, 3, "attn")
    assert heads.prunable and heads.consumers == (("attn.out_proj", 8),)
    assert not inv.spec("embed").prunable  # read by the MHA as its full-width query


class _Poisoned(nn.Module):
    """conv -> <op> -> conv: the op decides whether conv `a` can be pruned."""

    def __init__(self, op: str) -> None:
        super().__init__()
        self.op = op
        self.a = nn.Conv2d(3, 6, 3, padding=1)
        self.b = nn.Conv2d(6, 4, 1)
        self.c = nn.Conv2d(12, 4, 1)
        self.norm = nn.GroupNorm(2, 6)
        self.grouped = nn.Conv2d(6, 4, 1, groups=2)
        self.gamma = nn.Parameter(torch.rand(1, 6, 1, 1))
        self.d = nn.Conv2d(3, 4, 1)
        self.register_buffer("pad", torch.zeros(2, 6, 1, 5))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = torch.relu(self.a(x))
        if self.op == "cat":  # along positions, with a constant whose channels cannot shrink
            return self.b(torch.cat([h, self.pad], dim=2))
        if self.op == "groupnorm":
            return self.b(self.norm(h))
        if self.op == "index":  # some channels only
            return self.d(h[:, :3])
        if self.op == "grouped":  # read by a grouped conv and by an ordinary one
            return self.grouped(h) + self.b(h)
        if self.op == "output":
            return self.b(h), h
        if self.op == "scale_by_tensor":
            return self.b(h * self.gamma)  # a parameter: its entries are not sliced
        return self.b(h * 0.5 + 1.0)  # "scalar": channel-wise, stays prunable


@pytest.mark.parametrize(
    "op, words",
    [("cat", "concatenated with a tensor whose channels"), ("groupnorm", "GroupNorm"),
     ("index", "indexed along its channels"),
     ("grouped", "grouped convolution"), ("output", "model output"), ("scale_by_tensor", "scaled")],
)
def test_ops_the_analysis_does_not_understand_block_pruning(op, words):
    inv = inspect(_Poisoned(op), torch.randn(2, 3, 5, 5))
    spec = inv.spec("a")
    assert not spec.prunable and words in spec.prune_reason and spec.prune_group == "a"


def test_a_tensor_concatenated_with_itself_owns_two_slices_of_the_consumer():
    class Twice(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.a, self.c = nn.Conv2d(3, 6, 1), nn.Conv2d(12, 4, 1)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            h = torch.relu(self.a(x))
            return self.c(torch.cat([h, h], dim=1))

    g = inspect(Twice(), torch.randn(2, 3, 5, 5)).groups["a"]
    assert g.prunable and g.spans == (("c", 0, 12), ("c", 6, 12))


def test_permutes_and_indexing_of_other_dims_move_the_channels_along():
    class Moves(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.a, self.fc = nn.Conv2d(3, 6, 1), nn.Linear(6, 2)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            h = torch.relu(self.a(x)).permute(0, 2, 3, 1)  # (B, H, W, C)
            return self.fc(h[:, 1:, 0].transpose(1, 2).transpose(1, 2))  # (B, H-1, C)

    inv = inspect(Moves(), torch.randn(2, 3, 5, 5))
    assert inv.spec("a").prunable and inv.groups["a"].consumers == (("fc", 1),)


def test_scalar_arithmetic_is_channel_wise():
    inv = inspect(_Poisoned("scalar"), torch.randn(2, 3, 5, 5))
    assert inv.spec("a").prunable and inv.groups["a"].consumers == (("b", 1),)


class _HardCodedView(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(1, 4, 3)
        self.fc = nn.Linear(4 * 4 * 4, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.conv(x).view(-1, 64))  # a literal width breaks once channels go


def test_view_with_a_literal_width_is_not_followed():
    inv = inspect(_HardCodedView(), torch.randn(2, 1, 6, 6))
    assert not inv.spec("conv").prunable and "reshaped" in inv.spec("conv").prune_reason


def test_head_group_index_math():
    heads = ChannelGroup("qkv", "heads", 3, ("qkv",), consumers=(("proj", 2),), unit=2, row_chunks=3)
    kept = torch.tensor([0, 2])
    # rows are [q|k|v] x [head 0, 1, 2] x [2 per head]: 6 rows per chunk
    assert heads.rows(kept).tolist() == [0, 1, 4, 5, 6, 7, 10, 11, 12, 13, 16, 17]
    assert heads.columns("proj", kept).tolist() == [0, 1, 4, 5]
    assert heads.n_rows == 18
    with pytest.raises(KeyError):
        heads.columns("other", kept)
    with pytest.raises(ValueError, match="kind"):
        ChannelGroup("x", "neurons", 3)
