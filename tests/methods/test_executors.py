"""Executors behind the ledger: batches give exactly the one-by-one results, whatever the
order results arrive in; a dead worker's candidate is retried once, then named."""

import pytest

from hirelc.inventory.spec import LayerSpec
from hirelc.methods.api import search
from hirelc.methods.driver import drive
from hirelc.methods.executors import EvaluationFailed, Executor, Outcome, ProcessExecutor, SerialExecutor
from hirelc.methods.ledger import EvaluationLedger
from hirelc.methods.problem import SearchProblem
from hirelc.methods.tpe import TPEConfig, TPESearch
from hirelc.plan import Plan

from .fakes import MemoryJournal
from .worker_fakes import BrokenFactory, CachedBelow4, DieOn, RaiseOn, Table, cached_below_4, table_accuracy

NAMES = ["conv", "fc"]
LAYERS = [LayerSpec("conv", "conv2d", (8, 1, 3, 3), n_macs=5000), LayerSpec("fc", "linear", (10, 200), n_macs=2000)]


def plan(*bits):
    return Plan.from_bits(NAMES, bits)


class Reversed(Executor):
    """Evaluates a batch in the driver but hands the results back last one first, like a
    pool whose first submissions finish last."""

    kind = "reversed"

    def __init__(self, fn, workers):
        self.fn, self.workers = fn, workers

    def run(self, plans):
        outcomes = [Outcome(i, self.fn(p), 0.0) for i, p in enumerate(plans)]
        yield from reversed(outcomes)


def records(journal):
    """Journal content without wall times, as an order-independent set."""
    return sorted(repr({k: v for k, v in r.items() if k != "seconds"}) for r in journal.records())


def test_evaluate_many_is_exactly_evaluating_one_by_one():
    plans = [plan(4, 8), plan(2, 2), plan(4, 8), plan(8, 8), plan(2, 2)]
    one_by_one = EvaluationLedger(table_accuracy, 10, MemoryJournal())
    one_by_one.evaluate(plan(8, 8))
    expected = [one_by_one.evaluate(p) for p in plans]
    batched = EvaluationLedger(Reversed(table_accuracy, 5), 10, MemoryJournal())
    batched.evaluate(plan(8, 8))
    got = batched.evaluate_many(plans)
    assert [(e.index, e.plan, e.accuracy) for e in got] == [(e.index, e.plan, e.accuracy) for e in expected]
    assert [e.index for e in batched.history] == [0, 1, 2]  # proposal order, though results came reversed
    assert batched.cache_hits == one_by_one.cache_hits == 3
    assert records(batched.journal) == records(one_by_one.journal)


def test_results_are_journaled_as_they_arrive_and_stored_in_proposal_order():
    journal = MemoryJournal()
    ledger = EvaluationLedger(Reversed(table_accuracy, 3), 10, journal)
    ledger.evaluate_many([plan(2, 2), plan(4, 4), plan(8, 8)])
    assert [r["index"] for r in journal.records()] == [2, 1, 0]
    assert [ev.plan.bits() for ev in ledger.history] == [[2, 2], [4, 4], [8, 8]]


def test_a_batch_stops_before_the_first_plan_the_budget_cannot_pay_for():
    ledger = EvaluationLedger(SerialExecutor(table_accuracy, 4), max_evaluations=2)
    got = ledger.evaluate_many([plan(2, 2), plan(2, 2), plan(4, 4), plan(8, 8), plan(2, 2)])
    assert [e.plan.bits() for e in got] == [[2, 2], [2, 2], [4, 4]]
    assert ledger.n_evaluations == 2 and ledger.batch_size == 4
    assert ledger.evaluate_many([plan(2, 2), plan(5, 5)]) == [ledger.history[0]]  # the hit, then nothing


def test_a_failing_evaluation_is_raised_after_the_rest_of_its_batch_is_journaled():
    def fn(p):
        if p.bits() == [4, 4]:
            raise ArithmeticError("boom")
        return table_accuracy(p)

    ledger = EvaluationLedger(SerialExecutor(fn, 3), 10, MemoryJournal())
    with pytest.raises(ArithmeticError, match="boom"):
        ledger.evaluate_many([plan(2, 2), plan(4, 4), plan(8, 8)])
    assert sorted(r["plan_hash"] for r in ledger.journal.records()) == sorted([plan(2, 2).content_hash(),
                                                                              plan(8, 8).content_hash()])
    assert ledger.n_evaluations == 2


def test_an_invalid_result_is_rejected_like_a_serial_one():
    ledger = EvaluationLedger(SerialExecutor(lambda p: 1.5, 2), 10)
    with pytest.raises(ValueError, match="accuracy"):
        ledger.evaluate_many([plan(2, 2), plan(4, 4)])


def _tpe_run(executor, seed=3):
    problem = SearchProblem(LAYERS, (2, 3, 4, 8), 0.95)
    ledger = EvaluationLedger(executor, 12, MemoryJournal())
    drive(TPESearch(problem, TPEConfig(n_startup_trials=4), seed=seed), problem, ledger)
    return ledger


