"""ReLeQEnv (seed 000 §2.2-2.4): gymnasium API, state, actions, rewards, episode log."""

import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

from hirelc.methods.ledger import EvaluationLedger
from hirelc.methods.problem import SearchProblem
from hirelc.methods.releq.env import DECREMENT, INCREMENT, KEEP, ReLeQEnv
from hirelc.methods.releq.reward import shaped_reward
from hirelc.methods.synthetic import sensitive_layer_problem

from .fakes import Counting

BITS = (2, 3, 4, 5, 8)


@pytest.fixture
def synthetic():
    return sensitive_layer_problem()


def make_env(synthetic, budget=10_000, **kwargs):
    problem = SearchProblem(synthetic.layers, BITS, synthetic.reference_accuracy)
    fn = Counting(synthetic.evaluate)
    return ReLeQEnv(problem, EvaluationLedger(fn, budget), **kwargs), fn


def run_episode(env, actions, seed=None):
    env.reset(seed=seed)
    out = []
    for a in actions:
        out.append(env.step(a))
    return out


@pytest.mark.parametrize("action_space", ["flexible", "restricted"])
@pytest.mark.parametrize("reward_mode", ["episode", "step"])
def test_gymnasium_env_checker_passes(synthetic, action_space, reward_mode):
    env, _ = make_env(synthetic, action_space=action_space, reward_mode=reward_mode)
    check_env(env, skip_render_check=True)


@pytest.mark.parametrize("action_space", ["flexible", "restricted"])
def test_observations_stay_in_bounds_over_random_episodes(synthetic, action_space):
    env, _ = make_env(synthetic, action_space=action_space, reward_mode="step")
    env.action_space.seed(0)
    obs, _ = env.reset(seed=0)
    for _ in range(30 * env.n_layers):
        assert env.observation_space.contains(obs), obs
        obs, _, done, _, _ = env.step(env.action_space.sample())
        if done:
            assert env.observation_space.contains(obs)
            obs, _ = env.reset()


def test_state_vector_follows_the_seed(synthetic):
    env, _ = make_env(synthetic)
    s = env.obs_slices
    obs, _ = env.reset(seed=0)
    assert obs[s["index"]][0] == 0.0 and obs[s["layer_one_hot"]].tolist() == [1, 0, 0, 0]
    assert obs[s["bits"]].tolist() == [1.0] * 4  # every layer starts at the top bitwidth
    assert obs[s["state_q"]][0] == pytest.approx(1.0) and obs[s["state_acc"]][0] == pytest.approx(1.0)
    obs, *_ = env.step(BITS.index(4))  # layer 0 -> 4 bits
    assert obs[s["index"]][0] == pytest.approx(0.25) and obs[s["layer_one_hot"]].tolist() == [0, 1, 0, 0]
    assert obs[s["bits"]].tolist() == [0.5, 1.0, 1.0, 1.0]  # not-yet-visited layers keep the start value
    expected_q = env.problem.state_q(env.problem.plan([4, 8, 8, 8]))
    assert obs[s["state_q"]][0] == pytest.approx(expected_q, rel=1e-6)
    assert not np.allclose(env._static[0], env._static[1])  # static features differ per layer


def test_flexible_actions_pick_bitwidths_and_the_episode_reward_is_seed_eq(synthetic):
    env, fn = make_env(synthetic)
    steps = run_episode(env, [BITS.index(b) for b in (3, 5, 3, 3)], seed=0)
    assert [r for _, r, *_ in steps[:-1]] == [0.0, 0.0, 0.0]  # episode mode: reward at the end only
    _, reward, terminated, truncated, info = steps[-1]
    assert terminated and not truncated and info["bits"] == [3, 5, 3, 3]
    problem = env.problem
    plan = problem.plan([3, 5, 3, 3])
    expected = shaped_reward(synthetic.evaluate(plan) / 0.95, problem.state_q(plan))
    assert reward == pytest.approx(expected)
    assert len(fn.calls) == 2  # the all-top start plan once, the final plan once


