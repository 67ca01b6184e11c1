"""`search(layers, evaluate, ...)`: model-free bitwidth search over any layer list and any
`plan -> accuracy` function.

Methods are registered by name (`list_methods()`); all share one `EvaluationLedger`
(cache, budget, journal) and one selection rule, so their results compare like for like:

    best plan = argmax over every real evaluation of the search of
                (shaped reward of seed 000 §2.4, then lower StateQ, then earlier)

(below the accuracy threshold every plan scores -1 and the most accurate one wins).

Every method stops gracefully when the budget is spent (the best plan so far is
returned); ReLeQ also stops once its policy has converged (`converged_at`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from hirelc.inventory.spec import LayerSpec
from hirelc.methods.baselines import run_random, run_uniform
from hirelc.methods.ledger import EvaluateFn, EvaluationLedger, JournalLike
from hirelc.methods.problem import DEFAULT_BITS, SearchProblem
from hirelc.methods.releq.reward import RewardParams
from hirelc.methods.result import MethodOutcome, SearchResult

MethodFn = Callable[..., MethodOutcome]  # (problem, ledger, seed, **options) -> MethodOutcome


def _releq(problem: SearchProblem, ledger: EvaluationLedger, seed: int, **options: Any) -> MethodOutcome:
    from hirelc.methods.releq.runner import run_releq  # torch + SB3 only when used

    return run_releq(problem, ledger, seed, **options)


METHODS: dict[str, MethodFn] = {"releq": _releq, "uniform": run_uniform, "random": run_random}


def list_methods() -> list[str]:
    """Names accepted by `search(method=...)`.

    >>> list_methods()
    ['random', 'releq', 'uniform']
    """
    return sorted(METHODS)


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
    **options: Any,
) -> SearchResult:
    """Find a per-layer bitwidth plan for `layers` with `method`, spending at most
    `max_evaluations` real calls of `evaluate` (cached by plan hash).

    evaluate: plan -> accuracy in [0, 1], or a dict with "accuracy" (+ extra metrics).
    reference_accuracy: the full-precision accuracy (denominator of StateAcc, seed 000 eq. 2).
    journal: optional `append(record)` / `records()` object; journaled evaluations are
        replayed, never recomputed, and count against the budget.
    reward_params: shaping constants (a, b, th) of the selection score and of ReLeQ's
        shaped training reward (default: the seed's 0.2, 0.4, 0.4).
    options: method options, e.g. for "releq" see `ReLeQConfig` (agent="mlp",
        reward="ratio", action_space="restricted", reward_mode="step", learning_rate=...).

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
    problem = SearchProblem(tuple(layers), tuple(bits), reference_accuracy, reward_params or RewardParams())
    ledger = EvaluationLedger(evaluate, max_evaluations, journal, layers=[s.name for s in layers])
    return run_search(problem, ledger, method=method, seed=seed, **options)


def run_search(
    problem: SearchProblem, ledger: EvaluationLedger, *, method: str, seed: int, **options: Any
) -> SearchResult:
    """`search` on an existing problem and ledger (e.g. several methods sharing one cache).

    >>> from hirelc.inventory.spec import LayerSpec
    >>> problem = SearchProblem([LayerSpec("fc", "linear", (10, 10), n_macs=100)], (2, 8), 0.9)
    >>> run_search(problem, EvaluationLedger(lambda p: 0.9, 4), method="uniform", seed=0).plan.bits()
    [2]
    """
    if method not in METHODS:
        raise ValueError(f"unknown search method {method!r}; available: {list_methods()}")
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise ValueError(f"seed must be an integer, got {seed!r}")
    outcome = METHODS[method](problem, ledger, seed, **options)
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
    )
