"""HiReLC under an accuracy target (`--max-accuracy-drop`): the agents allocate a size budget,
so the search walks one.

HiReLC's high-level agents split a global size budget between blocks (seed 002), and every
candidate is repaired onto it. With an accuracy-drop target there is no budget to split; the
smallest plan within the drop wins. `BudgetLadder` supplies the budget: it starts at 8x
smaller than the fp32 tensors and, after every cycle of real evaluations,

- tightens to `TIGHTEN` x the smallest plan found within the drop so far (ask for a smaller
  plan than the best known), or
- loosens by `LOOSEN` (up to the fp32 size) while no plan within the drop exists,

never below the smallest plan of the space. The searched problem is the user's with a size
target at the current budget; the user's objective still picks the result (the driver's
problem), so a plan found at a looser budget is kept if it stays the smallest within the drop.

>>> from hirelc.methods.synthetic import sensitive_layer_problem
>>> from hirelc.methods.problem import SearchProblem
>>> from hirelc.methods.space import SearchSpace, SpaceConfig
>>> from hirelc.methods.target import Target
>>> layers = sensitive_layer_problem().layers
>>> user = SearchProblem(layers, space=SearchSpace(layers, SpaceConfig()), target=Target(max_accuracy_drop=1.0),
...                      reference_accuracy=0.95)
>>> ladder = BudgetLadder(user)
>>> ladder.budget == user.sizes.fp32_bytes // 8, ladder.problem.max_bytes == ladder.budget
(True, True)
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

from hirelc.methods.ledger import Evaluation
from hirelc.methods.problem import SearchProblem
from hirelc.methods.repair import floor_plan
from hirelc.methods.target import Target

START_RATIO = 8.0  # the first budget: 8x smaller than the fp32 tensors
TIGHTEN = 0.85  # next budget after a plan within the drop: this share of the smallest such plan
LOOSEN = 1.3  # budget growth per cycle while no plan is within the drop


class BudgetLadder:
    """The size budget HiReLC searches at, for a problem whose target is an accuracy drop."""

    def __init__(self, user: SearchProblem):
        if user.target.kind != "max_accuracy_drop":
            raise ValueError("a budget ladder is for --max-accuracy-drop targets")
        self.user = user
        self.floor = user.sizes.nbytes(floor_plan(user.space, user.sizes))
        self.ceiling = user.sizes.fp32_bytes
        self.budget = self._clamp(int(self.ceiling / START_RATIO))
        self.problem = self._at(self.budget)
        self.steps: list[int] = [self.budget]

    def update(self, history: Sequence[Evaluation]) -> bool:
        """Move the budget after a cycle's real evaluations; True when it changed."""
        within = [self.user.sizes.nbytes(ev.plan) for ev in history if self.user.objective.feasible(ev)]
        proposed = int(TIGHTEN * min(within)) if within else int(LOOSEN * self.budget)
        new = self._clamp(proposed)
        if new == self.budget:
            return False
        self.budget, self.problem = new, self._at(new)
        self.steps.append(new)
        return True

    def _clamp(self, nbytes: int) -> int:
        return max(self.floor, min(self.ceiling, nbytes))

    def _at(self, nbytes: int) -> SearchProblem:
        return replace(self.user, target=Target(size_bytes=nbytes))
