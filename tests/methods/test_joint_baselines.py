"""uniform / random / greedy / tpe in the joint space with a size target, model-free."""

import pytest

from hirelc.methods import SearchProblem, SizeModel, SpaceConfig, Target, search
from hirelc.methods.baselines import uniform_plans
from hirelc.methods.space import SearchSpace
from hirelc.methods.synthetic import joint_problem

from .fakes import Counting


@pytest.fixture
def joint():
    return joint_problem()


def run(joint, method, budget=25, seed=0, target=Target(compression=10), **options):
    return search(list(joint.layers), joint.evaluate, method=method, reference_accuracy=joint.reference_accuracy,
                  max_evaluations=budget, seed=seed, space=SpaceConfig(), target=target, **options)


@pytest.mark.parametrize("method", ["uniform", "random", "greedy", "tpe"])
def test_every_evaluated_plan_meets_the_size_target(joint, method):
    result = run(joint, method)
    sizes = SizeModel(joint.layers)
    budget = Target(compression=10).max_bytes(sizes.fp32_bytes)
    assert result.history, "the method evaluated nothing"
    assert all(sizes.nbytes(ev.plan) <= budget for ev in result.history)
    assert result.target_met is True and result.best_size_bytes <= budget
    assert result.fp32_bytes == sizes.fp32_bytes and result.space["config"] == SpaceConfig().to_dict()


@pytest.mark.parametrize("method", ["random", "tpe"])
def test_same_seed_same_plan(joint, method):
    assert run(joint, method, seed=3).plan == run(joint, method, seed=3).plan


def test_greedy_makes_one_evaluation_and_beats_every_uniform_setting(joint):
    from hirelc.evaluate.calibrate import measure_damage_model

    fisher = {s.name: sens * s.n_params for s, sens in zip(joint.layers, joint.sensitivity)}
    damage = measure_damage_model(SearchSpace(joint.layers, SpaceConfig()), fisher_trace=fisher)
    result = run(joint, "greedy", budget=10, damage=damage)
    assert result.n_evaluations == 1 and result.stop_reason == "done"
    uniform = run(joint, "uniform", budget=1000)
    assert uniform.stop_reason == "done" and uniform.n_evaluations > 20
    assert result.best_accuracy > uniform.best_accuracy


def test_greedy_needs_a_size_target(joint):
    with pytest.raises(ValueError, match="greedy.*--target-compression"):
        run(joint, "greedy", target=Target())


def test_uniform_evaluates_only_uniform_settings_that_fit_largest_first(joint):
    problem = SearchProblem(joint.layers, reference_accuracy=0.95, space=SearchSpace(joint.layers, SpaceConfig()),
                            target=Target(compression=10))
    plans = uniform_plans(problem)
    sizes = [problem.sizes.nbytes(p) for p in plans]
    assert sizes == sorted(sizes, reverse=True) and max(sizes) <= problem.max_bytes
    assert all(len({(c.bits, c.number_format, c.granularity) for c in p.values()}) == 1 for p in plans)


def test_tpe_beats_random_on_the_synthetic_landscape_on_average(joint):
    tpe = [run(joint, "tpe", budget=40, seed=s).best_accuracy for s in range(3)]
    rnd = [run(joint, "random", budget=40, seed=s).best_accuracy for s in range(3)]
    assert sum(tpe) / 3 >= sum(rnd) / 3


def test_accuracy_drop_target_returns_the_smallest_plan_within_the_drop(joint):
    result = run(joint, "random", budget=30, target=Target(max_accuracy_drop=2.0))
    sizes = SizeModel(joint.layers)
    within = [ev for ev in result.history if ev.accuracy >= joint.reference_accuracy - 0.02]
    assert result.target_met is True
    assert result.best_size_bytes == min(sizes.nbytes(ev.plan) for ev in within)


def test_an_unreachable_target_fails_before_any_evaluation(joint):
    counting = Counting(joint.evaluate)
    with pytest.raises(ValueError, match="smallest achievable"):
        search(list(joint.layers), counting, method="random", reference_accuracy=0.95, max_evaluations=5,
               space=SpaceConfig.bits_only((4, 8)), target=Target(compression=30))
    assert counting.calls == []


def test_releq_refuses_a_joint_space(joint):
    with pytest.raises(ValueError, match="bit-widths only"):
        run(joint, "releq")


def test_tpe_options_are_validated(joint):
    with pytest.raises(ValueError, match="unknown tpe option"):
        run(joint, "tpe", n_startup=3)


def test_releq_honours_a_max_accuracy_drop():
    from hirelc.methods.synthetic import sensitive_layer_problem

    p = sensitive_layer_problem()
    result = search(list(p.layers), p.evaluate, method="releq", bits=(2, 3, 4, 5, 8),
                    reference_accuracy=p.reference_accuracy, max_evaluations=30, seed=0,
                    target=Target(max_accuracy_drop=1.0))
    within = [ev for ev in result.history if ev.accuracy >= p.reference_accuracy - 0.01]
    assert result.target_met is True and result.best_accuracy >= p.reference_accuracy - 0.01
    assert result.best_size_bytes == min(SizeModel(p.layers).nbytes(ev.plan) for ev in within)


def test_a_search_stopped_by_the_budget_says_the_policy_had_not_converged():
    from hirelc.methods.synthetic import sensitive_layer_problem

    p = sensitive_layer_problem()
    result = search(list(p.layers), p.evaluate, method="releq", bits=(2, 3, 4, 5, 8),
                    reference_accuracy=p.reference_accuracy, max_evaluations=8, seed=0)
    assert result.stop_reason == "budget"
    assert any("before the policy converged" in n for n in result.notes())
    assert result.to_dict()["notes"] == result.notes()
