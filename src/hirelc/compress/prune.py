"""Structured pruning: rank a group's channels (or heads), choose the kept ones, mask them,
or remove them physically.

A group (`hirelc.inventory.ChannelGroup`) is the unit: every producer of a group keeps the
same rows, every consumer the matching columns. Kept indices are a dict
`group id -> LongTensor` of sorted unit indices (channels, or heads for a head group); only
groups that lose units appear in it.

Kernel names inside a group are module paths of Conv/Linear/Embedding modules whose weight
is `.weight`, or `<mha>.in_proj` for the fused input projection of an `nn.MultiheadAttention`
(`in_proj_weight` / `in_proj_bias`; see `kernel_tensors`).

>>> from hirelc.inventory import inspect
>>> from hirelc.plan import LayerConfig
>>> net = nn.Sequential(nn.Conv2d(1, 4, 3), nn.ReLU(), nn.Conv2d(4, 2, 3))
>>> groups = inspect(net, torch.randn(1, 1, 8, 8)).groups
>>> plan = Plan({"0": LayerConfig(bits=8, keep_ratio=0.5)})
>>> kept = kept_indices(net, groups, plan, {"0": torch.tensor([1.0, 4.0, 3.0, 2.0])})
>>> kept
{'0': tensor([1, 2])}
>>> small = prune_physically(net, kept, groups)
>>> small[0].out_channels, small[2].in_channels, small[2].weight.shape
(2, 2, torch.Size([2, 2, 3, 3]))
"""

from __future__ import annotations

import copy
from collections.abc import Iterable, Mapping

import torch
from torch import Tensor, nn
from torch.nn.utils import parametrize

from hirelc.compress.mha import keep_heads_
from hirelc.compress.slices import KernelSlice, batchnorm_keeps, kernel_slices, stream_keeps
from hirelc.compress.slots import pad_heads_, pad_stream_input_
from hirelc.compress.tokens import mask_layernorm_, mask_param_, slice_layernorm_, slice_param_
from hirelc.cost import kept_count
from hirelc.inventory.groups import ChannelGroup
from hirelc.inventory.heads import attention_parts
from hirelc.inventory.kernels import KernelRef, find_kernels, is_depthwise
from hirelc.plan import Plan

__all__ = [
    "KernelSlice",
    "apply_masks_",
    "batchnorm_keeps",
    "group_importance",
    "group_keep_count",
    "kept_count",
    "kept_indices",
    "kernel_slices",
    "prune_physically",
    "select_kept",
    "stream_keeps",
]

CRITERIA = ("l1", "l2")


def group_importance(model: nn.Module, group: ChannelGroup, criterion: str = "l1") -> Tensor:
    """Importance of each unit of `group`: the L1 or L2 norm of its rows, summed over the
    group's producers (for a head: its q, k and v rows together). Shape (group.size,).

    >>> net = nn.Sequential(nn.Linear(2, 2, bias=False))
    >>> _ = net[0].weight.data.copy_(torch.tensor([[1.0, -2.0], [0.5, 0.5]]))
    >>> group_importance(net, ChannelGroup("0", "channels", 2, ("0",)))
    tensor([3., 1.])
    """
    if criterion not in CRITERIA:
        raise ValueError(f"unknown pruning criterion {criterion!r}; expected one of {CRITERIA}")
    score = torch.zeros(group.size)
    weights = [(_weight(model, n).detach().float().cpu(), False) for n in group.producers]
    weights += [(_weight(model, n).detach().float().cpu(), True) for n in group.embeddings]
    for w, by_column in weights:
        if by_column:  # an embedding's channels are its columns
            units = w.t()  # (dim, tokens)
        else:
            units = w.reshape(group.row_chunks, group.size, group.unit, -1)  # (chunks, size, unit, cols)
            units = units.transpose(0, 1)  # (size, chunks, unit, cols)
        units = units.reshape(group.size, -1)
        score += units.abs().sum(1) if criterion == "l1" else units.pow(2).sum(1).sqrt()
    return score


def kernel_tensors(model: nn.Module, name: str) -> tuple[nn.Module, str, str]:
    """(module, weight attribute, bias attribute) of the kernel `name`.

    >>> kernel_tensors(nn.Sequential(nn.MultiheadAttention(4, 2)), "0.in_proj")[1:]
    ('in_proj_weight', 'in_proj_bias')
    """
    head, _, leaf = name.rpartition(".")
    if leaf == "in_proj" and isinstance(model.get_submodule(head), nn.MultiheadAttention):
        return model.get_submodule(head), "in_proj_weight", "in_proj_bias"
    return model.get_submodule(name), "weight", "bias"


