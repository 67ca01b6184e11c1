"""Pruning groups inside torch's own transformer layers: feed-forward width and MHA heads.

`nn.MultiheadAttention` lays its fused in_proj rows out as [3, heads, head_dim] and reads
out_proj columns as [heads, head_dim]; its heads are pruned together (q, k, v rows and the
matching out_proj columns) and the pruned module becomes a `hirelc.compress.mha.HeadPrunedMHA`,
checked on the example input like every other group (removed == zeroed).

`nn.TransformerEncoderLayer` / `nn.TransformerDecoderLayer` run `linear2(dropout(
activation(linear1(x))))` in their feed-forward block (torch's `_ff_block`), so linear1's
output width is local to the layer: pruning its rows and linear2's matching columns is exact.
fx cannot trace these layers (their forward branches on tensor properties for the fast
path), so the structure is taken from torch's source and then checked on the example input
like a head group: the layer with hidden unit 0 removed must compute what it computes with
unit 0 zeroed.

>>> import torch
>>> from hirelc.inventory.kernels import find_kernels
>>> layer = nn.TransformerEncoderLayer(8, 2, dim_feedforward=16, dropout=0.0, batch_first=True)
>>> g = feedforward_group(layer, "", {r.name: r for r in find_kernels(layer)},
...                       ((torch.randn(2, 3, 8),), {}))
>>> g.producers, g.consumers, g.prunable
(('linear1',), (('linear2', 1),), True)
"""

from __future__ import annotations

import copy
from collections.abc import Mapping

import torch
from torch import nn

from hirelc.compress.mha import keep_heads_
from hirelc.compress.tokens import mask_layernorm_, slice_layernorm_
from hirelc.inventory.groups import ChannelGroup
from hirelc.inventory.kernels import KernelRef


def _probe(layer: nn.Module, inputs: tuple[tuple, dict]) -> str:
    """"" when removing hidden unit 0 computes what zeroing it does, else why not."""
    args, kwargs = inputs
    masked, removed = copy.deepcopy(layer), copy.deepcopy(layer)
    with torch.no_grad():
        masked.linear1.weight[0] = 0
        if masked.linear1.bias is not None:
            masked.linear1.bias[0] = 0
        masked.linear2.weight[:, 0] = 0
        removed.linear1.weight = nn.Parameter(layer.linear1.weight.detach()[1:].clone())
        if layer.linear1.bias is not None:
            removed.linear1.bias = nn.Parameter(layer.linear1.bias.detach()[1:].clone())
        removed.linear2.weight = nn.Parameter(layer.linear2.weight.detach()[:, 1:].clone())
        removed.linear1.out_features = removed.linear2.in_features = layer.linear1.out_features - 1
        try:
            expected, got = masked(*args, **kwargs), removed(*args, **kwargs)
        except Exception as e:  # a subclass whose code needs the full width
            return f"its feed-forward fails with fewer hidden units ({type(e).__name__})"
    if not torch.allclose(expected, got, rtol=1e-4, atol=1e-5):
        return "its feed-forward computes something else with a hidden unit removed than zeroed"
    return ""


def feedforward_group(model: nn.Module, path: str, kernels: Mapping[str, KernelRef],
                      inputs: tuple[tuple, dict] | None) -> ChannelGroup:
    """The hidden-width group of the torch transformer layer at `path`."""
    layer = model.get_submodule(path) if path else model
    prefix = f"{path}." if path else ""
    first, second = kernels[prefix + "linear1"], kernels[prefix + "linear2"]
    hidden = layer.linear1.out_features
    reason = ""
    if first.aliases or first.tied or second.aliases or second.tied:
        reason = "its feed-forward weights are shared with another module"
    elif hidden < 2:
        reason = "it has a single hidden unit, and at least one is always kept"
    elif inputs is None:
        reason = "it is not executed on the example input"
    else:
        reason = _probe(layer, inputs)
    return ChannelGroup(first.name, "channels", hidden, producers=(first.name,),
                        consumers=((second.name, 1),), prunable=not reason,
                        reason=f"its output channels are read inside '{path}': {reason}" if reason else "")


def _same_output(a: object, b: object) -> bool:
    a = a[0] if isinstance(a, tuple) else a  # (attn_output, weights): weights average kept heads
    b = b[0] if isinstance(b, tuple) else b
    return a.shape == b.shape and torch.allclose(a, b, rtol=1e-4, atol=1e-5)


