"""The cold-start proxy (seed 002: "a logit-MSE proxy during cold-start"): measured values,
and a cheap calibrated estimate that the agents can afford on every episode.

A measured proxy is one forward pass of the compressed model against the fp32 logits (the
job passes `evaluator.evaluate(plan, Fidelity.none(), split="val").logit_mse`); lower is
better. It costs about a second on a LeNet on this machine, so it is measured for a few
plans per cycle only, and memoised. Without a proxy (model-free searches) the measured value
is the `DamageModel` total, the Fisher-weighted expected loss increase.

The estimate used inside the RL loop is the damage model recalibrated onto the measured
values: with d_k(plan) = D(k, plan[k]) the per-kernel damage,

    proxy(plan) ~= sum_k w_k d_k(plan),   w >= 0,

fitted by non-negative least squares with a ridge pull towards one common scale (so a few
measurements cannot send one kernel's weight to zero). For the damage-total fallback the
fit is exact (w = 1).

>>> from hirelc.inventory.spec import LayerSpec
>>> from hirelc.methods.problem import SearchProblem
>>> problem = SearchProblem([LayerSpec("a", "linear", (16, 16), 256), LayerSpec("b", "linear", (16, 16), 256)],
...                        (2, 4, 8))
>>> p = ProxyModel(problem, lambda plan: 3.0 * problem.damage_model.total(plan))
>>> plans = [problem.plan([b, c]) for b in (2, 4, 8) for c in (2, 4, 8)]
>>> _ = [p.measure(x) for x in plans]; p.calibrate()
>>> round(p.estimate(plans[0]) / p.measure(plans[0]), 3), p.calls
(1.0, 9)
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable

import numpy as np
from scipy.optimize import nnls

from hirelc.methods.problem import SearchProblem
from hirelc.plan import Plan

ProxyFn = Callable[[Plan], float]
RIDGE = 0.1  # pull of each kernel weight towards the common scale, relative to the data


class ProxyModel:
    """Measured proxy values (memoised by plan hash) and their calibrated estimate."""

    def __init__(self, problem: SearchProblem, fn: ProxyFn | None = None):
        self.problem = problem
        self.fn: ProxyFn = fn if fn is not None else problem.damage_model.total
        self.kind = "proxy" if fn is not None else "damage_total"
        self.measured: dict[str, tuple[Plan, float]] = {}
        self.weights = np.ones(len(problem.names))
        self.calls, self.seconds = 0, 0.0

    def damage_vector(self, plan: Plan) -> np.ndarray:
        damage = self.problem.damage_model
        return np.array([damage.of(n, plan[n]) for n in self.problem.names])

    def measure(self, plan: Plan) -> float:
        """The real proxy of `plan` (memoised; a non-finite value counts as very bad)."""
        key = plan.content_hash()
        if key not in self.measured:
            start = time.perf_counter()
            value = float(self.fn(plan))
            self.seconds += time.perf_counter() - start
            self.calls += 1
            self.measured[key] = (plan, value if math.isfinite(value) else 1e6)
        return self.measured[key][1]

    def estimate(self, plan: Plan) -> float:
        """The calibrated estimate; the measured value itself is never mixed in, so every
        plan's estimate comes from the same function."""
        return max(float(self.weights @ self.damage_vector(plan)), 1e-12)

    def calibrate(self) -> None:
        """Refit the kernel weights on every measured value so far."""
        if not self.measured:
            return
        d = np.array([self.damage_vector(p) for p, _ in self.measured.values()])  # (M, K)
        y = np.array([v for _, v in self.measured.values()])  # (M,)
        total = d.sum(1)
        scale = float(total @ y / max(total @ total, 1e-30))  # one common weight
        lam = math.sqrt(RIDGE * max(float((d * d).sum()) / d.shape[1], 1e-30))
        a = np.vstack([d, lam * np.eye(d.shape[1])])
        b = np.concatenate([y, lam * scale * np.ones(d.shape[1])])
        self.weights, _ = nnls(a, b, maxiter=50 * d.shape[1])
        if not self.weights.any():
            self.weights = np.full(d.shape[1], max(scale, 1e-12))

    def score(self, plan: Plan) -> float:
        """A cheap predicted-accuracy stand-in in (0, 1]: exp(-estimate / scale), scale the
        median measured value (monotone in the estimate: lower proxy, higher score)."""
        values = sorted(v for _, v in self.measured.values()) or [1.0]
        scale = max(values[len(values) // 2], 1e-12)
        return math.exp(-self.estimate(plan) / scale)
