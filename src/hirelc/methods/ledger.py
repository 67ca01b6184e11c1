"""The evaluation ledger: the one place a search calls the user's/evaluator's function.

Every search method (ReLeQ, HiReLC, baselines) evaluates plans only through an
`EvaluationLedger`, so they share one cache (keyed by `Plan.content_hash()`), one budget
of *real* evaluations, and one journal, and are compared like for like (DESIGN.md §7).

- A cache hit is free: it neither calls the function nor counts against the budget.
- A real evaluation is validated, timed, appended to `history` and, when a journal is
  given, appended to it by this process as soon as it arrives (before `evaluate` returns).
- Real evaluations run on an `Executor` (`hirelc.methods.executors`): in this process by
  default, or on a process pool / Ray cluster, a batch at a time (`evaluate_many`).
- At construction, journaled evaluations pre-fill the cache and `history` and count
  against the budget: a resumed search recomputes nothing already journaled, and the
  total number of real evaluations never exceeds `max_evaluations`.
- When the budget is spent, the next cache miss raises `BudgetExhausted`.

>>> from hirelc.plan import Plan
>>> ledger = EvaluationLedger(lambda plan: 0.9, max_evaluations=1)
>>> ledger.evaluate(Plan.from_bits(["fc"], [4])).accuracy
0.9
>>> ledger.evaluate(Plan.from_bits(["fc"], [4])).accuracy  # cached: free
0.9
>>> ledger.n_evaluations, ledger.remaining
(1, 0)
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Protocol

from hirelc.evaluate.adapters import check_accuracy
from hirelc.methods.executors import Executor, SerialExecutor
from hirelc.plan import Plan

EvaluateFn = Callable[[Plan], "float | Mapping[str, Any]"]
RECORD_KIND = "evaluation"  # the `kind` of a ledger record in a shared journal
# A result key an evaluation function may set (True) when it answered from its own cache of
# earlier runs instead of computing (the job's evaluator does): counted, not journaled.
SERVED_FROM_CACHE = "served_from_cache"


class JournalRecordError(ValueError):
    """A journal record cannot be replayed; the message names the file and line."""


class BudgetExhausted(RuntimeError):
    """Raised when a new (uncached) evaluation is asked for and the budget is spent."""


class JournalLike(Protocol):
    """What the ledger needs from a journal (the run directory's `Journal` has it)."""

    def append(self, record: dict) -> None: ...

    def records(self) -> list[dict]: ...


@dataclass(frozen=True)
class Evaluation:
    """One real evaluation of a plan.

    index: 0-based position among real evaluations of this search (journaled ones first).
    metrics: every extra numeric/string value the function returned besides "accuracy".
    status: "ok", or whatever the function reported (e.g. "diverged": the evaluation still
        counts, with the reported accuracy).
    replayed: True when it was read back from the journal rather than computed now.
    served_from_cache: True when the evaluation function answered from its own cache of
        earlier runs (result key "served_from_cache"); not journaled (a replayed evaluation
        counts as replayed).
    """

    index: int
    plan: Plan
    accuracy: float
    metrics: dict[str, Any] = field(default_factory=dict)
    seconds: float = 0.0
    status: str = "ok"
    replayed: bool = False
    served_from_cache: bool = False

    @property
    def plan_hash(self) -> str:
        return self.plan.content_hash()

    def to_record(self) -> dict[str, Any]:
        """A JSON-ready journal record; `from_record` reads it back."""
        return {
            "kind": RECORD_KIND,
            "index": self.index,
            "plan": self.plan.to_dict(),
            "plan_hash": self.plan_hash,
            "accuracy": self.accuracy,
            "metrics": dict(self.metrics),
            "seconds": self.seconds,
            "status": self.status,
        }

    @classmethod
    def from_record(cls, record: Mapping[str, Any], layers: Collection[str] | None = None) -> "Evaluation":
        """Rebuild a journaled evaluation; a record whose plan no longer hashes to its
        stored hash is rejected (the cache key would lie), as is one with a missing field,
        an accuracy or time that is not a finite number in range, or (given `layers`) a
        plan naming a layer the problem does not have. Raises ValueError saying which."""
        missing = [k for k in ("index", "plan", "plan_hash", "accuracy") if k not in record]
        if missing:
            raise ValueError(f"the record lacks {missing}")
        plan = Plan.from_dict(record["plan"])
        unknown = sorted(set(plan) - set(layers)) if layers is not None else []
        if unknown:
            raise ValueError(f"its plan names layers {unknown[:5]} that this model does not have "
                             "(a journal from another model?)")
        seconds = record.get("seconds", 0.0)
        if isinstance(seconds, bool) or not isinstance(seconds, (int, float)) or not 0 <= seconds < math.inf:
            raise ValueError(f"seconds is {seconds!r}, expected a finite number >= 0")
        if plan.content_hash() != record["plan_hash"]:
            raise ValueError(
                f"journal record {record.get('index')!r}: plan hashes to {plan.content_hash()}, "
                f"record says {record['plan_hash']} (corrupt or edited journal)"
            )
        accuracy, metrics, status = validate_result(
            {"accuracy": record["accuracy"], "status": record.get("status", "ok"), **record.get("metrics", {})}
        )
        return cls(
            index=int(record["index"]),
            plan=plan,
            accuracy=accuracy,
            metrics=metrics,
            seconds=float(seconds),
            status=status,
            replayed=True,
        )


def validate_result(result: Any) -> tuple[float, dict[str, Any], str]:
    """Check an evaluation function's return value; return (accuracy, extra metrics, status).

    Accepted: a number, or a mapping with an "accuracy" number (plus any extra metrics and
    an optional "status"). Accuracy must be finite and in [0, 1] (a fraction, not a percent).

    >>> validate_result({"accuracy": 0.5, "loss": 1.2})
    (0.5, {'loss': 1.2}, 'ok')
    """
    if isinstance(result, Mapping):
        if "accuracy" not in result:
            raise ValueError(
                f"the evaluation function returned a dict without 'accuracy' (keys: {sorted(result)}); "
                "return a float in [0, 1] or a dict with an 'accuracy' entry"
            )
        extra = {k: v for k, v in result.items() if k not in ("accuracy", "status")}
        metrics = {str(k): _json_scalar(k, v) for k, v in extra.items()}
        status = str(result.get("status", "ok"))
        accuracy = result["accuracy"]
    else:
        metrics, status, accuracy = {}, "ok", result
    return _checked_accuracy(accuracy), metrics, status


def _checked_accuracy(value: Any) -> float:
    # One accuracy check for every way results enter hirelc (evaluate.adapters.check_accuracy).
    return check_accuracy(value, "the evaluation function must return an accuracy number in [0, 1], got {}")


def _json_scalar(key: Any, value: Any) -> Any:
    """Extra metrics go into a JSON journal: numbers, strings, booleans or None only."""
    if value is None or isinstance(value, (str, bool)):
        return value
    if isinstance(value, numbers.Integral):
        return int(value)
    if isinstance(value, numbers.Real):
        if not math.isfinite(value):  # refused here, before the evaluation is journaled
            raise ValueError(f"metric {key!r} is {float(value)}; return None for a metric that has no value "
                             "(a JSON journal cannot store NaN/inf)")
        return float(value)
    raise TypeError(
        f"metric {key!r}: expected a number, string, bool or None, got {type(value).__name__}"
    )


class EvaluationLedger:
    """Cached, budgeted, journaled access to an evaluation function `plan -> accuracy`.

    evaluate: returns an accuracy in [0, 1], or a dict with "accuracy" and extra metrics.
    max_evaluations: budget of real (uncached) evaluations, journaled ones included.
    journal: optional object with `append(record)` and `records()`; records of other kinds
        in a shared journal are ignored.

    >>> from hirelc.plan import Plan
    >>> ledger = EvaluationLedger(lambda plan: {"accuracy": 0.8, "loss": 0.3}, max_evaluations=5)
    >>> ledger.evaluate(Plan.from_bits(["fc"], [2])).metrics
    {'loss': 0.3}
    """

    def __init__(self, evaluate: EvaluateFn | Executor, max_evaluations: int, journal: JournalLike | None = None,
                 layers: Collection[str] | None = None):
        if isinstance(max_evaluations, bool) or not isinstance(max_evaluations, int) or max_evaluations < 1:
            raise ValueError(f"max_evaluations must be a positive integer, got {max_evaluations!r}")
        if not isinstance(evaluate, Executor) and not callable(evaluate):
            raise TypeError(f"evaluate must be callable (plan -> accuracy) or an Executor, "
                            f"got {type(evaluate).__name__}")
        self.executor = evaluate if isinstance(evaluate, Executor) else SerialExecutor(evaluate)
        self.max_evaluations = max_evaluations
        self.journal = journal
        self.history: list[Evaluation] = []
        self._cache: dict[str, Evaluation] = {}
        self.cache_hits = 0
        if journal is not None:
            self._replay(journal, layers)

    def _replay(self, journal: JournalLike, layers: Collection[str] | None) -> None:
        numbered = getattr(journal, "numbered_records", None)
        pairs = numbered() if callable(numbered) else list(enumerate(journal.records(), start=1))
        for line, record in pairs:
            if record.get("kind") != RECORD_KIND:
                continue
            try:
                ev = Evaluation.from_record(record, layers)
            except (ValueError, TypeError, KeyError) as e:
                where = getattr(journal, "path", "the journal")
                raise JournalRecordError(
                    f"{where}: line {line}: cannot replay this evaluation: {e}. To repair, delete that "
                    "line (its evaluation is recomputed on resume), or start over in a new directory"
                ) from None
            if ev.plan_hash in self._cache:
                continue  # a duplicate line (e.g. written twice around a crash): keep the first
            self._store(replace(ev, index=len(self.history)))

    def _store(self, ev: Evaluation) -> None:
        self.history.append(ev)
        self._cache[ev.plan_hash] = ev

    @property
    def n_evaluations(self) -> int:
        """Real evaluations so far, journaled ones included."""
        return len(self.history)

    @property
    def n_replayed(self) -> int:
        """Evaluations read back from the journal at construction."""
        return sum(ev.replayed for ev in self.history)

    def counts(self) -> dict[str, int]:
        """Where this search's real evaluations came from, whatever executor ran them:
        evaluations = new + served_from_cache + replayed; repeats = proposals of an already
        evaluated plan, answered from memory (free, not in the budget).

        >>> ledger = EvaluationLedger(lambda p: {"accuracy": 0.9, "served_from_cache": p["fc"].bits == 2}, 5)
        >>> _ = ledger.evaluate_many([Plan.from_bits(["fc"], [b]) for b in (2, 4, 4)])
        >>> ledger.counts()
        {'evaluations': 2, 'new_evaluations': 1, 'served_from_cache': 1, 'replayed': 0, 'repeats': 1}
        """
        cached = sum(ev.served_from_cache for ev in self.history)
        return {"evaluations": self.n_evaluations, "new_evaluations": self.n_evaluations - cached - self.n_replayed,
                "served_from_cache": cached, "replayed": self.n_replayed, "repeats": self.cache_hits}

    @property
    def remaining(self) -> int:
        return max(0, self.max_evaluations - self.n_evaluations)

    def cached(self, plan: Plan) -> Evaluation | None:
        """The stored evaluation of `plan`, or None; never evaluates, never counts."""
        return self._cache.get(plan.content_hash())

    @property
    def batch_size(self) -> int:
        """Plans a method should propose at once: one per worker of the executor."""
        return self.executor.workers

    def evaluate(self, plan: Plan) -> Evaluation:
        """The evaluation of `plan`: from the cache if known, else a real, budgeted call."""
        done = self.evaluate_many([plan])
        if not done:
            raise BudgetExhausted(
                f"evaluation budget of {self.max_evaluations} real evaluations is spent"
            )
        return done[0]

    def evaluate_many(self, plans: Sequence[Plan]) -> list[Evaluation]:
        """Evaluations of `plans`, in their order, with the real ones run by the executor
        (in parallel when it has several workers).

        Exactly what evaluating them one by one would give: cache hits are free (a plan
        repeated in the batch is evaluated once), real evaluations are indexed in proposal
        order, and the list stops before the first plan the budget cannot pay for (so it
        may be shorter than `plans`; empty when the budget is spent). Each result is
        journaled (fsynced) by this process as it arrives, in completion order; `history`
        is extended in proposal order once the batch is in. If an evaluation fails, the
        others are still awaited and journaled, then the first error is raised.

        >>> ledger = EvaluationLedger(lambda p: p["fc"].bits / 10, max_evaluations=2)
        >>> [ev.accuracy for ev in ledger.evaluate_many([Plan.from_bits(["fc"], [b]) for b in (4, 4, 8, 2)])]
        [0.4, 0.4, 0.8]
        """
        slots: list[Evaluation | str] = []  # a cached evaluation, or the hash of a plan to evaluate
        todo: dict[str, tuple[int, Plan]] = {}  # hash -> (index it will get, plan)
        for plan in plans:
            key = plan.content_hash()
            if key in self._cache or key in todo:
                self.cache_hits += 1
                slots.append(self._cache.get(key) or key)
                continue
            if len(todo) == self.remaining:
                break  # the budget cannot pay for this plan: stop here, as a serial loop would
            todo[key] = (self.n_evaluations + len(todo), plan)
            slots.append(key)
        done = self._run(list(todo.values()))
        return [s if isinstance(s, Evaluation) else done[s] for s in slots]

    def _run(self, todo: list[tuple[int, Plan]]) -> dict[str, Evaluation]:
        """Evaluate `todo` on the executor; journal each result on arrival."""
        done: dict[str, Evaluation] = {}
        errors: list[BaseException] = []
        try:
            for outcome in self.executor.run([plan for _, plan in todo]):
                index, plan = todo[outcome.position]
                if outcome.error is not None:
                    errors.append(outcome.error)
                    continue
                served, result = _served_from_cache(outcome.result)
                try:
                    accuracy, metrics, status = validate_result(result)
                except (ValueError, TypeError) as e:
                    errors.append(e)
                    continue
                ev = Evaluation(index, plan, accuracy, metrics, outcome.seconds, status, served_from_cache=served)
                if self.journal is not None:
                    self.journal.append(ev.to_record())  # durable before anything else happens
                done[ev.plan_hash] = ev
        finally:
            for ev in sorted(done.values(), key=lambda ev: ev.index):  # proposal order, as a serial run
                self._store(ev)
        if errors:
            raise errors[0]
        return done


def _served_from_cache(result: Any) -> tuple[bool, Any]:
    """(whether the function says it answered from its cache, the result without that key)."""
    if not isinstance(result, Mapping) or SERVED_FROM_CACHE not in result:
        return False, result
    return bool(result[SERVED_FROM_CACHE]), {k: v for k, v in result.items() if k != SERVED_FROM_CACHE}
