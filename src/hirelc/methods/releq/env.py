"""The ReLeQ environment, seed 000 §2.1-2.4, as a `gymnasium.Env`.

An episode walks the layers in order (§2.3: "The RELEQ agent steps through each layer
sequentially and chooses the bitwidth of a layer from a discrete set of bitwidths").
All layers start at the top of the bit set (§4.1: "all layers are initialized to 8-bits").

State (§2.2), one float vector, every entry in [0, 1] except StateAcc in [0, 2]:

    [ layer index t / L, and t one-hot (L entries),
      static features of layer t (log sizes, eq. 1 cost share, weight std / range),
      bits of every layer / top bitwidth (not-yet-visited layers at their start value),
      bits of layer t / top bitwidth,
      StateQ (eq. 1) of the current bits,
      StateAcc (eq. 2) of the last evaluated plan ]

Actions (§2.3): "flexible" (Fig. 1a(i)) picks layer t's bitwidth from the bit set;
"restricted" (Fig. 1a(ii)) picks decrement / keep / increment (action 0 / 1 / 2), moving
one position in the bit set (so 5 -> 8 is one step in {2, 3, 4, 5, 8}). Restricted
moves start from the layer's *current* bitwidth B(t), which is only meaningful if it
persists across episodes: with the restricted space an episode starts from the previous
episode's final plan (a `reset(seed=...)` or `options={"restart": True}` starts over).

Reward (§2.4), `reward_mode`:

- "episode" (default): the plan is evaluated once, when the last layer is set, and the
  agent gets the reward of that complete plan; intermediate steps get 0. StateQ in the
  observation is exact at every step (it is arithmetic); StateAcc is that of the episode's
  start plan until the end. One real evaluation per episode at most.
- "step": as in the public ReLeQ code, the current plan (chosen layers so far, the rest at
  their start bits) is evaluated after every step and every step is rewarded. Up to L
  real evaluations per episode: the cache only helps when a prefix repeats.

Every real evaluation (fine-tuning, in the full system) is the expensive part, so with a
fixed budget "episode" buys L times more episodes; it is the default.

>>> from hirelc.inventory.spec import LayerSpec
>>> from hirelc.methods.ledger import EvaluationLedger
>>> from hirelc.methods.problem import SearchProblem
>>> problem = SearchProblem([LayerSpec("a", "linear", (8, 8), 64), LayerSpec("b", "linear", (4, 8), 32)],
...                        bits=(2, 4, 8), reference_accuracy=0.9)
>>> env = ReLeQEnv(problem, EvaluationLedger(lambda plan: 0.9, max_evaluations=10))
>>> obs, info = env.reset(seed=0)
>>> obs, reward, done, truncated, info = env.step(0)  # layer a -> 2 bits
>>> obs, reward, done, truncated, info = env.step(1)  # layer b -> 4 bits
>>> done, env.episodes[-1].bits
(True, [2, 4])
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from hirelc.methods.ledger import Evaluation, EvaluationLedger
from hirelc.methods.problem import SearchProblem
from hirelc.methods.releq.features import static_features
from hirelc.methods.releq.reward import make_reward
from hirelc.methods.result import EpisodeRecord

ACTION_SPACES = ("flexible", "restricted")
REWARD_MODES = ("episode", "step")
MAX_STATE_ACC = 2.0  # observation clip: a quantized model twice as accurate as fp32 is noise
DECREMENT, KEEP, INCREMENT = 0, 1, 2  # restricted action space, seed 000 Fig. 1a(ii)


@dataclass
class _Draft:
    """The episode in progress; its `action_probs` list is shared with the final record."""

    start_bits: list[int]
    actions: list[int] = field(default_factory=list)
    action_probs: list[list[float]] = field(default_factory=list)
    ret: float = 0.0


class ReLeQEnv(gym.Env):
    """Per-layer bitwidth selection as an episodic MDP (seed 000 §2); see the module doc."""

    metadata = {"render_modes": []}

    def __init__(
        self,
        problem: SearchProblem,
        ledger: EvaluationLedger,
        *,
        reward: str = "shaped",
        action_space: str = "flexible",
        reward_mode: str = "episode",
    ):
        if action_space not in ACTION_SPACES:
            raise ValueError(f"unknown action_space {action_space!r}; expected one of {ACTION_SPACES}")
        if reward_mode not in REWARD_MODES:
            raise ValueError(f"unknown reward_mode {reward_mode!r}; expected one of {REWARD_MODES}")
        self.problem, self.ledger = problem, ledger
        self.reward_fn = make_reward(reward, problem.reward)
        self.restricted = action_space == "restricted"
        self.reward_mode = reward_mode
        self.n_layers = len(problem.layers)
        self._static = static_features(problem.layers)  # (L, F)
        self.action_space = spaces.Discrete(3 if self.restricted else len(problem.bits))
        self.obs_slices = _layout(self.n_layers, self._static.shape[1])
        n_obs = self.obs_slices["state_acc"].stop
        high = np.ones(n_obs, dtype=np.float32)
        high[-1] = MAX_STATE_ACC
        self.observation_space = spaces.Box(np.zeros(n_obs, np.float32), high, dtype=np.float32)
        self.episodes: list[EpisodeRecord] = []  # the episode log: complete episodes only
        self._bits: list[int] = [problem.top_bits] * self.n_layers
        self._carry: list[int] | None = None
        self._t = self.n_layers  # no episode in progress until reset()
        self._state_acc = 1.0
        self._draft = _Draft(list(self._bits))
        self._last_draft = self._draft

    # --- actions (seed 000 §2.3) -------------------------------------------------------
    def action_to_bits(self, current: int, action: int) -> int:
        """The bitwidth that `action` gives a layer currently at `current` bits."""
        bits = self.problem.bits
        if not self.restricted:
            return bits[action]
        position = bits.index(current) + (action - KEEP)  # -1, 0 or +1 in the bit set
        return bits[min(max(position, 0), len(bits) - 1)]

    # --- gymnasium API -----------------------------------------------------------------
    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[np.ndarray, dict[str, Any]]:
        super().reset(seed=seed)
        restart = seed is not None or bool((options or {}).get("restart", False))
        if restart or not self.restricted or self._carry is None:
            start = [self.problem.top_bits] * self.n_layers
        else:
            start = list(self._carry)
        self._bits, self._t = list(start), 0
        ev = self.ledger.evaluate(self.problem.candidate(self.problem.plan(self._bits)))  # cached after the first time
        self._state_acc = self.problem.state_acc(ev.accuracy)
        self._draft = _Draft(start_bits=list(start))
        return self._observation(), self._info(ev)

    def step(self, action: Any) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        if self._t >= self.n_layers:
            raise RuntimeError("the episode is over: call reset() first")
        action = int(action)
        if not self.action_space.contains(action):
            raise ValueError(f"action {action} is outside {self.action_space}")
        self._bits[self._t] = self.action_to_bits(self._bits[self._t], action)
        self._draft.actions.append(action)
        self._last_draft = self._draft
        self._t += 1
        terminated = self._t == self.n_layers
        ev, reward = None, 0.0
        if terminated or self.reward_mode == "step":
            ev = self.ledger.evaluate(self.problem.candidate(self.problem.plan(self._bits)))
            self._state_acc = self.problem.state_acc(ev.accuracy)
            reward = float(self.reward_fn(self._state_acc, self._state_q()))
        self._draft.ret += reward
        if terminated:
            self._finish(reward, ev)
        return self._observation(), reward, terminated, False, self._info(ev)

    # --- episode log ---------------------------------------------------------------------
    def record_action_probs(self, probs: Any) -> None:
        """Attach the policy's action probabilities for the step just taken (called by the
        agent after each step; they end up in `episodes[i].action_probs`, seed 000 Fig. 2)."""
        self._last_draft.action_probs.append([float(p) for p in np.asarray(probs).ravel()])

    def _finish(self, reward: float, ev: Evaluation) -> None:
        d = self._draft
        self.episodes.append(
            EpisodeRecord(
                index=len(self.episodes),
                plan=ev.plan,
                bits=list(self._bits),
                start_bits=d.start_bits,
                reward=reward,
                ret=d.ret,
                state_acc=self._state_acc,
                state_q=self._state_q(),
                accuracy=ev.accuracy,
                actions=d.actions,
                action_probs=d.action_probs,  # same list: probabilities of the last step land here
            )
        )
        self._carry = list(self._bits)

    # --- state (seed 000 §2.2) -------------------------------------------------------------
    def _state_q(self) -> float:
        return self.problem.state_q(self.problem.plan(self._bits))

    def _observation(self) -> np.ndarray:
        t, top = self._t, self.problem.top_bits
        static = self._static[t] if t < self.n_layers else np.zeros(self._static.shape[1])
        bits = np.asarray(self._bits, dtype=np.float64) / top  # (L,)
        current = bits[t] if t < self.n_layers else 0.0
        one_hot = np.zeros(self.n_layers)
        if t < self.n_layers:
            one_hot[t] = 1.0
        dynamic = [current, self._state_q(), min(max(self._state_acc, 0.0), MAX_STATE_ACC)]
        obs = np.concatenate([[t / self.n_layers], one_hot, static, bits, dynamic])
        return obs.astype(np.float32)  # (1 + L + F + L + 3,) in the order of `obs_slices`

    def _info(self, ev: Evaluation | None) -> dict[str, Any]:
        info: dict[str, Any] = {
            "layer": self._t - 1,
            "bits": list(self._bits),
            "state_q": self._state_q(),
            "state_acc": self._state_acc,
        }
        if ev is not None:
            info["accuracy"] = ev.accuracy
            info["plan_hash"] = ev.plan_hash
        return info


def _layout(n_layers: int, n_static: int) -> dict[str, slice]:
    """Where each part of the observation vector lives."""
    sizes = {
        "index": 1,
        "layer_one_hot": n_layers,  # the index again, one-hot: lets the heads tell layers apart
        "static": n_static,
        "bits": n_layers,
        "current_bits": 1,
        "state_q": 1,
        "state_acc": 1,
    }
    slices, start = {}, 0
    for name, size in sizes.items():
        slices[name] = slice(start, start + size)
        start += size
    return slices