def _probe_mha(mha: nn.MultiheadAttention, group: ChannelGroup, inputs: tuple[tuple, dict]) -> str:
    args, kwargs = inputs
    masked, removed = copy.deepcopy(mha), copy.deepcopy(mha)
    drop, kept = group.rows(torch.tensor([0])), torch.arange(1, group.size)
    cols = torch.arange(group.unit, group.size * group.unit)
    with torch.no_grad():
        masked.in_proj_weight[drop] = 0
        masked.out_proj.weight[:, : group.unit] = 0
        removed.in_proj_weight = nn.Parameter(mha.in_proj_weight.detach()[group.rows(kept)].clone())
        if mha.in_proj_bias is not None:
            masked.in_proj_bias[drop] = 0
            removed.in_proj_bias = nn.Parameter(mha.in_proj_bias.detach()[group.rows(kept)].clone())
        removed.out_proj.weight = nn.Parameter(mha.out_proj.weight.detach()[:, cols].clone())
        try:
            keep_heads_(removed, kept)
            expected, got = masked(*args, **kwargs), removed(*args, **kwargs)
        except Exception as e:  # a subclass, or options the pruned module does not take
            return f"its pruned copy fails ({type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''})"
    if not _same_output(expected, got):
        return "it computes something else with a head removed than with the head zeroed"
    return ""


def mha_head_group(model: nn.Module, path: str, kernels: Mapping[str, KernelRef],
                   inputs: tuple[tuple, dict] | None) -> ChannelGroup | None:
    """The head group of the nn.MultiheadAttention at `path` (None without a fused in_proj)."""
    mha = model.get_submodule(path) if path else model
    prefix = f"{path}." if path else ""
    if prefix + "in_proj" not in kernels:
        return None
    first, out = kernels[prefix + "in_proj"], kernels[prefix + "out_proj"]
    heads, head_dim = mha.num_heads, mha.head_dim
    group = ChannelGroup(first.name, "heads", heads, producers=(first.name,), consumers=((out.name, head_dim),),
                         module=path, unit=head_dim, row_chunks=3)
    reason = ""
    if mha.bias_k is not None or mha.add_zero_attn:
        reason = "it uses add_bias_kv or add_zero_attn, which head pruning does not support"
    elif first.aliases or first.tied or out.aliases or out.tied:
        reason = "its projections are shared with another module"
    elif heads < 2:
        reason = "it has a single attention head, and at least one is always kept"
    elif inputs is None:
        reason = "it is not executed on the example input"
    else:
        reason = _probe_mha(mha, group, inputs)
    if not reason:
        return group
    return ChannelGroup(first.name, "heads", heads, producers=(first.name,), consumers=((out.name, head_dim),),
                        module=path, unit=head_dim, row_chunks=3, prunable=False,
                        reason=f"nn.MultiheadAttention '{path}' cannot lose heads: {reason}")


def _drop_channel_zero(layer: nn.TransformerEncoderLayer, removed: bool) -> None:
    """Zero (removed=False) or remove residual-stream channel 0 everywhere in `layer`."""
    sa, keep = layer.self_attn, torch.arange(1, layer.linear1.in_features)
    for lin in (sa.out_proj, layer.linear2):  # writers: rows
        if removed:
            lin.weight = nn.Parameter(lin.weight.detach()[1:].clone())
            lin.bias = nn.Parameter(lin.bias.detach()[1:].clone()) if lin.bias is not None else None
            lin.out_features -= 1
        else:
            lin.weight[0] = 0
            if lin.bias is not None:
                lin.bias[0] = 0
    if removed:  # readers: columns
        sa.in_proj_weight = nn.Parameter(sa.in_proj_weight.detach()[:, 1:].clone())
        layer.linear1.weight = nn.Parameter(layer.linear1.weight.detach()[:, 1:].clone())
        layer.linear1.in_features -= 1
        keep_heads_(sa, torch.arange(sa.num_heads))  # a query narrower than its heads
    else:
        sa.in_proj_weight[:, 0] = 0
        layer.linear1.weight[:, 0] = 0
    for ln in (layer.norm1, layer.norm2):
        (slice_layernorm_ if removed else mask_layernorm_)(ln, keep)


def probe_encoder_stream(layer: nn.TransformerEncoderLayer, in_shape: tuple[int, ...]) -> str:
    """"" when the layer computes the same with residual-stream channel 0 removed (and its
    attention a `HeadPrunedMHA`) as with it zeroed, on a random input of `in_shape`; else
    why not. The caller runs this in eval mode without grad (`frozen`)."""
    sa = layer.self_attn
    if type(sa) is not nn.MultiheadAttention or sa.in_proj_weight is None or sa.bias_k is not None \
            or sa.add_zero_attn or any(type(n) is not nn.LayerNorm for n in (layer.norm1, layer.norm2)):
        return "whose attention or norms are not the plain torch modules the pruned layer is built from"
    masked, removed = copy.deepcopy(layer).eval(), copy.deepcopy(layer).eval()
    with torch.no_grad():
        _drop_channel_zero(masked, removed=False)
        _drop_channel_zero(removed, removed=True)
        x = torch.randn(in_shape, generator=torch.Generator().manual_seed(0))
        x[..., 0] = 0
        try:
            expected, got = masked(x), removed(x[..., 1:])
        except Exception as e:  # a subclass whose code needs the full width
            return f"which fails with one channel fewer ({type(e).__name__})"
    if got.shape != expected[..., 1:].shape or not torch.allclose(got, expected[..., 1:], rtol=1e-4, atol=1e-5):
        return "which computes something else with a channel removed than zeroed"
    return ""
