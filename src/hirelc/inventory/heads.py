"""Head groups of attention modules: timm-style (fused `qkv`, `proj`, `num_heads`) and split
q / k / v (`hirelc.inventory.kernels.split_attention_parts`).

A fused qkv lays its rows out as [3, heads, head_dim]; separate q, k and v each as
[heads, head_dim]. Removing head h removes its q, k and v rows (and biases), the output
projection's input columns [h * head_dim, (h + 1) * head_dim), and lowers the head count.
Whether the module's forward still works with fewer heads depends on its code (timm's own
reshapes with the *input* width), so every head group is probed on the example input: a copy
with head 0 removed must compute what the module computes with head 0 zeroed. When it does
not, the heads are pruned with zero-filled slots instead (`hirelc.compress.slots`: the
module keeps its head count, the projections store and compute only the kept heads), probed
the same way.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping

import torch
from torch import nn

from hirelc.compress.slots import pad_heads_
from hirelc.inventory.groups import ChannelGroup
from hirelc.inventory.kernels import KernelRef, is_timm_attention, split_attention_parts


def attention_parts(attn: nn.Module) -> tuple[str, list[str], str, int]:
    """(head-count attribute, producer child names, output child name, rows per head chunk)."""
    if is_timm_attention(attn):
        return "num_heads", ["qkv"], "proj", 3
    attr, qkv, out = split_attention_parts(attn)
    return attr, qkv, out, 1


def head_group(model: nn.Module, path: str, kernels: Mapping[str, KernelRef]) -> ChannelGroup:
    """The head group of the attention module at `path`, with static feasibility checks."""
    attn = model.get_submodule(path)
    attr, producers, out, chunks = attention_parts(attn)
    prefix = f"{path}." if path else ""
    refs = [kernels[prefix + p] for p in producers]
    proj = kernels[prefix + out]
    heads, width = getattr(attn, attr), attn.get_submodule(out).in_features
    head_dim = width // heads if heads > 0 and width % heads == 0 else 1
    rows = [attn.get_submodule(p).out_features for p in producers]
    reason = ""
    if any(r != chunks * width for r in rows) or width % max(heads, 1):
        reason = (f"its projections have {rows} rows and {width} output inputs, not "
                  f"{chunks} x {attr} ({heads}) x head_dim and {attr} x head_dim")
    elif heads < 2:
        reason = "it has a single attention head, and at least one is always kept"
    elif any(r.aliases or r.tied for r in (*refs, proj)):
        reason = "its projection weights are shared with another module"
    return ChannelGroup(
        refs[0].name, "heads", max(heads, 1), producers=tuple(r.name for r in refs),
        consumers=((proj.name, head_dim),), prunable=not reason, reason=reason, module=path,
        unit=head_dim, row_chunks=chunks, heads_attr=attr,
    )


def _local(group: ChannelGroup, padded: bool = False) -> ChannelGroup:
    """The group with kernel names relative to its attention module."""
    cut = len(group.module) + 1 if group.module else 0
    (proj, repeat), = group.consumers
    return ChannelGroup("local", "heads", group.size, tuple(p[cut:] for p in group.producers),
                        consumers=((proj[cut:], repeat),), unit=group.unit, row_chunks=group.row_chunks,
                        heads_attr=group.heads_attr, padded=padded)


def _without_head_zero(attn: nn.Module, group: ChannelGroup) -> tuple[nn.Module, nn.Module]:
    """(copy with head 0 zeroed, copy with head 0 removed). Written out here rather than
    borrowed from `hirelc.compress.prune` because the inventory sits below compress."""
    g = _local(group)
    (proj, _), = g.consumers
    masked, removed = copy.deepcopy(attn), copy.deepcopy(attn)
    drop, kept = torch.tensor([0]), torch.arange(1, g.size)
    rows, cols = g.rows(kept), g.columns(proj, kept)
    with torch.no_grad():
        for name in g.producers:
            m, r, src = masked.get_submodule(name), removed.get_submodule(name), attn.get_submodule(name)
            m.weight[g.rows(drop)] = 0
            r.weight = nn.Parameter(src.weight.detach()[rows].clone())
            if src.bias is not None:
                m.bias[g.rows(drop)] = 0
                r.bias = nn.Parameter(src.bias.detach()[rows].clone())
            r.out_features = len(rows)
        masked.get_submodule(proj).weight[:, g.columns(proj, drop)] = 0
        out = removed.get_submodule(proj)
        out.weight = nn.Parameter(attn.get_submodule(proj).weight.detach()[:, cols].clone())
        out.in_features = len(cols)
    setattr(removed, g.heads_attr, g.size - 1)
    return masked, removed


def _padded_without_head_zero(attn: nn.Module, group: ChannelGroup) -> nn.Module:
    """A copy with head 0 removed through zero-filled slots (head count unchanged)."""
    _, removed = _without_head_zero(attn, group)
    setattr(removed, group.heads_attr, group.size)
    pad_heads_(removed, _local(group, padded=True), torch.arange(1, group.size))
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
    try:
        masked, removed = _without_head_zero(attn, group)
        if padded:
            removed = _padded_without_head_zero(attn, group)
        masked.eval()
        removed.eval()
        expected = masked(*args, **kwargs)
        got = removed(*args, **kwargs)
    except Exception as e:  # whatever the module's own code raises with fewer heads
        return (f"attention module '{group.module}' fails after removing a head "
                f"({type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}); its forward "
                f"probably reshapes with the input width instead of {group.heads_attr} x head_dim")
    if not _same(expected, got):
        return (f"attention module '{group.module}' computes something else after removing a "
                "head than with the head zeroed")
    return ""
