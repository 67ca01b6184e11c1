"""HiReLC end to end on a model-free problem with a known optimum: target met by every
evaluated plan, the optimum found, same seed -> same search, resume replays for free."""

import itertools

import pytest

from hirelc.methods import search
from hirelc.methods.api import method_config
from hirelc.methods.hirelc.surrogate import spearman
from hirelc.methods.ledger import EvaluationLedger
from hirelc.methods.problem import SearchProblem
from hirelc.methods.sizing import SizeModel
from hirelc.methods.space import SearchSpace, SpaceConfig
from hirelc.methods.synthetic import sensitive_layer_problem
from hirelc.methods.target import Target
from hirelc.plan import Plan
from tests.methods.fakes import Counting, MemoryJournal

LAYERS = sensitive_layer_problem().layers
SPACE = SpaceConfig(bits=(2, 4, 8), keep_ratios=(1.0,), formats=("int_sym",), granularities=("per_channel",))
NEEDED = {"conv1": 4, "conv2": 8, "fc1": 4, "fc2": 4}
# (4, 8, 4, 4) is 5.96x smaller than fp32 (kernels + float16 scales): 5.9x admits it and no
# plan with more bits, so it is the only plan meeting the target with nothing missing.
TARGET = Target(compression=5.9)
TINY = dict(evals_per_cycle=4, cold_start=4, lla_steps=128, hla_steps=16, pool_size=12, proxy_calls=4,
            n_surrogates=3, surrogate_hidden=16, surrogate_epochs=60)


