"""HeadPrunedMHA computes what nn.MultiheadAttention computes with the removed heads zeroed."""

from __future__ import annotations

import copy

import pytest
import torch
from torch import nn

from hirelc.compress.mha import HeadPrunedMHA
from hirelc.compress.prune import apply_masks_, prune_physically
from hirelc.inventory import inspect


class _Attend(nn.Module):
    def __init__(self, batch_first: bool) -> None:
        super().__init__()
        self.attn = nn.MultiheadAttention(12, 4, batch_first=batch_first)

    def forward(self, x, attn_mask=None, key_padding_mask=None, is_causal=False):
        return self.attn(x, x, x, attn_mask=attn_mask, key_padding_mask=key_padding_mask,
                         is_causal=is_causal, need_weights=False)[0]


def _masks(kind: str, B: int, L: int) -> dict:
    g = torch.Generator().manual_seed(0)
    if kind == "bool":
        return {"attn_mask": torch.ones(L, L, dtype=torch.bool).triu(1)}
    if kind == "float":
        return {"attn_mask": torch.randn(L, L, generator=g)}
    if kind == "per_head":
        return {"attn_mask": torch.randn(B * 4, L, L, generator=g)}
    if kind == "padding":
        pad = torch.zeros(B, L, dtype=torch.bool)
        pad[0, -2:] = True
        return {"key_padding_mask": pad}
    if kind == "causal":
        return {"attn_mask": torch.ones(L, L, dtype=torch.bool).triu(1), "is_causal": True}
    return {}


@pytest.mark.parametrize("batch_first", [True, False])
@pytest.mark.parametrize("kind", ["none", "bool", "float", "per_head", "padding", "causal"])
def test_removed_heads_compute_what_zeroed_heads_do(batch_first, kind):
    torch.manual_seed(0)
    model = _Attend(batch_first).eval()
    B, L = 2, 5
    x = torch.randn(B, L, 12) if batch_first else torch.randn(L, B, 12)
    inv = inspect(model, x)
    group = inv.groups["attn.in_proj"]
    assert group.kind == "heads" and group.prunable, group.reason
    kept = {"attn.in_proj": torch.tensor([1, 3])}
    masks = _masks(kind, B, L)
    with torch.no_grad():
        expected = apply_masks_(copy.deepcopy(model), kept, inv.groups)(x, **masks)
        small = prune_physically(model, kept, inv.groups)
        if kind == "per_head":  # which heads were kept is not stored: refused, clearly
            with pytest.raises(ValueError, match="per-head"):
                small(x, **masks)
            return
        got = small(x, **masks)
    assert isinstance(small.attn, HeadPrunedMHA) and small.attn.num_heads == 2
    assert small.attn.in_proj_weight.shape == (3 * 2 * 3, 12) and small.attn.out_proj.weight.shape == (12, 6)
    torch.testing.assert_close(got, expected, rtol=0, atol=1e-5)


def test_a_pruned_encoder_layer_never_takes_torchs_fused_path():
    torch.manual_seed(0)
    layer = nn.TransformerEncoderLayer(16, 4, dim_feedforward=32, dropout=0.0, batch_first=True).eval()
    x = torch.randn(2, 5, 16)
    inv = inspect(layer, x)
    kept = {"self_attn.in_proj": torch.tensor([0, 2]), "linear1": torch.arange(0, 32, 2)}
    with torch.no_grad():  # eval + no_grad is where torch would take the fused kernel
        expected = apply_masks_(copy.deepcopy(layer), kept, inv.groups)(x)
        got = prune_physically(layer, kept, inv.groups)(x)
    torch.testing.assert_close(got, expected, rtol=0, atol=1e-5)


def test_add_bias_kv_is_refused_with_its_reason():
    class M(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.attn = nn.MultiheadAttention(8, 2, add_bias_kv=True, batch_first=True)

        def forward(self, x):
            return self.attn(x, x, x)[0]

    g = inspect(M(), torch.randn(2, 3, 8)).groups["attn.in_proj"]
    assert not g.prunable and "add_bias_kv" in g.reason
