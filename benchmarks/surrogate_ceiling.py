"""How well can any surrogate rank the plans HiReLC's acquisition picks? (issue 9)

The surrogate's Spearman rho is measured on the plans each cycle evaluates next, before
they are evaluated (`rho_unseen`, pooled over the last 3 cycles). Those plans are the
acquisition's picks: a narrow band near the best. Inside that band a real evaluation (a
short fine-tune from a seeded start) is itself noisy, so no predictor can rank it better
than the evaluation agrees with itself. This script measures that ceiling: it re-evaluates
the same plans with another fine-tune seed (same data split, same fp32 model, same
fidelity, validation data) and reports the test-retest rho beside the surrogate's.

    python benchmarks/surrogate_ceiling.py benchmarks/runs/joint/cnn1d/hirelc_s0 [...] [--seed-offset 1000]

Prints one JSON line per run. Costs one real evaluation per re-measured plan (these are
benchmark evaluations, never part of a search or of a reported search result).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path


def last_cycles_plans(result: dict, journal: list[dict], cycles: int = 3) -> tuple[list[dict], list[list[float]]]:
    """The journal records the surrogate was scored on in the last `cycles` cycles, and its
    (prediction, real accuracy) pairs in the same order. journal: the run's evaluations in
    the search's order (`journal_evaluations`), which `trained_on` counts in."""
    hirelc = result["search"]["options"]["hirelc"]
    scored = [c["surrogate"] for c in hirelc["cycles"] if c.get("surrogate", {}).get("pairs")][-cycles:]
    records, pairs = [], []
    for s in scored:
        start = s["trained_on"]
        records += journal[start: start + s["n_unseen"]]
        pairs += s["pairs"]
    for record, (_, real) in zip(records, pairs, strict=True):  # the pairs are these evaluations
        assert abs(record["accuracy"] - real) < 1e-3, (record["accuracy"], real)
    return records, pairs


def measure(run: Path, seed_offset: int, every: bool = False) -> dict:
    from joint_baselines import journal_evaluations  # this directory is on sys.path for a script here

    from hirelc.methods.hirelc.surrogate import spearman
    from hirelc.result_file import read_result

    result = read_result(run)
    if every:
        return measure_every(run, result, journal_evaluations(run), seed_offset)
    records, pairs = last_cycles_plans(result, journal_evaluations(run))
    again = reevaluate(run, records, seed_offset)
    first = [real for _, real in pairs]
    predicted = [p for p, _ in pairs]
    return {"run": str(run), "plans": len(records), "seed_offset": seed_offset,
            "surrogate_rho": spearman(predicted, first), "test_retest_rho": spearman(first, again),
            "surrogate_vs_retest_rho": spearman(predicted, again),
            "accuracy_range_points": round(100 * (max(first) - min(first)), 2),
            "mean_abs_retest_diff_points": round(100 * sum(abs(a - b) for a, b in zip(first, again)) / len(first), 2)}


def measure_every(run: Path, result: dict, records: list[dict], seed_offset: int) -> dict:
    """Test-retest over every real evaluation of the run: the ceiling of the cross-validated
    rho (`rho_cross_validated`), which predicts each of them."""
    from hirelc.methods.hirelc.surrogate import spearman

    records = [r for r in records if r.get("status", "ok") == "ok"]
    first = [r["accuracy"] for r in records]
    again = reevaluate(run, records, seed_offset)
    cv = result["search"]["options"].get("hirelc", {}).get("rho_cross_validated") or {}
    return {"run": str(run), "plans": len(records), "seed_offset": seed_offset, "every": True,
            "surrogate_cv_rho": cv.get("rho"), "test_retest_rho": spearman(first, again),
            "accuracy_range_points": round(100 * (max(first) - min(first)), 2),
            "mean_abs_retest_diff_points": round(100 * sum(abs(a - b) for a, b in zip(first, again)) / len(first), 2)}


def reevaluate(run: Path, records: list[dict], seed_offset: int) -> list[float]:
    """The records' plans evaluated again as the search did, with fine-tune seed + `seed_offset`."""
    from hirelc.pipeline import JobConfig, prepare
    from hirelc.plan import Plan

    config = JobConfig.from_dict(json.loads((run / "config.json").read_text()))
    config.seed += seed_offset  # another fine-tune seed; split_seed (data, fp32 model) unchanged
    prep = prepare(config, progress=False, log=lambda _m: None)
    return [prep.evaluator.evaluate(Plan.from_dict(r["plan"]), config.search_fidelity, split="val").accuracy
            for r in records]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("runs", nargs="+", type=Path)
    p.add_argument("--seed-offset", type=int, default=1000)
    p.add_argument("--all", action="store_true", help="every real evaluation of the run, not the last 3 cycles' picks")
    a = p.parse_args()
    import torch

    torch.set_num_threads(1)  # as the benchmark runs were measured
    for run in a.runs:
        if not (run / "result.json").exists():
            sys.exit(f"error: {run} has no result.json: not a finished hirelc run")
        print(json.dumps(measure(run, a.seed_offset, a.all)), flush=True)


if __name__ == "__main__":
    main()
