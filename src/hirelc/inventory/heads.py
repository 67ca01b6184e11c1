"""Head groups of timm-style attention modules.

A timm-style attention (fused `qkv` Linear, `proj` Linear, int `num_heads`) lays the qkv rows
out as [3, heads, head_dim]; removing head h removes its q, k and v rows (and bias) and the
proj input columns [h * head_dim, (h + 1) * head_dim), and lowers `num_heads`. Whether the
module's forward still works with fewer heads depends on its code (timm's own reshapes the
output with the *input* width), so every head group is probed on the example input: a copy
with head 0 removed must compute what the module computes with head 0 zeroed. When it does
not, the heads are pruned with zero-filled slots instead (`hirelc.compress.slots`: the
module keeps `num_heads`, the projections store and compute only the kept heads), probed the
same way.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping

import torch
from torch import nn

from hirelc.compress.slots import pad_heads_
from hirelc.inventory.groups import ChannelGroup
from hirelc.inventory.kernels import KernelRef


def head_group(model: nn.Module, path: str, kernels: Mapping[str, KernelRef]) -> ChannelGroup:
    """The head group of the attention module at `path`, with static feasibility checks."""
    attn = model.get_submodule(path)
    qkv, proj = kernels[f"{path}.qkv"], kernels[f"{path}.proj"]
    heads, rows, width = attn.num_heads, attn.qkv.out_features, attn.proj.in_features
    head_dim = width // heads if heads > 0 and width % heads == 0 else 1
    reason = ""
    if rows != 3 * width or width % max(heads, 1):
        reason = (f"its qkv has {rows} rows and proj {width} inputs, not 3 x num_heads "
                  f"({heads}) x head_dim and num_heads x head_dim")
    elif heads < 2:
        reason = "it has a single attention head, and at least one is always kept"
    elif qkv.aliases or proj.aliases:
        reason = "its qkv or proj weight is shared with another module"
    return ChannelGroup(
        qkv.name, "heads", max(heads, 1), producers=(qkv.name,), consumers=((proj.name, head_dim),),
        prunable=not reason, reason=reason, module=path, unit=head_dim, row_chunks=3,
    )


def _without_head_zero(attn: nn.Module, group: ChannelGroup) -> tuple[nn.Module, nn.Module]:
    """(copy with head 0 zeroed, copy with head 0 removed). Written out here rather than
    borrowed from `hirelc.compress.prune` because the inventory sits below compress."""
    proj = group.consumers[0][0]
    masked, removed = copy.deepcopy(attn), copy.deepcopy(attn)
    drop, kept = torch.tensor([0]), torch.arange(1, group.size)
    with torch.no_grad():
        masked.qkv.weight[group.rows(drop)] = 0
        if masked.qkv.bias is not None:
            masked.qkv.bias[group.rows(drop)] = 0
        masked.proj.weight[:, group.columns(proj, drop)] = 0
    rows, cols = group.rows(kept), group.columns(proj, kept)
    removed.qkv.weight = nn.Parameter(attn.qkv.weight.detach()[rows].clone())
    if attn.qkv.bias is not None:
        removed.qkv.bias = nn.Parameter(attn.qkv.bias.detach()[rows].clone())
    removed.qkv.out_features = len(rows)
    removed.proj.weight = nn.Parameter(attn.proj.weight.detach()[:, cols].clone())
    removed.proj.in_features = len(cols)
    removed.num_heads = group.size - 1
    return masked, removed


def _padded_without_head_zero(attn: nn.Module, group: ChannelGroup) -> nn.Module:
    """A copy with head 0 removed through zero-filled slots (num_heads unchanged)."""
    proj, repeat = group.consumers[0]
    _, removed = _without_head_zero(attn, group)
    removed.num_heads = group.size
    local = ChannelGroup("qkv", "heads", group.size, ("qkv",), consumers=(("proj", repeat),),
                         unit=group.unit, row_chunks=group.row_chunks, padded=True)
    pad_heads_(removed, local, torch.arange(1, group.size))
    return removed


def _same(a: object, b: object) -> bool:
    if isinstance(a, torch.Tensor) and isinstance(b, torch.Tensor):
        tol = 1e-4 * max(1.0, float(a.abs().max())) if a.numel() else 0.0
        return a.shape == b.shape and torch.allclose(a, b, rtol=1e-4, atol=tol)
    if isinstance(a, (tuple, list)) and isinstance(b, (tuple, list)) and len(a) == len(b):
        return all(_same(x, y) for x, y in zip(a, b))
    return type(a) is type(b) and not isinstance(a, torch.Tensor)


def probe_head_removal(attn: nn.Module, inputs: tuple[tuple, dict], group: ChannelGroup,
                       padded: bool = False) -> str:
    """"" when removing a head physically (`padded`: through zero-filled slots) computes what
    masking it does, else the reason. The caller runs this in eval mode without grad (`frozen`)."""
    args, kwargs = inputs
    masked, removed = _without_head_zero(attn, group)
    try:
        if padded:
            removed = _padded_without_head_zero(attn, group)
        masked.eval()
        removed.eval()
        expected = masked(*args, **kwargs)
        got = removed(*args, **kwargs)
    except Exception as e:  # whatever the module's own code raises with fewer heads
        return (f"attention module '{group.module}' fails after removing a head "
                f"({type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}); its forward "
                "probably reshapes with the input width instead of num_heads x head_dim")
    if not _same(expected, got):
        return (f"attention module '{group.module}' computes something else after removing a "
                "head than with the head zeroed")
    return ""