def _weight(model: nn.Module, name: str) -> Tensor:
    mod, weight, _ = kernel_tensors(model, name)
    return getattr(mod, weight)


def group_keep_count(group: ChannelGroup, keep_ratios: Iterable[float]) -> int:
    """Units kept: the largest count asked by any kernel of the group (ARCHITECTURE: a
    residual-tied group never prunes more than any of its producers asks), the same in each
    of its `segments` (the groups of a grouped convolution).

    >>> group_keep_count(ChannelGroup("c", "channels", 12, ("c",), segments=3), [0.5])
    6
    """
    per_segment = group.size // group.segments
    return group.segments * max(kept_count(per_segment, float(r)) for r in keep_ratios)


def select_kept(scores: Tensor, keep_ratios: float | Iterable[float]) -> Tensor:
    """Sorted indices of the highest-scoring units; the count is the largest
    `kept_count(len(scores), r)` over `keep_ratios`. Ties keep the lower index.

    >>> select_kept(torch.tensor([0.5, 3.0, 1.0, 2.0]), [0.5, 0.25])
    tensor([1, 3])
    """
    ratios = [keep_ratios] if isinstance(keep_ratios, (int, float)) else list(keep_ratios)
    if not ratios:
        raise ValueError("select_kept needs at least one keep ratio")
    n = scores.numel()
    return _top(scores, max(kept_count(n, float(r)) for r in ratios))


def _top(scores: Tensor, count: int) -> Tensor:
    """Sorted indices of the `count` largest scores, ties to the lower index."""
    order = torch.argsort(scores.detach().reshape(-1), descending=True, stable=True)
    return order[:count].sort().values


def _group_ratios(group: ChannelGroup, plan: Plan) -> list[float]:
    # a kernel the plan leaves out stays uncompressed: it asks to keep everything
    names = group.producers + group.embeddings + group.depthwise
    return [plan[n].keep_ratio if n in plan else 1.0 for n in names]


def _scores(model: nn.Module, group: ChannelGroup,
            importance: str | Mapping[str, Tensor] | None) -> Tensor:
    if importance is None or isinstance(importance, str):
        return group_importance(model, group, importance or "l1")
    if group.id not in importance:
        return group_importance(model, group, "l1")
    scores = torch.as_tensor(importance[group.id]).detach().float().reshape(-1).cpu()
    if scores.numel() != group.size:
        raise ValueError(f"importance for group {group.id!r} has {scores.numel()} values, "
                         f"the group has {group.size} {group.kind}")
    return scores


def kept_indices(
    model: nn.Module,
    groups: Mapping[str, ChannelGroup],
    plan: Plan,
    importance: str | Mapping[str, Tensor] | None = None,
) -> dict[str, Tensor]:
    """group id -> sorted kept unit indices, for every prunable group the plan shrinks.

    importance: "l1" (default) or "l2" weight norms, or a mapping group id -> scores of
    length group.size (e.g. Fisher); groups missing from the mapping fall back to L1.

    >>> from hirelc.inventory import inspect
    >>> from hirelc.plan import LayerConfig
    >>> net = nn.Sequential(nn.Linear(3, 4), nn.ReLU(), nn.Linear(4, 2))
    >>> groups = inspect(net, torch.randn(1, 3)).groups
    >>> kept = kept_indices(net, groups, Plan({"0": LayerConfig(bits=8, keep_ratio=0.5)}), "l2")
    >>> len(kept["0"])
    2
    """
    kept = {}
    for g in groups.values():
        if not g.prunable:
            continue
        count = group_keep_count(g, _group_ratios(g, plan))
        if count < g.size:
            kept[g.id] = _top_per_segment(_scores(model, g, importance), count, g.segments)
    return kept