def test_tpe_depends_on_the_batch_boundaries_only_not_on_arrival_order():
    serial = _tpe_run(SerialExecutor(table_accuracy, 3))
    shuffled = _tpe_run(Reversed(table_accuracy, 3))
    assert [ev.plan for ev in serial.history] == [ev.plan for ev in shuffled.history]
    assert records(serial.journal) == records(shuffled.journal)


def test_tpe_constant_liar_changes_nothing_with_one_trial_in_flight():
    problem = SearchProblem(LAYERS, (2, 3, 4, 8), 0.95)
    runs = []
    for liar in (True, False):
        ledger = EvaluationLedger(table_accuracy, 12)
        drive(TPESearch(problem, TPEConfig(n_startup_trials=4, constant_liar=liar), seed=3), problem, ledger)
        runs.append([ev.plan for ev in ledger.history])
    assert runs[0] == runs[1]


# -- the local process pool (spawned workers import hirelc: a few seconds each) -------------


@pytest.mark.slow
def test_process_pool_search_equals_the_serial_search_with_the_same_batches(tmp_path):
    kwargs = dict(method="random", bits=(2, 3, 4, 8), reference_accuracy=0.95, max_evaluations=9, seed=1)
    serial = search(LAYERS, SerialExecutor(table_accuracy, 2), journal=MemoryJournal(), **kwargs)
    with ProcessExecutor(Table(trace_dir=str(tmp_path)), workers=2, threads=1) as pool:
        parallel = search(LAYERS, pool, journal=MemoryJournal(), **kwargs)
    assert [ev.plan for ev in parallel.history] == [ev.plan for ev in serial.history]
    assert [ev.accuracy for ev in parallel.history] == [ev.accuracy for ev in serial.history]
    assert parallel.plan == serial.plan
    built = [p for p in tmp_path.iterdir() if p.name.startswith("built-")]
    evaluated_by = {p.name.split("-")[1] for p in tmp_path.iterdir() if p.name.startswith("eval-")}
    # built once per worker; every evaluation ran in a built worker (on a busy machine one
    # worker may take every task, so both need not have evaluated)
    assert len(built) == 2 and evaluated_by <= {p.name.split("-")[1] for p in built}


@pytest.mark.slow
def test_the_ledger_counts_cache_served_evaluations_of_workers_as_of_the_serial_run():
    kwargs = dict(method="random", bits=(2, 3, 4, 8), reference_accuracy=0.95, max_evaluations=8, seed=2)
    serial = search(LAYERS, SerialExecutor(cached_below_4, 2), **kwargs)
    with ProcessExecutor(CachedBelow4(), workers=2, threads=1) as pool:
        parallel = search(LAYERS, pool, **kwargs)
    want = sum(ev.plan.bits()[0] < 4 for ev in serial.history)
    assert 0 < want < 8  # the seed gives both kinds
    assert parallel.evaluation_counts == serial.evaluation_counts
    assert serial.evaluation_counts["served_from_cache"] == want
    assert serial.evaluation_counts["new_evaluations"] == 8 - want


@pytest.mark.slow
def test_a_worker_killed_mid_evaluation_costs_one_retry(tmp_path):
    journal = MemoryJournal()
    plans = [plan(2, 2), plan(4, 4), plan(8, 8), plan(3, 3)]
    with ProcessExecutor(DieOn([4, 4], str(tmp_path), times=1), workers=2, threads=1) as pool:
        got = EvaluationLedger(pool, 10, journal).evaluate_many(plans)
        assert pool.deaths == 1
    assert [ev.accuracy for ev in got] == [table_accuracy(p)["accuracy"] for p in plans]
    assert len(journal.records()) == 4


@pytest.mark.slow
def test_a_candidate_whose_worker_always_dies_fails_by_name_and_the_rest_is_journaled(tmp_path):
    journal = MemoryJournal()
    ledger = EvaluationLedger(ProcessExecutor(DieOn([4, 4], str(tmp_path), times=9), workers=2, threads=1),
                              10, journal)
    with ledger.executor, pytest.raises(EvaluationFailed, match=plan(4, 4).content_hash()) as info:
        ledger.evaluate_many([plan(2, 2), plan(4, 4), plan(8, 8)])
    assert "died 2 times" in str(info.value)
    assert sorted(r["plan"]["conv"]["bits"] for r in journal.records()) == [2, 8]


@pytest.mark.slow
def test_worker_exceptions_and_unbuildable_evaluators_reach_the_driver():
    with ProcessExecutor(RaiseOn([4, 4]), workers=2, threads=1) as pool:
        ledger = EvaluationLedger(pool, 10)
        with pytest.raises(ValueError, match=r"cannot evaluate \[4, 4\]"):
            ledger.evaluate_many([plan(2, 2), plan(4, 4)])
        assert ledger.n_evaluations == 1
    with ProcessExecutor(BrokenFactory(), workers=1, threads=1) as pool:
        with pytest.raises(RuntimeError, match="could not build its evaluator.*no such dataset"):
            EvaluationLedger(pool, 10).evaluate(plan(2, 2))
