"""Budget repair: project any plan of a `SearchSpace` onto the plans that meet a size budget,
with the least expected damage.

    down:  while size(plan) > budget, apply the one-notch move (a kernel's bits, keep ratio
           or granularity one step down, or another number format) that saves bytes at the
           lowest damage per byte saved (`DamageModel`, Fisher-weighted);
    fill:  (optional) while some one-notch move up lowers the damage and still fits, apply
           the one with the largest damage reduction per byte spent.

Deterministic (ties go to the earlier kernel and move), fast (one-notch moves, byte deltas
computed locally except for pruning moves), and:

- the result always meets the budget when any plan of the space does; otherwise
  `InfeasibleTarget` names the smallest achievable size;
- a plan that already fits is returned unchanged by the down phase, and repairing a
  repaired plan changes nothing (idempotent, with or without fill).

Greedy (HAWQ-style) allocation is `repair(top plan, fill=True)`: start from the least
damaging config of every kernel and walk down to the budget.

>>> import numpy as np
>>> from hirelc.inventory.spec import LayerSpec
>>> from hirelc.methods.space import SearchSpace, SpaceConfig
>>> from hirelc.methods.sizing import SizeModel
>>> from hirelc.evaluate.calibrate import measure_damage_model
>>> layers = [LayerSpec("a", "linear", (64, 64), 4096), LayerSpec("b", "linear", (64, 64), 4096)]
>>> space = SearchSpace(layers, SpaceConfig.bits_only([2, 4, 8]))
>>> sizes = SizeModel(tuple(layers))
>>> damage = measure_damage_model(space, fisher_trace={"a": 100.0, "b": 1.0})
>>> plan = repair(space.sample(np.random.default_rng(0)), space, sizes, damage, max_bytes=3400, fill=True)
>>> plan.bits(), sizes.nbytes(plan) <= 3400   # the sensitive kernel keeps more bits
([4, 2], True)
"""

from __future__ import annotations

import functools
import math
from collections.abc import Iterator
from dataclasses import dataclass



from hirelc import cost
from hirelc.methods.damage import DamageModel
from hirelc.methods.sizing import SizeModel
from hirelc.methods.space import SearchSpace, parse_granularity
from hirelc.plan import LayerConfig, Plan


class InfeasibleTarget(ValueError):
    """No plan of the search space meets the size budget."""


@dataclass(frozen=True)
class Repairer:
    """`repair` bound to one space, size model, damage model and budget."""

    space: SearchSpace
    sizes: SizeModel
    damage: DamageModel
    max_bytes: int

    def __post_init__(self) -> None:
        smallest = self.sizes.nbytes(floor_plan(self.space, self.sizes))
        if smallest > self.max_bytes:
            raise InfeasibleTarget(
                f"no plan of the search space fits {self.max_bytes:,} bytes "
                f"({self.sizes.fp32_bytes / self.max_bytes:.2f}x): the smallest achievable is {smallest:,} bytes "
                f"({self.sizes.fp32_bytes / smallest:.2f}x vs fp32); lower the target or widen the space "
                "(fewer bits, smaller keep ratios, per_tensor granularity)")

    def __call__(self, plan: Plan, fill: bool = False) -> Plan:
        return repair(plan, self.space, self.sizes, self.damage, self.max_bytes, fill=fill)


def floor_plan(space: SearchSpace, sizes: SizeModel) -> Plan:
    """The smallest plan of the space: every kernel at its fewest bytes on its full matrix
    and its smallest keep ratio (the smallest keep shrinks every consumer too)."""
    layers = {}
    for s in space.layers:
        keep = min(space.keep_choices(s.name))
        candidates = [c for c in space.kernel_configs(s.name) if c.keep_ratio == keep]
        rows, cols = s.out_channels, math.prod(s.weight_shape[1:])
        layers[s.name] = min(candidates, key=lambda c: cost.quantized_weight_bits(rows, cols, c))
    return Plan(layers)


def top_plan(space: SearchSpace, damage: DamageModel) -> Plan:
    """The least damaging plan of the space (ties: the fewer bytes on the full matrix)."""
    layers = {}
    for s in space.layers:
        rows, cols = s.out_channels, math.prod(s.weight_shape[1:])
        layers[s.name] = min(space.kernel_configs(s.name),
                             key=lambda c: (damage.of(s.name, c), cost.quantized_weight_bits(rows, cols, c)))
    return Plan(layers)


def repair(plan: Plan, space: SearchSpace, sizes: SizeModel, damage: DamageModel, max_bytes: int,
           *, fill: bool = False) -> Plan:
    """`plan` projected onto the budget (see the module docstring)."""
    space.check(plan)
    state = _State(space, sizes, damage, dict(plan.layers))
    while state.total > max_bytes:
        move = min(state.moves(down=True), key=lambda m: (m.ddamage / m.dbytes, m.order), default=None)
        if move is None:
            raise InfeasibleTarget(f"cannot reduce the plan below {state.total:,} bytes (budget {max_bytes:,})")
        state.apply(move)
    while fill:
        fits = [m for m in state.moves(down=False) if state.total - m.dbytes <= max_bytes and m.ddamage < 0]
        if not fits:
            break
        state.apply(min(fits, key=lambda m: (m.ddamage / max(-m.dbytes, 1), m.order)))
    return Plan({n: state.plan[n] for n in space.names})


@dataclass(frozen=True)
class _Move:
    name: str
    cfg: LayerConfig
    dbytes: int  # bytes saved (negative: spent)
    ddamage: float  # damage added (negative: removed)
    order: tuple[int, int]


