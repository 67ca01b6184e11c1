"""Choosing the plan to keep among a search's best few, at the final fine-tune's fidelity.

A search ranks plans by validation accuracy after a short fine-tune (`--search-steps`); the
user keeps the plan after the long one (`--final-epochs`). The two rankings disagree on close
plans (measured on cnn1d at 16x: the search's best plan, 77-80 % after 20 steps, ended below
a plan at 73-75 % after 4 epochs). With `finalists` K > 1 the job fine-tunes the search's K
best plans (the last replaced by the method's reference plan, HiReLC's Fisher prior, when
that is not among them: `SearchResult.finalists`) as long as the final fine-tune, measures
each on *validation* data, and keeps the one the search's own selection rule prefers with
those accuracies (for a size target: the most accurate; under --max-accuracy-drop: the
smallest within the drop). Test data is still
touched once, by the chosen plan. These K fine-tunes are real evaluations beyond the search
budget, so result.json counts them (`search/finalists`) and the benchmarks give every method
the same K.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from hirelc.evaluate.fidelity import Fidelity
from hirelc.methods.result import SearchResult
from hirelc.plan import Plan
from hirelc.progress import Progress


def keep_among_finalists(evaluator: Any, found: SearchResult, config: Any, progress: bool,
                         log: Callable[[str], None]) -> tuple[Plan, float, dict[str, Any]]:
    """A job's plan to keep (`choose_among_finalists` with the job's `Evaluator`: validation
    accuracy after `config.final_epochs` of fine-tuning, cached like any evaluation)."""
    fidelity = Fidelity.final(config.final_epochs)
    with Progress("finalists", total=min(config.finalists, found.n_evaluations), unit="fine-tunes",
                  enabled=progress and config.finalists > 1) as bar:
        def final_val_accuracy(plan: Plan) -> float:
            accuracy = evaluator.evaluate(plan, fidelity, split="val").accuracy
            bar.advance(status=f"val acc {100 * accuracy:.1f}%")
            return accuracy

        return choose_among_finalists(found, config.finalists, final_val_accuracy, log)


def choose_among_finalists(
    found: SearchResult, k: int, final_val_accuracy: Callable[[Plan], float], log: Callable[[str], None],
) -> tuple[Plan, float, dict[str, Any]]:
    """(plan to keep, its search-fidelity validation accuracy, result.json keys).

    k <= 1, or a search with a single evaluation: the search's choice, nothing measured."""
    finalists = found.finalists(k) if k > 1 else []
    if len(finalists) < 2:
        return found.plan, found.best_accuracy, {}
    log(f"finalists: fine-tuning the search's {len(finalists)} best plans as long as the final fine-tune, "
        "to choose on validation data")
    accuracies = [final_val_accuracy(ev.plan) for ev in finalists]
    chosen = found.choose_finalist(finalists, accuracies)
    rows = [{"evaluation": ev.index + 1, "plan_hash": ev.plan_hash, "val_accuracy_search": ev.accuracy,
             "val_accuracy_final_fidelity": acc, "chosen": i == chosen,
             "reference": ev.plan_hash == found.reference_hash}
            for i, (ev, acc) in enumerate(zip(finalists, accuracies))]
    log("finalists (validation %, search fidelity -> final fidelity): " + "; ".join(
        f"#{r['evaluation']} {100 * r['val_accuracy_search']:.1f} -> {100 * r['val_accuracy_final_fidelity']:.1f}"
        + (" (reference)" if r["reference"] else "") + (" (chosen)" if r["chosen"] else "") for r in rows))
    return finalists[chosen].plan, finalists[chosen].accuracy, {"search/finalists": rows,
                                                                "search/finalist_chosen_rank": chosen + 1}


def kept_finalist_note(keys: dict[str, Any], final_epochs: int) -> str:
    """The user's note when the kept plan is not the search's best (`keys`: what
    `choose_among_finalists` returned).

    >>> rows = [{"chosen": False, "reference": False}, {"chosen": True, "reference": True}]
    >>> kept_finalist_note({"search/finalists": rows, "search/finalist_chosen_rank": 2}, 4)[:62]
    "kept finalist 2 of 2 (the method's reference plan), not the se"
    """
    rows, rank = keys["search/finalists"], keys["search/finalist_chosen_rank"]
    what = " (the method's reference plan)" if rows[rank - 1].get("reference") else ""
    return (f"kept finalist {rank} of {len(rows)}{what}, not the search's best plan: the selection rule prefers it "
            f"on validation data after {final_epochs} epochs of fine-tuning")
