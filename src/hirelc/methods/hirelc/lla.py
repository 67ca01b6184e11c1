"""Low-level agents (seed 001: "LLAs operate independently within each network module,
selecting multi-discrete action configurations ... bit-width, pruning retention ratio,
quantization type and granularity").

One LLA per block, each a `MaskablePPO` policy (sb3-contrib). Its episode walks the
block's kernels; for each kernel it picks the four attributes one after another
(bits -> number format -> keep ratio -> granularity), one `Discrete` action per attribute
with a mask of the choices valid *given the earlier ones* (a minifloat needs >= 4 bits,
per-group needs long rows, only prunable kernels prune). That is the multi-discrete action
of the paper made autoregressive, because MaskablePPO's `MultiDiscrete` masks are
per-dimension and independent, so they cannot say "float only with >= 4 bits"; every
config an episode can produce is in `SearchSpace.kernel_configs`. Attributes with a single
choice are set without a step.

Observation (float32): the kernel's static features (`kernel_features`), which attribute
is being chosen, the choices made so far for this kernel, the block budget from the HLAs
(relative to the block's fp32 bytes), the bytes used so far in the block (relative to the
budget), and the position in the block. Reward: 0 until the last decision, then the cheap
predicted accuracy of the whole assembled plan (`reward_fn`) minus
`penalty * max(0, used / budget - 1)`.

>>> from hirelc.methods.synthetic import sensitive_layer_problem
>>> from hirelc.methods.problem import SearchProblem
>>> from hirelc.methods.space import SearchSpace, SpaceConfig
>>> from hirelc.methods.hirelc.features import kernel_features
>>> layers = sensitive_layer_problem().layers[:2]
>>> problem = SearchProblem(layers, space=SearchSpace(layers, SpaceConfig()))
>>> env = BlockEnv(problem, ["conv1", "conv2"], kernel_features(problem), lambda cfgs: 0.5)
>>> env.set_budget(10_000)
>>> lla = LowLevelAgent(env, seed=0)
>>> lla.learn(64)
>>> cfgs = lla.sample(deterministic=True)
>>> sorted(cfgs) == ["conv1", "conv2"] and all(c in problem.space.kernel_configs(n) for n, c in cfgs.items())
True
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Mapping, Sequence

import gymnasium as gym
import numpy as np

from hirelc import cost
from hirelc.methods.hirelc.features import KERNEL_FEATURES
from hirelc.methods.problem import SearchProblem
from hirelc.methods.space import parse_granularity
from hirelc.plan import NUMBER_FORMATS, LayerConfig

ATTRIBUTES = ("bits", "format", "keep", "granularity")
BlockReward = Callable[[Mapping[str, LayerConfig]], float]
OBS_WIDTH = KERNEL_FEATURES + len(ATTRIBUTES) + 3 + 3


class BlockEnv(gym.Env):
    """One block's episode: every (kernel, attribute) decision in turn; see the module doc."""

    def __init__(self, problem: SearchProblem, kernels: Sequence[str], features: Mapping[str, np.ndarray],
                 reward_fn: BlockReward, penalty: float = 1.0):
        self.problem, self.kernels, self.features = problem, list(kernels), features
        self.reward_fn, self.penalty = reward_fn, penalty
        spec = {s.name: s for s in problem.layers}
        self.specs = [spec[n] for n in self.kernels]
        c = problem.space.config
        width = max(len(c.bits), len(c.formats), len(c.keep_ratios), len(c.granularities))
        self.action_space = gym.spaces.Discrete(width)
        self.observation_space = gym.spaces.Box(-1.0, 10.0, (OBS_WIDTH,), np.float32)
        self.block_fp32 = sum(cost.fp32_bits(s) for s in self.specs) / 8
        self.budget = self.block_fp32

    def set_budget(self, nbytes: float) -> None:
        """The block budget given by the HLA vote (bytes of this block's kernels)."""
        self.budget = max(float(nbytes), 1.0)

    # --- the episode -----------------------------------------------------------------------
    def choices(self, kernel: int, attribute: str, partial: Mapping[str, object]) -> tuple:
        space, name = self.problem.space, self.kernels[kernel]
        if attribute == "bits":
            return space.config.bits
        if attribute == "format":
            return space.format_choices(partial["bits"])
        if attribute == "keep":
            return space.keep_choices(name)
        return space.granularity_choices(name)

    def reset(self, *, seed: int | None = None, options: dict | None = None) -> tuple[np.ndarray, dict]:
        super().reset(seed=seed)
        self.kernel, self.stage, self.partial, self.done_cfgs, self.used = 0, 0, {}, {}, 0.0
        self._advance()
        return self._obs(), {}

    def _advance(self) -> None:
        """Set single-choice attributes without a step; finish kernels as they complete."""
        while self.kernel < len(self.kernels):
            if self.stage == len(ATTRIBUTES):
                self._finish_kernel()
                continue
            options = self.choices(self.kernel, ATTRIBUTES[self.stage], self.partial)
            if len(options) > 1:
                return
            self.partial[ATTRIBUTES[self.stage]] = options[0]
            self.stage += 1

    def _finish_kernel(self) -> None:
        p, spec = self.partial, self.specs[self.kernel]
        cfg = LayerConfig(p["bits"], p["keep"], p["format"], *parse_granularity(p["granularity"]))
        self.done_cfgs[spec.name] = cfg
        rows = cost.kept_count(spec.out_channels, cfg.keep_ratio)  # own pruning; inputs at full width
        self.used += cost.quantized_weight_bits(rows, int(np.prod(spec.weight_shape[1:])), cfg) / 8
        self.kernel, self.stage, self.partial = self.kernel + 1, 0, {}

    @property
    def finished(self) -> bool:
        return self.kernel >= len(self.kernels)

    def action_masks(self) -> np.ndarray:
        mask = np.zeros(self.action_space.n, dtype=bool)
        if not self.finished:
            mask[: len(self.choices(self.kernel, ATTRIBUTES[self.stage], self.partial))] = True
        else:
            mask[0] = True
        return mask

    def step(self, action: int) -> tuple[np.ndarray, float, bool, bool, dict]:
        options = self.choices(self.kernel, ATTRIBUTES[self.stage], self.partial)
        self.partial[ATTRIBUTES[self.stage]] = options[min(int(action), len(options) - 1)]
        self.stage += 1
        self._advance()
        if not self.finished:
            return self._obs(), 0.0, False, False, {}
        overshoot = max(0.0, self.used / self.budget - 1.0)
        reward = float(self.reward_fn(dict(self.done_cfgs))) - self.penalty * overshoot
        return self._obs(), reward, True, False, {"configs": dict(self.done_cfgs)}

    def _obs(self) -> np.ndarray:
        k = min(self.kernel, len(self.kernels) - 1)
        stage = np.zeros(len(ATTRIBUTES), dtype=np.float32)
        if not self.finished:
            stage[self.stage] = 1.0
        p = self.partial
        fmt = p.get("format")
        so_far = [p.get("bits", 0) / 8, float(p.get("keep", 0.0)),
                  (NUMBER_FORMATS.index(fmt) + 1) / len(NUMBER_FORMATS) if fmt else 0.0]
        budget = [min(self.budget / self.block_fp32, 1.0), min(self.used / self.budget, 5.0),
                  self.kernel / len(self.kernels)]
        return np.concatenate([self.features[self.kernels[k]], stage, so_far, budget]).astype(np.float32)