def _top_per_segment(scores: Tensor, count: int, segments: int) -> Tensor:
    """`_top` within each of `segments` equal consecutive segments, count / segments each."""
    if segments == 1:
        return _top(scores, count)
    per = scores.numel() // segments
    parts = [_top(seg, count // segments) + i * per for i, seg in enumerate(scores.split(per))]
    return torch.cat(parts)


def _unit_mask(n: int, rows: Tensor) -> Tensor:
    mask = torch.zeros(n, dtype=torch.bool)
    mask[rows] = True
    return mask


@torch.no_grad()
def apply_masks_(
    model: nn.Module, kept: Mapping[str, Tensor], groups: Mapping[str, ChannelGroup]
) -> nn.Module:
    """Zero, in place, every weight, bias and BatchNorm affine parameter of the pruned units:
    the masked equivalent of `prune_physically` (no quantization). Returns `model`.

    >>> from hirelc.inventory import inspect
    >>> net = nn.Sequential(nn.Linear(3, 4), nn.ReLU(), nn.Linear(4, 2))
    >>> groups = inspect(net, torch.randn(1, 3)).groups
    >>> masked = apply_masks_(copy.deepcopy(net), {"0": torch.tensor([1, 3])}, groups)
    >>> masked[0].bias[[0, 2]].eq(0).tolist(), bool(masked[2].weight[:, [0, 2]].eq(0).all())
    ([True, True], True)
    """
    aliases = {r.name: r.aliases for r in find_kernels(model)}
    for name, sl in kernel_slices(groups, kept).items():
        mod, weight_attr, bias_attr = kernel_tensors(model, name)
        w = getattr(mod, weight_attr)
        w.mul_(sl.mask(w.shape).to(w.device))
        holders = [mod] + [model.get_submodule(p) for p in aliases.get(name, ())]
        biases = {id(b): b for m in holders if (b := getattr(m, bias_attr, None)) is not None}
        for bias in biases.values() if sl.rows is not None else ():
            bias.mul_(_unit_mask(bias.shape[0], sl.rows).to(bias.device))
    for path, idx in batchnorm_keeps(groups, kept).items():
        bn = model.get_submodule(path)
        for p in (bn.weight, bn.bias):
            if p is not None:
                p.mul_(_unit_mask(p.shape[0], idx).to(p.device))
    for path, idx in stream_keeps(groups, kept, "layernorms").items():
        mask_layernorm_(model.get_submodule(path), idx)
    for (path, dim), idx in stream_keeps(groups, kept, "params").items():
        mask_param_(model, path, dim, idx)
    return model


def _new_param(old: Tensor, value: Tensor) -> nn.Parameter:
    return nn.Parameter(value.clone(), requires_grad=old.requires_grad)


def _slice_kernel(model: nn.Module, name: str, sl: KernelSlice) -> None:
    """Reslice a Conv1d/Conv2d/Linear/Embedding (or an MHA's in_proj) in place and update
    its size attributes (an MHA's head count is set by its head group)."""
    mod, weight_attr, bias_attr = kernel_tensors(model, name)
    depthwise = is_depthwise(mod)
    old, bias = getattr(mod, weight_attr), getattr(mod, bias_attr, None)
    w = old.detach()
    if sl.rows is not None:
        w = w.index_select(0, sl.rows.to(w.device))
    if sl.cols is not None:
        w = w.index_select(1, sl.cols.to(w.device))
    setattr(mod, weight_attr, _new_param(old, w))
    if sl.rows is not None and bias is not None:
        setattr(mod, bias_attr, _new_param(bias, bias.detach().index_select(0, sl.rows.to(w.device))))
    if isinstance(mod, nn.MultiheadAttention):
        return
    if isinstance(mod, nn.Linear):
        mod.out_features, mod.in_features = w.shape[0], w.shape[1]
    elif isinstance(mod, (nn.Embedding, nn.EmbeddingBag)):
        mod.embedding_dim = w.shape[1]
    elif depthwise:  # channel c reads channel c: in = out = groups shrink together
        mod.in_channels = mod.out_channels = mod.groups = w.shape[0]
    else:
        mod.out_channels, mod.in_channels = w.shape[0], w.shape[1] * mod.groups


def _retie(model: nn.Module, ref: KernelRef, sl: KernelSlice) -> None:
    """Hand a resliced weight shared by several modules (an embedding tied to the output
    Linear) to every other holder, with its size attributes and (rows pruned) its own bias."""
    w = getattr(model.get_submodule(ref.module), ref.param)
    for path in ref.aliases:
        mod = model.get_submodule(path)
        setattr(mod, ref.param, w)
        bias = getattr(mod, "bias", None)
        if sl.rows is not None and isinstance(bias, nn.Parameter) and bias.shape[0] != w.shape[0]:
            mod.bias = _new_param(bias, bias.detach().index_select(0, sl.rows.to(bias.device)))
        if isinstance(mod, nn.Linear):
            mod.out_features, mod.in_features = w.shape[0], w.shape[1]
        elif isinstance(mod, (nn.Embedding, nn.EmbeddingBag)):
            mod.embedding_dim = w.shape[1]
    for path, attr in ref.tied:
        setattr(model.get_submodule(path), attr, w)


def _slice_batchnorm(bn: nn.Module, idx: Tensor) -> None:
    for name in ("weight", "bias"):
        p = getattr(bn, name)
        if p is not None:
            setattr(bn, name, _new_param(p, p.detach().index_select(0, idx.to(p.device))))
    for name in ("running_mean", "running_var"):
        buf = getattr(bn, name)
        if buf is not None:
            setattr(bn, name, buf.index_select(0, idx.to(buf.device)).clone())
    bn.num_features = len(idx)


def reslice_(model: nn.Module, kept: Mapping[str, Tensor], groups: Mapping[str, ChannelGroup]) -> nn.Module:
    """`prune_physically` in place (the model must carry no parametrizations)."""
    if any(parametrize.is_parametrized(m) for m in model.modules()):
        raise ValueError("prune_physically needs a plain model; for a model from apply_plan "
                         "use hirelc.compress.apply.to_physical")
    refs = {r.name: r for r in find_kernels(model)}
    for name, sl in kernel_slices(groups, kept).items():
        _slice_kernel(model, name, sl)
        if name in refs:
            _retie(model, refs[name], sl)
    for path, idx in batchnorm_keeps(groups, kept).items():
        _slice_batchnorm(model.get_submodule(path), idx)
    for path, idx in stream_keeps(groups, kept, "layernorms").items():
        slice_layernorm_(model.get_submodule(path), idx)
    for (path, dim), idx in stream_keeps(groups, kept, "params").items():
        slice_param_(model, path, dim, idx)
    for gid, idx in kept.items():
        g = groups[gid]
        if g.kind == "heads" and g.padded:  # the module's code keeps every head slot
            pad_heads_(model, g, idx)
        elif g.kind == "heads" and isinstance(model.get_submodule(g.module), nn.MultiheadAttention):
            keep_heads_(model.get_submodule(g.module), idx.long().cpu())
        elif g.kind == "heads":
            setattr(model.get_submodule(g.module), g.heads_attr, len(idx))
    for gid in kept:  # after the heads: a padded head's ScatterLinear narrows its input too
        for path in groups[gid].padded_inputs:
            attn = model.get_submodule(path)
            pad_stream_input_(attn, attention_parts(attn)[1], groups[gid].size)
        _narrow_mha_queries(model, groups[gid])
    return model


def _narrow_mha_queries(model: nn.Module, group: ChannelGroup) -> None:
    """A pruned residual stream read or written by an nn.MultiheadAttention (inside
    nn.TransformerEncoderLayer): torch's module needs query width == num_heads x head_dim,
    so it becomes a `HeadPrunedMHA` keeping all its heads."""
    names = list(group.producers) + [n for n, _ in group.consumers]
    for name in names:
        head, _, leaf = name.rpartition(".")
        if leaf in ("in_proj", "out_proj") and type(model.get_submodule(head)) is nn.MultiheadAttention:
            mha = model.get_submodule(head)
            keep_heads_(mha, torch.arange(mha.num_heads))


def prune_physically(model: nn.Module, kept: Mapping[str, Tensor],
                     groups: Mapping[str, ChannelGroup]) -> nn.Module:
    """A copy of `model` with the pruned channels and heads removed: smaller producer rows
    and biases, BatchNorm parameters and running statistics, depthwise convs, consumer input
    columns (a flatten multiplier included), attention qkv rows / proj columns / num_heads,
    and the modules' size attributes. `model` is left untouched.

    >>> from hirelc.inventory import inspect
    >>> net = nn.Sequential(nn.Conv2d(1, 6, 3), nn.BatchNorm2d(6), nn.ReLU(), nn.Conv2d(6, 2, 3))
    >>> groups = inspect(net, torch.randn(1, 1, 8, 8)).groups
    >>> small = prune_physically(net, {"0": torch.tensor([0, 2, 5])}, groups)
    >>> small[0].out_channels, small[1].num_features, small[3].in_channels
    (3, 3, 3)
    """
    return reslice_(copy.deepcopy(model), kept, groups)
