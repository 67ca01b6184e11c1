"""How much does the choice among a search's best plans cost, and which rule chooses best? (issue 9)

A job with `--finalists K` fine-tunes the search's K best plans (HiReLC: the last replaced by
its Fisher prior when that is not among them) as long as the final fine-tune and keeps the one
most accurate on the 1,000 validation examples. That choice reads a noisy count. MNIST-1D is
generated, so for cnn1d runs the truth is free: this script fine-tunes a finished run's
`--top` best plans (by search-fidelity validation accuracy, plus the method's reference plan)
at the final fidelity, and measures each on validation (accuracy and loss) and on 20,000
fresh signals (`fresh_test.py`). `rules` then scores selection rules by the fresh accuracy of
the plan each one keeps.

    python benchmarks/finalist_rules.py measure benchmarks/runs/joint/cnn1d/hirelc_f3_s0 [...] > rows.jsonl
    python benchmarks/finalist_rules.py rules rows.jsonl [...]

Fresh signals only score the rules; nothing here feeds a search. Costs `--top` + 1 final
fine-tunes per run (served from the evaluation cache when a job already made them).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from collections.abc import Callable
from pathlib import Path


def measure(run: Path, top: int) -> dict:
    from fresh_test import fresh_signals  # this directory is on sys.path for a script here
    from joint_baselines import journal_evaluations
    from torch.utils.data import TensorDataset

    from hirelc.data import load_dataset
    from hirelc.pipeline import JobConfig, prepare
    from hirelc.plan import Plan
    from hirelc.result_file import read_result
    from hirelc.train import evaluate_accuracy

    config = JobConfig.from_dict(json.loads((run / "config.json").read_text()))
    if config.data != "mnist1d":
        sys.exit(f"error: {run} is a {config.data} run; fresh signals can be generated for mnist1d only")
    reference = read_result(run)["search"].get("reference_hash")
    records = [r for r in journal_evaluations(run) if r.get("status", "ok") == "ok"]
    prep = prepare(config, progress=False, log=lambda _m: None)
    data = load_dataset(config.data, seed=config.split_seed, root=config.data_root)
    signals = TensorDataset(*fresh_signals(4, data.mean[0], data.std[0]))
    rows = []
    for rank, record in enumerate(candidates(records, top, reference), start=1):
        plan = Plan.from_dict(record["plan"])
        model, val = prep.evaluator.final_finetune(plan, config.final_epochs, split="val")
        rows.append({"index": record["index"], "search_rank": rank, "val_search": record["accuracy"],
                     "reference": plan.content_hash() == reference, "val_final": val.accuracy,
                     "val_final_loss": round(val.loss, 5), "fresh": round(evaluate_accuracy(model, signals)[0], 5)})
    return {"run": str(run), "method": config.method, "rows": rows}


def candidates(records: list[dict], top: int, reference: str | None) -> list[dict]:
    """The `top` most accurate distinct plans at the search fidelity (ties: earlier first),
    then the reference plan if it is not among them.

    >>> from hirelc.plan import Plan
    >>> plans = [Plan.from_bits(["fc"], [b]) for b in (2, 4, 4, 8)]
    >>> rs = [{"index": i, "accuracy": a, "plan": p.to_dict()} for i, (a, p) in enumerate(zip([.7, .9, .9, .8], plans))]
    >>> [r["index"] for r in candidates(rs, 2, None)], [r["index"] for r in candidates(rs, 2, plans[0].content_hash())]
    ([1, 3], [1, 3, 0])
    """
    from hirelc.plan import Plan

    hashes = [Plan.from_dict(r["plan"]).content_hash() for r in records]
    chosen, seen = [], set()
    for i in sorted(range(len(records)), key=lambda i: (-records[i]["accuracy"], records[i]["index"])):
        if hashes[i] not in seen and (len(chosen) < top or hashes[i] == reference):
            seen.add(hashes[i])
            chosen.append(records[i])
    return chosen


def keep(rows: list[dict], k: int, by: str) -> dict:
    """The row a job with `--finalists k` keeps when it compares finalists `by` "accuracy"
    (the library's rule) or "loss" (lowest validation loss): finalists as
    `SearchResult.finalists`, ties keep the search's order."""
    finalists = [r for r in rows if r["search_rank"] <= k]
    ref = next((r for r in rows if r["reference"]), None)
    if k >= 2 and ref is not None and ref not in finalists:
        finalists = finalists[: k - 1] + [ref]
    score: Callable[[dict], float] = (lambda r: r["val_final"]) if by == "accuracy" else (lambda r: -r["val_final_loss"])
    return max(finalists, key=lambda r: (score(r), -r["search_rank"]))


def rules(files: list[Path], ks: tuple[int, ...] = (1, 2, 3, 4, 5, 7, 10)) -> None:
    runs = [json.loads(line) for f in files for line in f.read_text().splitlines() if line.strip()]
    for method in sorted({r["method"] for r in runs}):
        mine = [r["rows"] for r in runs if r["method"] == method]
        base = [keep(rows, 3, "accuracy")["fresh"] for rows in mine]
        print(f"\n{method}: {len(mine)} runs; fresh accuracy % of the kept plan (20,000 signals), paired against K=3 by accuracy")
        print("| finalists K | by val accuracy | − K=3 (SE) | by val loss | − K=3 (SE) |\n|---|---|---|---|---|")
        for k in ks:
            cells = []
            for by in ("accuracy", "loss"):
                kept = [keep(rows, k, by)["fresh"] for rows in mine]
                diff = [100 * (a - b) for a, b in zip(kept, base)]
                se = statistics.stdev(diff) / len(diff) ** 0.5 if len(diff) > 1 else float("nan")
                cells += [f"{100 * statistics.mean(kept):.2f}", f"{statistics.mean(diff):+.2f} ({se:.2f})"]
            print(f"| {k} | " + " | ".join(cells) + " |")
        best = [max(r["fresh"] for r in rows) for rows in mine]
        print(f"best of the {len(mine[0])} measured plans (an oracle): {100 * statistics.mean(best):.2f}")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("what", choices=("measure", "rules"))
    p.add_argument("paths", nargs="+", type=Path)
    p.add_argument("--top", type=int, default=10, help="measure: the search's best plans to fine-tune")
    a = p.parse_args()
    if a.what == "rules":
        return rules(a.paths)
    import torch

    torch.set_num_threads(1)  # as the benchmark runs were measured
    for run in a.paths:
        if not (run / "result.json").exists():
            sys.exit(f"error: {run} has no result.json: not a finished search run")
        print(json.dumps(measure(run, a.top)), flush=True)


if __name__ == "__main__":
    main()
