"""EvaluationLedger: cache, budget, validation, journal append and replay."""

import json
import math

import pytest

from hirelc.plan import Plan
from hirelc.methods.ledger import BudgetExhausted, EvaluationLedger, JournalRecordError, validate_result
from hirelc.rundir import Journal

from .fakes import Counting, FileJournal, MemoryJournal

NAMES = ["conv", "fc"]


def plan(*bits):
    return Plan.from_bits(NAMES, bits)


def CountingFn(result=lambda p: 0.5 + 0.05 * sum(p.bits()) / 16):
    return Counting(result)


def test_cache_hit_neither_calls_nor_counts():
    fn = CountingFn()
    ledger = EvaluationLedger(fn, max_evaluations=5)
    first = ledger.evaluate(plan(4, 8))
    again = ledger.evaluate(Plan.from_dict({"fc": 8, "conv": 4}))  # same content, other key order
    assert again is first
    assert len(fn.calls) == 1 and ledger.n_evaluations == 1 and ledger.cache_hits == 1
    assert ledger.remaining == 4
    assert [ev.index for ev in ledger.history] == [0]


def test_budget_exhaustion_raises_only_on_new_plans():
    fn = CountingFn()
    ledger = EvaluationLedger(fn, max_evaluations=2)
    ledger.evaluate(plan(8, 8))
    ledger.evaluate(plan(4, 8))
    with pytest.raises(BudgetExhausted):
        ledger.evaluate(plan(2, 2))
    assert ledger.evaluate(plan(4, 8)).plan == plan(4, 8)  # cached plans stay available
    assert len(fn.calls) == 2 and ledger.remaining == 0


def test_history_records_metrics_seconds_and_order():
    fn = CountingFn(lambda p: {"accuracy": 0.7, "loss": 1.25, "logit_mse": 3})
    ledger = EvaluationLedger(fn, max_evaluations=3)
    ledger.evaluate(plan(8, 8))
    ledger.evaluate(plan(2, 8))
    assert [ev.plan for ev in ledger.history] == [plan(8, 8), plan(2, 8)]
    ev = ledger.history[1]
    assert (ev.index, ev.accuracy, ev.metrics, ev.status) == (1, 0.7, {"loss": 1.25, "logit_mse": 3}, "ok")
    assert ev.seconds >= 0.0 and not ev.replayed


def test_each_evaluation_is_journaled_before_the_next_starts():
    journal = MemoryJournal()

    def fn(p):
        # every earlier evaluation is already in the journal when this one starts
        assert len(journal.records()) == len(fn.seen)
        fn.seen.append(p)
        return 0.9

    fn.seen = []
    ledger = EvaluationLedger(fn, max_evaluations=3, journal=journal)
    for bits in [(8, 8), (4, 8), (4, 4)]:
        ledger.evaluate(plan(*bits))
    records = journal.records()
    assert [r["index"] for r in records] == [0, 1, 2]
    assert records[1]["plan"] == plan(4, 8).to_dict()
    assert records[1]["plan_hash"] == plan(4, 8).content_hash()
    assert records[1]["kind"] == "evaluation" and records[1]["accuracy"] == 0.9


@pytest.mark.parametrize("journal_kind", ["memory", "file"])
def test_resume_from_journal_recomputes_nothing(tmp_path, journal_kind):
    make = (lambda: MemoryJournal()) if journal_kind == "memory" else (lambda: FileJournal(tmp_path / "j.jsonl"))
    journal = make()
    fn = CountingFn()
    first = EvaluationLedger(fn, max_evaluations=4, journal=journal)
    for bits in [(8, 8), (4, 8), (2, 8)]:
        first.evaluate(plan(*bits))

    if journal_kind == "memory":
        journal = MemoryJournal(journal.records())
    else:
        journal = FileJournal(tmp_path / "j.jsonl")  # a new process opening the same file
    fn2 = CountingFn()
    resumed = EvaluationLedger(fn2, max_evaluations=4, journal=journal)
    assert resumed.n_evaluations == 3 and resumed.n_replayed == 3 and resumed.remaining == 1
    for bits in [(8, 8), (4, 8), (2, 8)]:
        assert resumed.evaluate(plan(*bits)).accuracy == first.cached(plan(*bits)).accuracy
    assert fn2.calls == []
    new = resumed.evaluate(plan(1, 1))
    assert new.index == 3 and len(fn2.calls) == 1 and len(journal.records()) == 4
    with pytest.raises(BudgetExhausted):  # journaled evaluations count against the budget
        resumed.evaluate(plan(1, 2))


def test_replay_ignores_other_record_kinds_and_rejects_a_corrupt_hash():
    good = EvaluationLedger(lambda p: 0.8, 2, journal=MemoryJournal())
    good.evaluate(plan(4, 4))
    records = good.journal.records()
    mixed = MemoryJournal([{"kind": "config", "seed": 0}, *records, records[0]])  # + a duplicate line
    assert EvaluationLedger(lambda p: 0.0, 2, journal=mixed).n_evaluations == 1
    bad = dict(records[0], plan=plan(2, 4).to_dict())
    with pytest.raises(ValueError, match="corrupt"):
        EvaluationLedger(lambda p: 0.0, 2, journal=MemoryJournal([bad]))


def test_diverged_result_counts_with_its_reported_accuracy():
    fn = CountingFn(lambda p: {"accuracy": 0.1, "status": "diverged", "loss": None})
    ledger = EvaluationLedger(fn, max_evaluations=2, journal=MemoryJournal())
    ev = ledger.evaluate(plan(1, 1))
    assert (ev.accuracy, ev.status) == (0.1, "diverged")
    assert ledger.evaluate(plan(1, 1)) is ev and len(fn.calls) == 1 and ledger.n_evaluations == 1
    assert ledger.journal.records()[0]["status"] == "diverged"


