"""What the HiReLC agents and the surrogate see (seed 002, "Fisher Information-based
sensitivity" and "modular layer abstraction"): pure functions of a `SearchProblem`.

- `blocks(problem)`: the inventory's blocks in execution order (`LayerSpec.block`; a plain
  layer is its own block), each a list of kernel names.
- `sensitivity(problem)`: per kernel, its share of the Fisher-weighted damage of squeezing
  it to its smallest config (`DamageModel`, measured with the Fisher trace on a model);
  the same quantity for every kernel, so shares compare across kernels and blocks.
- `kernel_features(problem)`: the static part of an LLA observation.
- `plan_features(problem, plan, proxy)`: the surrogate's input; the same fixed-length
  vector for every plan of the problem (no padding), see `PlanFeaturizer`.

>>> from hirelc.methods.synthetic import sensitive_layer_problem
>>> from hirelc.methods.problem import SearchProblem
>>> from hirelc.methods.space import SearchSpace, SpaceConfig
>>> layers = sensitive_layer_problem().layers
>>> problem = SearchProblem(layers, space=SearchSpace(layers, SpaceConfig()))
>>> [len(b) for b in blocks(problem)], round(sum(sensitivity(problem).values()), 6)
([1, 1, 1, 1], 1.0)
>>> kernel_features(problem)["conv1"].shape
(16,)
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import cached_property

import numpy as np

from hirelc import cost
from hirelc.inventory.spec import KERNEL_KINDS
from hirelc.methods.problem import SearchProblem
from hirelc.methods.repair import floor_plan
from hirelc.plan import NUMBER_FORMATS, Plan

KIND_FEATURES = 7  # one-hot over KERNEL_KINDS
KERNEL_FEATURES = KIND_FEATURES + 9


def blocks(problem: SearchProblem, flat: bool = False) -> list[list[str]]:
    """Kernel names grouped by block, blocks in first-seen order; `flat`: one block."""
    if flat:
        return [problem.names]
    out: dict[str, list[str]] = {}
    for s in problem.layers:
        out.setdefault(s.block or s.name, []).append(s.name)
    return list(out.values())


def sensitivity(problem: SearchProblem) -> dict[str, float]:
    """kernel -> share of sum_k D(k, smallest config of k) (Fisher-weighted damage)."""
    damage, floor = problem.damage_model, floor_plan(problem.space, problem.sizes)
    raw = {n: max(damage.of(n, floor[n]), 0.0) for n in problem.names}
    total = sum(raw.values())
    if total <= 0:
        return {n: 1.0 / len(raw) for n in raw}
    return {n: v / total for n, v in raw.items()}


def kernel_features(problem: SearchProblem, use_fisher: bool = True) -> dict[str, np.ndarray]:
    """kernel -> [kind one-hot, log10 params, param share, MAC share, std, |max|/std,
    log10 rows, log10 cols, Fisher share, prunable] (float32)."""
    specs = problem.layers
    params = sum(s.n_params for s in specs) or 1
    macs = sum(s.n_macs for s in specs) or 1
    sens = sensitivity(problem) if use_fisher else {n: 0.0 for n in problem.names}
    out = {}
    for s in specs:
        kind = np.zeros(KIND_FEATURES, dtype=np.float32)
        kind[KERNEL_KINDS.index(s.kind)] = 1.0
        std = s.weight_std if s.weight_std > 0 else 1.0
        absmax = max(abs(s.weight_min), abs(s.weight_max))
        cols = math.prod(s.weight_shape[1:])
        rest = [math.log10(s.n_params) / 6, s.n_params / params, s.n_macs / macs, min(std, 1.0),
                min(absmax / std, 20.0) / 20.0, math.log10(s.out_channels) / 4, math.log10(cols) / 4,
                sens[s.name], float(s.prunable)]
        out[s.name] = np.concatenate([kind, np.asarray(rest, dtype=np.float32)])
    return out


@dataclass(frozen=True)
class PlanFeaturizer:
    """A plan -> a fixed-length vector: per kernel (bits/8, keep, per-format indicator,
    log2 scales per row), each weighted by the kernel's share of fp32 bytes; then the
    plan's storage ratio (bytes / fp32), BitOps ratio (vs 8-bit), and log10 of its proxy
    value. Every query of the surrogate uses exactly this function."""

    problem: SearchProblem

    @cached_property
    def _bitops_8bit(self) -> float:
        return max(cost.bitops(self.problem.layers, Plan.uniform(self.problem.layers, 8)), 1.0)

    @property
    def width(self) -> int:
        return len(self.problem.layers) * (3 + len(NUMBER_FORMATS)) + 3

    def __call__(self, plan: Plan, proxy: float) -> np.ndarray:
        p = self.problem
        fp32 = {s.name: cost.fp32_bits(s) for s in p.layers}
        total = sum(fp32.values())
        rows = []
        for s in p.layers:
            c, w = plan[s.name], fp32[s.name] / total
            fmt = [float(c.number_format == f) for f in NUMBER_FORMATS]
            scales = math.log2(cost.n_scales(s.weight_shape, c)) / math.log2(max(s.n_params, 2))
            rows += [w * c.bits / 8, w * c.keep_ratio, w * scales] + [w * f for f in fmt]
        bitops = cost.bitops(p.layers, plan) / self._bitops_8bit
        size = p.sizes.nbytes(plan) / p.sizes.fp32_bytes
        return np.asarray(rows + [size, bitops, math.log10(max(proxy, 1e-12))], dtype=np.float32)

