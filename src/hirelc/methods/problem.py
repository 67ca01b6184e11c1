"""What every bitwidth search optimises: layers, the bit set, the reference accuracy, and
how a plan is scored.

All methods (ReLeQ and the baselines) score evaluated plans with the same function, the
seed 000 §2.4 shaped reward of (StateAcc, StateQ), so "best plan" means the same thing
for every method and comparisons are like for like.

>>> from hirelc.inventory.spec import LayerSpec
>>> problem = SearchProblem([LayerSpec("fc", "linear", (10, 10), n_macs=100)], (2, 4, 8), 0.9)
>>> problem.state_q(problem.plan([4]))
0.5
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from hirelc.cost import state_of_quantization
from hirelc.inventory.spec import LayerSpec
from hirelc.plan import MAX_BITS, MIN_BITS, Plan
from hirelc.methods.ledger import Evaluation
from hirelc.methods.releq.reward import RewardParams, shaped_reward

DEFAULT_BITS: tuple[int, ...] = tuple(range(1, 9))  # seed 000 Fig. 1a(i): {1, ..., 8}


@dataclass(frozen=True)
class SearchProblem:
    """A per-layer bitwidth search over `layers` with bitwidths from `bits`.

    reference_accuracy: full-precision accuracy, the denominator of StateAcc (seed 000 eq. 2).
    reward: shaping constants used to score plans (and, for ReLeQ, to train the agent).
    """

    layers: tuple[LayerSpec, ...]
    bits: tuple[int, ...] = DEFAULT_BITS
    reference_accuracy: float = 1.0
    reward: RewardParams = field(default_factory=RewardParams)

    def __post_init__(self) -> None:
        object.__setattr__(self, "layers", tuple(self.layers))
        object.__setattr__(self, "bits", validate_bits(self.bits))
        if not self.layers:
            raise ValueError("a search needs at least one layer")
        names = [s.name for s in self.layers]
        if len(set(names)) != len(names):
            raise ValueError(f"layer names must be unique, got {names}")
        if not isinstance(self.reward, RewardParams):
            raise ValueError(f"reward must be RewardParams(a, b, th), got {self.reward!r}")
        ref = self.reference_accuracy
        if isinstance(ref, bool) or not isinstance(ref, (int, float)) or not 0.0 < ref <= 1.0:
            raise ValueError(f"reference_accuracy must be a fraction in (0, 1], got {ref!r}")

    @property
    def names(self) -> list[str]:
        return [s.name for s in self.layers]

    @property
    def top_bits(self) -> int:
        """Where every layer starts (seed 000 §4.1: "all layers are initialized to 8-bits")."""
        return self.bits[-1]

    def plan(self, bits: Sequence[int]) -> Plan:
        """The plan giving layer i the bitwidth bits[i]."""
        return Plan.from_bits(self.names, bits)

    def state_q(self, plan: Plan) -> float:
        """State of Quantization, seed 000 eq. 1, normalised by the top of the bit set."""
        return state_of_quantization(self.layers, {n: c.bits for n, c in plan.items()}, self.top_bits)

    def state_acc(self, accuracy: float) -> float:
        """State of Relative Accuracy, seed 000 eq. 2: AccCurr / AccFullP."""
        return accuracy / self.reference_accuracy

    def score(self, ev: Evaluation) -> float:
        """The shaped reward (seed 000 §2.4) of an evaluated plan: the selection criterion."""
        p = self.reward
        return shaped_reward(self.state_acc(ev.accuracy), self.state_q(ev.plan), p.a, p.b, p.th)

    def selection_key(self, ev: Evaluation) -> tuple[float, float, int]:
        """Larger is better: score; then fewer weighted bits (lower StateQ) -- or, below the
        accuracy threshold where every plan scores -1, higher accuracy; then earlier."""
        score = self.score(ev)
        below_th = self.state_acc(ev.accuracy) < self.reward.th
        tiebreak = self.state_acc(ev.accuracy) if below_th else -self.state_q(ev.plan)
        return (score, tiebreak, -ev.index)

    def best(self, history: Sequence[Evaluation]) -> Evaluation | None:
        """The best evaluated plan by `selection_key`, or None for an empty history."""
        return max(history, key=self.selection_key, default=None)


def validate_bits(bits: Sequence[int]) -> tuple[int, ...]:
    """A sorted tuple of distinct bitwidths in 1..8 with at least two choices.

    >>> validate_bits([8, 2, 4])
    (2, 4, 8)
    """
    try:
        values = [int(b) for b in bits]
    except (TypeError, ValueError):
        raise ValueError(f"bits must be a sequence of integers, got {bits!r}") from None
    if any(isinstance(b, bool) or int(b) != b for b in bits):
        raise ValueError(f"bits must be integers, got {bits!r}")
    if len(set(values)) != len(values) or len(values) < 2:
        raise ValueError(f"bits must hold at least two distinct bitwidths, got {bits!r}")
    if not all(MIN_BITS <= b <= MAX_BITS for b in values):
        raise ValueError(f"bitwidths must be in {MIN_BITS}..{MAX_BITS}, got {bits!r}")
    return tuple(sorted(values))
