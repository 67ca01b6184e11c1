"""The ReLeQ agent's networks match seed 000 §2.5, and it is reproducible."""

import numpy as np
import pytest
from stable_baselines3.common.callbacks import BaseCallback
from torch import nn

from hirelc.agents.releq import AgentConfig, action_probabilities, make_agent
from hirelc.methods.ledger import EvaluationLedger
from hirelc.methods.problem import SearchProblem
from hirelc.methods.releq.env import ReLeQEnv
from hirelc.methods.synthetic import sensitive_layer_problem


def make_env(bits=(2, 3, 4, 5, 8), **kwargs):
    synthetic = sensitive_layer_problem()
    problem = SearchProblem(synthetic.layers, bits, synthetic.reference_accuracy)
    return ReLeQEnv(problem, EvaluationLedger(synthetic.evaluate, 10_000), **kwargs)


def linear_shapes(module):
    return [(m.in_features, m.out_features) for m in module.modules() if isinstance(m, nn.Linear)]


@pytest.mark.parametrize("bits", [(2, 3, 4, 5, 8), tuple(range(1, 9))])
def test_lstm_agent_is_lstm_then_fc128_fc128_bits_and_fc128_fc64_1(bits):
    env = make_env(bits)
    policy = make_agent(env, AgentConfig(kind="lstm"), seed=0, n_layers=4).policy
    n_obs = env.observation_space.shape[0]
    lstm = policy.lstm_actor
    assert isinstance(lstm, nn.LSTM) and (lstm.input_size, lstm.hidden_size, lstm.num_layers) == (n_obs, 128, 1)
    assert policy.lstm_critic is None and policy.shared_lstm  # one LSTM feeds both heads
    assert linear_shapes(policy.mlp_extractor.policy_net) == [(128, 128), (128, 128)]
    assert linear_shapes(policy.action_net) == [(128, len(bits))]
    assert linear_shapes(policy.mlp_extractor.value_net) == [(128, 128), (128, 64)]
    assert linear_shapes(policy.value_net) == [(64, 1)]


def test_separate_lstms_option_and_restricted_action_head():
    env = make_env(action_space="restricted")
    policy = make_agent(env, AgentConfig(kind="lstm", shared_lstm=False), seed=0, n_layers=4).policy
    assert isinstance(policy.lstm_critic, nn.LSTM) and policy.lstm_critic.hidden_size == 128
    assert linear_shapes(policy.action_net) == [(128, 3)]  # decrement / keep / increment


def test_mlp_ablation_has_the_same_heads_and_no_lstm():
    env = make_env()
    policy = make_agent(env, AgentConfig(kind="mlp"), seed=0, n_layers=4).policy
    n_obs = env.observation_space.shape[0]
    assert not any(isinstance(m, nn.LSTM) for m in policy.modules())
    assert linear_shapes(policy.mlp_extractor.policy_net) == [(n_obs, 128), (128, 128)]
    assert linear_shapes(policy.mlp_extractor.value_net) == [(n_obs, 128), (128, 64)]
    assert linear_shapes(policy.action_net) == [(128, 5)] and linear_shapes(policy.value_net) == [(64, 1)]


class RecordProbs(BaseCallback):
    def __init__(self):
        super().__init__()
        self.probs = []

    def _on_step(self):
        self.probs.append(action_probabilities(self.model, self.locals)[0])
        return True


@pytest.mark.parametrize("kind", ["lstm", "mlp"])
def test_same_seed_same_actions_and_probabilities_are_distributions(kind):
    runs = []
    for _ in range(2):
        env = make_env()
        agent = make_agent(env, AgentConfig(kind=kind, episodes_per_update=2), seed=7, n_layers=4)
        callback = RecordProbs()
        agent.learn(total_timesteps=24, callback=callback)  # 3 PPO updates
        runs.append(([ep.actions for ep in env.episodes], np.array(callback.probs)))
    assert runs[0][0] == runs[1][0] and len(runs[0][0]) == 6
    np.testing.assert_allclose(runs[0][1], runs[1][1])
    assert runs[0][1].shape == (24, 5)
    np.testing.assert_allclose(runs[0][1].sum(axis=1), 1.0, rtol=1e-5)


@pytest.mark.parametrize(
    "kwargs", [{"kind": "gru"}, {"learning_rate": 0}, {"episodes_per_update": 0}, {"gamma": 1.5}, {"clip_range": 0}]
)
def test_agent_config_is_validated(kwargs):
    with pytest.raises(ValueError):
        AgentConfig(**kwargs)
