"""`nn.MultiheadAttention` with fewer heads than its embedding width implies.

torch's MHA derives `head_dim = embed_dim // num_heads` and checks that the query is
`embed_dim` wide, so it cannot drop heads: the query keeps the residual width E while the
projections shrink to k heads of `head_dim`. `HeadPrunedMHA` (swapped in for the class of a
pruned MHA by `hirelc.compress.prune`) computes the same attention as torch's slow path for
the kept heads: in_proj rows [3, k, head_dim], out_proj columns [k, head_dim], masks as torch
takes them (bool True = not allowed, float added). A per-head 3-D `attn_mask` is refused
with a clear error: which original heads were kept is not stored, so that the file and the
storage model hold nothing but weights. Returned attention weights average the kept heads. It flags `_qkv_same_embed_dim = False` so that `nn.TransformerEncoderLayer`
never hands it to torch's fused kernel, which assumes num_heads x head_dim == embed_dim.

>>> mha = nn.MultiheadAttention(8, 4, batch_first=True).eval()
>>> x = torch.randn(2, 5, 8)
>>> full, _ = mha(x, x, x)
>>> import copy
>>> small = copy.deepcopy(mha)
>>> keep_heads_(small, torch.arange(4))  # all heads kept: the same function
>>> torch.allclose(small(x, x, x)[0], full, atol=1e-6)
True
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn


class HeadPrunedMHA(nn.MultiheadAttention):
    """See the module docstring. `num_heads` counts the kept heads; `head_dim` is unchanged."""

    def forward(self, query: Tensor, key: Tensor, value: Tensor, key_padding_mask: Tensor | None = None,
                need_weights: bool = True, attn_mask: Tensor | None = None,
                average_attn_weights: bool = True, is_causal: bool = False) -> tuple[Tensor, Tensor | None]:
        if not self.batch_first:  # (L, B, E) -> (B, L, E)
            query, key, value = (t.transpose(0, 1) for t in (query, key, value))
        B, L, _ = query.shape
        S, h, d = key.shape[1], self.num_heads, self.head_dim
        w = self.in_proj_weight.chunk(3)  # each (h * d, E)
        b = self.in_proj_bias.chunk(3) if self.in_proj_bias is not None else (None, None, None)
        q = F.linear(query, w[0], b[0]).view(B, L, h, d).transpose(1, 2)  # (B, h, L, d)
        k = F.linear(key, w[1], b[1]).view(B, S, h, d).transpose(1, 2)  # (B, h, S, d)
        v = F.linear(value, w[2], b[2]).view(B, S, h, d).transpose(1, 2)  # (B, h, S, d)
        scores = q @ k.transpose(-2, -1) / math.sqrt(d)  # (B, h, L, S)
        scores = scores + self._bias(attn_mask, key_padding_mask, is_causal, B, L, S, scores)
        attn = scores.softmax(dim=-1)
        if self.training and self.dropout > 0:
            attn = F.dropout(attn, self.dropout)
        out = self.out_proj((attn @ v).transpose(1, 2).reshape(B, L, h * d))  # (B, L, E)
        if not self.batch_first:
            out = out.transpose(0, 1)
        weights = (attn.mean(1) if average_attn_weights else attn) if need_weights else None
        return out, weights

    def _bias(self, attn_mask: Tensor | None, key_padding_mask: Tensor | None, is_causal: bool,
              B: int, L: int, S: int, like: Tensor) -> Tensor:
        """The additive mask (broadcastable to (B, h, L, S)) torch's MHA would apply."""
        bias = like.new_zeros(1, 1, L, S)
        if attn_mask is None and is_causal:
            attn_mask = torch.ones(L, S, dtype=torch.bool, device=like.device).triu(1)
        if attn_mask is not None:
            if attn_mask.dim() == 3:
                raise ValueError("this nn.MultiheadAttention had heads pruned by hirelc and cannot "
                                 "take a per-head (3-D) attn_mask; pass a 2-D mask, or keep its heads "
                                 "(keep_ratio 1.0 for its in_proj)")
            bias = bias + _additive(attn_mask, like)
        if key_padding_mask is not None:
            bias = bias + _additive(key_padding_mask, like).view(B, 1, 1, S)
        return bias


def _additive(mask: Tensor, like: Tensor) -> Tensor:
    if mask.dtype == torch.bool:
        return torch.zeros_like(mask, dtype=like.dtype).masked_fill(mask, float("-inf"))
    return mask.to(like.dtype)


def keep_heads_(mha: nn.MultiheadAttention, kept: Tensor) -> None:
    """Turn an MHA whose in_proj rows and out_proj columns already hold only the `kept`
    heads into a `HeadPrunedMHA` (in place)."""
    if type(mha) is not nn.MultiheadAttention:
        raise ValueError(f"head pruning needs a plain nn.MultiheadAttention, got {type(mha).__name__}")
    mha.__class__ = HeadPrunedMHA
    mha.num_heads = len(kept)
    mha._qkv_same_embed_dim = False  # keeps torch's fused kernels away (module docstring)
