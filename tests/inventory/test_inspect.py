"""hirelc.inspect: kernels, MACs, stats, blocks, unsupported layers."""

from __future__ import annotations

import copy

import logging

import pytest
import torch
from torch import nn

from hirelc.compress.prune import apply_masks_, prune_physically
from hirelc.inventory import Inventory, LayerSpec, inspect
from inventory.toy_models import LeNet, MHAModel, ResNetish, TinyViT, Untraceable


def test_lenet_kernels_in_execution_order_with_hand_counted_macs():
    model = LeNet()
    inv = inspect(model, torch.randn(3, 1, 28, 28))
    assert [(s.name, s.kind, s.index) for s in inv] == [
        ("conv1", "conv2d", 0), ("conv2", "conv2d", 1), ("fc1", "linear", 2),
        ("fc2", "linear", 3), ("fc3", "linear", 4),
    ]
    conv2, fc1 = inv.spec("conv2"), inv.spec("fc1")
    # conv2: 16 x 8 x 8 outputs, each a dot product over 6 in-channels x 5 x 5 taps
    assert conv2.n_macs == 16 * 8 * 8 * 6 * 5 * 5
    assert fc1.n_macs == 32 * 256  # 32 neurons x 256 inputs, per example (batch of 3)
    assert conv2.weight_shape == (16, 6, 5, 5) and conv2.n_params == 16 * 6 * 25
    w = model.conv2.weight.detach()
    assert conv2.weight_mean == pytest.approx(float(w.mean()))
    assert conv2.weight_std == pytest.approx(float(w.std()))
    assert (conv2.weight_min, conv2.weight_max) == (pytest.approx(float(w.min())), pytest.approx(float(w.max())))
    assert conv2.block == "conv2" and conv2.module == "conv2" and conv2.param == "weight"
    assert inv.unsupported == []


def test_macs_are_per_example():
    model = LeNet()
    one = inspect(model, torch.randn(1, 1, 28, 28))
    five = inspect(model, torch.randn(5, 1, 28, 28))
    assert [s.n_macs for s in one] == [s.n_macs for s in five]


class _Convs(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.c1 = nn.Conv1d(4, 8, 3, padding=1)
        self.grouped = nn.Conv2d(8, 12, 3, padding=1, groups=4)
        self.dw = nn.Conv2d(12, 12, 3, padding=1, groups=12)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, 4, 6)
        h = self.c1(x).unsqueeze(-1).expand(-1, -1, -1, 6)  # (B, 8, 6, 6)
        return self.dw(self.grouped(h))


