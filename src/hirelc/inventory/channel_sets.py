"""Union-find of channel sets and its resolution into `ChannelGroup`s.

The graph walk (`hirelc.inventory.channels`) creates one element per kernel call (its output
channels) and one per concatenation (made of its inputs' elements at their offsets), merges
elements tied by residual adds and gates, and records on each element what reads it and why
it cannot be pruned. `ChannelSets.groups` then hands every concatenation's readers to its
parts, ties elements that share a sliced module, and builds one group per merged element.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace

from torch import fx

from hirelc.inventory.groups import ChannelGroup
from hirelc.inventory.kernels import KernelRef


@dataclass
class Members:
    """Everything attached to one union-find element of channels."""

    size: int
    producers: list[str] = field(default_factory=list)
    embeddings: list[str] = field(default_factory=list)
    segments: int = 1
    batchnorms: list[str] = field(default_factory=list)
    depthwise: list[str] = field(default_factory=list)
    consumers: list[tuple[str, int]] = field(default_factory=list)
    reasons: list[str] = field(default_factory=list)
    # (consumer or batchnorm, channel offset, total channels) when it reads a concatenation
    spans: list[tuple[str, int, int]] = field(default_factory=list)
    parts: list[tuple[int, int]] = field(default_factory=list)  # a concatenation: (element, offset)
    grouped: list[tuple[str, int]] = field(default_factory=list)  # (grouped conv reading it, groups)
    layernorms: list[str] = field(default_factory=list)  # LayerNorms over exactly these channels
    params: list[tuple[str, int]] = field(default_factory=list)  # (parameter path, its channel dim)
    padded_inputs: list[str] = field(default_factory=list)  # attention zero-filling its input


class ChannelSets:
    """Elements of channels (union-find) and what is attached to each."""

    def __init__(self) -> None:
        self.parent: list[int] = []
        self.members: list[Members] = []
        self.whole_columns: set[str] = set()  # kernels called somewhere on an input not followed

    def _new(self, size: int, producer: str, embedding: bool = False, segments: int = 1) -> int:
        self.parent.append(len(self.parent))
        m = Members(size, segments=segments)
        (m.embeddings if embedding else m.producers).append(producer)
        self.members.append(m)
        return len(self.parent) - 1

    def find(self, e: int) -> int:
        while self.parent[e] != e:
            self.parent[e] = self.parent[self.parent[e]]  # path halving
            e = self.parent[e]
        return e

    def union(self, a: int, b: int) -> int:
        ra, rb = self.find(a), self.find(b)
        if ra != rb and (self.members[ra].parts or self.members[rb].parts):
            for r in (ra, rb):  # a concatenation's channels belong to several groups
                self.members[r].reasons.append("a concatenation tied to other channels by an add or a gate")
            return ra
        if ra != rb:
            self.parent[rb] = ra
        return ra

    def _distribute(self) -> None:
        """Hand every concatenation's consumers, BatchNorms and reasons to its parts, with the
        channel offset of each part (outer concatenations first: they are created later)."""
        for e in range(len(self.members) - 1, -1, -1):
            cat = self.members[e]
            if not cat.parts:
                continue
            spans = {n: (o, tot) for n, o, tot in cat.spans}
            if cat.layernorms or cat.params or cat.padded_inputs:
                cat.reasons.append("normalised or offset by a parameter after a concatenation")
            if cat.grouped:
                cat.reasons.append(f"read by grouped convolution '{cat.grouped[0][0]}' after a concatenation")
            if cat.depthwise:
                cat.reasons.append(f"read by depthwise convolution '{cat.depthwise[0]}' after a concatenation")
            for part, offset in cat.parts:
                m = self.members[self.find(part)]
                for n, r in cat.consumers:
                    o, tot = spans.get(n, (0, cat.size))
                    m.consumers.append((n, r))
                    m.spans.append((n, offset + o, tot))
                for n in cat.batchnorms:
                    o, tot = spans.get(n, (0, cat.size))
                    m.batchnorms.append(n)
                    m.spans.append((n, offset + o, tot))
                m.reasons += cat.reasons
            cat.consumers, cat.batchnorms, cat.reasons = [], [], []

    def _tie_repeated_members(self) -> None:
        """A module met in several elements (called twice) slices the same rows or columns
        for all of them, so those elements must keep the same channels: merge them."""
        first: dict[tuple[str, str], int] = {}
        repeats: dict[str, set[int]] = {}
        for e, m in enumerate(self.members):
            sliced = {n for n, _, _ in m.spans}  # a slice of a concatenation: not the same columns
            keys = [("rows", n) for n in m.producers + m.depthwise]
            keys += [("bn", n) for n in m.batchnorms if n not in sliced]
            keys += [("columns", n) for n in m.embeddings] + [("ln", n) for n in m.layernorms]
            keys += [("param", n) for n, _ in m.params]
            keys += [("columns", n) for n, _ in m.consumers if n not in sliced]
            for n, r in m.consumers:
                repeats.setdefault(n, set()).add(r)
            for key in keys:
                if key in first:
                    self.union(first[key], e)
                else:
                    first[key] = e
        for e, m in enumerate(self.members):
            for n, _ in m.consumers:
                if len(repeats[n]) > 1:
                    m.reasons.append(f"read by '{n}', which is called on differently flattened inputs")

    def _poison_whole_columns(self) -> None:
        """A kernel called twice (or tied to another module) slices one weight for every
        call: when one call reads an input the analysis does not follow, no call may lose
        columns."""
        for m in self.members:
            for n in [c for c, _ in m.consumers] + m.embeddings:
                if n in self.whole_columns:
                    m.reasons.append(f"read as input columns of '{n}', whose weight is also called "
                                     "on an input whose channels cannot be removed")

    def _poison_shared(self, shared: Mapping[str, tuple[str, ...]]) -> None:
        for m in self.members:
            names = m.producers + m.embeddings + m.depthwise + [n for n, _ in m.consumers]
            for n in names:
                if n in shared:
                    m.reasons.append(f"sliced through '{n}', whose weight is shared with "
                                     f"module(s) {', '.join(shared[n])}")

    def _merged(self) -> list[Members]:
        merged: dict[int, Members] = {}
        for e, m in enumerate(self.members):
            g = merged.setdefault(self.find(e), Members(m.size))
            g.producers += m.producers
            g.embeddings += m.embeddings
            g.segments = math.lcm(g.segments, m.segments)
            g.batchnorms += m.batchnorms
            g.depthwise += m.depthwise
            g.consumers += m.consumers
            g.reasons += m.reasons
            g.spans += m.spans
            g.grouped += m.grouped
            g.layernorms += m.layernorms
            g.params += m.params
            g.padded_inputs += m.padded_inputs
        return [m for m in merged.values() if m.producers or m.embeddings]

    @staticmethod
    def _grouped_chunks(m: Members, reasons: list[str]) -> int:
        """Channels read by grouped convolutions (groups g) are pruned at the same positions
        in each of the g input groups, so every group's weight loses the same columns: the
        group's units are positions, its rows g chunks of them. Only when nothing else
        reads or slices those channels (1 otherwise, with the reason)."""
        if not m.grouped:
            return 1
        name, g = m.grouped[0]
        readers = {n for n, _ in m.grouped}
        others = [n for n, _ in m.consumers if n not in readers]
        if {k for _, k in m.grouped} != {g} or others or m.depthwise or m.spans or m.embeddings \
                or m.segments > 1 or m.size % g:
            reasons.append(f"read by grouped convolution '{name}' (groups={g}) and by other layers; "
                           "only channels that grouped convolutions alone read are pruned")
            return 1
        return g

    def groups(self, order: Mapping[str, int], shared: Mapping[str, tuple[str, ...]]) -> list[ChannelGroup]:
        self._distribute()
        self._tie_repeated_members()
        self._poison_whole_columns()
        self._poison_shared(shared)
        rank = lambda name: order.get(name, len(order))  # noqa: E731
        groups = []
        for m in self._merged():
            producers = sorted(dict.fromkeys(m.producers), key=rank)
            embeddings = sorted(dict.fromkeys(m.embeddings), key=rank)
            reasons = list(dict.fromkeys(m.reasons))
            if m.size % m.segments:
                reasons.append(f"split by grouped convolutions into {m.segments} groups, "
                               f"which {m.size} channels do not divide evenly")
            chunks = self._grouped_chunks(m, reasons)
            reason = ""
            if reasons:
                more = f" (and {len(reasons) - 1} more)" if len(reasons) > 1 else ""
                reason = f"its output channels are {reasons[0]}{more}"
            elif m.size // m.segments // chunks < 2:
                reason = "it has a single output channel (per group), and at least one is always kept"
            segments = m.segments if m.size % m.segments == 0 else 1
            groups.append(ChannelGroup(
                sorted(producers + embeddings, key=rank)[0], "channels", m.size // chunks, tuple(producers),
                row_chunks=chunks,
                embeddings=tuple(embeddings), segments=segments, spans=tuple(dict.fromkeys(m.spans)),
                batchnorms=tuple(dict.fromkeys(m.batchnorms)), layernorms=tuple(dict.fromkeys(m.layernorms)),
                params=tuple(dict.fromkeys(m.params)), padded_inputs=tuple(dict.fromkeys(m.padded_inputs)),
                depthwise=tuple(dict.fromkeys(m.depthwise)),
                consumers=tuple(dict.fromkeys(m.consumers)),
                prunable=not reason, reason=reason,
            ))
        return _unique_ids(sorted(groups, key=lambda g: rank(g.id)))


def _unique_ids(groups: list[ChannelGroup]) -> list[ChannelGroup]:
    """Two groups can start at the same kernel (a weight tied to an embedding: the stream
    through its columns, the tied Linear's outputs through its rows): the prunable one keeps
    the kernel's name, the others get `#2`, `#3`, ..."""
    seen: dict[str, int] = {}
    for g in sorted(groups, key=lambda g: not g.prunable):
        seen[g.id] = seen.get(g.id, 0) + 1
        if seen[g.id] > 1:
            groups[groups.index(g)] = replace(g, id=f"{g.id}#{seen[g.id]}")
    return groups


def shared_weights(gm: fx.GraphModule, kernels: Sequence[KernelRef], called: set[str],
            prefix: str) -> dict[str, tuple[str, ...]]:
    """Kernel name -> the other readers of its weight that the analysis does not follow:
    non-kernel holders (`tied`), its weight read directly by the code (a get_attr), and kernel
    aliases unless every holder is called as a module in this graph (then each call slices
    the same tensor by the kernel's name, which `ChannelSets` ties together)."""
    direct = {prefix + str(n.target) for n in gm.graph.nodes if n.op == "get_attr"}
    shared = {}
    for k in kernels:
        holders = (k.module, *k.aliases)
        others = tuple(f"{p} ({n})" for p, n in k.tied)
        others += tuple(f"{p} (read directly)" for p in holders if f"{p}.{k.param}" in direct)
        if k.aliases and not all(p in called for p in holders):
            others += k.aliases
        if others:
            shared[k.name] = others
    return shared
