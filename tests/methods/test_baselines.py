"""Uniform and random baselines under the shared ledger and budget."""

import pytest

from hirelc.methods import search
from hirelc.methods.synthetic import sensitive_layer_problem

BITS = (2, 3, 4, 5, 8)


@pytest.fixture
def synthetic():
    return sensitive_layer_problem()


def run(synthetic, method, budget, seed=0, **kw):
    return search(
        list(synthetic.layers), synthetic.evaluate, method=method, bits=BITS,
        reference_accuracy=synthetic.reference_accuracy, max_evaluations=budget, seed=seed, **kw,
    )


def test_uniform_walks_the_bit_set_top_down_and_picks_by_the_shared_rule(synthetic):
    result = run(synthetic, "uniform", budget=20)
    assert [ep.bits for ep in result.episodes] == [[b] * 4 for b in (8, 5, 4, 3, 2)]
    assert result.stop_reason == "done" and result.n_evaluations == 5
    # the seed's reward trades one missing bit on conv2 (acc 0.95 -> 0.65) for StateQ 0.625 -> 0.5:
    # (1 - 0.5^0.2) * (0.65/0.95)^(0.4/(0.65/0.95)) = 0.1036 > 1 - 0.625^0.2 = 0.0897
    assert result.plan.bits() == [4, 4, 4, 4] and result.best_accuracy == pytest.approx(0.65)
    assert result.best_reward == pytest.approx(0.1036, abs=1e-4)
    assert result.episodes[2].reward == pytest.approx(result.best_reward)


def test_uniform_stops_gracefully_when_the_budget_ends(synthetic):
    result = run(synthetic, "uniform", budget=2)
    assert result.stop_reason == "budget" and [ep.bits[0] for ep in result.episodes] == [8, 5]
    assert result.plan.bits() == [5, 5, 5, 5]


def test_random_plans_are_distinct_seeded_and_within_budget(synthetic):
    a = run(synthetic, "random", budget=30, seed=3)
    b = run(synthetic, "random", budget=30, seed=3)
    c = run(synthetic, "random", budget=30, seed=4)
    assert [ep.bits for ep in a.episodes] == [ep.bits for ep in b.episodes]
    assert [ep.bits for ep in a.episodes] != [ep.bits for ep in c.episodes]
    plans = [tuple(ep.bits) for ep in a.episodes]
    assert len(plans) == len(set(plans)) == 30 == a.n_evaluations
    assert all(set(p) <= set(BITS) for p in plans) and a.stop_reason == "budget"


def test_random_stops_when_the_space_is_exhausted():
    synthetic = sensitive_layer_problem()
    result = search(
        list(synthetic.layers[:2]), lambda plan: 0.9, method="random", bits=(4, 8),
        reference_accuracy=0.9, max_evaluations=100, seed=0,
    )
    assert result.stop_reason == "done" and result.n_evaluations == 4
    assert result.plan.bits() == [4, 4]


def test_baselines_take_no_options(synthetic):
    with pytest.raises(ValueError, match="takes no options"):
        run(synthetic, "uniform", budget=3, learning_rate=0.1)
