"""Where HiReLC's candidate plans come from, and which of them are evaluated for real.

The surrogate can only pick among the plans it is shown, so the pool mixes three sources
(all repaired onto the target by `problem.candidate`, evaluated plans dropped):

- the LLA policies' samples (seed 002: the RL agents propose), plus the Fisher prior plan
  and the vote's context plan;
- `local_moves`: one-choice changes of the best real plans so far (one kernel's bits, keep,
  format or granularity moved to another valid value): the surrogate's best guesses are
  usually next to what is already known to be good;
- uniformly random plans of the space, so a policy that has collapsed onto one region
  cannot hide the rest of the space from the acquisition.

Measured on the enumerated cnn1d joint landscape (benchmarks/race.py): choosing among the
policy samples alone missed the optimum in 150 evaluations (seed 0), while the same
surrogate choosing among all feasible plans found it after a median of 14.

`thompson_picks` is the acquisition: batch Thompson sampling over the bootstrap ensemble —
each slot takes the best pool plan under one randomly drawn member, so the batch spreads
over the members' disagreements without a hand-set exploration share (Kandasamy et al.
2018, "Parallelised Bayesian optimisation via Thompson sampling").

>>> import numpy as np
>>> preds = np.array([[0.1, 0.9, 0.5], [0.1, 0.8, 0.6]])  # 2 members x 3 plans, agreeing on the order
>>> thompson_picks(preds, 2, np.random.default_rng(0))
[1, 2]
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np

from hirelc.methods.space import SearchSpace
from hirelc.plan import LayerConfig, Plan

CHOICE_FIELDS = ("bits", "keep_ratio", "number_format", "granularity", "group_size")


def one_choice_apart(a: LayerConfig, b: LayerConfig) -> bool:
    """True when `b` differs from `a` in exactly one choice (granularity and its group size
    count as one)."""
    differ = {f for f in CHOICE_FIELDS if getattr(a, f) != getattr(b, f)}
    return bool(differ) and (len(differ) == 1 or differ == {"granularity", "group_size"})


def local_moves(space: SearchSpace, plan: Plan, rng: np.random.Generator, n: int) -> list[Plan]:
    """`n` plans, each `plan` with one kernel's config changed in one choice (kernel and
    new value drawn uniformly; a kernel without alternatives is skipped)."""
    names = space.names
    out: list[Plan] = []
    for _ in range(n):
        name = names[int(rng.integers(len(names)))]
        near = [c for c in space.kernel_configs(name) if one_choice_apart(plan[name], c)]
        if near:
            out.append(Plan(plan.layers | {name: near[int(rng.integers(len(near)))]}))
    return out


def thompson_picks(member_preds: np.ndarray, n: int, rng: np.random.Generator) -> list[int]:
    """Indices of `n` distinct pool plans: slot i takes the best not-yet-picked plan under a
    uniformly drawn ensemble member. member_preds: (members, plans)."""
    n = min(n, member_preds.shape[1])
    picked: list[int] = []
    for _ in range(n):
        scores = member_preds[int(rng.integers(member_preds.shape[0]))].copy()
        scores[picked] = -np.inf
        picked.append(int(np.argmax(scores)))
    return picked


def distinct_new(plans: Iterable[Plan], seen: set[str], into: dict[str, Plan]) -> None:
    """Add to `into` (hash -> plan) the plans not in `seen` and not there yet."""
    for plan in plans:
        key = plan.content_hash()
        if key not in seen:
            into.setdefault(key, plan)
