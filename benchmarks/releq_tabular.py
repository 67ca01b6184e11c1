"""ReLeQ, its ablations and random search replayed on the enumerated releq_lenet landscapes,
with many agent seeds.

    python benchmarks/releq_tabular.py run [--seeds 5]   # after benchmarks/releq_lenet.py run
    python benchmarks/releq_tabular.py summarize         # markdown for benchmarks/RESULTS.md

benchmarks/releq_lenet.py evaluates all 625 plans of {2,3,4,5,8}^4 at the search fidelity
for fine-tune seeds 0, 1, 2 (pareto_s*/pareto.json). Each table is one accuracy landscape.
Here the search runs through the model-free API, `hirelc.search(layers, evaluate=<table
lookup>, ...)`, so a real evaluation costs a dictionary lookup and only the agent costs
time. That allows agent seeds 0..seeds-1 on each of the three landscapes: enough runs for
medians of "real evaluations until a frontier plan is first evaluated" and of "episodes to
converge", which three full runs cannot give. Budget, bit set, reward constants, selection
rule and stop rules are those of the full runs (budget 120).

For random search (distinct uniform plans) the distribution of the first frontier hit is
also computed exactly: with N plans of which F are on the frontier,
P(first hit > k) = C(N - F, k) / C(N, k).
"""

from __future__ import annotations

import argparse
import json
import math
import multiprocessing
import os
import statistics
from pathlib import Path
from typing import Any

# The landscapes, budget and bit set are those of the full runs (same folder: a script import).
from releq_lenet import BITS, BUDGET, budgeted, load_landscape
from releq_lenet import SEEDS as LANDSCAPE_SEEDS

from hirelc.methods.pareto import pareto_frontier

HERE = Path(__file__).resolve().parent
OUT = HERE / "runs" / "releq_tabular" / "runs.jsonl"
VARIANTS: dict[str, dict[str, Any]] = {
    "releq (LSTM, default)": {"method": "releq"},
    "releq MLP agent": {"method": "releq", "agent": "mlp"},
    "releq reward ratio": {"method": "releq", "reward": "ratio"},
    "releq reward difference": {"method": "releq", "reward": "difference"},
    "releq restricted actions": {"method": "releq", "action_space": "restricted"},
    "random": {"method": "random"},
}


def _frontier_bits(landscape_seed: int) -> set[tuple[int, ...]]:
    return {p.bits for p in pareto_frontier(load_landscape(landscape_seed).values())}


def _layers_and_reference() -> tuple[list, float]:
    """releq_lenet's layer specs and fp32 validation accuracy, as the full runs saw them."""
    from hirelc.pipeline import JobConfig, prepare

    prep = prepare(JobConfig(), progress=False, log=lambda _line: None)
    return list(prep.inventory), prep.evaluator.fp32_accuracy("val")


def _one_run(job: tuple[str, int, int, list, float]) -> dict[str, Any]:
    import torch

    from hirelc.methods import search

    torch.set_num_threads(1)
    variant, landscape_seed, agent_seed, layers, reference = job
    table = {bits: p.accuracy for bits, p in load_landscape(landscape_seed).items()}
    frontier = _frontier_bits(landscape_seed)
    options = dict(VARIANTS[variant])
    method = options.pop("method")
    result = search(layers, lambda plan: table[tuple(plan.bits())], method=method, bits=BITS,
                    reference_accuracy=reference, max_evaluations=BUDGET, seed=agent_seed, **options)
    first = next((ev.index + 1 for ev in result.history if tuple(ev.plan.bits()) in frontier), None)
    return {"variant": variant, "landscape": landscape_seed, "seed": agent_seed, "bits": result.plan.bits(),
            "on_frontier": tuple(result.plan.bits()) in frontier, "evals": result.n_evaluations,
            "first_frontier_eval": first, "episodes": len(result.episodes), "converged_at": result.converged_at,
            "stop": result.stop_reason}


def run(seeds: int) -> None:
    layers, reference = _layers_and_reference()
    jobs = [(v, ls, s, layers, reference) for v in VARIANTS for ls in LANDSCAPE_SEEDS for s in range(seeds)]
    OUT.parent.mkdir(parents=True, exist_ok=True)
    os.environ["OMP_NUM_THREADS"] = "1"
    with multiprocessing.get_context("spawn").Pool(2) as pool, OUT.open("w") as f:
        for row in pool.imap_unordered(_one_run, jobs):
            f.write(json.dumps(row) + "\n")
            f.flush()
            print(row, flush=True)


