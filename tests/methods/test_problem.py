"""SearchProblem: bit sets, StateQ/StateAcc, and the shared best-plan rule."""

import itertools

import pytest

from hirelc.inventory.spec import LayerSpec
from hirelc.methods.ledger import Evaluation
from hirelc.methods.problem import SearchProblem, validate_bits
from hirelc.methods.releq.reward import RewardParams
from hirelc.methods.synthetic import sensitive_layer_problem

LAYERS = [LayerSpec("a", "linear", (10, 10), n_macs=100), LayerSpec("b", "linear", (10, 10), n_macs=100)]


def ev(index, bits, accuracy, problem):
    return Evaluation(index, problem.plan(bits), accuracy)


def test_bits_are_sorted_distinct_and_in_range():
    assert validate_bits((8, 2, 5)) == (2, 5, 8)
    for bad in [(4,), (2, 2), (0, 4), (4, 9), (2.5, 4), "ab"]:
        with pytest.raises(ValueError):
            validate_bits(bad)


def test_problem_validation():
    with pytest.raises(ValueError, match="at least one layer"):
        SearchProblem((), (2, 8), 0.9)
    with pytest.raises(ValueError, match="unique"):
        SearchProblem([LAYERS[0], LAYERS[0]], (2, 8), 0.9)
    for ref in (0.0, 1.5, 95):
        with pytest.raises(ValueError, match="reference_accuracy"):
            SearchProblem(LAYERS, (2, 8), ref)


def test_state_q_uses_the_top_of_the_bit_set():
    problem = SearchProblem(LAYERS, (2, 4), 0.9)
    assert problem.top_bits == 4
    assert problem.state_q(problem.plan([4, 4])) == 1.0
    assert problem.state_q(problem.plan([2, 4])) == pytest.approx(0.75)
    assert problem.state_acc(0.45) == pytest.approx(0.5)


def test_best_is_highest_reward_then_fewer_weighted_bits_then_earliest():
    problem = SearchProblem(LAYERS, (1, 2, 4, 8), 1.0, RewardParams())
    history = [
        ev(0, [8, 8], 1.0, problem),  # reward 0
        ev(1, [4, 4], 0.9, problem),
        ev(2, [2, 2], 0.1, problem),  # below th -> -1
    ]
    assert problem.best(history).index == 1
    # equal reward: a = 1, b = 0 makes reward = 1 - StateQ whatever the accuracy ...
    flat = SearchProblem(LAYERS, (1, 2, 4, 8), 1.0, RewardParams(a=1.0, b=0.0, th=0.1))
    tied = [ev(0, [4, 2], 0.9, flat), ev(1, [2, 4], 0.5, flat)]  # same StateQ, same reward
    assert flat.best(tied).index == 0  # ... then the earlier one
    assert problem.best([]) is None


def test_below_threshold_the_most_accurate_plan_wins():
    problem = SearchProblem(LAYERS, (1, 2, 4, 8), 1.0)
    history = [ev(0, [1, 1], 0.10, problem), ev(1, [2, 2], 0.30, problem), ev(2, [1, 2], 0.2, problem)]
    assert {problem.score(e) for e in history} == {-1.0}
    assert problem.best(history).plan.bits() == [2, 2]


@pytest.mark.parametrize("bits", [(2, 3, 4, 5, 8), tuple(range(1, 9))])
def test_synthetic_problem_has_the_documented_unique_optimum(bits):
    synthetic = sensitive_layer_problem()
    problem = SearchProblem(synthetic.layers, bits, synthetic.reference_accuracy)
    history = [
        Evaluation(i, problem.plan(b), synthetic.evaluate(problem.plan(b)))
        for i, b in enumerate(itertools.product(bits, repeat=4))
    ]
    ranked = sorted(history, key=problem.selection_key, reverse=True)
    assert ranked[0].plan.bits() == [3, 5, 3, 3]
    assert problem.score(ranked[0]) > problem.score(ranked[1]) + 0.005
