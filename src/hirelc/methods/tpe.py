"""`tpe`: Optuna's TPE sampler over the same per-kernel choices, as a user of a tuning library
would run it (Bergstra et al., NeurIPS 2011; Optuna's `TPESampler`): one categorical
parameter per kernel and attribute (bits, keep, format, granularity), ask/tell, every
trial repaired onto the size budget by the problem and told the objective's score of the
plan actually evaluated. Invalid pairs (a minifloat below 4 bits, ...) fall back to the
first valid format at that bit-width. Optuna is an optional extra: `pip install optuna`.

>>> from hirelc.inventory.spec import LayerSpec
>>> from hirelc.methods.driver import drive
>>> from hirelc.methods.ledger import EvaluationLedger
>>> problem = SearchProblem([LayerSpec("a", "linear", (8, 8), 64), LayerSpec("b", "linear", (8, 8), 64)],
...                         (2, 4, 8), 0.9)
>>> ledger = EvaluationLedger(lambda p: 0.5 + 0.05 * sum(p.bits()) / 2, 6)
>>> out = drive(TPESearch(problem, TPEConfig(n_startup_trials=3), seed=0), problem, ledger)
>>> out.stop_reason, ledger.n_evaluations
('budget', 6)
"""

from __future__ import annotations

import importlib.util
import warnings
from dataclasses import asdict, dataclass
from typing import Any

from hirelc.methods.driver import Proposer
from hirelc.methods.ledger import Evaluation
from hirelc.methods.problem import SearchProblem
from hirelc.methods.space import parse_granularity
from hirelc.plan import LayerConfig, Plan


MISSING_OPTUNA = "method 'tpe' needs optuna: pip install optuna (or hirelc[tpe])"


@dataclass(frozen=True)
class TPEConfig:
    """n_startup_trials: random trials before TPE models the results (Optuna's default 10);
    multivariate: model the parameters jointly (Optuna's recommended setting for
    interacting parameters); constant_liar: with several trials in flight (a batch per
    round, one per worker), count the running ones as bad results so the batch spreads out
    (Optuna's setting for parallel optimisation; no effect with one trial at a time)."""

    n_startup_trials: int = 10
    multivariate: bool = True
    constant_liar: bool = True

    def __post_init__(self) -> None:
        if isinstance(self.n_startup_trials, bool) or not isinstance(self.n_startup_trials, int) \
                or self.n_startup_trials < 1:
            raise ValueError(f"tpe n_startup_trials must be a positive integer, got {self.n_startup_trials!r}")

    @classmethod
    def from_options(cls, **options: Any) -> "TPEConfig":
        if importlib.util.find_spec("optuna") is None:  # before any work, not after baseline training
            raise ValueError(MISSING_OPTUNA)
        unknown = set(options) - set(cls.__dataclass_fields__)
        if unknown:
            raise ValueError(f"unknown tpe option(s) {sorted(unknown)}; valid: {sorted(cls.__dataclass_fields__)}")
        return cls(**options)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class TPESearch(Proposer):
    """Optuna TPE in ask/tell form; see the module docstring."""

    def __init__(self, problem: SearchProblem, config: TPEConfig | None = None, seed: int = 0):
        try:
            import optuna
        except ImportError:
            raise ImportError(MISSING_OPTUNA) from None
        optuna.logging.set_verbosity(optuna.logging.WARNING)
        self.config = config or TPEConfig()
        self.problem = problem
        with warnings.catch_warnings():  # constant_liar is marked experimental
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            sampler = optuna.samplers.TPESampler(n_startup_trials=self.config.n_startup_trials,
                                                 multivariate=self.config.multivariate, seed=seed,
                                                 constant_liar=self.config.constant_liar)
        self.study = optuna.create_study(direction="maximize", sampler=sampler)
        self._pending: list[Any] = []

    def propose(self, n: int) -> list[Plan]:
        trials = [self.study.ask() for _ in range(n)]
        self._pending += trials
        return [self._plan(t) for t in trials]

    def observe(self, evaluations: list[Evaluation]) -> None:
        for trial, ev in zip(self._pending, evaluations):
            self.study.tell(trial, self.problem.score(ev))
        self._pending = self._pending[len(evaluations):]

    def options(self) -> dict[str, Any]:
        return self.config.to_dict()

    def _plan(self, trial: Any) -> Plan:
        space, c = self.problem.space, self.problem.space.config
        layers = {}
        for s in space.layers:
            bits = _choose(trial, f"{s.name}/bits", c.bits)
            keep = _choose(trial, f"{s.name}/keep", space.keep_choices(s.name))
            fmt = _choose(trial, f"{s.name}/format", c.formats)
            gran = _choose(trial, f"{s.name}/granularity", space.granularity_choices(s.name))
            formats = space.format_choices(bits)
            layers[s.name] = LayerConfig(bits, keep, fmt if fmt in formats else formats[0], *parse_granularity(gran))
        return Plan(layers)


def _choose(trial: Any, name: str, choices: tuple) -> Any:
    """A categorical parameter; a single choice is not a parameter (Optuna would warn)."""
    return choices[0] if len(choices) == 1 else trial.suggest_categorical(name, list(choices))
