"""Which rows and columns of each kernel, and which entries of each BatchNorm, LayerNorm and
bare parameter, the kept units of the pruned groups select (the index side of
`hirelc.compress.prune`; shared by masking, physical removal and `apply_plan`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import torch
from torch import Tensor

from hirelc.inventory.groups import ChannelGroup


@dataclass(frozen=True)
class KernelSlice:
    """Kept rows (dim 0) and input columns (dim 1) of one kernel's weight; None = all."""

    rows: Tensor | None = None
    cols: Tensor | None = None

    def mask(self, shape: tuple[int, ...] | torch.Size) -> Tensor:
        """Boolean mask of `shape`, True on kept weights."""
        keep_rows = torch.zeros(shape[0], dtype=torch.bool)
        keep_rows[self.rows if self.rows is not None else slice(None)] = True
        keep_cols = torch.zeros(shape[1], dtype=torch.bool)
        keep_cols[self.cols if self.cols is not None else slice(None)] = True
        mask = keep_rows.view(-1, 1) & keep_cols.view(1, -1)  # (rows, cols)
        return mask.view(*mask.shape, *([1] * (len(shape) - 2))).expand(*shape)


def _merge(slices: dict[str, KernelSlice], name: str, rows: Tensor | None = None,
           cols: Tensor | None = None) -> None:
    old = slices.get(name, KernelSlice())
    clash = lambda new, had: new is not None and had is not None and not torch.equal(new, had)  # noqa: E731
    if clash(rows, old.rows) or clash(cols, old.cols):  # the same slice twice: a tied weight
        raise ValueError(f"kernel {name!r} is sliced by two groups on the same dimension")
    slices[name] = KernelSlice(rows if rows is not None else old.rows,
                               cols if cols is not None else old.cols)


def kernel_slices(groups: Mapping[str, ChannelGroup], kept: Mapping[str, Tensor]) -> dict[str, KernelSlice]:
    """kernel name -> KernelSlice for every kernel the kept indices shrink.

    >>> from torch import nn
    >>> from hirelc.inventory import inspect
    >>> net = nn.Sequential(nn.Conv2d(1, 4, 3), nn.ReLU(), nn.Conv2d(4, 2, 3))
    >>> slices = kernel_slices(inspect(net, torch.randn(1, 1, 8, 8)).groups, {"0": torch.tensor([0, 2])})
    >>> slices["0"].rows, slices["2"].cols
    (tensor([0, 2]), tensor([0, 2]))
    """
    slices: dict[str, KernelSlice] = {}
    pieces: dict[str, _Pieces] = {}  # consumers reading a concatenation: per-slice columns
    for gid, idx in kept.items():
        g = _group(groups, gid)
        idx = idx.long().cpu()
        for name in g.producers:
            _merge(slices, name, rows=g.rows(idx))
        for name in g.embeddings:
            _merge(slices, name, cols=idx)
        for name in g.depthwise:
            _merge(slices, name, rows=g.rows(idx))
        for name, repeat in g.consumers:
            if g.spans_of(name):
                pieces.setdefault(name, _Pieces()).add(g, name, idx, repeat)
            else:
                _merge(slices, name, cols=g.columns(name, idx))
    for name, p in pieces.items():
        _merge(slices, name, cols=p.kept())
    return slices


class _Pieces:
    """Kept entries of a member reading groups as slices of a concatenation: each slice a
    pruned group covers keeps its kept entries, every other entry is kept.

    >>> g = ChannelGroup("a", "channels", 2, ("a",), spans=(("c", 1, 4),))
    >>> p = _Pieces(); p.add(g, "c", torch.tensor([1])); p.kept()
    tensor([0, 2, 3])
    """

    def __init__(self) -> None:
        self.total = 0
        self.slices: list[tuple[int, int, Tensor]] = []  # (start, stop, kept entries)

    def add(self, g: ChannelGroup, name: str, idx: Tensor, repeat: int = 1) -> None:
        within = (idx.view(-1, 1) * repeat + torch.arange(repeat)).reshape(-1)
        for offset, total in g.spans_of(name):
            start = offset * repeat
            self.slices.append((start, start + g.size * repeat, within + start))
            self.total = max(self.total, total * repeat)

    def kept(self) -> Tensor:
        keep = torch.ones(self.total, dtype=torch.bool)
        for start, stop, _ in self.slices:
            keep[start:stop] = False
        for _, _, entries in self.slices:
            keep[entries] = True
        return keep.nonzero().reshape(-1)


def _group(groups: Mapping[str, ChannelGroup], gid: str) -> ChannelGroup:
    if gid not in groups:
        raise ValueError(f"kept indices name group {gid!r}, which is not among the groups")
    g = groups[gid]
    if not g.prunable:
        raise ValueError(f"group {gid!r} cannot be pruned: {g.reason}")
    return g


def batchnorm_keeps(groups: Mapping[str, ChannelGroup], kept: Mapping[str, Tensor]) -> dict[str, Tensor]:
    """BatchNorm path -> its kept channels, for every BatchNorm a pruned group shrinks."""
    keeps: dict[str, Tensor] = {}
    pieces: dict[str, _Pieces] = {}
    for gid, idx in kept.items():
        for bn in groups[gid].batchnorms:
            if groups[gid].spans_of(bn):
                pieces.setdefault(bn, _Pieces()).add(groups[gid], bn, idx.long().cpu())
            else:  # rows(): the channels of the kept units (positions of every input group)
                keeps[bn] = groups[gid].rows(idx.long().cpu())
    keeps.update({bn: p.kept() for bn, p in pieces.items()})
    return keeps


def stream_keeps(groups: Mapping[str, ChannelGroup], kept: Mapping[str, Tensor], what: str) -> dict:
    """LayerNorm path (what="layernorms") or (parameter path, dim) (what="params") -> kept
    channels, for every one a pruned group slices (`hirelc.compress.tokens`)."""
    return {member: groups[gid].rows(idx.long().cpu()) for gid, idx in kept.items()
            for member in getattr(groups[gid], what)}