@pytest.mark.parametrize(
    "bad, error, match",
    [
        (None, TypeError, "accuracy number"),
        ("0.9", TypeError, "accuracy number"),
        (True, TypeError, "accuracy number"),
        (math.nan, ValueError, "finite"),
        (math.inf, ValueError, "finite"),
        (-0.1, ValueError, r"\[0, 1\]"),
        (95.0, ValueError, "percentage"),
        ({"acc": 0.9}, ValueError, "without 'accuracy'"),
        ({"accuracy": 0.9, "confusion": [[1, 0]]}, TypeError, "confusion"),
        ({"accuracy": 0.9, "loss": math.nan}, ValueError, "metric 'loss' is nan; return None"),
        ({"accuracy": 0.9, "logit_mse": -math.inf}, ValueError, "metric 'logit_mse' is -inf"),
    ],
)
def test_invalid_results_are_rejected_not_counted_not_journaled(bad, error, match):
    ledger = EvaluationLedger(lambda p: bad, max_evaluations=3, journal=MemoryJournal())
    with pytest.raises(error, match=match):
        ledger.evaluate(plan(4, 4))
    assert ledger.n_evaluations == 0 and ledger.journal.records() == []


def test_validate_result_accepts_numbers_and_dicts():
    assert validate_result(1) == (1.0, {}, "ok")
    assert validate_result({"accuracy": 0.25, "status": "ok", "n": 10}) == (0.25, {"n": 10}, "ok")


@pytest.mark.parametrize("budget", [0, -1, 1.5, True])
def test_budget_must_be_a_positive_integer(budget):
    with pytest.raises(ValueError, match="max_evaluations"):
        EvaluationLedger(lambda p: 0.5, max_evaluations=budget)


def _journal_with(tmp_path, edit):
    """A real run-directory journal of three evaluations whose second line is edited."""
    journal = Journal(tmp_path / "journal.jsonl")
    ledger = EvaluationLedger(lambda p: 0.75, 5, journal=journal)
    for bits in ((4, 4), (2, 8), (8, 8)):
        ledger.evaluate(plan(*bits))
    lines = journal.path.read_text().splitlines()
    record = json.loads(lines[1])
    edit(record)
    lines[1] = json.dumps(record)
    journal.path.write_text("\n".join(lines) + "\n")
    return journal


@pytest.mark.parametrize("edit, why", [
    (lambda r: r.__setitem__("accuracy", 7.5), "percentage"),
    (lambda r: r.__setitem__("accuracy", "0.9"), "accuracy number"),
    (lambda r: r.pop("plan_hash"), r"lacks \['plan_hash'\]"),
    (lambda r: r.__setitem__("seconds", -3), "seconds is -3"),
    (lambda r: r["plan"].__setitem__("conv", 99), "bits"),
    (lambda r: r.__setitem__("plan", {"conv": 4, "fc": 4, "head": 4}), r"layers \['head'\] that this model"),
    (lambda r: r["metrics"].__setitem__("loss", [1, 2]), "metric 'loss'"),
])
def test_a_bad_journal_record_is_refused_naming_file_line_and_repair(tmp_path, edit, why):
    journal = _journal_with(tmp_path, edit)
    with pytest.raises(JournalRecordError, match=f"journal.jsonl: line 2: cannot replay .*{why}.*delete that line") as e:
        EvaluationLedger(lambda p: 0.0, 5, journal=journal, layers=NAMES)
    assert str(journal.path) in str(e.value)


def test_a_journal_record_with_nan_written_by_hand_is_refused(tmp_path):
    journal = _journal_with(tmp_path, lambda r: None)
    text = journal.path.read_text().splitlines()
    text[2] = text[2].replace('"accuracy":0.75', '"accuracy":NaN').replace('"accuracy": 0.75', '"accuracy": NaN')
    journal.path.write_text("\n".join(text) + "\n")
    with pytest.raises(JournalRecordError, match="line 3: .*finite"):
        EvaluationLedger(lambda p: 0.0, 5, journal=journal)


def test_a_good_journal_replays_with_layers_given(tmp_path):
    journal = _journal_with(tmp_path, lambda r: None)
    assert EvaluationLedger(lambda p: 0.0, 5, journal=journal, layers=NAMES).n_replayed == 3


def test_counts_split_evaluations_by_origin_and_the_cache_flag_is_not_journaled():
    from .worker_fakes import cached_below_4

    journal = MemoryJournal()
    first = EvaluationLedger(cached_below_4, max_evaluations=10, journal=journal)
    first.evaluate_many([Plan.from_bits(["a", "b"], bits) for bits in ([2, 8], [8, 8], [8, 8], [4, 2])])
    assert first.counts() == {"evaluations": 3, "new_evaluations": 2, "served_from_cache": 1, "replayed": 0,
                              "repeats": 1}
    assert all("served_from_cache" not in r and "served_from_cache" not in r["metrics"] for r in journal.records())
    resumed = EvaluationLedger(cached_below_4, max_evaluations=10, journal=journal)
    resumed.evaluate_many([Plan.from_bits(["a", "b"], bits) for bits in ([2, 8], [3, 3], [5, 5])])
    assert resumed.counts() == {"evaluations": 5, "new_evaluations": 1, "served_from_cache": 1, "replayed": 3,
                                "repeats": 1}
