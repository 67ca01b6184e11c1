"""Exhaustive enumeration of a small bitwidth space and its Pareto frontier (seed 000 §4.2,
Fig. 3a): every configuration of a small network is evaluated, the frontier of
accuracy vs parameter-weighted bits is marked, and a search result is placed on it.

The frontier math (`pareto_frontier`, `frontier_gap`) is pure; `enumerate_space` spends
real evaluations through the shared `EvaluationLedger`, so enumeration is cached,
journaled and resumable like any search.

>>> pts = [ParetoPoint((2,), 2.0, 0.90), ParetoPoint((4,), 4.0, 0.97), ParetoPoint((8,), 8.0, 0.96)]
>>> [p.bits for p in pareto_frontier(pts)]
[(2,), (4,)]
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from typing import Any

from hirelc.cost import param_weighted_avg_bits
from hirelc.methods.ledger import EvaluationLedger
from hirelc.methods.problem import SearchProblem

DEFAULT_SPACE_LIMIT = 5_000  # configurations; larger spaces need force=True


@dataclass(frozen=True)
class ParetoPoint:
    """One configuration: its per-layer bits, parameter-weighted average bits, accuracy."""

    bits: tuple[int, ...]
    weighted_bits: float
    accuracy: float

    def to_dict(self) -> dict[str, Any]:
        return asdict(self) | {"bits": list(self.bits)}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "ParetoPoint":
        return cls(tuple(int(b) for b in d["bits"]), float(d["weighted_bits"]), float(d["accuracy"]))


def space_size(n_layers: int, n_bits: int) -> int:
    """|bits|^layers: the number of configurations an enumeration evaluates."""
    return n_bits**n_layers


def pareto_frontier(points: Iterable[ParetoPoint]) -> list[ParetoPoint]:
    """The non-dominated points (fewer weighted bits is better, higher accuracy is better),
    sorted by weighted bits. A point is dominated when another has no more weighted bits
    and no less accuracy, and is strictly better in one of the two."""
    frontier: list[ParetoPoint] = []
    best_acc = -math.inf
    # Sweep from fewest bits; at equal bits the most accurate comes first.
    for p in sorted(points, key=lambda p: (p.weighted_bits, -p.accuracy)):
        if p.accuracy > best_acc:
            frontier.append(p)
            best_acc = p.accuracy
    return frontier


def frontier_gap(point: ParetoPoint, frontier: Sequence[ParetoPoint]) -> float:
    """Accuracy (fraction) by which the best frontier point with no more weighted bits than
    `point` beats it; 0.0 means `point` is on (or above) the frontier. Bits compare exactly,
    as in `pareto_frontier` (a tolerance here made a frontier point 1 ulp cheaper than its
    neighbour look dominated by it)."""
    eligible = [f.accuracy for f in frontier if f.weighted_bits <= point.weighted_bits]
    if not eligible:
        return 0.0
    return max(0.0, max(eligible) - point.accuracy)


def enumerate_space(
    problem: SearchProblem,
    ledger: EvaluationLedger,
    *,
    limit: int = DEFAULT_SPACE_LIMIT,
    force: bool = False,
    progress: Any = None,
) -> list[ParetoPoint]:
    """Evaluate every configuration of `problem.bits` over `problem.layers`.

    Raises ValueError when the space exceeds `limit` (unless `force`) or the ledger's budget
    cannot cover it. `progress`, if given, is called with (done, total) after each batch of
    `ledger.batch_size` points (evaluated together, in parallel when the executor has workers).
    """
    total = space_size(len(problem.layers), len(problem.bits))
    if total > limit and not force:
        raise ValueError(
            f"the space has {len(problem.bits)}^{len(problem.layers)} = {total:,} configurations, "
            f"above the limit of {limit:,}; pass force=True (CLI: --force) to enumerate it anyway"
        )
    if ledger.max_evaluations < total:
        raise ValueError(f"enumerating {total:,} configurations needs a budget of at least {total:,}")
    points = []
    configurations = itertools.product(problem.bits, repeat=len(problem.layers))
    # A fixed order in batches of the executor's width: the same points for any executor.
    while batch := [tuple(bits) for bits in itertools.islice(configurations, ledger.batch_size)]:
        plans = [problem.plan(bits) for bits in batch]
        for bits, plan, ev in zip(batch, plans, ledger.evaluate_many(plans)):
            points.append(ParetoPoint(bits, param_weighted_avg_bits(problem.layers, plan), ev.accuracy))
        if progress is not None:
            progress(len(points), total)
    return points
