"""`search(layers, evaluate, ...)`: model-free search over any kernel list and any
`plan -> accuracy` function.

Methods are registered by name (`list_methods()`), each with a typed options dataclass
validated before any work (`method_config`). All share one `EvaluationLedger` (cache,
budget, journal), one `SearchProblem` (space, target, repair) and one selection rule, so
their results compare like for like:

    best plan = argmax over every real evaluation of the search of problem.selection_key
                (with a target: feasible first, then accuracy or size; without one: the
                shaped reward of seed 000 §2.4, then lower StateQ, then earlier)

Every method stops gracefully when the budget is spent (the best plan so far is
returned); ReLeQ also stops once its policy has converged (`converged_at`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from hirelc.inventory.spec import LayerSpec
from hirelc.methods.baselines import GreedySearch, NoOptions, RandomSearch, UniformSearch
from hirelc.methods.damage import DamageModel
from hirelc.methods.driver import drive
from hirelc.methods.ledger import EvaluateFn, EvaluationLedger, JournalLike
from hirelc.methods.problem import DEFAULT_BITS, SearchProblem
from hirelc.methods.releq.reward import RewardParams
from hirelc.methods.result import MethodOutcome, SearchResult
from hirelc.methods.sizing import SizeModel
from hirelc.methods.space import SearchSpace, SpaceConfig
from hirelc.methods.target import Target
from hirelc.plan import Plan


@dataclass(frozen=True)
class MethodSpec:
    """A registered search method: its options type and how to run it."""

    name: str
    description: str
    options: Callable[..., Any]  # **options -> a validated config object
    run: Callable[[SearchProblem, EvaluationLedger, int, Any], MethodOutcome]
    bits_only: bool = False  # searches bit-widths only (ReLeQ)
    needs_size_target: bool = False  # allocates a size budget (greedy)

    def check(self, space: SpaceConfig | None, target: Target) -> None:
        """Raise ValueError when this method cannot search `space` for `target`."""
        if self.bits_only and space is not None and not space.is_bits_only:
            raise ValueError(f"method {self.name!r} searches bit-widths only; drop --keep/--formats/--granularity "
                             "(use --bits) or use a joint-space method (uniform, random, greedy, tpe)")
        if self.needs_size_target and not target.bounds_size:
            raise ValueError(f"method {self.name!r} allocates a size budget: give --target-compression or "
                             "--target-size (API: target=Target(compression=...))")


def _ask_tell(proposer_type: type) -> Callable[[SearchProblem, EvaluationLedger, int, Any], MethodOutcome]:
    def run(problem: SearchProblem, ledger: EvaluationLedger, seed: int, config: Any) -> MethodOutcome:
        return drive(proposer_type(problem, config, seed), problem, ledger)

    return run


def _releq_options(**options: Any) -> Any:
    from hirelc.methods.releq.runner import ReLeQConfig  # torch + SB3 only when used

    return ReLeQConfig.from_options(**options)


def _releq(problem: SearchProblem, ledger: EvaluationLedger, seed: int, config: Any) -> MethodOutcome:
    from hirelc.methods.releq.runner import run_releq

    return run_releq(problem, ledger, seed, config)


def _tpe_options(**options: Any) -> Any:
    from hirelc.methods.tpe import TPEConfig

    return TPEConfig.from_options(**options)


def _hirelc_options(**options: Any) -> Any:
    from hirelc.methods.hirelc.config import HiReLCConfig

    return HiReLCConfig.from_options(**options)


def _hirelc(problem: SearchProblem, ledger: EvaluationLedger, seed: int, config: Any) -> MethodOutcome:
    from hirelc.methods.hirelc.search import HiReLCSearch  # torch + SB3 only when used

    return drive(HiReLCSearch(problem, config, seed), problem, ledger)


def _tpe(problem: SearchProblem, ledger: EvaluationLedger, seed: int, config: Any) -> MethodOutcome:
    from hirelc.methods.tpe import TPESearch  # optuna only when used

    return drive(TPESearch(problem, config, seed), problem, ledger)


METHODS: dict[str, MethodSpec] = {m.name: m for m in (
    MethodSpec("releq", "ReLeQ: PPO + LSTM agent picks each layer's bit-width (seed 000)", _releq_options, _releq,
               bits_only=True),
    MethodSpec("uniform", "the same setting on every kernel, largest first", NoOptions.from_options,
               _ask_tell(UniformSearch)),
    MethodSpec("random", "distinct random plans of the space, repaired to the target", NoOptions.from_options,
               _ask_tell(RandomSearch)),
    MethodSpec("greedy", "Fisher-guided knapsack allocation (HAWQ-style), one plan", NoOptions.from_options,
               _ask_tell(GreedySearch), needs_size_target=True),
    MethodSpec("tpe", "Optuna TPE over the same choices, repaired to the target", _tpe_options, _tpe),
    MethodSpec("hirelc", "HiReLC: Fisher-guided HLA ensemble + per-block masked-PPO LLAs + MLP-ensemble "
               "surrogate in an active-learning loop (seeds 001/002)", _hirelc_options, _hirelc),
)}


def list_methods() -> list[str]:
    """Names accepted by `search(method=...)`.

    >>> list_methods()
    ['greedy', 'hirelc', 'random', 'releq', 'tpe', 'uniform']
    """
    return sorted(METHODS)


def method_spec(name: str) -> MethodSpec:
    if name not in METHODS:
        raise ValueError(f"unknown search method {name!r}; available: {list_methods()}")
    return METHODS[name]


def method_config(name: str, **options: Any) -> Any:
    """The validated options object of method `name` (raises ValueError naming a bad one).

    >>> method_config("tpe", n_startup_trials=5).n_startup_trials
    5
    """
    return method_spec(name).options(**options)


def search(
    layers: Sequence[LayerSpec],
    evaluate: EvaluateFn,
    *,
    method: str = "releq",
    bits: Sequence[int] = DEFAULT_BITS,
    reference_accuracy: float,
    max_evaluations: int,
    seed: int = 0,
    journal: JournalLike | None = None,
    reward_params: RewardParams | None = None,
    space: SpaceConfig | None = None,
    target: Target | None = None,
    sizes: SizeModel | None = None,
    damage: DamageModel | None = None,
    proxy: Callable[[Plan], float] | None = None,
    **options: Any,
) -> SearchResult:
    """Find a per-layer bitwidth plan for `layers` with `method`, spending at most
    `max_evaluations` real calls of `evaluate` (cached by plan hash).

    evaluate: plan -> accuracy in [0, 1], or a dict with "accuracy" (+ extra metrics); or an
        `Executor` (`hirelc.methods.executors`: a process pool, Ray) that runs such a
        function in parallel workers, a batch of `workers` plans at a time (not for releq).
    reference_accuracy: the full-precision accuracy (denominator of StateAcc, seed 000 eq. 2).
    journal: optional `append(record)` / `records()` object; journaled evaluations are
        replayed, never recomputed, and count against the budget.
    reward_params: shaping constants (a, b, th) of the selection score and of ReLeQ's
        shaped training reward (default: the seed's 0.2, 0.4, 0.4).
    space: the choices per kernel (`SpaceConfig`; default: bits only, from `bits`;
        `SpaceConfig()` is the joint HiReLC space). ReLeQ always searches bits only.
    target: `Target(compression=16)`, `Target(size_bytes=...)` or
        `Target(max_accuracy_drop=1.0)`; with a size target every evaluated plan is repaired
        onto it. Model-free, size counts the kernels only unless `sizes` says otherwise.
    sizes / damage: storage and damage models (`hirelc.evaluate.calibrate` measures both
        on a model); defaults: kernels only / Gaussian stand-ins of the kernels' shapes.
    proxy: optional cheap `plan -> value`, lower = better (e.g. the logit-MSE of the
        compressed model before fine-tuning); steers hirelc's cold start, never reported;
        without it hirelc steers by the `DamageModel` total.
    options: method options, e.g. for "releq" see `ReLeQConfig` (agent="mlp",
        reward="ratio", action_space="restricted", reward_mode="step", learning_rate=...),
        for "tpe" `TPEConfig` (n_startup_trials, multivariate).

    Returns a `SearchResult`: `.plan`, `.best_accuracy`, `.history` (every real
    evaluation), `.episodes` (the episode log), `.converged_at`, `.to_dict()`.

    >>> from hirelc.inventory.spec import LayerSpec
    >>> layers = [LayerSpec("conv", "conv2d", (8, 1, 3, 3), n_macs=5000),
    ...           LayerSpec("fc", "linear", (10, 200), n_macs=2000)]
    >>> def accuracy(plan):  # an analytic stand-in for "quantize, fine-tune, test"
    ...     return 0.95 - 0.6 * (plan["conv"].bits < 4) - 0.01 * (8 - plan["fc"].bits)
    >>> result = search(layers, accuracy, method="uniform", bits=(2, 4, 8),
    ...                 reference_accuracy=0.95, max_evaluations=10, seed=0)
    >>> result.plan.bits(), result.n_evaluations
    ([4, 4], 3)
    """
    config = method_config(method, **options)  # before any work: a typo fails at once
    method_spec(method).check(space, target or Target())
    problem = build_problem(layers, bits=bits, reference_accuracy=reference_accuracy, reward_params=reward_params,
                            space=space, target=target, sizes=sizes, damage=damage, proxy=proxy)
    ledger = EvaluationLedger(evaluate, max_evaluations, journal, layers=problem.names)
    return run_search(problem, ledger, method=method, seed=seed, config=config)


def build_problem(
    layers: Sequence[LayerSpec],
    *,
    bits: Sequence[int] = DEFAULT_BITS,
    reference_accuracy: float,
    reward_params: RewardParams | None = None,
    space: SpaceConfig | None = None,
    target: Target | None = None,
    sizes: SizeModel | None = None,
    damage: DamageModel | None = None,
    proxy: Callable[[Plan], float] | None = None,
) -> SearchProblem:
    """The `SearchProblem` that `search` gives every method (arguments as there): one place,
    so a benchmark that repairs or featurises plans sees exactly what a search sees.

    >>> from hirelc.inventory.spec import LayerSpec
    >>> build_problem([LayerSpec("fc", "linear", (10, 10), n_macs=100)], bits=(2, 8),
    ...               reference_accuracy=0.9, space=SpaceConfig()).space.config.is_bits_only
    False
    """
    layers = tuple(layers)
    search_space = SearchSpace(layers, space) if space is not None else None
    return SearchProblem(layers, tuple(bits), reference_accuracy, reward_params or RewardParams(),
                         search_space, target or Target(), sizes, damage, proxy)


def run_search(
    problem: SearchProblem, ledger: EvaluationLedger, *, method: str, seed: int, config: Any = None,
    **options: Any,
) -> SearchResult:
    """`search` on an existing problem and ledger (e.g. several methods sharing one cache).

    >>> from hirelc.inventory.spec import LayerSpec
    >>> problem = SearchProblem([LayerSpec("fc", "linear", (10, 10), n_macs=100)], (2, 8), 0.9)
    >>> run_search(problem, EvaluationLedger(lambda p: 0.9, 4), method="uniform", seed=0).plan.bits()
    [2]
    """
    spec = method_spec(method)
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise ValueError(f"seed must be an integer, got {seed!r}")
    outcome = spec.run(problem, ledger, seed, config if config is not None else spec.options(**options))
    best = problem.best(ledger.history)
    if best is None:
        raise RuntimeError(f"method {method!r} made no evaluation; nothing to choose from")
    return SearchResult(
        method=method,
        plan=best.plan,
        best_accuracy=best.accuracy,
        best_reward=problem.score(best),
        best_state_q=problem.state_q(best.plan),
        history=list(ledger.history),
        episodes=outcome.episodes,
        converged_at=outcome.converged_at,
        stop_reason=outcome.stop_reason,
        seed=seed,
        options=outcome.options,
        target=problem.target.to_dict(),
        target_met=problem.objective.feasible(best) if problem.target.kind else None,
        best_size_bytes=problem.sizes.nbytes(best.plan),
        fp32_bytes=problem.sizes.fp32_bytes,
        space=problem.space.to_dict(),
        evaluation_counts=ledger.counts(),
        selection_key=problem.selection_key,
        reference_hash=outcome.reference_hash,
    )
