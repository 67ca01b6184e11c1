"""Pruning counts: how many channels (or heads) a keep ratio keeps, and the kept weight
matrix of every kernel once its channel group and its producers are pruned. Pure
arithmetic on `LayerSpec`s and `LayerConfig`s (re-exported by `hirelc.cost`).
"""

from __future__ import annotations

import functools
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from fractions import Fraction

from hirelc.inventory.spec import LayerSpec
from hirelc.plan import LayerConfig


def kept_count(n: int, keep_ratio: float) -> int:
    """Channels (or heads) kept out of n: max(1, floor(n * keep_ratio + 0.5)).

    The project-wide contract (docs/ARCHITECTURE.md): round half up, never zero.

    >>> kept_count(10, 0.25), kept_count(10, 0.35), kept_count(3, 0.1)
    (3, 4, 1)
    """
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ValueError(f"kept_count needs a positive integer n, got {n!r}")
    if not 0.0 < keep_ratio <= 1.0:
        raise ValueError(f"keep_ratio must be in (0, 1], got {keep_ratio!r}")
    return max(1, math.floor(n * keep_ratio + 0.5))


def prune_units(spec: LayerSpec) -> int:
    """What keep_ratio counts for a kernel: attention heads for a fused q/k/v projection
    with known heads, else output channels (rows).

    >>> prune_units(LayerSpec("qkv", "attn_qkv", (96, 32), n_macs=0, n_heads=4))
    4
    """
    if spec.n_heads and spec.kind not in ("attn_proj", "mha_out_proj"):  # a head producer
        return spec.n_heads
    return spec.channels  # an embedding's channels are its columns


def kept_shapes(specs: Sequence[LayerSpec], plan: Mapping[str, LayerConfig]) -> dict[str, tuple[int, int]]:
    """(kept rows, kept columns) of every kernel's weight matrix after pruning with `plan`.

    Rows: a channel group (kernels sharing `prune_group`; a kernel without one is its own
    group) keeps the largest fraction kept_count(units, keep_ratio) / units asked by any
    member, so it never prunes more than asked (docs/ARCHITECTURE.md). Kernels missing
    from the plan ask for 1.0.
    Columns: a kernel listed in its producers' `consumers` loses the input channels its
    producers' groups drop; with several producer groups (a channel concat) the kept
    fraction is their kept channels over their channels. Depthwise convs keep their one
    column: the inventory ties them to their producer's group, so their rows shrink
    instead; a grouped conv loses the same fraction of its columns (in_channels / groups).
    Hand-built specs without `consumers` keep all columns.

    >>> a = LayerSpec("a", "linear", (8, 4), n_macs=32, prunable=True, consumers=("b",))
    >>> b = LayerSpec("b", "linear", (2, 8), n_macs=16)
    >>> kept_shapes([a, b], {"a": LayerConfig(4, keep_ratio=0.5)})
    {'a': (4, 4), 'b': (2, 4)}
    """
    structure = PruneStructure.of(specs)
    return structure.shapes(structure.keeps(plan))


def kept_units(specs: Sequence[LayerSpec], plan: Mapping[str, LayerConfig]) -> dict[str, int]:
    """Kept units (channels or heads) of every output-channel group under `plan`: the group
    id (`prune_group`, or the kernel's own name) -> units kept, by the rule of `kept_shapes`.

    >>> a = LayerSpec("a", "linear", (8, 4), n_macs=32, prunable=True, prune_group="g")
    >>> b = LayerSpec("b", "linear", (8, 4), n_macs=32, prunable=True, prune_group="g")
    >>> kept_units([a, b], {"a": LayerConfig(4, keep_ratio=0.25), "b": LayerConfig(4, keep_ratio=0.5)})
    {'g': 4}
    """
    structure = PruneStructure.of(specs)
    return structure.units_kept(structure.keeps(plan))


