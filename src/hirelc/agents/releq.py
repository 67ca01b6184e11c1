"""The ReLeQ agent, seed 000 §2.1 and §2.5: PPO with an LSTM first hidden layer.

§2.1: "RELEQ employs the state-of-the-art Proximal Policy Optimization (PPO) to train its
policy and value networks."

§2.5: "the state space ... is encoded as a vector and fed as input to LSTM layer which acts
as the first hidden layer for both Policy and Value networks. Apart from the LSTM, policy
network has two fully connected hidden layers of 128 neurons each and the number of
neurons in the final output layer is equal to the number of available bitwidths ...
the Value network has two fully connected hidden layers of 128 and 64 neurons each."

With sb3-contrib's `RecurrentPPO` and `net_arch=dict(pi=[128, 128], vf=[128, 64])`:

    state --> LSTM --+--> FC128 - FC128 --> |actions| logits    (policy)
                     +--> FC128 - FC64  --> 1                   (value)

- `shared_lstm=True` (default) is the literal reading, one LSTM layer feeding both heads;
  sb3-contrib then trains that LSTM through the policy loss only (the value head reads it
  detached). `shared_lstm=False` gives each head its own LSTM, both trained.
- Not given by the seed: LSTM width 128 (as in the public ReLeQ code), tanh activations
  (SB3's default), and the PPO settings below.
- The LSTM state is reset at every episode start, so within an episode it carries "the
  context of previous layers' bitwidths" (§1).
- The state is standardised with running statistics (SB3 `VecNormalize`, observations
  only). Without it the LSTM barely tells layers apart: the raw [0, 1] features differ
  little between layers and the policy collapses to one bitwidth for every layer
  (measured on `hirelc.methods.synthetic`).

The LSTM ablation (§2.5: "LSTM enables the RELEQ agent to converge almost x1.33 faster in
comparison to a network with only fully connected layers") is `kind="mlp"`: SB3 `PPO`
with the same two heads, the same state normalisation, and no LSTM.

>>> from hirelc.methods.synthetic import sensitive_layer_problem
>>> from hirelc.methods.ledger import EvaluationLedger
>>> from hirelc.methods.problem import SearchProblem
>>> from hirelc.methods.releq.env import ReLeQEnv
>>> synthetic = sensitive_layer_problem()
>>> problem = SearchProblem(synthetic.layers, (2, 3, 4, 5, 8), 0.95)
>>> env = ReLeQEnv(problem, EvaluationLedger(synthetic.evaluate, 100))
>>> agent = make_agent(env, AgentConfig(kind="lstm"), seed=0, n_layers=4)
>>> [m.out_features for m in agent.policy.mlp_extractor.policy_net if hasattr(m, "out_features")]
[128, 128]
>>> agent.policy.action_net.out_features, agent.policy.lstm_actor.hidden_size
(5, 128)
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

import gymnasium as gym
import numpy as np
import torch
from stable_baselines3.common.monitor import Monitor
from stable_baselines3.common.on_policy_algorithm import OnPolicyAlgorithm
from stable_baselines3.common.vec_env import DummyVecEnv, VecNormalize

POLICY_HEAD = [128, 128]  # seed 000 §2.5: "two fully connected hidden layers of 128 neurons each"
VALUE_HEAD = [128, 64]  # seed 000 §2.5: "two fully connected hidden layers of 128 and 64 neurons"
AGENT_KINDS = ("lstm", "mlp")


@dataclass
class AgentConfig:
    """PPO settings for episodes of a few to a few tens of steps (one step per layer).

    kind: "lstm" (seed 000 §2.5) or "mlp" (the LSTM ablation).
    episodes_per_update: PPO rollout length in episodes (n_steps = this x number of layers);
        the whole rollout is one minibatch.
    gamma: 1, undiscounted: an episode is one finite pass over the layers.
    n_epochs: 10 passes over each rollout (SB3's default): more learning per (expensive)
        evaluated episode.
    ent_coef: entropy bonus. Without one PPO tends to settle early on one bitwidth for
        every layer.
    Measured on `hirelc.methods.synthetic` (bits {2,3,4,5,8}, budget 400, seeds 0-9; the
    optimum found / the converged policy's own plan is the optimum / mean real evaluations):
    ent_coef 0 with n_epochs 4: 6/10, 4/10; ent_coef 0.03 with n_epochs 4: 9/10, 9/10, ~205;
    these defaults: 9/10, 7/10, ~115.
    """

    kind: str = "lstm"
    learning_rate: float = 3e-4
    episodes_per_update: int = 4
    n_epochs: int = 10
    gamma: float = 1.0
    gae_lambda: float = 0.95
    clip_range: float = 0.2
    ent_coef: float = 0.03
    lstm_hidden_size: int = 128
    shared_lstm: bool = True

    def __post_init__(self) -> None:
        if self.kind not in AGENT_KINDS:
            raise ValueError(f"unknown agent kind {self.kind!r}; expected one of {AGENT_KINDS}")
        for name in ("learning_rate", "episodes_per_update", "n_epochs", "lstm_hidden_size"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not (
                math.isfinite(value) and value > 0
            ):
                raise ValueError(f"{name} must be a positive number, got {value!r}")
        if not (0 <= self.gamma <= 1 and 0 <= self.gae_lambda <= 1):
            raise ValueError(f"gamma and gae_lambda must be in [0, 1], got {self.gamma}, {self.gae_lambda}")
        if not (0 < self.clip_range < 1 and self.ent_coef >= 0):
            raise ValueError(f"need 0 < clip_range < 1 and ent_coef >= 0, got {self.clip_range}, {self.ent_coef}")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def make_agent(env: gym.Env, config: AgentConfig, seed: int, n_layers: int) -> OnPolicyAlgorithm:
    """A seeded PPO agent with the seed 000 §2.5 networks on `env` (CPU, quiet).

    n_layers: the episode length, so that a rollout holds `episodes_per_update` episodes.
    Example: see the module docstring.
    """
    n_steps = config.episodes_per_update * n_layers
    venv = VecNormalize(DummyVecEnv([lambda: Monitor(env)]), norm_obs=True, norm_reward=False, gamma=config.gamma)
    ppo = dict(
        learning_rate=config.learning_rate,
        n_steps=n_steps,
        batch_size=n_steps,
        n_epochs=config.n_epochs,
        gamma=config.gamma,
        gae_lambda=config.gae_lambda,
        clip_range=config.clip_range,
        ent_coef=config.ent_coef,
        seed=seed,
        device="cpu",
        verbose=0,
    )
    heads = dict(pi=list(POLICY_HEAD), vf=list(VALUE_HEAD))
    if config.kind == "mlp":
        from stable_baselines3 import PPO

        return PPO("MlpPolicy", venv, policy_kwargs=dict(net_arch=heads), **ppo)
    from sb3_contrib import RecurrentPPO

    lstm = dict(
        lstm_hidden_size=config.lstm_hidden_size,
        n_lstm_layers=1,  # "LSTM layer which acts as the first hidden layer"
        shared_lstm=config.shared_lstm,
        enable_critic_lstm=not config.shared_lstm,
    )
    return RecurrentPPO("MlpLstmPolicy", venv, policy_kwargs=dict(net_arch=heads, **lstm), **ppo)


def action_probabilities(agent: OnPolicyAlgorithm, rollout_locals: dict[str, Any]) -> np.ndarray:
    """The policy's action probabilities at the step just taken during `learn()`.

    For a callback's `_on_step`, where SB3 exposes the rollout loop's locals: `obs_tensor`
    is the (normalised) observation the action was chosen from and, for the recurrent
    agent, `agent._last_lstm_states` still holds the LSTM state before that step.
    Returns (n_envs, n_actions).
    """
    obs = rollout_locals["obs_tensor"]
    with torch.no_grad():
        if hasattr(agent, "_last_lstm_states"):  # RecurrentPPO
            starts = rollout_locals["episode_starts"]
            dist, _ = agent.policy.get_distribution(obs, agent._last_lstm_states.pi, starts)
        else:
            dist = agent.policy.get_distribution(obs)
    return dist.distribution.probs.cpu().numpy()  # (n_envs, n_actions)


def policy_summary(agent: OnPolicyAlgorithm) -> str:
    """The policy's module tree, to check it against seed 000 §2.5 by eye."""
    return str(agent.policy)