def test_episode_mode_costs_at_most_one_evaluation_per_episode(synthetic):
    env, fn = make_env(synthetic)
    rng = np.random.default_rng(0)
    for _ in range(10):
        run_episode(env, rng.integers(0, len(BITS), size=4))
    assert len(fn.calls) <= 10 + 1
    before = len(fn.calls)
    run_episode(env, env.episodes[0].actions)  # a repeated plan is a free cache hit
    assert len(fn.calls) == before == env.ledger.n_evaluations


def test_step_mode_evaluates_and_rewards_every_step(synthetic):
    env, fn = make_env(synthetic, reward_mode="step")
    steps = run_episode(env, [BITS.index(b) for b in (2, 8, 8, 8)], seed=0)
    plans = [ev.plan.bits() for ev in env.ledger.history]
    assert plans == [[8, 8, 8, 8], [2, 8, 8, 8]]  # later steps repeat the cached [2, 8, 8, 8]
    plan = env.problem.plan([2, 8, 8, 8])
    expected = shaped_reward(synthetic.evaluate(plan) / 0.95, env.problem.state_q(plan))
    assert [r for _, r, *_ in steps] == pytest.approx([expected] * 4)
    assert env.episodes[-1].ret == pytest.approx(sum(r for _, r, *_ in steps))


def test_restricted_actions_move_one_position_and_persist_across_episodes(synthetic):
    env, _ = make_env(synthetic, action_space="restricted")
    assert env.action_space.n == 3
    run_episode(env, [DECREMENT, KEEP, INCREMENT, DECREMENT], seed=0)
    assert env.episodes[-1].bits == [5, 8, 8, 5]  # 8 -> 5 is one step down in (2, 3, 4, 5, 8)
    run_episode(env, [DECREMENT, DECREMENT, KEEP, DECREMENT])  # B(t) carries over
    assert env.episodes[-1].start_bits == [5, 8, 8, 5] and env.episodes[-1].bits == [4, 5, 8, 4]
    for b in BITS:
        moves = [BITS.index(env.action_to_bits(b, a)) - BITS.index(b) for a in (DECREMENT, KEEP, INCREMENT)]
        assert moves == [max(-1, -BITS.index(b)), 0, min(1, len(BITS) - 1 - BITS.index(b))]
    assert env.action_to_bits(2, DECREMENT) == 2 and env.action_to_bits(8, INCREMENT) == 8
    run_episode(env, [KEEP] * 4, seed=1)  # a seeded reset starts over from the top
    assert env.episodes[-1].bits == [8, 8, 8, 8]


def test_episode_log_and_action_probabilities(synthetic):
    env, _ = make_env(synthetic)
    env.reset(seed=0)
    for t in range(4):
        env.step(0)
        env.record_action_probs(np.full(len(BITS), 0.2) + (0.1 if t == 3 else 0.0))
    env.reset()  # the next episode starts before the last probabilities are read
    ep = env.episodes[-1]
    assert ep.index == 0 and ep.bits == [2, 2, 2, 2] and ep.actions == [0, 0, 0, 0]
    assert len(ep.action_probs) == 4 and ep.action_probs[3][0] == pytest.approx(0.3)
    assert ep.state_q == pytest.approx(0.25) and ep.accuracy == synthetic.evaluate(ep.plan)
    assert ep.to_dict()["plan_hash"] == ep.plan.content_hash()


def test_misuse_is_reported(synthetic):
    env, _ = make_env(synthetic)
    with pytest.raises(RuntimeError, match="reset"):
        env.step(0)
    env.reset(seed=0)
    with pytest.raises(ValueError, match="outside"):
        env.step(len(BITS))
    with pytest.raises(ValueError, match="action_space"):
        make_env(synthetic, action_space="free")
    with pytest.raises(ValueError, match="reward_mode"):
        make_env(synthetic, reward_mode="never")