@dataclass(frozen=True)
class PruneStructure:
    """What `kept_shapes` and `kept_units` read of the specs, taken once: a budget repair
    asks for the pruned shapes of thousands of keep vectors (`SizeModel` keeps one).

    Per kernel, in spec order: name, channel group, prune units and segments, weight matrix
    (rows, cols), whether it is an embedding or depthwise, and the (group, channels) of its
    producers, one per group (a group tied by a residual add contributes its channels once).
    """

    names: tuple[str, ...]
    groups: tuple[str, ...]
    units: tuple[int, ...]
    segments: tuple[int, ...]
    matrix: tuple[tuple[int, int], ...]
    embedding: tuple[bool, ...]
    depthwise: tuple[bool, ...]
    inputs: tuple[tuple[tuple[str, int], ...], ...]

    @classmethod
    def of(cls, specs: Sequence[LayerSpec]) -> "PruneStructure":
        producers: dict[str, dict[str, int]] = {}
        for s in specs:
            for c in s.consumers:
                producers.setdefault(c, {}).setdefault(s.prune_group or s.name, s.channels)
        return cls(tuple(s.name for s in specs), tuple(s.prune_group or s.name for s in specs),
                   tuple(prune_units(s) for s in specs), tuple(s.prune_segments for s in specs),
                   tuple((s.out_channels, math.prod(s.weight_shape[1:])) for s in specs),
                   tuple(s.kind == "embedding" for s in specs),
                   tuple(s.conv_groups > 1 and s.weight_shape[1] == 1 for s in specs),
                   tuple(tuple(producers.get(s.name, {}).items()) for s in specs))

    def keeps(self, plan: Mapping[str, LayerConfig]) -> tuple[float, ...]:
        """Each kernel's keep ratio under `plan` (1.0 when missing)."""
        return tuple(plan[n].keep_ratio if n in plan else 1.0 for n in self.names)

    def group_fractions(self, keeps: Sequence[float]) -> dict[str, Fraction]:
        """Kept fraction of every channel group: the largest any member asks (exact)."""
        asked: dict[str, Fraction] = {}
        for group, units, segments, keep in zip(self.groups, self.units, self.segments, keeps):
            frac = _asked_fraction(units, segments, keep)
            if group not in asked or frac > asked[group]:
                asked[group] = frac
        return asked

    def canonical_keeps(self, keeps: Sequence[float]) -> tuple[float, ...]:
        """`keeps` with every member of a shared channel group set to the keep ratio that
        decides the group (the largest asked fraction; the largest such ratio on a tie).
        A member asking for less than its group keeps changes nothing in the pruned model,
        so plans that differ only there are one model; this gives them one form. A group
        whose members would then ask for a different fraction (their segments round
        differently) is left as it was.

        >>> s = PruneStructure.of([LayerSpec("a", "linear", (8, 4), n_macs=32, prunable=True, prune_group="g"),
        ...                        LayerSpec("b", "linear", (8, 4), n_macs=32, prunable=True, prune_group="g"),
        ...                        LayerSpec("c", "linear", (8, 4), n_macs=32, prunable=True)])
        >>> s.canonical_keeps((0.5, 0.75, 0.25))
        (0.75, 0.75, 0.25)
        """
        deciding: dict[str, tuple[Fraction, float]] = {}
        for group, units, segments, keep in zip(self.groups, self.units, self.segments, keeps):
            key = (_asked_fraction(units, segments, keep), keep)
            if group not in deciding or key > deciding[group]:
                deciding[group] = key
        out = tuple(deciding[g][1] for g in self.groups)
        before = {g: fraction for g, (fraction, _) in deciding.items()}  # = group_fractions(keeps)
        after = self.group_fractions(out)
        if after != before:
            out = tuple(c if after[g] == before[g] else k for g, k, c in zip(self.groups, keeps, out))
        return out

    def shapes(self, keeps: Sequence[float]) -> dict[str, tuple[int, int]]:
        frac = self.group_fractions(keeps)
        shapes = {}
        for i, name in enumerate(self.names):
            rows, cols = self.matrix[i]
            own = frac[self.groups[i]]
            if self.embedding[i]:  # rows are tokens; pruning keeps columns
                shapes[name] = (rows, max(1, _round(cols * own)))
                continue
            kept_rows = max(1, _round(rows * own))
            col_frac = 1 if self.depthwise[i] else _input_fraction(self.inputs[i], frac)
            shapes[name] = (kept_rows, max(1, _round(cols * col_frac)))
        return shapes

    def units_kept(self, keeps: Sequence[float]) -> dict[str, int]:
        units = dict(zip(self.groups, self.units))  # a group's last member, as always
        return {g: int(f * units[g]) for g, f in self.group_fractions(keeps).items()}


@functools.lru_cache(maxsize=4096)
def _asked_fraction(units: int, segments: int, keep_ratio: float) -> Fraction:
    """kept_count(units, keep_ratio) / units, the same count in each segment (a grouped conv)."""
    return Fraction(kept_count(units // segments, keep_ratio) * segments, units)


def _round(x: int | Fraction) -> int:
    """round() of an exact value, half to even, without building a new Fraction."""
    if isinstance(x, int):
        return x
    q, r = divmod(x.numerator, x.denominator)
    twice = 2 * r
    return q + 1 if twice > x.denominator or (twice == x.denominator and q % 2) else q


def _input_fraction(inputs: tuple[tuple[str, int], ...], frac: Mapping[str, Fraction]) -> int | Fraction:
    """Kept fraction of a consumer's input channels, from its producers' (group, channels)."""
    if not inputs:
        return 1
    if len(inputs) == 1:
        return frac[inputs[0][0]]
    total = sum(channels for _, channels in inputs)
    return sum(channels * frac[g] for g, channels in inputs) / total