def accuracy(plan):
    missing = sum(max(0, NEEDED[n] - c.bits) // 2 for n, c in plan.items())
    return round(max(0.05, 0.95 - 0.2 * missing), 6)


def run(budget=12, seed=0, journal=None, evaluate=accuracy, **options):
    return search(list(LAYERS), evaluate, method="hirelc", space=SPACE, target=TARGET, reference_accuracy=0.95,
                  max_evaluations=budget, seed=seed, journal=journal, **(TINY | options))


@pytest.fixture(scope="module")
def result():
    return run()


def test_the_known_optimum_is_the_unique_perfect_plan_under_the_target():
    sizes, budget = SizeModel(LAYERS), TARGET.max_bytes(SizeModel(LAYERS).fp32_bytes)
    space = SearchSpace(LAYERS, SPACE)
    perfect = [p for p in space.enumerate() if sizes.nbytes(p) <= budget and accuracy(p) == 0.95]
    assert [p.bits() for p in perfect] == [[4, 8, 4, 4]]


def test_hirelc_finds_the_optimum_within_the_budget(result):
    assert result.plan.bits() == [4, 8, 4, 4] and result.best_accuracy == 0.95
    assert result.n_evaluations <= 12 and result.target_met is True


def test_the_fisher_prior_is_the_first_evaluation_and_competes_among_the_finalists(result):
    prior = result.history[0]
    assert result.reference_hash == prior.plan_hash != result.plan.content_hash()  # the search beat its prior
    assert prior not in result.ranked(2)
    assert result.finalists(2) == [result.ranked(1)[0], prior] and result.finalists(1) == result.ranked(1)
    assert search(list(LAYERS), accuracy, method="random", space=SPACE, target=TARGET, reference_accuracy=0.95,
                  max_evaluations=3, seed=0).reference_hash is None  # only a method with a prior has one


def test_every_evaluated_plan_meets_the_target(result):
    sizes = SizeModel(LAYERS)
    budget = TARGET.max_bytes(sizes.fp32_bytes)
    assert result.history and all(sizes.nbytes(ev.plan) <= budget for ev in result.history)
    assert len({ev.plan_hash for ev in result.history}) == len(result.history)  # never proposes a repeat


def test_the_outcome_records_votes_decisions_and_surrogate_quality(result):
    info = result.options["hirelc"]
    cycles = info["cycles"]
    assert len(cycles) >= 3 and info["blocks"] == [["conv1"], ["conv2"], ["fc1"], ["fc2"]]
    first = cycles[0]
    assert first["reward_source"] == "proxy:damage_total" and cycles[-1]["reward_source"] == "surrogate"
    assert len(first["hla"]["proposals"]) == 3 and sum(first["hla"]["vote"]) == pytest.approx(1, abs=1e-3)
    assert sum(first["hla"]["weights_after"]) == pytest.approx(1, abs=1e-3)
    assert set(first["block_decisions"]) == set(NEEDED)
    assert "surrogate" not in first and cycles[1]["surrogate"]["n_unseen"] == len(cycles[1]["proposed"])
    assert len(info["rho_by_cycle"]) == len(cycles) and info["rho_by_cycle"][0] is None
    pairs = [p for c in cycles[-3:] for p in c.get("surrogate", {}).get("pairs", [])]
    assert len(pairs) >= 3 and info["rho_unseen_last_3_cycles"] == spearman(*zip(*pairs))
    assert sum(len(c["proposed"]) for c in cycles) == result.n_evaluations
    assert info["rho_cross_validated"] is None  # 12 evaluations: fewer than 4 per fold of the default 5


def test_the_cross_validated_rho_covers_every_evaluation_with_3_folds():
    info = run(cv_folds=3).options["hirelc"]
    cv = info["rho_cross_validated"]
    assert cv["n"] == 12 and cv["folds"] == 3 and -1 <= cv["rho"] <= 1
    # per cycle, over the evaluations so far: none before 4 per fold, then the end's value
    by_cycle = info["rho_cv_by_cycle"]
    assert len(by_cycle) == len(info["cycles"]) and by_cycle[-1] == cv["rho"]
    assert all(r is None for r in by_cycle[:-1])


@pytest.mark.slow
def test_same_seed_same_search_and_another_seed_differs(result):
    again = run()
    assert [ev.plan_hash for ev in again.history] == [ev.plan_hash for ev in result.history]
    assert again.plan == result.plan
    other = run(seed=1)
    assert [ev.plan_hash for ev in other.history] != [ev.plan_hash for ev in result.history]


@pytest.mark.slow
def test_resume_replays_the_journal_without_recomputing(result):
    journal = MemoryJournal()
    run(journal=journal)
    killed = MemoryJournal(journal.records()[:7])  # as if killed -9 after 7 evaluations
    counting = Counting(accuracy)
    resumed = run(journal=killed, evaluate=counting)
    assert len(counting.calls) == 12 - 7
    assert [ev.plan_hash for ev in resumed.history] == [ev.plan_hash for ev in result.history]
    assert resumed.plan == result.plan


@pytest.mark.slow
@pytest.mark.parametrize("flag", ["flat", "no_fisher", "no_surrogate", "single_hla"])
def test_each_ablation_runs_and_does_what_it_says(flag):
    out = run(budget=8, **{flag: True})
    info, cycles = out.options["hirelc"], out.options["hirelc"]["cycles"]
    sizes = SizeModel(LAYERS)
    assert out.options[flag] is True and out.n_evaluations == 8
    assert all(sizes.nbytes(ev.plan) <= TARGET.max_bytes(sizes.fp32_bytes) for ev in out.history)
    if flag == "flat":
        assert info["blocks"] == [[s.name for s in LAYERS]] and "hla" not in cycles[0]
    if flag == "single_hla":
        assert cycles[0]["hla"]["agents"] == ["ppo"]
    if flag == "no_surrogate":
        assert all(c["reward_source"].startswith("proxy") for c in cycles)
    if flag == "no_fisher":
        fp32 = [s.n_params for s in LAYERS]
        assert info["prior_shares"] == pytest.approx([n / sum(fp32) for n in fp32], abs=1e-3)


@pytest.mark.slow
def test_the_seeds_mlp_surrogate_is_one_option_away_and_also_finds_the_optimum(result):
    mlp = run(surrogate="mlp")
    assert result.options["surrogate"] == "forest" and mlp.options["surrogate"] == "mlp"
    assert mlp.plan.bits() == [4, 8, 4, 4] and mlp.n_evaluations <= 12
    assert [ev.plan_hash for ev in mlp.history] != [ev.plan_hash for ev in result.history]  # another model steered


def test_hirelc_needs_a_size_target():
    with pytest.raises(ValueError, match="allocates a size budget"):
        search(list(LAYERS), accuracy, method="hirelc", space=SPACE, reference_accuracy=0.95, max_evaluations=4)


@pytest.mark.parametrize("options, message", [
    ({"evals_per_cycle": 0}, "evals_per_cycle must be an integer >= 1"),
    ({"random_pool": -1}, "random_pool must be an integer >= 0"),
    ({"acquisition": "ei"}, "acquisition must be one of"),
    ({"flat": "yes"}, "flat must be true or false"),
    ({"pool_size": 2}, "pool_size must be >= evals_per_cycle"),
    ({"uncertain_share": 1.5}, "uncertain_share must be in"),
    ({"budget_penalty": -1}, "budget_penalty must be a number >= 0"),
    ({"agents": 3}, "unknown hirelc option"),
    ({"surrogate": "svm"}, "surrogate must be one of"),
    ({"forest_trees": 0}, "forest_trees must be an integer >= 1"),
])
def test_options_are_validated_before_any_work(options, message):
    with pytest.raises(ValueError, match=message):
        method_config("hirelc", **options)


def test_no_fisher_repairs_without_the_fisher_damage_model():
    from hirelc.evaluate.calibrate import measure_damage_model
    from hirelc.methods.hirelc.config import HiReLCConfig
    from hirelc.methods.hirelc.search import HiReLCSearch

    space = SearchSpace(LAYERS, SPACE)
    fisher = measure_damage_model(space, fisher_trace={"fc1": 1e9})  # fc1 "very sensitive"
    problem = SearchProblem(LAYERS, space=space, target=TARGET, reference_accuracy=0.95, damage=fisher)
    with_fisher = HiReLCSearch(problem, HiReLCConfig.from_options(**TINY), seed=0)
    without = HiReLCSearch(problem, HiReLCConfig.from_options(**TINY, no_fisher=True), seed=0)
    assert with_fisher.problem.damage_model is fisher
    assert without.problem.damage_model == measure_damage_model(space)  # plain weight MSE
    assert with_fisher.alloc.greedy["fc1"].bits > without.alloc.greedy["fc1"].bits  # Fisher protects fc1


@pytest.mark.slow
def test_an_accuracy_target_walks_the_size_budget_and_returns_the_smallest_plan_within_the_drop():
    drop = Target(max_accuracy_drop=1.0)
    out = search(list(LAYERS), accuracy, method="hirelc", space=SPACE, target=drop, reference_accuracy=0.95,
                 max_evaluations=16, seed=0, **TINY)
    sizes = SizeModel(LAYERS)
    within = [ev for ev in out.history if ev.accuracy >= 0.95 - 0.01]
    assert out.target_met is True and within
    assert sizes.nbytes(out.plan) == min(sizes.nbytes(ev.plan) for ev in within)  # the smallest within the drop
    ladder = out.options["hirelc"]["budget_ladder_bytes"]
    assert ladder[0] == sizes.fp32_bytes // 8
    assert max(ladder) > ladder[0] and ladder[-1] < max(ladder)  # loosened until within the drop, then tightened


def test_a_small_space_is_explored_to_the_end_without_error():
    tiny = SpaceConfig(bits=(2, 8), keep_ratios=(1.0,), formats=("int_sym",), granularities=("per_channel",))
    target = Target(compression=3)
    out = search(list(LAYERS), accuracy, method="hirelc", space=tiny, target=target, reference_accuracy=0.95,
                 max_evaluations=40, seed=0, **TINY)
    sizes, budget = SizeModel(LAYERS), target.max_bytes(SizeModel(LAYERS).fp32_bytes)
    feasible = [p for p in SearchSpace(LAYERS, tiny).enumerate() if sizes.nbytes(p) <= budget]
    assert len(feasible) < 40  # the budget outlasts the space
    assert sorted(ev.plan_hash for ev in out.history) == sorted(p.content_hash() for p in feasible)