class LowLevelAgent:
    """A MaskablePPO policy over one `BlockEnv` (small: 2 x 64 MLP, 64-step rollouts)."""

    def __init__(self, env: BlockEnv, seed: int = 0, learning_rate: float = 3e-3):
        from sb3_contrib import MaskablePPO  # SB3 only when the method runs

        self.env = env
        self.model = MaskablePPO("MlpPolicy", env, n_steps=64, batch_size=32, n_epochs=4, gamma=1.0,
                                 learning_rate=learning_rate, ent_coef=0.01, seed=seed, device="cpu",
                                 policy_kwargs={"net_arch": [64, 64]}, verbose=0)

    def learn(self, steps: int) -> None:
        self.model.learn(total_timesteps=steps, reset_num_timesteps=False)

    def sample(self, deterministic: bool = False) -> dict[str, LayerConfig]:
        """One episode of the policy (no learning): the block's kernel configs. Runs on a
        copy of the env (SB3's vector env owns the original's episode) that never asks for
        the reward: sampling stays cheap."""
        env = copy.copy(self.env)
        env.reward_fn = lambda cfgs: 0.0
        obs, _ = env.reset()
        while not env.finished:
            action, _ = self.model.predict(obs, action_masks=env.action_masks(), deterministic=deterministic)
            obs, _, _, _, _ = env.step(int(action))
        return dict(env.done_cfgs)
