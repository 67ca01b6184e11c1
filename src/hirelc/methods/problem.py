"""What every search optimises: the kernels, the search space, the target, and how an
evaluated plan is scored. One problem for every method: ReLeQ's is the bits-only special
case with no target.

- `space`: per-kernel valid configs (`SearchSpace`); default: bits only, from `bits`.
- `target`: size (`compression` / `size_bytes`) or `max_accuracy_drop`, or none.
- `objective`: the one selection rule (hirelc.methods.target): with a target, feasible
  first, then accuracy (or size), then size; without one, the seed 000 §2.4 shaped reward
  of (StateAcc, StateQ), then lower StateQ.
- `candidate(plan)`: what a method's proposal becomes before it is evaluated: repaired onto
  the size budget (hirelc.methods.repair), so every evaluated plan meets the target.

>>> from hirelc.inventory.spec import LayerSpec
>>> problem = SearchProblem([LayerSpec("fc", "linear", (10, 10), n_macs=100)], (2, 4, 8), 0.9)
>>> problem.state_q(problem.plan([4]))
0.5
>>> problem.target.kind is None, problem.space.config.is_bits_only
(True, True)
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import cached_property

from hirelc.cost import state_of_quantization
from hirelc.inventory.spec import LayerSpec
from hirelc.methods.damage import DamageModel
from hirelc.methods.ledger import Evaluation
from hirelc.methods.releq.reward import RewardParams, shaped_reward
from hirelc.methods.repair import Repairer
from hirelc.methods.sizing import SizeModel
from hirelc.methods.space import SearchSpace, SpaceConfig
from hirelc.methods.target import AccuracyDropObjective, Objective, SizeObjective, Target
from hirelc.plan import MAX_BITS, MIN_BITS, Plan

DEFAULT_BITS: tuple[int, ...] = tuple(range(1, 9))  # seed 000 Fig. 1a(i): {1, ..., 8}


@dataclass(frozen=True)
class SearchProblem:
    """A per-kernel search over `layers`.

    bits: ReLeQ's bit set (ignored when `space` is given: then `space.config.bits`).
    reference_accuracy: full-precision validation accuracy, the denominator of StateAcc
        (seed 000 eq. 2) and the reference of an accuracy-drop target.
    reward: shaping constants of the seed-000 reward (selection without a target, and the
        ReLeQ agent's training signal).
    sizes / damage: storage and damage models (default: kernels only / Gaussian stand-ins
        of the kernels' shapes); a job measures both on the model.
    proxy: optional cheap `plan -> value` (lower = better) that methods may use to steer,
        never a reported number; a job passes the logit-MSE of the compressed model
        before fine-tuning (one forward pass on validation data). Used by hirelc.
    """

    layers: tuple[LayerSpec, ...]
    bits: tuple[int, ...] = DEFAULT_BITS
    reference_accuracy: float = 1.0
    reward: RewardParams = field(default_factory=RewardParams)
    space: SearchSpace | None = None
    target: Target = field(default_factory=Target)
    sizes: SizeModel | None = None
    damage: DamageModel | None = None
    proxy: Callable[[Plan], float] | None = field(default=None, compare=False, repr=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "layers", tuple(self.layers))
        if not self.layers:
            raise ValueError("a search needs at least one layer")
        if self.space is None:
            object.__setattr__(self, "space", SearchSpace(self.layers, SpaceConfig.bits_only(validate_bits(self.bits))))
        elif [s.name for s in self.space.layers] != [s.name for s in self.layers]:
            raise ValueError("the search space was built for other kernels than the problem's layers")
        object.__setattr__(self, "bits", self.space.config.bits)
        if self.sizes is None:
            object.__setattr__(self, "sizes", SizeModel(self.layers))
        if not isinstance(self.reward, RewardParams):
            raise ValueError(f"reward must be RewardParams(a, b, th), got {self.reward!r}")
        if self.proxy is not None and not callable(self.proxy):
            raise ValueError(f"proxy must be a callable plan -> float (lower = better), got {self.proxy!r}")
        if not isinstance(self.target, Target):
            raise ValueError(f"target must be a hirelc Target, got {self.target!r}")
        ref = self.reference_accuracy
        if isinstance(ref, bool) or not isinstance(ref, (int, float)) or not 0.0 < ref <= 1.0:
            raise ValueError(f"reference_accuracy must be a fraction in (0, 1], got {ref!r}")
        if self.repairer is not None:
            self.repairer  # noqa: B018 -- builds it now: an unreachable target fails before any work

    @property
    def names(self) -> list[str]:
        return [s.name for s in self.layers]

    @property
    def top_bits(self) -> int:
        """Where every layer starts (seed 000 §4.1: "all layers are initialized to 8-bits")."""
        return self.bits[-1]

    def plan(self, bits: Sequence[int]) -> Plan:
        """The bits-only plan giving layer i the bitwidth bits[i]."""
        return Plan.from_bits(self.names, bits)

    # --- seed 000 state --------------------------------------------------------------------
    def state_q(self, plan: Plan) -> float:
        """State of Quantization, seed 000 eq. 1, normalised by the top of the bit set."""
        return state_of_quantization(self.layers, {n: c.bits for n, c in plan.items()}, self.top_bits)

    def state_acc(self, accuracy: float) -> float:
        """State of Relative Accuracy, seed 000 eq. 2: AccCurr / AccFullP."""
        return accuracy / self.reference_accuracy

    # --- target, repair, objective ------------------------------------------------------------
    @property
    def max_bytes(self) -> int | None:
        return self.target.max_bytes(self.sizes.fp32_bytes)

    @cached_property
    def damage_model(self) -> DamageModel:
        if self.damage is not None:
            return self.damage
        from hirelc.evaluate.calibrate import measure_damage_model  # torch: only when needed

        return measure_damage_model(self.space)

    @cached_property
    def repairer(self) -> Repairer | None:
        """Projection onto the size budget, or None without a size target."""
        if self.max_bytes is None:
            return None
        return Repairer(self.space, self.sizes, self.damage_model, self.max_bytes)

    def candidate(self, plan: Plan) -> Plan:
        """The plan a proposal is evaluated as: repaired onto the size budget, if any, in
        canonical form (`canonical`)."""
        plan = self.canonical(plan)  # before repair too: its damage model would count a non-deciding keep's pruning
        return self.canonical(self.repairer(plan)) if self.repairer is not None else plan

    def canonical(self, plan: Plan) -> Plan:
        """`plan` with the members of each shared channel group at the keep ratio that
        decides the group (`SizeModel.canonical`): plans that differ only in a keep ratio
        that prunes nothing are one model, so they get one hash and one real evaluation
        (on resnet20 HiReLC had spent 4-8 of 60 evaluations on such twins). Unchanged if
        the canonical form would leave the search space."""
        out = self.sizes.canonical(plan)
        if all(out[n] is plan[n] for n in plan):
            return plan
        return Plan(out) if self.space.contains(out) else plan

    @cached_property
    def objective(self) -> Objective:
        if self.max_bytes is not None:
            return SizeObjective(self.max_bytes, self.sizes.nbytes)
        if self.target.max_accuracy_drop is not None:
            return AccuracyDropObjective(self.reference_accuracy, self.target.max_accuracy_drop,
                                         self.sizes.nbytes, self.sizes.fp32_bytes)
        return ShapedRewardObjective(self)

    def score(self, ev: Evaluation) -> float:
        """The objective's scalar score of an evaluated plan (larger is better)."""
        return self.objective.score(ev)

    def selection_key(self, ev: Evaluation) -> tuple:
        return self.objective.selection_key(ev)

    def best(self, history: Sequence[Evaluation]) -> Evaluation | None:
        """The best evaluated plan by the objective, or None for an empty history."""
        return max(history, key=self.selection_key, default=None)


@dataclass(frozen=True)
class ShapedRewardObjective:
    """No target: the seed 000 §2.4 shaped reward, then fewer weighted bits (lower StateQ) --
    or, below the accuracy threshold where every plan scores -1, higher accuracy; then earlier."""

    problem: SearchProblem

    def score(self, ev: Evaluation) -> float:
        p, pr = self.problem, self.problem.reward
        return shaped_reward(p.state_acc(ev.accuracy), p.state_q(ev.plan), pr.a, pr.b, pr.th)

    def feasible(self, ev: Evaluation) -> bool:
        return self.problem.state_acc(ev.accuracy) >= self.problem.reward.th

    def selection_key(self, ev: Evaluation) -> tuple[float, float, int]:
        state_acc = self.problem.state_acc(ev.accuracy)
        tiebreak = state_acc if state_acc < self.problem.reward.th else -self.problem.state_q(ev.plan)
        return (self.score(ev), tiebreak, -ev.index)


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
