"""Convergence and stall detection for the ReLeQ agent.

Seed 000 §4.1: "As the agent learns the optimal policy, each layer converges with a high
probability to a particular bitwidth." We call the policy converged when, for `patience`
consecutive complete episodes,

1. at every layer the most likely action has probability >= `min_prob`, and
2. the greedy plan (the most likely action applied at every layer) did not change.

The probabilities are the policy's own at each step of the sampled episode, so the check
costs no evaluation. `patience` should span a few PPO updates, since the policy only
changes between updates.

>>> monitor = ConvergenceMonitor(patience=2, min_prob=0.9)
>>> monitor.update([4, 2], [0.95, 0.97]), monitor.update([4, 2], [0.96, 0.99])
(False, True)

A policy that neither finds a better plan nor changes its mind is *stalled* (`StallMonitor`):
it spends compute, not evaluations, and may never reach `min_prob` (an entropy bonus keeps
a layer whose bitwidths score alike from ever becoming certain). A policy whose greedy plan
still moves, or which still finds better plans, is learning and is left to run.
"""

from __future__ import annotations

from collections.abc import Sequence


class ConvergenceMonitor:
    """Counts consecutive confident episodes with an unchanged greedy plan."""

    def __init__(self, patience: int, min_prob: float):
        if patience < 1:
            raise ValueError(f"convergence patience must be >= 1 episode, got {patience}")
        if not 0 < min_prob <= 1:
            raise ValueError(f"convergence min_prob must be in (0, 1], got {min_prob}")
        self.patience, self.min_prob = patience, min_prob
        self._greedy: tuple[int, ...] | None = None
        self.streak = 0

    def update(self, greedy_bits: Sequence[int], max_probs: Sequence[float]) -> bool:
        """Feed one complete episode; True once the policy counts as converged."""
        confident = min(max_probs) >= self.min_prob
        same = self._greedy == tuple(greedy_bits)
        self._greedy = tuple(greedy_bits)
        if not confident:
            self.streak = 0
        else:
            self.streak = self.streak + 1 if same else 1
        return self.streak >= self.patience


class StallMonitor:
    """Counts episodes since the search last found a better plan or the greedy plan last
    changed; stalled once that count reaches `patience`.

    >>> stall = StallMonitor(patience=3)
    >>> [stall.update(e, [2, 2], improved=(e == 0)) for e in range(4)]
    [False, False, False, True]
    >>> stall = StallMonitor(patience=3)
    >>> [stall.update(e, [2, 2 + e % 2], improved=False) for e in range(4)]  # still changing its mind
    [False, False, False, False]
    """

    def __init__(self, patience: int):
        if isinstance(patience, bool) or not isinstance(patience, int) or patience < 1:
            raise ValueError(f"stall patience must be a positive integer, got {patience!r}")
        self.patience = patience
        self._greedy: tuple[int, ...] | None = None
        self._last_progress = 0

    def update(self, episode: int, greedy_bits: Sequence[int], improved: bool) -> bool:
        """Feed one complete episode; `improved`: a better plan was evaluated in it."""
        greedy = tuple(greedy_bits)
        if improved or greedy != self._greedy:
            self._last_progress = episode
        self._greedy = greedy
        return episode - self._last_progress >= self.patience
