"""`HiReLCConfig`: every setting of a HiReLC search, typed and validated before any work.

The defaults keep one cycle small on a CPU (512 LLA env steps and 3 x 64 HLA steps per
cycle) and spend a budget of 30 real evaluations in 5 cycles of 6. 512 LLA steps, not
2,048: on the race landscapes (benchmarks/RESULTS.md) 512 reached the optimum as fast as
2,048 (cnn1d_joint: median 20 evaluations over 15 seeds vs 31 and 12 over 2) at a quarter
of the RL time, which was 40 % of a cnn1d job's wall time at 2,048.

Ablations (seeds 001/002 "ablation studies"), each a flag:

- `flat`: one low-level agent over every kernel, no high-level budget split;
- `no_fisher`: uniform prior (block shares proportional to fp32 bytes), no Fisher
  sensitivity in any observation, and HiReLC's own repair ranks moves by the plain weight
  MSE of Gaussian stand-ins of each kernel (its weight std; no Fisher, no measured weights);
- `no_surrogate`: the cheap reward is the cold-start proxy for the whole search (a real
  evaluation per LLA reward would spend the budget in one cycle), acquisition by proxy;
- `single_hla`: one PPO high-level agent instead of the ensemble.

>>> HiReLCConfig.from_options(evals_per_cycle=4, flat=True).evals_per_cycle
4
>>> HiReLCConfig(pool_size=1)
Traceback (most recent call last):
...
ValueError: hirelc pool_size must be >= evals_per_cycle (6), got 1
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import Any

ACQUISITIONS = ("thompson", "top_spread")
SURROGATES = ("forest", "mlp")
MAY_BE_ZERO = ("random_pool", "local_pool", "cv_folds")  # pools 0: policies' samples only; cv_folds 0: off


@dataclass(frozen=True)
class HiReLCConfig:
    """evals_per_cycle: real evaluations proposed per active-learning cycle.
    cold_start: real evaluations before the surrogate replaces the proxy as reward.
    lla_steps: LLA env steps per cycle, split over the blocks (at least 64 each).
    hla_steps: env steps per HLA per cycle.
    pool_size: candidate plans sampled from the LLA policies per cycle.
    random_pool: uniformly random plans of the space added to each cycle's pool.
    local_pool / local_parents: one-choice changes of the `local_parents` best real plans
        added to each cycle's pool (`pool.local_moves`).
    acquisition: "thompson" (batch Thompson sampling over the surrogate ensemble) or
        "top_spread" (the top predicted plans, then the `uncertain_share` most uncertain).
    proxy_calls: measured proxy values per cycle (calibrate the cheap proxy estimate).
    surrogate: "forest" (a random forest of `forest_trees` trees, the default: it ranked
        held-out real evaluations better, `surrogate.py`) or "mlp" (the seed's ensemble of
        `n_surrogates` MLPs, `surrogate_hidden` units, `surrogate_epochs` steps).
    cv_folds: after every cycle and at the end, the surrogate's rho on every real evaluation
        so far, each predicted by a surrogate fitted without it
        (`surrogate.cross_validated_rho`, this many folds; 0, or fewer than 4 evaluations per
        fold: not measured). It reports quality only; the search never uses it.
    budget_penalty: reward lost per unit of relative overshoot of a block budget.
    uncertain_share: share of a cycle's evaluations picked for exploration: by ensemble
        spread under "top_spread", at random in cold start (no spread yet).
    fill_slack: also offer the best predicted pool plans with their unused bytes spent
        (least damage per byte, `repair(fill=True)`); off by default: on the synthetic
        test problem (Gaussian stand-in damage) the filled plans took the evaluations that
        found the optimum without it (seed 0, 12 evaluations).
    """

    evals_per_cycle: int = 6
    cold_start: int = 8
    lla_steps: int = 512
    hla_steps: int = 64
    pool_size: int = 48
    random_pool: int = 256
    local_pool: int = 96
    local_parents: int = 3
    acquisition: str = "thompson"
    proxy_calls: int = 8
    surrogate: str = "forest"
    forest_trees: int = 100
    n_surrogates: int = 5
    surrogate_hidden: int = 32
    surrogate_epochs: int = 300
    cv_folds: int = 5
    budget_penalty: float = 1.0
    uncertain_share: float = 0.34
    fill_slack: bool = False
    flat: bool = False
    no_fisher: bool = False
    no_surrogate: bool = False
    single_hla: bool = False

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            if f.type == "bool" and not isinstance(value, bool):
                raise ValueError(f"hirelc {f.name} must be true or false, got {value!r}")
            least = 0 if f.name in MAY_BE_ZERO else 1
            if f.type == "int" and (isinstance(value, bool) or not isinstance(value, int) or value < least):
                raise ValueError(f"hirelc {f.name} must be an integer >= {least}, got {value!r}")
        if self.pool_size < self.evals_per_cycle:
            raise ValueError(f"hirelc pool_size must be >= evals_per_cycle ({self.evals_per_cycle}), "
                             f"got {self.pool_size}")
        if not isinstance(self.budget_penalty, (int, float)) or not self.budget_penalty >= 0:
            raise ValueError(f"hirelc budget_penalty must be a number >= 0, got {self.budget_penalty!r}")
        if self.surrogate not in SURROGATES:
            raise ValueError(f"hirelc surrogate must be one of {SURROGATES}, got {self.surrogate!r}")
        if self.acquisition not in ACQUISITIONS:
            raise ValueError(f"hirelc acquisition must be one of {ACQUISITIONS}, got {self.acquisition!r}")
        if not isinstance(self.uncertain_share, (int, float)) or not 0.0 <= self.uncertain_share <= 1.0:
            raise ValueError(f"hirelc uncertain_share must be in [0, 1], got {self.uncertain_share!r}")

    def make_surrogate(self, seed: int) -> Any:
        """A fresh, unfitted surrogate of this configuration (`surrogate.make_surrogate`)."""
        from hirelc.methods.hirelc.surrogate import make_surrogate

        members = self.forest_trees if self.surrogate == "forest" else self.n_surrogates
        return make_surrogate(self.surrogate, members, self.surrogate_hidden, self.surrogate_epochs, seed)

    @classmethod
    def from_options(cls, **options: Any) -> "HiReLCConfig":
        names = {f.name for f in fields(cls)}
        unknown = set(options) - names
        if unknown:
            raise ValueError(f"unknown hirelc option(s) {sorted(unknown)}; valid: {sorted(names)}")
        return cls(**options)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)