def random_no_hit_probability(n: int, f: int, k: int) -> float:
    """P(no frontier plan among the first k distinct uniform draws) = C(n - f, k) / C(n, k)."""
    return math.comb(n - f, k) / math.comb(n, k)


def random_first_hit_median(n: int, frontier_sizes: list[int]) -> int:
    """Median first frontier hit of random search over an equal mixture of landscapes with
    these frontier sizes: the smallest k with P(first hit <= k) >= 1/2."""
    return next(k for k in range(1, n + 1)
                if statistics.mean(random_no_hit_probability(n, f, k) for f in frontier_sizes) <= 0.5)


def random_first_hit_mean(n: int, f: int, cap: int = BUDGET + 1) -> float:
    """E[min(first hit, cap)] = sum over k < cap of P(first hit > k): the mean with a run
    that never hits counted as `cap`, as for the searches. (Uncapped: (n+1)/(f+1).)"""
    return sum(random_no_hit_probability(n, f, k) for k in range(cap))


def summarize() -> None:
    rows = [json.loads(line) for line in OUT.read_text().splitlines()]
    seeds = sorted({r["seed"] for r in rows})
    print(f"{len(rows)} runs: agent seeds {seeds} on each of the landscapes of fine-tune seeds "
          f"{list(LANDSCAPE_SEEDS)}; budget {BUDGET}. A run that never evaluated a frontier plan counts "
          f"as {BUDGET + 1}.\n")
    print("| variant | runs | chosen plan on the frontier | evals to first frontier plan: median (mean) | "
          "converged | episodes to converge: median (mean) | episodes run: median | real evals: median |")
    print("|---|---|---|---|---|---|---|---|")
    for variant in VARIANTS:
        rs = [r for r in rows if r["variant"] == variant]
        if not rs:
            continue
        firsts = [budgeted(r["first_frontier_eval"]) for r in rs]
        conv = [r["converged_at"] for r in rs if r["converged_at"] is not None]
        conv_text = f"{statistics.median(conv):.0f} ({statistics.mean(conv):.0f})" if conv else "-"
        print(f"| {variant} | {len(rs)} | {sum(r['on_frontier'] for r in rs)}/{len(rs)} | "
              f"{statistics.median(firsts):.0f} ({statistics.mean(firsts):.1f}) | {len(conv)}/{len(rs)} | {conv_text} | "
              f"{statistics.median(r['episodes'] for r in rs):.0f} | {statistics.median(r['evals'] for r in rs):.0f} |")
    print("\nRandom search, exact distribution of the first frontier hit (N = 625 plans):\n")
    print("| landscape | frontier plans F | random median | random mean (capped at 121) | releq median on this landscape |")
    print("|---|---|---|---|---|")
    sizes = [len(_frontier_bits(ls)) for ls in LANDSCAPE_SEEDS]
    for ls, f in zip(LANDSCAPE_SEEDS, sizes):
        print(f"| fine-tune seed {ls} | {f} | {random_first_hit_median(625, [f])} | "
              f"{random_first_hit_mean(625, f):.1f} | {_releq_median(rows, [ls])} |")
    print(f"| all three, equally weighted | - | {random_first_hit_median(625, sizes)} | "
          f"{statistics.mean(random_first_hit_mean(625, f) for f in sizes):.1f} | "
          f"{_releq_median(rows, list(LANDSCAPE_SEEDS))} |")


def _releq_median(rows: list[dict[str, Any]], landscapes: list[int]) -> str:
    firsts = [budgeted(r["first_frontier_eval"]) for r in rows
              if r["variant"] == "releq (LSTM, default)" and r["landscape"] in landscapes]
    return f"{statistics.median(firsts):.0f}" if firsts else "-"


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("action", choices=("run", "summarize"))
    parser.add_argument("--seeds", type=int, default=5, help="agent seeds per landscape")
    args = parser.parse_args()
    run(args.seeds) if args.action == "run" else summarize()
