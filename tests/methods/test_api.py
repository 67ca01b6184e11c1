"""`hirelc.methods.search`: methods, options, results, budget, resume, reproducibility."""

import json

import numpy as np
import pytest

from hirelc.methods import SearchProblem, list_methods, search
from hirelc.methods.synthetic import sensitive_layer_problem

from .fakes import Counting, MemoryJournal

BITS = (2, 3, 4, 5, 8)


@pytest.fixture
def synthetic():
    return sensitive_layer_problem()


def run(synthetic, evaluate=None, method="releq", budget=50, seed=0, **options):
    return search(
        list(synthetic.layers), evaluate or synthetic.evaluate, method=method, bits=BITS,
        reference_accuracy=synthetic.reference_accuracy, max_evaluations=budget, seed=seed, **options,
    )


def test_methods_are_registered():
    assert list_methods() == ["greedy", "hirelc", "random", "releq", "tpe", "uniform"]


def test_unknown_method_and_option_are_clear_errors(synthetic):
    with pytest.raises(ValueError, match="unknown search method 'haq'.*releq"):
        run(synthetic, method="haq")
    with pytest.raises(ValueError, match="unknown releq option.*learning_rate"):
        run(synthetic, lr=0.1)
    with pytest.raises(ValueError, match="unknown releq reward"):
        run(synthetic, reward="product")
    with pytest.raises(ValueError, match="seed"):
        run(synthetic, seed=1.5)


def test_releq_result_and_episode_log(synthetic):
    result = run(synthetic, max_episodes=6)
    assert result.method == "releq" and result.stop_reason == "max_episodes" and result.converged_at is None
    assert len(result.episodes) == 6
    for ep in result.episodes:
        assert len(ep.bits) == 4 and set(ep.bits) <= set(BITS) and ep.start_bits == [8] * 4
        probs = np.array(ep.action_probs)
        assert probs.shape == (4, len(BITS))  # seed 000 Fig. 2: per layer, per bitwidth
        np.testing.assert_allclose(probs.sum(axis=1), 1.0, rtol=1e-5)
        assert [BITS[a] for a in ep.actions] == ep.bits
    # the best plan is the best of every real evaluation, by the shared rule
    assert result.history[0].plan.bits() == [8, 8, 8, 8]  # the start state is evaluated first
    problem = SearchProblem(synthetic.layers, BITS, synthetic.reference_accuracy)
    assert result.best_reward == max(problem.score(ev) for ev in result.history)
    assert result.best_reward >= max(ep.reward for ep in result.episodes)
    assert result.best_accuracy == synthetic.evaluate(result.plan)
    data = json.loads(json.dumps(result.to_dict()))
    assert data["bits"] == result.plan.bits() and len(data["history"]) == result.n_evaluations
    assert data["options"]["agent"] == "lstm" and data["options"]["learning_rate"] == 3e-4


def test_releq_same_seed_same_plan_and_episodes(synthetic):
    a, b = (run(synthetic, seed=3, max_episodes=12) for _ in range(2))
    assert a.plan == b.plan
    assert [ep.bits for ep in a.episodes] == [ep.bits for ep in b.episodes]
    assert [ep.action_probs for ep in a.episodes] == [ep.action_probs for ep in b.episodes]
    c = run(synthetic, seed=4, max_episodes=12)
    assert [ep.bits for ep in c.episodes] != [ep.bits for ep in a.episodes]


def test_budget_exhaustion_stops_gracefully_with_the_best_so_far(synthetic):
    fn = Counting(synthetic.evaluate)
    result = run(synthetic, evaluate=fn, budget=5)
    assert result.stop_reason == "budget" and result.n_evaluations == 5 == len(fn.calls)
    assert result.plan in [ev.plan for ev in result.history]


def test_resumed_search_recomputes_nothing_journaled(synthetic):
    journal = MemoryJournal()
    first = run(synthetic, budget=12, journal=journal)
    assert len(journal.records()) == first.n_evaluations == 12
    fn = Counting(synthetic.evaluate)
    resumed = run(synthetic, evaluate=fn, budget=12, journal=MemoryJournal(journal.records()))
    assert fn.calls == []  # same seed replays the same episodes, all answered from the journal
    assert resumed.plan == first.plan and resumed.stop_reason == "budget"
    assert [ev.plan for ev in resumed.history] == [ev.plan for ev in first.history]
    assert all(ev.replayed for ev in resumed.history)


@pytest.mark.parametrize(
    "options",
    [
        {"agent": "mlp"},
        {"action_space": "restricted"},
        {"reward_mode": "step"},
        {"reward": "ratio"},
        {"reward": "difference", "shared_lstm": False},
    ],
)
def test_ablation_variants_run(synthetic, options):
    result = run(synthetic, max_episodes=4, **options)
    assert len(result.episodes) == 4 and result.n_evaluations >= 1
    assert result.options["agent"] == options.get("agent", "lstm")


def test_search_converges_early_on_a_trivial_problem():
    # accuracy never drops, so the lowest bitwidth everywhere is best; the policy settles on it
    synthetic = sensitive_layer_problem()
    result = search(
        list(synthetic.layers[:2]), lambda plan: 0.9, method="releq", bits=(2, 8),
        reference_accuracy=0.9, max_evaluations=20, seed=0, learning_rate=3e-3,
        convergence_prob=0.9, max_episodes=300,
    )
    assert result.stop_reason == "converged" and result.converged_at == len(result.episodes) - 1
    assert result.plan.bits() == [2, 2] and result.episodes[-1].bits == [2, 2]
    assert result.n_evaluations <= 5  # (8,8) + at most the 4 plans of {2, 8}^2


def test_tpe_without_optuna_fails_before_any_work_naming_the_install(monkeypatch):
    import importlib.util

    from hirelc.methods.api import method_config

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "optuna" else real(name, *a))
    with pytest.raises(ValueError, match=r"needs optuna: pip install optuna \(or hirelc\[tpe\]\)"):
        method_config("tpe")
    method_config("random")  # other methods do not need it
