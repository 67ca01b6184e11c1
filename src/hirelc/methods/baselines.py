"""Baseline searches in the joint space, under the same ledger, budget, repair and selection
rule as every method (DESIGN.md §7):

- `uniform`: the same config on every kernel (keep only where prunable). With a size target,
  every uniform setting that meets it, largest (least compressed) first; without one, from
  the largest down (for a bits-only space: the top bitwidth first).
- `random`: distinct plans drawn uniformly from the space (seeded), each repaired onto the
  size budget by the problem before evaluation.
- `greedy`: Fisher-guided allocation, HAWQ-style (Dong et al., ICCV 2019): start every
  kernel at its least damaging config and walk down to the budget at the least damage per
  byte saved (`repair(top_plan, fill=True)`): one plan, one evaluation (so its validation
  accuracy is known), no search.

None picks its own winner: `run_search` selects with `SearchProblem.selection_key`.

>>> from hirelc.inventory.spec import LayerSpec
>>> from hirelc.methods.driver import drive
>>> from hirelc.methods.ledger import EvaluationLedger
>>> problem = SearchProblem([LayerSpec("fc", "linear", (10, 10), n_macs=100)], (2, 4, 8), 0.9)
>>> [ep.bits for ep in drive(UniformSearch(problem), problem, EvaluationLedger(lambda p: 0.9, 10)).episodes]
[[8], [4], [2]]
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np

from hirelc.methods.driver import Proposer
from hirelc.methods.problem import SearchProblem
from hirelc.methods.repair import top_plan
from hirelc.plan import Plan


@dataclass(frozen=True)
class NoOptions:
    """Settings of a method that has none (uniform, random, greedy)."""

    @classmethod
    def from_options(cls, **options: Any) -> "NoOptions":
        if options:
            raise ValueError(f"this method takes no options, got {sorted(options)}")
        return cls()

    def to_dict(self) -> dict[str, Any]:
        return {}


class UniformSearch(Proposer):
    """Uniform settings, largest first (see the module docstring)."""

    def __init__(self, problem: SearchProblem, config: NoOptions | None = None, seed: int = 0):
        self._plans = iter(uniform_plans(problem))

    def propose(self, n: int) -> list[Plan]:
        return list(itertools.islice(self._plans, n))


def uniform_plans(problem: SearchProblem) -> list[Plan]:
    """Every uniform plan of the space that meets the size budget, largest first."""
    c, sizes, budget = problem.space.config, problem.sizes, problem.max_bytes
    plans = {}
    for bits, keep, fmt, gran in itertools.product(reversed(c.bits), c.keep_ratios, c.formats, c.granularities):
        plan = problem.space.uniform_plan(bits, keep, fmt, gran)
        if plan is not None and (budget is None or sizes.nbytes(plan) <= budget):
            plans.setdefault(plan.content_hash(), plan)
    if not plans:
        raise ValueError(f"no uniform setting of the space meets the target ({problem.target.describe()}); "
                         "use another method or a looser target")
    return sorted(plans.values(), key=lambda p: -sizes.nbytes(p))  # stable: ties keep bits-first order


class RandomSearch(Proposer):
    """Distinct uniformly random plans of the space, from `numpy.random.default_rng(seed)`."""

    def __init__(self, problem: SearchProblem, config: NoOptions | None = None, seed: int = 0):
        self._plans = _distinct_samples(problem, seed)

    def propose(self, n: int) -> list[Plan]:
        return list(itertools.islice(self._plans, n))


def _distinct_samples(problem: SearchProblem, seed: int) -> Iterator[Plan]:
    rng = np.random.default_rng(seed)
    space = problem.space
    total = space.size()
    seen: set[str] = set()
    while len(seen) < total:
        plan = space.sample(rng)
        key = plan.content_hash()
        if key not in seen:  # rejection: a repeat would be a free cache hit, not a new sample
            seen.add(key)
            yield plan


class GreedySearch(Proposer):
    """Fisher-guided knapsack allocation (see the module docstring); needs a size target."""

    def __init__(self, problem: SearchProblem, config: NoOptions | None = None, seed: int = 0):
        if problem.repairer is None:
            raise ValueError("method 'greedy' allocates a size budget: give --target-compression or --target-size")
        self._plan: Plan | None = problem.repairer(top_plan(problem.space, problem.damage_model), fill=True)

    def propose(self, n: int) -> list[Plan]:
        plan, self._plan = self._plan, None
        return [plan] if plan is not None else []