class _State:
    """A plan being repaired, with its size and per-kernel kept shapes."""

    def __init__(self, space: SearchSpace, sizes: SizeModel, damage: DamageModel, plan: dict[str, LayerConfig]):
        self.space, self.sizes, self.damage, self.plan = space, sizes, damage, plan
        self.index = {n: i for i, n in enumerate(space.names)}
        self.hood = _neighbourhoods(space.layers)
        self._saved_cache: dict[tuple, int] = {}
        self._steps_cache: dict[tuple, list[tuple[int, LayerConfig, float]]] = {}
        self._refresh()

    def _refresh(self) -> None:
        self.total = self.sizes.nbytes(self.plan)
        self.shapes = self.sizes.kept_shapes(self.plan)

    def apply(self, move: _Move) -> None:
        self.plan[move.name] = move.cfg
        self._refresh()

    def moves(self, down: bool) -> Iterator[_Move]:
        """One-notch moves that save bytes (down) or spend them (up)."""
        for s in self.space.layers:
            old = self.plan[s.name]
            for j, cfg, ddamage in self._steps(s.name, old, down):
                dbytes = self._saved(s.name, old, cfg)
                if (dbytes > 0) if down else (dbytes <= 0 or cfg.keep_ratio > old.keep_ratio or cfg.bits > old.bits):
                    yield _Move(s.name, cfg, dbytes, ddamage, (self.index[s.name], j))

    def _steps(self, name: str, old: LayerConfig, down: bool) -> list[tuple[int, LayerConfig, float]]:
        """(order, config, damage added) of the kernel's one-notch neighbours. A step changes
        one kernel, so the others' lists are reused (they were most of a repair's time)."""
        key = (name, old, down)
        if key not in self._steps_cache:
            self._steps_cache[key] = [(j, cfg, self.damage.of(name, cfg) - self.damage.of(name, old))
                                      for j, cfg in enumerate(_neighbours(self.space, name, old, down))]
        return self._steps_cache[key]

    def _saved(self, name: str, old: LayerConfig, new: LayerConfig) -> int:
        if new.keep_ratio != old.keep_ratio:  # pruning moves change other kernels' shapes too
            # ...but only those of its neighbourhood: reuse the delta while they are unchanged
            key = (name, new, tuple(self.plan[n] for n in self.hood[name]))
            if key not in self._saved_cache:
                self._saved_cache[key] = self.total - self.sizes.nbytes(self.plan | {name: new})
            return self._saved_cache[key]
        rows, cols = self.shapes[name]
        return (cost.quantized_weight_bits(rows, cols, old) - cost.quantized_weight_bits(rows, cols, new)) // 8


def _neighbourhoods(layers: tuple) -> dict[str, tuple[str, ...]]:
    """kernel -> the kernels whose configs decide what pruning it saves: its channel group,
    the group's consumers, and the groups of every producer feeding those consumers (their
    kept channels share the consumers' columns)."""
    group_of = {s.name: s.prune_group or s.name for s in layers}
    members: dict[str, list[str]] = {}
    for s in layers:
        members.setdefault(group_of[s.name], []).append(s.name)
    spec = {s.name: s for s in layers}
    producers: dict[str, set[str]] = {}
    for s in layers:
        for c in s.consumers:
            producers.setdefault(c, set()).add(s.name)
    hood = {}
    for s in layers:
        names = set(members[group_of[s.name]])
        consumers = {c for m in list(names) for c in spec[m].consumers if c in spec}
        feeding = {p for c in consumers for p in producers.get(c, ())}
        names |= consumers | {m for p in feeding for m in members[group_of[p]]}
        hood[s.name] = tuple(sorted(names))
    return hood


def _neighbours(space: SearchSpace, name: str, cfg: LayerConfig, down: bool) -> list[LayerConfig]:
    """Configs one notch from `cfg` in one attribute, valid in the space; formats are
    lateral (same bits) and offered in both directions."""
    c = space.config
    step = -1 if down else 1
    out: list[LayerConfig] = []
    bits = _shift(c.bits, cfg.bits, step)
    if bits is not None:
        formats = space.format_choices(bits)
        fmt = cfg.number_format if cfg.number_format in formats else formats[0]
        out.append(LayerConfig(bits, cfg.keep_ratio, fmt, cfg.granularity, cfg.group_size))
    keeps = tuple(sorted(space.keep_choices(name)))
    keep = _shift(keeps, cfg.keep_ratio, step)
    if keep is not None:
        out.append(LayerConfig(cfg.bits, keep, cfg.number_format, cfg.granularity, cfg.group_size))
    grans = _by_scale_count(space, name)
    gran = _shift(grans, _label(cfg), step)
    if gran is not None:
        out.append(LayerConfig(cfg.bits, cfg.keep_ratio, cfg.number_format, *parse_granularity(gran)))
    out += [LayerConfig(cfg.bits, cfg.keep_ratio, f, cfg.granularity, cfg.group_size)
            for f in space.format_choices(cfg.bits) if f != cfg.number_format]
    return [o for o in out if space.allows(name, o)]


def _shift(values: tuple, current: object, step: int) -> object | None:
    if current not in values:
        return None
    i = values.index(current) + step
    return values[i] if 0 <= i < len(values) else None


def _label(cfg: LayerConfig) -> str:
    return f"per_group:{cfg.group_size}" if cfg.granularity == "per_group" else cfg.granularity


@functools.lru_cache(maxsize=1024)
def _by_scale_count(space: SearchSpace, name: str) -> tuple[str, ...]:
    """The kernel's granularities from fewest scales (smallest) to most."""
    shape = space._spec[name].weight_shape
    return tuple(sorted(space.granularity_choices(name),
                        key=lambda g: cost.n_scales(shape, LayerConfig(8, 1.0, "int_sym", *parse_granularity(g)))))



