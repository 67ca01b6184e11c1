"""Block budgets: what a share of the global size target means for one block, and the plan
it realises (the bridge between the HLA vote and the LLAs).

- The kernel budget is the global byte budget minus the non-kernel bytes (biases, norms,
  ... as the size model counts them) of the Fisher-greedy plan; block b gets share_b of it.
- `prior_shares`: the Fisher prior (the block shares of the greedy plan,
  `repair(top_plan, fill=True)`: least Fisher damage per byte), or, without Fisher, shares
  proportional to the blocks' fp32 bytes (uniform compression).
- `realise(shares)`: per block, the least-damage configs within its budget (repair on the
  block alone, inputs at full width), then the global repair, so the plan meets the target
  exactly whatever the vote was.

>>> from hirelc.methods.synthetic import sensitive_layer_problem
>>> from hirelc.methods.problem import SearchProblem
>>> from hirelc.methods.space import SearchSpace, SpaceConfig
>>> from hirelc.methods.target import Target
>>> layers = sensitive_layer_problem().layers
>>> problem = SearchProblem(layers, space=SearchSpace(layers, SpaceConfig()), target=Target(compression=12))
>>> alloc = Allocator(problem, [[s.name] for s in layers])
>>> shares = alloc.prior_shares(use_fisher=True)
>>> round(float(shares.sum()), 6), problem.sizes.nbytes(alloc.realise(shares)) <= problem.max_bytes
(1.0, True)
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import cached_property

import numpy as np

from hirelc import cost
from hirelc.methods.problem import SearchProblem
from hirelc.methods.repair import InfeasibleTarget, floor_plan, repair, top_plan
from hirelc.methods.sizing import SizeModel
from hirelc.methods.space import SearchSpace
from hirelc.plan import Plan


class Allocator:
    """Shares <-> block budgets <-> plans for one problem and one blocking."""

    def __init__(self, problem: SearchProblem, blocks: Sequence[Sequence[str]]):
        if problem.repairer is None:
            raise ValueError("method 'hirelc' allocates a size budget: give --target-compression, --target-size "
                             "or --max-accuracy-drop")
        self.problem, self.blocks = problem, [list(b) for b in blocks]
        self.greedy = problem.repairer(top_plan(problem.space, problem.damage_model), fill=True)
        self.kernel_budget = problem.max_bytes - problem.sizes.other_bytes(self.greedy)
        self._memo: dict[bytes, Plan] = {}

    def block_bytes(self, plan: Plan) -> np.ndarray:
        """Kernel bytes of each block in `plan` (kept shapes, exact)."""
        shapes = cost.kept_shapes(self.problem.layers, plan)
        per = {s.name: cost.quantized_weight_bits(*shapes[s.name], plan[s.name]) / 8 for s in self.problem.layers}
        return np.array([sum(per[n] for n in b) for b in self.blocks])

    def shares_of(self, plan: Plan) -> np.ndarray:
        b = self.block_bytes(plan)
        return b / b.sum()

    def prior_shares(self, use_fisher: bool) -> np.ndarray:
        if use_fisher:
            return self.shares_of(self.greedy)
        spec = {s.name: s for s in self.problem.layers}
        fp32 = np.array([sum(cost.fp32_bits(spec[n]) for n in b) for b in self.blocks], dtype=float)
        return fp32 / fp32.sum()

    def budgets(self, shares: np.ndarray) -> np.ndarray:
        return np.asarray(shares) * self.kernel_budget

    def realise(self, shares: np.ndarray) -> Plan:
        """The least-damage plan under the block budgets, repaired onto the target."""
        key = np.round(np.asarray(shares), 3).tobytes()
        if key not in self._memo:
            layers = {}
            for b, budget in zip(range(len(self.blocks)), self.budgets(shares)):
                layers |= self._fill_block(b, int(budget)).layers
            self._memo[key] = self.problem.candidate(Plan({n: layers[n] for n in self.problem.names}))
        return self._memo[key]

    def _fill_block(self, b: int, budget: int) -> Plan:
        space, sizes = self._block_models[b]
        try:
            return repair(top_plan(space, self.problem.damage_model), space, sizes, self.problem.damage_model,
                          budget, fill=True)
        except InfeasibleTarget:
            return floor_plan(space, sizes)

    @cached_property
    def _block_models(self) -> list[tuple[SearchSpace, SizeModel]]:
        """Each block alone: its kernels' sub-space and a kernels-only size model (the
        block's own pruning of its consumers' inputs is left to the global repair)."""
        spec = {s.name: s for s in self.problem.layers}
        out = []
        for names in self.blocks:
            layers = tuple(_alone(spec[n], names) for n in names)
            out.append((SearchSpace(layers, self.problem.space.config), SizeModel(layers)))
        return out


def _alone(spec, names: Sequence[str]):
    """A copy of `spec` whose consumers are only those inside the block."""
    from dataclasses import replace

    return replace(spec, consumers=tuple(c for c in spec.consumers if c in names))
