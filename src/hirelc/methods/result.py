"""What a search returns: the best plan, every real evaluation, and the episode log.

>>> from hirelc.plan import Plan
>>> r = SearchResult(method="uniform", plan=Plan.from_bits(["fc"], [4]), best_accuracy=0.9,
...                  best_reward=0.1, best_state_q=0.5, history=[], episodes=[])
>>> r.to_dict()["plan"]
{'fc': {'bits': 4, 'keep_ratio': 1.0, 'number_format': 'int_sym', 'granularity': 'per_channel', 'group_size': None}}
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from hirelc.plan import Plan
from hirelc.methods.ledger import Evaluation


@dataclass
class EpisodeRecord:
    """One episode: a pass over all layers (ReLeQ), or one proposed plan (baselines).

    bits: the bitwidths at the end of the episode, one per layer in order.
    start_bits: the bitwidths the episode started from (the top bitwidth, or the previous
        episode's plan with the restricted action space).
    reward: the shaped/ablation reward of the final plan (what the agent was trained on).
    ret: sum of the rewards over the episode (differs from `reward` with per-step rewards).
    action_probs: per layer, the policy's probability of each action at that layer's step
        (seed 000 Fig. 2); empty for baselines.
    actions: the action index taken at each layer (empty for baselines).
    """

    index: int
    plan: Plan
    bits: list[int]
    start_bits: list[int]
    reward: float
    ret: float
    state_acc: float
    state_q: float
    accuracy: float
    actions: list[int] = field(default_factory=list)
    action_probs: list[list[float]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "index": self.index,
            "plan_hash": self.plan.content_hash(),
            "bits": list(self.bits),
            "start_bits": list(self.start_bits),
            "reward": self.reward,
            "return": self.ret,
            "state_acc": self.state_acc,
            "state_q": self.state_q,
            "accuracy": self.accuracy,
            "actions": list(self.actions),
            "action_probs": [list(p) for p in self.action_probs],
        }


@dataclass
class SearchResult:
    """The outcome of `hirelc.methods.search`.

    plan: the best plan among every real evaluation of the search, by the shared selection
        rule (`SearchProblem.selection_key`: highest shaped reward, ties -> lower StateQ).
    history: every real evaluation in order (the ledger's history, journaled ones first).
    episodes: the episode log (see `EpisodeRecord`).
    converged_at: index of the episode at which convergence was detected, or None.
    stop_reason: "converged", "stalled" (no better plan for a while), "budget", "max_episodes",
        "exhausted" (only already-evaluated plans were proposed) or "done" (method ran to its end).
    target / target_met: the target (`Target.to_dict`) and whether the chosen plan meets it
        (None without a target); best_size_bytes / fp32_bytes: the chosen plan's storage
        and the fp32 model's, by the problem's `SizeModel` (model-free: kernels only).
    space: the search space (`SearchSpace.to_dict`: choices and size).
    evaluation_counts: where the real evaluations came from (`EvaluationLedger.counts`:
        new / served from the evaluation cache / replayed from the journal, and repeats).
    selection_key: the problem's selection rule (`SearchProblem.selection_key`), kept so a
        caller can rank the evaluated plans (`ranked`) or re-choose among them after
        re-measuring their accuracy (`choose_finalist`); not serialised.
    reference_hash: the plan the method started from and vouches for
        (`Proposer.reference_plan`; HiReLC: its Fisher prior), None for most methods; it
        takes a finalist's place (`finalists`).
    """

    method: str
    plan: Plan
    best_accuracy: float
    best_reward: float
    best_state_q: float
    history: list[Evaluation]
    episodes: list[EpisodeRecord]
    converged_at: int | None = None
    stop_reason: str = "done"
    seed: int | None = None
    options: dict[str, Any] = field(default_factory=dict)
    reference_hash: str | None = None
    target: dict[str, Any] = field(default_factory=dict)
    target_met: bool | None = None
    best_size_bytes: int | None = None
    fp32_bytes: int | None = None
    space: dict[str, Any] = field(default_factory=dict)
    evaluation_counts: dict[str, int] = field(default_factory=dict)
    selection_key: Callable[[Evaluation], tuple] | None = field(default=None, repr=False, compare=False)
    reference_hash: str | None = None

    @property
    def _rule(self) -> Callable[[Evaluation], tuple]:
        if self.selection_key is None:
            raise ValueError("this SearchResult carries no selection rule (built by hand, not by run_search)")
        return self.selection_key

    def ranked(self, k: int) -> list[Evaluation]:
        """The `k` best evaluated plans by the selection rule, best first (the first is
        `plan`); fewer when the search evaluated fewer."""
        return sorted(self.history, key=self._rule, reverse=True)[:k]

    def finalists(self, k: int) -> list[Evaluation]:
        """The plans to re-measure at the final fidelity: `ranked(k)`, except that the
        method's evaluated reference plan, when not among them, replaces the last. Why: the
        search fidelity ranks close plans unlike the final fine-tune (finalists module),
        and the reference (HiReLC's Fisher prior, the least-damage allocation) is the plan
        a search should not end below at the fidelity the user keeps.

        >>> from hirelc.plan import Plan
        >>> evs = [Evaluation(i, Plan.from_bits(["fc"], [b]), a) for i, (b, a) in enumerate([(2, .7), (4, .9), (8, .8)])]
        >>> r = SearchResult("hirelc", evs[1].plan, .9, .9, .5, evs, [], selection_key=lambda ev: (ev.accuracy,),
        ...                  reference_hash=evs[0].plan_hash)
        >>> [ev.index for ev in r.finalists(2)], [ev.index for ev in r.finalists(3)], [ev.index for ev in r.finalists(1)]
        ([1, 0], [1, 2, 0], [1])
        """
        top = self.ranked(k)
        reference = next((ev for ev in self.history if ev.plan_hash == self.reference_hash), None)
        if k < 2 or reference is None or reference in top:
            return top
        return top[: k - 1] + [reference]

    def choose_finalist(self, finalists: Sequence[Evaluation], accuracies: Sequence[float]) -> int:
        """Index of the finalist the selection rule prefers once each one's accuracy is
        replaced by a re-measured one (e.g. after a longer fine-tune); ties keep the
        search's order.

        >>> from hirelc.plan import Plan
        >>> evs = [Evaluation(i, Plan.from_bits(["fc"], [b]), a) for i, (b, a) in enumerate([(4, .9), (8, .8)])]
        >>> r = SearchResult("random", evs[0].plan, .9, .9, 0.5, evs, [], selection_key=lambda ev: (ev.accuracy,))
        >>> r.choose_finalist(r.ranked(2), [0.93, 0.95]), r.choose_finalist(r.ranked(2), [0.95, 0.95])
        (1, 0)
        """
        rule = self._rule
        rescored = [replace(ev, accuracy=a) for ev, a in zip(finalists, accuracies, strict=True)]
        return max(range(len(rescored)), key=lambda i: (rule(rescored[i]), -i))

    @property
    def n_evaluations(self) -> int:
        """Real evaluations, journaled ones included."""
        return len(self.history)

    @property
    def evaluations_to_best(self) -> int | None:
        """How many real evaluations had been made when the best plan was first evaluated."""
        target = self.plan.content_hash()
        return next((ev.index + 1 for ev in self.history if ev.plan_hash == target), None)

    def notes(self) -> list[str]:
        """What a user should know about how the search ended (printed with the summary).

        - a learning method stopped by the budget while its policy was still undecided
          (mean over layers of the top action's probability in the last episode < 0.9);
        - the policy's greedy plan (top action per layer in the last episode) differs from
          the chosen plan, which is the best *evaluated* plan by the selection rule.
        """
        out = []
        last = self.episodes[-1] if self.episodes else None
        if last is None or not last.action_probs:
            return out
        confidence = sum(max(p) for p in last.action_probs) / len(last.action_probs)
        if self.stop_reason in ("budget", "max_episodes") and confidence < 0.9:
            out.append(f"stopped by the {self.stop_reason.replace('_', ' ')} before the policy converged (mean top-action "
                       f"probability {confidence:.2f}); a larger --budget may find a better plan")
        if self.converged_at is not None and last.bits != self.plan.bits():
            out.append(f"the converged policy's plan {last.bits} differs from the chosen plan {self.plan.bits()}: "
                       "the chosen plan is the best evaluated one by the selection rule")
        return out

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready summary (plans as dicts, evaluations as journal records)."""
        return {
            "method": self.method,
            "plan": self.plan.to_dict(),
            "bits": self.plan.bits(),
            "best_accuracy": self.best_accuracy,
            "best_reward": self.best_reward,
            "best_state_q": self.best_state_q,
            "converged_at": self.converged_at,
            "stop_reason": self.stop_reason,
            "n_evaluations": self.n_evaluations,
            "evaluation_counts": dict(self.evaluation_counts),
            "evaluations_to_best": self.evaluations_to_best,
            "seed": self.seed,
            "options": dict(self.options),
            "reference_hash": self.reference_hash,
            "target": dict(self.target),
            "target_met": self.target_met,
            "best_size_bytes": self.best_size_bytes,
            "fp32_bytes": self.fp32_bytes,
            "space": dict(self.space),
            "notes": self.notes(),
            "history": [ev.to_record() for ev in self.history],
            "episodes": [ep.to_dict() for ep in self.episodes],
        }


@dataclass
class MethodOutcome:
    """What a search method hands back to `run_search` besides the ledger's history."""

    episodes: list[EpisodeRecord]
    stop_reason: str
    converged_at: int | None = None
    options: dict[str, Any] = field(default_factory=dict)
    reference_hash: str | None = None  # `Proposer.reference_plan`'s content hash
