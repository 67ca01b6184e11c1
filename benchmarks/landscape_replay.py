"""Searches replayed on an enumerated landscape (benchmarks/landscapes/), many seeds each.

    python benchmarks/landscape_replay.py run --landscape cnn1d_mnist1d_bits --methods releq random --seeds 15 --workers 2
    python benchmarks/landscape_replay.py summarize --landscape cnn1d_mnist1d_bits
    (a method with options: "releq:reward=ratio,action_space=restricted")

As benchmarks/releq_tabular.py does for the releq_lenet enumerations: every method runs
through the model-free API, `hirelc.search(layers, evaluate=<table lookup>, ...)`, with its
default options, so a "real evaluation" is a dictionary lookup and only the search itself
costs time. Reported per method: real evaluations until a plan whose seed-000 reward is
within 1 % of the landscape's best reward is first evaluated (a run that never evaluates
one counts as budget + 1), and the reward of the returned plan relative to the best. For
random search (distinct uniform plans) the distribution of the first hit is also exact:
with N plans of which F are near-best, P(no hit in the first k) = C(N - F, k) / C(N, k).
"""

from __future__ import annotations

import argparse
import functools
import json
import math
import multiprocessing
import os
import statistics
import time
from pathlib import Path
from typing import Any

from landscape import Landscape, load_landscape

HERE = Path(__file__).resolve().parent
BUDGET = 200  # the budget of the issue-15 comparison on the external 3,125-plan landscape
WITHIN = 0.01  # "near-best": reward >= (1 - WITHIN) x best reward


def _out(landscape: str) -> Path:
    return HERE / "runs" / "landscape_replay" / f"{landscape}.jsonl"


def one_run(ls: Landscape, method: str, seed: int, budget: int = BUDGET) -> dict[str, Any]:
    """One search on the table; what it found and when."""
    import torch

    from hirelc.methods import search

    from hirelc.cli.common import method_options

    torch.set_num_threads(1)
    near = ls.near_best(WITHIN)
    start = time.perf_counter()
    name, _, options = method.partition(":")  # e.g. "releq:reward=ratio,action_space=restricted"
    result = search(ls.layers, ls.evaluate, method=name, bits=ls.bits, reference_accuracy=ls.reference_accuracy,
                    max_evaluations=budget, seed=seed, **method_options(options.split(",") if options else []))
    seconds = time.perf_counter() - start
    first = next((ev.index + 1 for ev in result.history if tuple(ev.plan.bits()) in near), None)
    bits = result.plan.bits()
    return {"landscape": ls.name, "method": method, "seed": seed, "budget": budget, "bits": bits,
            "reward_vs_best": ls.reward(bits) / ls.best_reward(), "accuracy": ls.accuracy(bits),
            "evals": result.n_evaluations, "first_near_best_eval": first, "episodes": len(result.episodes),
            "converged_at": result.converged_at, "stop": result.stop_reason, "seconds": round(seconds, 1)}


def _job(job: tuple[str, str, int, int]) -> dict[str, Any]:
    landscape, method, seed, budget = job
    return one_run(_cached_landscape(landscape), method, seed, budget)


@functools.lru_cache(maxsize=4)
def _cached_landscape(name: str) -> Landscape:
    return load_landscape(name)


def run(landscape: str, methods: list[str], seeds: int, budget: int, workers: int = 1) -> None:
    """Append one JSON line per (method, seed) run to runs/landscape_replay/<landscape>.jsonl."""
    jobs = [(landscape, method, seed, budget) for method in methods for seed in range(seeds)]
    out = _out(landscape)
    out.parent.mkdir(parents=True, exist_ok=True)
    os.environ["OMP_NUM_THREADS"] = "1"  # inherited by the worker processes
    with multiprocessing.get_context("spawn").Pool(workers) as pool, out.open("a") as f:
        for row in pool.imap_unordered(_job, jobs):
            f.write(json.dumps(row) + "\n")
            f.flush()
            print(row, flush=True)


def no_hit_probability(n: int, f: int, k: int) -> float:
    """P(no near-best plan among the first k distinct uniform draws) = C(n - f, k) / C(n, k)."""
    return math.comb(n - f, k) / math.comb(n, k)


def random_exact(n: int, f: int, budget: int) -> tuple[int, float]:
    """(median first hit, mean of min(first hit, budget + 1)) of uniform sampling without replacement."""
    median = next(k for k in range(1, n + 1) if no_hit_probability(n, f, k) <= 0.5)
    return median, sum(no_hit_probability(n, f, k) for k in range(budget + 1))


def _quartiles(values: list[float]) -> str:
    q = statistics.quantiles(values, n=4, method="inclusive")
    return f"{q[1]:.0f} [{q[0]:.0f}-{q[2]:.0f}]"


def summarize(landscape: str) -> None:
    ls = load_landscape(landscape)
    runs = (json.loads(line) for line in _out(landscape).read_text().splitlines())
    rows = list({(r["method"], r["seed"], r["budget"]): r for r in runs}.values())  # a rerun replaces a run
    n, f = len(ls.table), len(ls.near_best(WITHIN))
    print(f"Landscape {landscape}: {n:,} plans, best reward {ls.best_reward():.4f}; {f} plans within "
          f"{100 * WITHIN:.0f} % of it. A run that never evaluated one counts as budget + 1.\n")
    print("| method | runs | budget | evals to a near-best plan: median [IQR] | mean | never found | "
          "returned reward / best: median (min) | returned >= 0.98 of best | real evals: median | wall s: median |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for method in dict.fromkeys(r["method"] for r in rows):
        rs = [r for r in rows if r["method"] == method]
        budget = rs[0]["budget"]
        firsts = [r["first_near_best_eval"] or budget + 1 for r in rs]
        rel = [r["reward_vs_best"] for r in rs]
        print(f"| {method} | {len(rs)} | {budget} | {_quartiles(firsts)} | {statistics.mean(firsts):.1f} | "
              f"{sum(r['first_near_best_eval'] is None for r in rs)} | {statistics.median(rel):.3f} ({min(rel):.3f}) | "
              f"{sum(x >= 0.98 for x in rel)}/{len(rs)} | {statistics.median(r['evals'] for r in rs):.0f} | "
              f"{statistics.median(r['seconds'] for r in rs):.1f} |")
    budget = rows[0]["budget"]
    median, mean = random_exact(n, f, budget)
    print(f"\nRandom search, exact (N = {n:,}, F = {f}): median first hit {median}; "
          f"mean of min(first hit, {budget + 1}) = {mean:.1f}; "
          f"P(no hit within {budget}) = {no_hit_probability(n, f, budget):.3f}.")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("action", choices=("run", "summarize"))
    parser.add_argument("--landscape", default="cnn1d_mnist1d_bits")
    parser.add_argument("--methods", nargs="+", default=["releq", "random"])
    parser.add_argument("--seeds", type=int, default=15)
    parser.add_argument("--budget", type=int, default=BUDGET)
    parser.add_argument("--workers", type=int, default=1, help="processes (1 torch thread each)")
    args = parser.parse_args()
    if args.action == "run":
        run(args.landscape, args.methods, args.seeds, args.budget, args.workers)
    else:
        summarize(args.landscape)
