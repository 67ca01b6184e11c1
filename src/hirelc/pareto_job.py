"""`hirelc pareto`: enumerate every bitwidth configuration of a small network at the search
fidelity on validation data (seed 000 §4.2), mark the frontier, and place a search result on it.
Resumable like a search: enumeration goes through the same ledger and journal.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from hirelc.pipeline import JobConfig, Log, _evaluation_progress, _prepare_or_discard
from hirelc.plan import Plan
from hirelc.rundir import RunDir, atomic_write_text
from hirelc.workers import job_executor


def run_pareto(
    config: JobConfig, out: str | Path, *, place: str | Path | None = None, limit: int | None = None,
    force_space: bool = False, resume: bool = False, progress: bool = True, log: Log = print,
) -> dict[str, Any]:
    """Enumerate every bitwidth configuration at the search fidelity on validation data
    (seed 000 §4.2), mark the frontier, place a search result on it, write pareto.json."""
    from hirelc.methods.ledger import EvaluationLedger
    from hirelc.methods.pareto import DEFAULT_SPACE_LIMIT, enumerate_space, frontier_gap, pareto_frontier, space_size
    from hirelc.methods.problem import SearchProblem

    placed_plan = Plan.from_dict(RunDir(place).read_result()["plan"]) if place is not None else None  # fail early
    run = RunDir(out).create(config.to_dict() | {"job": "pareto"}, resume=resume, force=False)
    prep = _prepare_or_discard(run, config, progress, log)
    problem = SearchProblem(tuple(prep.inventory), config.bits, prep.evaluator.fp32_accuracy("val"))
    total = space_size(len(problem.layers), len(problem.bits))
    # The expected duration is announced after the first real evaluation (measured on it).
    with _evaluation_progress(progress, total, len(run.journal), label="pareto", announce=True) as tick, \
            job_executor(config, prep, tick) as evaluate:
        ledger = EvaluationLedger(evaluate, max(total, 1), run.journal, layers=problem.names)
        log(f"enumerating {total:,} configurations ({ledger.n_evaluations} already journaled)")
        points = enumerate_space(problem, ledger, limit=limit or DEFAULT_SPACE_LIMIT, force=force_space)
    frontier = pareto_frontier(points)
    data = {"layers": problem.names, "bits": list(config.bits), "fidelity": config.search_fidelity.key(),
            "points": [p.to_dict() for p in points], "frontier": [p.to_dict() for p in frontier],
            **{f"evaluations/{k}": v for k, v in ledger.counts().items()}}  # new / cached / replayed
    if placed_plan is not None:
        point = next((p for p in points if list(p.bits) == placed_plan.bits()), None)
        if point is None:
            raise ValueError(f"the plan in {place} (bits {placed_plan.bits()}) is not in the enumerated "
                             f"space {list(config.bits)}^{len(problem.layers)}: was it searched on another model or bit set?")
        data["placed"] = point.to_dict() | {"gap": frontier_gap(point, frontier), "from": str(place),
                                             "label": f"search result {list(point.bits)}"}
    atomic_write_text(Path(out) / "pareto.json", json.dumps(data, indent=1))
    return data

