"""High-level agents (seed 001: "HLAs coordinate the global budget allocation via ensemble
voting guided by Fisher-information-based sensitivity estimation").

Each HLA sees, per block, the prior share of the kernel budget (the Fisher-greedy
allocation, or fp32 bytes without Fisher), the block's Fisher sensitivity share, its share
of fp32 bytes, last cycle's voted share, and the share the best real plan so far gave it;
plus the best real score so far and the search's progress. Its action is one number per
block in [-1, 1]; its proposal is

    share_b = prior_b * exp(SPAN * a_b) / sum_c prior_c * exp(SPAN * a_c)

so an untrained policy (a ~ 0) proposes the prior: Fisher is the starting allocation.
An HLA is trained each cycle on the cheap reward of its proposal (the predicted accuracy
of the plan the budgets realise), through SB3's `learn`.

The ensemble is three differently built agents: PPO (2 x 64), A2C (2 x 64) and PPO with a
small network and a higher learning rate. They vote per block by the weighted mean of
their shares (shares are quantities, so a mean is meaningful; categorical indices are never
averaged), and the weights follow each agent's realised reward with multiplicative
weights (Hedge): w_i <- w_i * exp(ETA * r_i), normalised. The realised reward of an agent
is minus half the L1 distance between its proposal and the block shares of the best real
plan evaluated in the cycle (in [-1, 0]): agents that anticipated what worked gain weight.

>>> import numpy as np
>>> ens = HLAEnsemble(np.array([0.5, 0.3, 0.2]), lambda shares: float(shares[0]), seed=0, agents=("ppo",))
>>> obs = ens.observation(np.array([0.2, 0.3, 0.5]), np.array([0.4, 0.3, 0.3]), None, None, 0.0, 0.0)
>>> proposals = ens.propose(obs); vote = ens.vote(proposals)
>>> round(float(vote.sum()), 6), vote.shape
(1.0, (3,))
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import gymnasium as gym
import numpy as np

SPAN = np.log(4.0)  # an agent can move a block's share by up to 4x either way
ETA = 4.0  # Hedge learning rate of the ensemble weights
ENSEMBLE = ("ppo", "a2c", "ppo_small")
SharesReward = Callable[[np.ndarray], float]


def to_shares(prior: np.ndarray, action: np.ndarray) -> np.ndarray:
    """Budget shares from a prior and an action in [-1, 1]^B (see the module docstring)."""
    w = prior * np.exp(SPAN * np.clip(action, -1.0, 1.0))
    return w / w.sum()


class AllocationEnv(gym.Env):
    """One allocation per episode: observe the blocks, propose every block's share."""

    def __init__(self, prior: np.ndarray, reward_fn: SharesReward):
        self.prior, self.reward_fn = prior, reward_fn
        n = len(prior)
        self.obs = np.zeros(5 * n + 2, dtype=np.float32)
        self.observation_space = gym.spaces.Box(-1.0, 2.0, self.obs.shape, np.float32)
        self.action_space = gym.spaces.Box(-1.0, 1.0, (n,), np.float32)

    def reset(self, *, seed: int | None = None, options: dict | None = None) -> tuple[np.ndarray, dict]:
        super().reset(seed=seed)
        return self.obs.copy(), {}

    def step(self, action: np.ndarray) -> tuple[np.ndarray, float, bool, bool, dict]:
        reward = float(self.reward_fn(to_shares(self.prior, np.asarray(action))))
        return self.obs.copy(), reward, True, False, {}


def _make_agent(kind: str, env: AllocationEnv, seed: int):
    from stable_baselines3 import A2C, PPO  # SB3 only when the method runs

    if kind == "ppo":
        return PPO("MlpPolicy", env, n_steps=32, batch_size=16, n_epochs=4, learning_rate=1e-3, seed=seed,
                   policy_kwargs={"net_arch": [64, 64]}, device="cpu", verbose=0)
    if kind == "a2c":
        return A2C("MlpPolicy", env, n_steps=8, learning_rate=1e-3, seed=seed,
                   policy_kwargs={"net_arch": [64, 64]}, device="cpu", verbose=0)
    if kind == "ppo_small":
        return PPO("MlpPolicy", env, n_steps=32, batch_size=16, n_epochs=8, learning_rate=3e-3, seed=seed,
                   policy_kwargs={"net_arch": [16]}, device="cpu", verbose=0)
    raise ValueError(f"unknown HLA kind {kind!r}; expected one of {ENSEMBLE}")


class HLAEnsemble:
    """The voting ensemble of high-level agents over one allocation problem."""

    def __init__(self, prior: np.ndarray, reward_fn: SharesReward, seed: int = 0,
                 agents: Sequence[str] = ENSEMBLE):
        self.env = AllocationEnv(np.asarray(prior, dtype=float), reward_fn)
        self.kinds = list(agents)
        self.agents = [_make_agent(k, self.env, seed + 101 * i) for i, k in enumerate(self.kinds)]
        self.weights = np.full(len(self.agents), 1.0 / len(self.agents))

    def observation(self, sens: np.ndarray, size: np.ndarray, last_vote: np.ndarray | None,
                    best_shares: np.ndarray | None, best_score: float, progress: float) -> np.ndarray:
        """The HLA observation; it becomes the env's state for this cycle's training."""
        prior = self.env.prior
        parts = [prior, sens, size, prior if last_vote is None else last_vote,
                 prior if best_shares is None else best_shares, [best_score, progress]]
        self.env.obs = np.clip(np.concatenate(parts), -1.0, 2.0).astype(np.float32)
        return self.env.obs.copy()

    def learn(self, steps: int) -> None:
        for agent in self.agents:
            agent.learn(total_timesteps=steps, reset_num_timesteps=False)

    def propose(self, obs: np.ndarray) -> list[np.ndarray]:
        """Each agent's shares (its policy's mean action)."""
        return [to_shares(self.env.prior, agent.predict(obs, deterministic=True)[0]) for agent in self.agents]

    def vote(self, proposals: Sequence[np.ndarray]) -> np.ndarray:
        """Per block, the weighted mean of the proposed shares (sums to 1)."""
        shares = np.average(np.stack(proposals), axis=0, weights=self.weights)
        return shares / shares.sum()

    def reward(self, proposals: Sequence[np.ndarray], realised: np.ndarray) -> np.ndarray:
        """Realised reward of each agent, and the Hedge update of the weights."""
        rewards = np.array([-0.5 * float(np.abs(p - realised).sum()) for p in proposals])
        w = self.weights * np.exp(ETA * rewards)
        self.weights = w / w.sum()
        return rewards
