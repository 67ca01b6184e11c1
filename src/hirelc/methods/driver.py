"""One driver for every ask/tell search method: it owns the budget, the stop reasons and the
batching; a method only proposes plans and learns from their evaluations (Optuna's
ask/tell, with feasibility handled by the problem's repair).

    loop: plans = method.propose(n)          ([] -> "done"; n = ledger.batch_size)
          each plan -> problem.candidate(plan) (repaired onto the size budget)
          ledger.evaluate_many(candidates)     (cached, budgeted, journaled; run in
                                                parallel by the ledger's executor)
          method.observe(evaluations)
    stop: "budget" when the ledger's budget is spent, "done" when the method has nothing
          left, "exhausted" when `max_stale` rounds in a row brought no new evaluation
          (every proposal was already evaluated: a small space is used up).

ReLeQ keeps its own loop (SB3's `learn()` owns it) and shares only the ledger and problem.

>>> from hirelc.inventory.spec import LayerSpec
>>> from hirelc.methods.ledger import EvaluationLedger
>>> from hirelc.methods.problem import SearchProblem
>>> class Twice(Proposer):
...     def __init__(self): self.left = [[2], [8], [2]]
...     def propose(self, n): return [self.problem.plan(self.left.pop(0))] if self.left else []
>>> problem = SearchProblem([LayerSpec("fc", "linear", (10, 10), n_macs=100)], (2, 8), 0.9)
>>> method = Twice(); method.problem = problem
>>> out = drive(method, problem, EvaluationLedger(lambda p: 0.9, 5))
>>> out.stop_reason, [ep.bits for ep in out.episodes]
('done', [[2], [8], [2]])
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any

from hirelc.methods.ledger import Evaluation, EvaluationLedger
from hirelc.methods.problem import SearchProblem
from hirelc.methods.result import EpisodeRecord, MethodOutcome
from hirelc.plan import Plan

DEFAULT_MAX_STALE = 200  # proposal rounds without a new evaluation before giving up


class Proposer(ABC):
    """A search method in ask/tell form."""

    @abstractmethod
    def propose(self, n: int) -> list[Plan]:
        """Up to `n` plans to evaluate next; an empty list means the method is finished."""

    def observe(self, evaluations: list[Evaluation]) -> None:  # noqa: B027 -- optional hook
        """Learn from the evaluations of the last proposals (same order; cached ones too)."""

    def options(self) -> dict[str, Any]:
        """The settings that reproduce this method (written into result.json)."""
        return {}

    def reference_plan(self) -> Plan | None:
        """A plan the method starts from and vouches for beside its best ones (HiReLC: its
        Fisher prior); with finalists it competes at the final fidelity
        (`SearchResult.finalists`). None: the method has none."""
        return None


def drive(proposer: Proposer, problem: SearchProblem, ledger: EvaluationLedger, *, batch_size: int | None = None,
          max_stale: int = DEFAULT_MAX_STALE) -> MethodOutcome:
    """Run `proposer` until the budget is spent, it is done, or it only repeats itself.

    batch_size: plans asked per round, evaluated together (default: `ledger.batch_size`,
    one per worker of its executor). A method's proposals may depend on the results of
    earlier rounds only, never on how many results of the current round have arrived,
    so a run is reproduced exactly by any executor with the same batch size (a serial
    executor with `workers=N` replays the batches of an N-worker pool).
    """
    batch_size = batch_size or ledger.batch_size
    episodes: list[EpisodeRecord] = []
    seen: set[str] = set()  # plans this drive has been told about (replayed ones included)
    stale = 0
    while ledger.remaining > 0:
        plans = proposer.propose(min(batch_size, ledger.remaining))
        if not plans:
            return _outcome(proposer, episodes, "done")
        # A batch larger than the budget left: the ledger stops after the last real one it can pay for.
        evaluations = ledger.evaluate_many([problem.candidate(plan) for plan in plans])
        proposer.observe(evaluations)
        episodes += [_record(problem, len(episodes) + i, ev) for i, ev in enumerate(evaluations)]
        new = {ev.plan_hash for ev in evaluations} - seen
        seen |= new
        # Progress = a plan not seen before (a resumed run's journaled plans count once, so
        # replaying a long journal is not mistaken for a used-up space).
        stale = 0 if new else stale + 1
        if stale >= max_stale:
            return _outcome(proposer, episodes, "exhausted")
    return _outcome(proposer, episodes, "budget")


def _outcome(proposer: Proposer, episodes: list[EpisodeRecord], stop_reason: str) -> MethodOutcome:
    reference = proposer.reference_plan()
    return MethodOutcome(episodes, stop_reason, options=proposer.options(),
                         reference_hash=None if reference is None else reference.content_hash())


def _record(problem: SearchProblem, index: int, ev: Evaluation) -> EpisodeRecord:
    score = problem.score(ev)
    bits = ev.plan.bits()
    return EpisodeRecord(index=index, plan=ev.plan, bits=bits, start_bits=bits, reward=score, ret=score,
                         state_acc=problem.state_acc(ev.accuracy), state_q=problem.state_q(ev.plan),
                         accuracy=ev.accuracy)