def test_conv1d_grouped_and_depthwise_convs():
    inv = inspect(_Convs(), torch.randn(2, 4, 6))
    c1, grouped, dw = inv
    assert (c1.kind, grouped.kind, dw.kind) == ("conv1d", "conv2d", "conv2d")
    assert (c1.conv_groups, grouped.conv_groups, dw.conv_groups) == (1, 4, 12)
    assert c1.n_macs == 8 * 6 * 4 * 3
    assert grouped.n_macs == 12 * 6 * 6 * (8 // 4) * 9
    assert dw.n_macs == 12 * 6 * 6 * 1 * 9


def test_multihead_attention_projections():
    inv = inspect(MHAModel(dim=16, heads=2), torch.randn(3, 5, 6))
    in_proj, out_proj = inv.spec("attn.in_proj"), inv.spec("attn.out_proj")
    assert (in_proj.kind, in_proj.module, in_proj.param) == ("mha_in_proj", "attn", "in_proj_weight")
    assert (out_proj.kind, out_proj.module, out_proj.param) == ("mha_out_proj", "attn.out_proj", "weight")
    assert in_proj.weight_shape == (48, 16) and in_proj.n_heads == out_proj.n_heads == 2
    assert in_proj.n_macs == 3 * 5 * 16 * 16  # q, k and v of 5 tokens, each 16 x 16
    assert out_proj.n_macs == 5 * 16 * 16
    assert [s.name for s in inv] == ["embed", "attn.in_proj", "attn.out_proj", "fc"]
    assert in_proj.prunable and in_proj.consumers == ("attn.out_proj",)  # heads, through in_proj
    assert not out_proj.prunable and "columns shrink with the pruned heads" in out_proj.prune_reason


def test_timm_style_vit_block(caplog):
    with caplog.at_level(logging.WARNING):
        inv = inspect(TinyViT(dim=16, heads=4), torch.randn(2, 3, 8, 8))
    qkv, proj = inv.spec("blocks.0.attn.qkv"), inv.spec("blocks.0.attn.proj")
    assert (qkv.kind, proj.kind, qkv.n_heads, proj.n_heads) == ("attn_qkv", "attn_proj", 4, 4)
    assert qkv.n_macs == 5 * 48 * 16 and proj.n_macs == 5 * 16 * 16  # 5 tokens
    assert {s.block for s in inv if s.name.startswith("blocks.1.")} == {"blocks.1"}
    assert inv.spec("head").block == "head"
    unsupported = dict(inv.unsupported)
    assert "kept in fp32" in unsupported["pos_embed"] and "kept in fp32" in unsupported["cls_token"]
    assert "LayerNorm" in unsupported["blocks.0.norm1"]
    assert caplog.records == []  # norms and bare embeddings are expected in fp32: no warning


def test_residual_blocks_of_a_resnet():
    inv = inspect(ResNetish(), torch.randn(2, 3, 8, 8))
    blocks = {s.name: s.block for s in inv}
    assert blocks["block1.conv1"] == blocks["block1.conv2"] == "block1"
    assert blocks["block2.shortcut.0"] == "block2"
    assert blocks["block3.dw"] == "block3"
    assert blocks["stem"] == "stem" and blocks["fc"] == "fc"


def test_shared_weight_appears_once_with_macs_summed():
    model = nn.Sequential(nn.Linear(8, 8), nn.ReLU(), nn.Linear(8, 8))
    model[2].weight = model[0].weight
    inv = inspect(model, torch.randn(4, 8))
    assert [s.name for s in inv] == ["0"]
    assert inv[0].n_macs == 2 * 8 * 8
    assert not inv[0].prunable  # its second call writes the model output


def test_a_weight_called_on_the_model_input_and_on_channels_keeps_its_columns():
    model = nn.Sequential(nn.Linear(8, 8), nn.ReLU(), nn.Linear(8, 8), nn.ReLU(), nn.Linear(8, 2))
    model[2].weight = model[0].weight  # columns read the input in call 1, channels in call 2
    inv = inspect(model, torch.randn(4, 8))
    assert not inv.spec("0").prunable and "cannot be removed" in inv.spec("0").prune_reason


def test_a_weight_tied_between_two_followed_calls_prunes_the_same_channels_in_both():
    model = nn.Sequential(nn.Linear(3, 8), nn.ReLU(), nn.Linear(8, 8), nn.ReLU(), nn.Linear(8, 8),
                          nn.ReLU(), nn.Linear(8, 2))
    model[4].weight = model[2].weight  # one square matrix, rows and columns on one stream
    x = torch.randn(4, 3)
    inv = inspect(model, x)
    g = inv.groups[inv.spec("2").prune_group]
    assert g.prunable and set(g.producers) == {"0", "2"}
    kept = {g.id: torch.tensor([1, 2, 5, 6])}
    with torch.no_grad():
        masked = apply_masks_(copy.deepcopy(model), kept, inv.groups)(x)
        small = prune_physically(model, kept, inv.groups)
        assert small[4].weight is small[2].weight and small[4].weight.shape == (4, 4)
        torch.testing.assert_close(small(x), masked, rtol=0, atol=1e-5)


class _Custom(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.mix = nn.Parameter(torch.randn(6, 6))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x @ self.mix


class _WithUnsupported(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.emb = nn.Embedding(10, 6)
        self.custom = _Custom()
        self.bn = nn.BatchNorm1d(6)
        self.fc = nn.Linear(6, 2)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        return self.fc(self.bn(self.custom(self.emb(tokens))))


def test_unsupported_layers_are_listed_and_warned(caplog):
    with caplog.at_level(logging.WARNING):
        inv = inspect(_WithUnsupported(), torch.randint(0, 10, (4,)))
    unsupported = dict(inv.unsupported)
    assert set(unsupported) == {"custom", "bn"}  # an Embedding is a kernel
    assert "mix (6, 6)" in unsupported["custom"]
    warned = " ".join(r.getMessage() for r in caplog.records if r.levelno == logging.WARNING)
    assert "'custom'" in warned and "'bn'" not in warned
    assert [(s.name, s.kind) for s in inv] == [("emb", "embedding"), ("fc", "linear")]
    cov = inv.coverage  # 60 embedding + 12 fc weights; 36 custom; 12 bn + 2 fc bias
    assert (cov.total, cov.kernels, cov.unsupported, cov.fp32_by_design) == (122, 72, 36, 14)


def test_untraceable_model_still_inspects():
    inv = inspect(Untraceable(), torch.randn(2, 8))
    assert [(s.name, s.n_macs) for s in inv] == [("fc1", 8 * 16), ("fc2", 16 * 4)]
    assert inv.groups == {} and "TraceError" in inv.trace_error
    for s in inv:
        assert not s.prunable and "could not be traced" in s.prune_reason


def test_inspect_leaves_the_model_as_it_was():
    model = ResNetish().train()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    inspect(model, torch.randn(4, 3, 8, 8))
    assert model.training and all(m.training for m in model.modules())
    after = model.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)  # BN stats not updated


def test_hand_built_specs_and_round_trip():
    spec = LayerSpec("fc1", "linear", (500, 800), 400_000)
    assert spec.n_params == 400_000 and spec.block == "fc1" and not spec.prunable
    inv = inspect(TinyViT(), torch.randn(1, 3, 8, 8))
    again = Inventory.from_dict(inv.to_dict())
    assert list(again) == list(inv) and again.groups == inv.groups and again.unsupported == inv.unsupported
