"""Baseline searches under the same ledger and budget as ReLeQ (DESIGN.md §7).

- `uniform`: every uniform bitwidth of the bit set, from the top down, until the budget
  ends (at most |bits| evaluations).
- `random`: distinct plans drawn uniformly at random from the bit set (seeded), until the
  budget ends or every plan of the space has been drawn.

Neither picks its own winner: `run_search` selects the best evaluated plan with the same
shaped-reward rule for every method, so results compare like for like.

>>> from hirelc.inventory.spec import LayerSpec
>>> from hirelc.methods.ledger import EvaluationLedger
>>> problem = SearchProblem([LayerSpec("fc", "linear", (10, 10), n_macs=100)], (2, 4, 8), 0.9)
>>> [ep.bits for ep in run_uniform(problem, EvaluationLedger(lambda p: 0.9, 10), seed=0).episodes]
[[8], [4], [2]]
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np

from hirelc.methods.ledger import BudgetExhausted, EvaluationLedger
from hirelc.methods.problem import SearchProblem
from hirelc.methods.result import EpisodeRecord, MethodOutcome


def run_uniform(problem: SearchProblem, ledger: EvaluationLedger, seed: int, **options: Any) -> MethodOutcome:
    """Evaluate the uniform plans, top bitwidth first (`seed` is unused: deterministic)."""
    _no_options("uniform", options)
    n = len(problem.layers)
    return _evaluate_all(problem, ledger, ([b] * n for b in reversed(problem.bits)))


def run_random(problem: SearchProblem, ledger: EvaluationLedger, seed: int, **options: Any) -> MethodOutcome:
    """Evaluate distinct uniformly random plans drawn with `numpy.random.default_rng(seed)`."""
    _no_options("random", options)
    return _evaluate_all(problem, ledger, _distinct_random_plans(problem, seed))


def _distinct_random_plans(problem: SearchProblem, seed: int) -> Iterator[list[int]]:
    rng = np.random.default_rng(seed)
    n_layers, space = len(problem.layers), len(problem.bits) ** len(problem.layers)
    seen: set[tuple[int, ...]] = set()
    while len(seen) < space:
        bits = tuple(int(b) for b in rng.choice(problem.bits, size=n_layers))
        if bits not in seen:  # rejection: a repeat would be a free cache hit, not a new sample
            seen.add(bits)
            yield list(bits)


def _evaluate_all(
    problem: SearchProblem, ledger: EvaluationLedger, proposals: Iterator[Sequence[int]]
) -> MethodOutcome:
    episodes: list[EpisodeRecord] = []
    try:
        for bits in proposals:
            episodes.append(_episode(problem, ledger, len(episodes), list(bits)))
    except BudgetExhausted:
        return MethodOutcome(episodes, "budget")
    return MethodOutcome(episodes, "done")


def _episode(problem: SearchProblem, ledger: EvaluationLedger, index: int, bits: list[int]) -> EpisodeRecord:
    ev = ledger.evaluate(problem.plan(bits))
    score = problem.score(ev)
    return EpisodeRecord(
        index=index,
        plan=ev.plan,
        bits=bits,
        start_bits=bits,
        reward=score,
        ret=score,
        state_acc=problem.state_acc(ev.accuracy),
        state_q=problem.state_q(ev.plan),
        accuracy=ev.accuracy,
    )


def _no_options(method: str, options: dict[str, Any]) -> None:
    if options:
        raise ValueError(f"method {method!r} takes no options, got {sorted(options)}")
