"""ReLeQ search, seed 000 §2-3 ("Putting it all together"): train the PPO agent on the
`ReLeQEnv` until its policy converges, the evaluation budget is spent, or `max_episodes`.

Every evaluation goes through the shared `EvaluationLedger`; the best plan is chosen by
`run_search` from the ledger's history with the same rule as for every other method.

>>> from hirelc.inventory.spec import LayerSpec
>>> from hirelc.methods.ledger import EvaluationLedger
>>> from hirelc.methods.problem import SearchProblem
>>> problem = SearchProblem([LayerSpec("fc", "linear", (10, 10), n_macs=100)], (2, 8), 0.9)
>>> out = run_releq(problem, EvaluationLedger(lambda p: 0.9, 5), seed=0, max_episodes=8)
>>> out.stop_reason in ("converged", "stalled", "budget", "max_episodes")
True
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import Any

import numpy as np
from stable_baselines3.common.callbacks import BaseCallback

from hirelc.agents.releq import AgentConfig, action_probabilities, make_agent
from hirelc.methods.ledger import BudgetExhausted, EvaluationLedger
from hirelc.methods.problem import SearchProblem
from hirelc.methods.releq.convergence import ConvergenceMonitor, StallMonitor
from hirelc.methods.releq.env import ACTION_SPACES, REWARD_MODES, ReLeQEnv
from hirelc.methods.releq.reward import REWARD_KINDS
from hirelc.methods.result import MethodOutcome

_PPO_OPTIONS = {f.name for f in fields(AgentConfig)} - {"kind"}


@dataclass
class ReLeQConfig:
    """ReLeQ method options; `from_options` builds it from `search(..., **options)`.

    ppo: the agent (`AgentConfig`: kind "lstm" per seed 000 §2.5 or "mlp" ablation, PPO
        settings).
    reward: "shaped" (§2.4), or the Fig. 1b ablations "ratio" / "difference".
    action_space: "flexible" (Fig. 1a(i)) or "restricted" (Fig. 1a(ii)).
    reward_mode: "episode" (one evaluation per episode) or "step" (public-code style);
        see `hirelc.methods.releq.env`.
    max_episodes: stop after this many complete episodes (default 20 x the budget: a
        converged agent replays cached plans for free, but still costs compute).
    convergence_patience / convergence_prob: see `ConvergenceMonitor`; patience defaults
        to three PPO updates' worth of episodes.
    stall_patience: stop ("stalled") after this many episodes in which neither a better plan
        (by the shared selection rule) was evaluated nor the greedy plan changed (None =
        never); see `StallMonitor`. This bounds the wall time of a policy that settles short
        of `convergence_prob`.
    """

    ppo: AgentConfig = field(default_factory=AgentConfig)
    reward: str = "shaped"
    action_space: str = "flexible"
    reward_mode: str = "episode"
    max_episodes: int | None = None
    convergence_patience: int | None = None
    convergence_prob: float = 0.99
    stall_patience: int | None = 300

    def __post_init__(self) -> None:
        for name, value, allowed in (
            ("reward", self.reward, REWARD_KINDS),
            ("action_space", self.action_space, ACTION_SPACES),
            ("reward_mode", self.reward_mode, REWARD_MODES),
        ):
            if value not in allowed:
                raise ValueError(f"unknown releq {name} {value!r}; expected one of {allowed}")
        if self.stall_patience is not None:
            StallMonitor(self.stall_patience)  # validates it
        if self.max_episodes is not None and (not isinstance(self.max_episodes, int) or self.max_episodes < 1):
            raise ValueError(f"max_episodes must be a positive integer, got {self.max_episodes!r}")
        if self.convergence_patience is None:
            self.convergence_patience = 3 * self.ppo.episodes_per_update
        ConvergenceMonitor(self.convergence_patience, self.convergence_prob)  # validates both

    @classmethod
    def from_options(cls, agent: str = "lstm", **options: Any) -> "ReLeQConfig":
        """Flat keyword options -> config; PPO settings (e.g. `learning_rate`) go to `ppo`.

        >>> ReLeQConfig.from_options(agent="mlp", learning_rate=1e-4).ppo.learning_rate
        0.0001
        """
        own = {f.name for f in fields(cls)} - {"ppo"}
        unknown = set(options) - own - _PPO_OPTIONS
        if unknown:
            valid = sorted(own | _PPO_OPTIONS | {"agent"})
            raise ValueError(f"unknown releq option(s) {sorted(unknown)}; valid: {valid}")
        ppo = AgentConfig(kind=agent, **{k: v for k, v in options.items() if k in _PPO_OPTIONS})
        return cls(ppo=ppo, **{k: v for k, v in options.items() if k in own})

    def to_dict(self) -> dict[str, Any]:
        """Flat, JSON-ready: the options that reproduce this config."""
        own = {f.name: getattr(self, f.name) for f in fields(self) if f.name != "ppo"}
        ppo = self.ppo.to_dict()
        return {"agent": ppo.pop("kind")} | own | ppo


class _EpisodeCallback(BaseCallback):
    """After every agent step: log the policy's action probabilities (seed 000 Fig. 2);
    after every episode: check convergence, stalling and the episode cap."""

    def __init__(self, env: ReLeQEnv, monitor: ConvergenceMonitor, max_episodes: int, stall: StallMonitor | None):
        super().__init__()
        self.env, self.monitor, self.max_episodes, self.stall = env, monitor, max_episodes, stall
        self.converged_at: int | None = None
        self.stalled = False
        self._best_key: tuple | None = None
        self._seen = 0  # ledger history entries already scanned for a better plan

    def _on_step(self) -> bool:
        probs = action_probabilities(self.model, self.locals)[0]  # (n_actions,)
        self.env.record_action_probs(probs)
        if not self.locals["dones"][0]:
            return True
        episode = self.env.episodes[-1]
        greedy = [
            self.env.action_to_bits(start, int(np.argmax(p)))
            for start, p in zip(episode.start_bits, episode.action_probs)
        ]
        if self.monitor.update(greedy, [max(p) for p in episode.action_probs]):
            self.converged_at = episode.index
            return False
        improved = self._found_better_plan()
        if self.stall is not None and self.stall.update(episode.index, greedy, improved):
            self.stalled = True
            return False
        return len(self.env.episodes) < self.max_episodes

    def _found_better_plan(self) -> bool:
        """True when an evaluation since the last call beats every earlier one."""
        problem, history = self.env.problem, self.env.ledger.history
        improved = False
        for ev in history[self._seen:]:
            key = problem.selection_key(ev)[:2]  # score, then fewer bits; not the index
            if self._best_key is None or key > self._best_key:
                self._best_key, improved = key, True
        self._seen = len(history)
        return improved


def run_releq(problem: SearchProblem, ledger: EvaluationLedger, seed: int, config: ReLeQConfig | None = None,
              **options: Any) -> MethodOutcome:
    """Train a ReLeQ agent on `problem`, evaluating plans through `ledger`.

    Stops when the policy has converged (`ConvergenceMonitor`), when the ledger's budget
    is spent (`BudgetExhausted` from inside an episode: that episode is dropped, every
    evaluation made so far stays in the ledger), or after `max_episodes` episodes.
    config: a `ReLeQConfig`, or keyword options for `ReLeQConfig.from_options`.
    Example: see the module docstring.
    """
    if config is None:
        config = ReLeQConfig.from_options(**options)
    elif options:
        raise ValueError("give run_releq a ReLeQConfig or keyword options, not both")
    env = ReLeQEnv(
        problem, ledger, reward=config.reward, action_space=config.action_space, reward_mode=config.reward_mode
    )
    n_layers = len(problem.layers)
    max_episodes = config.max_episodes or 20 * ledger.max_evaluations
    monitor = ConvergenceMonitor(config.convergence_patience, config.convergence_prob)
    stall = StallMonitor(config.stall_patience) if config.stall_patience is not None else None
    callback = _EpisodeCallback(env, monitor, max_episodes, stall)
    try:
        agent = make_agent(env, config.ppo, seed, n_layers)
        agent.learn(total_timesteps=max_episodes * n_layers, callback=callback)  # resets the env first
        reason = "converged" if callback.converged_at is not None else "stalled" if callback.stalled else "max_episodes"
    except BudgetExhausted:
        reason = "budget"
    return MethodOutcome(env.episodes, reason, callback.converged_at, config.to_dict())
