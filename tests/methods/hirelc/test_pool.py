"""HiReLC's candidate pool and acquisition: local moves stay in the space and change one
choice; Thompson picks are distinct and each the best of some member; a search's pool
holds neighbours of its best real plan and random plans of the space."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hirelc.methods.hirelc.pool import distinct_new, local_moves, one_choice_apart, thompson_picks
from hirelc.methods.hirelc.search import HiReLCSearch
from hirelc.methods.ledger import Evaluation
from hirelc.methods.problem import SearchProblem
from hirelc.methods.space import SearchSpace, SpaceConfig
from hirelc.methods.synthetic import sensitive_layer_problem
from hirelc.methods.target import Target
from hirelc.plan import LayerConfig, Plan

LAYERS = sensitive_layer_problem().layers
SPACE = SearchSpace(LAYERS, SpaceConfig())


def test_one_choice_apart_counts_granularity_and_group_size_as_one_choice():
    base = LayerConfig(bits=4)
    assert one_choice_apart(base, LayerConfig(bits=8))
    assert one_choice_apart(base, LayerConfig(bits=4, granularity="per_group", group_size=32))
    assert not one_choice_apart(base, base)
    assert not one_choice_apart(base, LayerConfig(bits=8, keep_ratio=0.5))


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 2**31 - 1))
def test_local_moves_change_one_choice_of_one_kernel_and_stay_in_the_space(seed):
    rng = np.random.default_rng(seed)
    plan = SPACE.sample(rng)
    for moved in local_moves(SPACE, plan, rng, 10):
        assert SPACE.contains(moved)
        changed = [n for n in SPACE.names if moved[n] != plan[n]]
        assert len(changed) == 1 and one_choice_apart(plan[changed[0]], moved[changed[0]])


def test_thompson_picks_are_distinct_and_each_the_best_remaining_of_some_member():
    rng = np.random.default_rng(3)
    preds = rng.normal(size=(4, 30))
    picks = thompson_picks(preds, 6, np.random.default_rng(0))
    assert len(set(picks)) == 6
    for i, p in enumerate(picks):
        remaining = [j for j in range(30) if j not in picks[:i]]
        assert any(p == max(remaining, key=lambda j: preds[m, j]) for m in range(4))


def test_thompson_with_agreeing_members_takes_the_top_predictions():
    preds = np.tile(np.array([0.1, 0.9, 0.5, 0.7]), (3, 1))
    assert thompson_picks(preds, 2, np.random.default_rng(0)) == [1, 3]
    assert sorted(thompson_picks(preds, 9, np.random.default_rng(0))) == [0, 1, 2, 3]  # at most the pool


def test_distinct_new_skips_seen_and_repeated_plans():
    a, b, c = (Plan.from_bits(["x"], [bits]) for bits in (2, 4, 8))
    into: dict = {}
    distinct_new([a, b, b, c], {a.content_hash()}, into)
    assert list(into.values()) == [b, c]


@pytest.fixture(scope="module")
def searcher():
    problem = SearchProblem(LAYERS, space=SPACE, target=Target(compression=8), reference_accuracy=0.95)
    return HiReLCSearch(problem, _tiny(), seed=0)


def _tiny(**kw):
    from hirelc.methods.hirelc.config import HiReLCConfig

    return HiReLCConfig.from_options(**({"evals_per_cycle": 4, "lla_steps": 64, "hla_steps": 8, "pool_size": 4,
                                        "random_pool": 16, "local_pool": 24, "local_parents": 1,
                                        "surrogate_epochs": 20} | kw))


def test_the_pool_holds_repaired_neighbours_of_the_best_real_plan(searcher):
    problem = searcher.problem
    best = problem.candidate(SPACE.sample(np.random.default_rng(1)))
    searcher.history = [Evaluation(plan=best, accuracy=0.9, index=0)]
    pool = searcher._pool()
    assert best not in pool  # evaluated plans are never offered again
    limit = problem.max_bytes
    assert all(problem.sizes.nbytes(p) <= limit for p in pool)
    near = [p for p in pool if sum(p[n] != best[n] for n in SPACE.names) == 1]
    assert len(near) >= 3  # local moves that were already feasible survive the repair unchanged


def test_without_random_and_local_plans_the_pool_is_the_policies_only(searcher):
    lean = HiReLCSearch(searcher.problem, _tiny(random_pool=0, local_pool=0, pool_size=4), seed=0)
    full = HiReLCSearch(searcher.problem, _tiny(pool_size=4), seed=0)
    assert len(lean._pool()) <= 4 + 2 < len(full._pool())
