"""ReLeQ on releq_lenet / mnist5k: 3 seeds of releq, random and uniform under one budget,
the exhaustive {2,3,4,5,8}^4 enumeration at each seed, and the issue's acceptance figures.

    python benchmarks/releq_lenet.py run        # two lanes in parallel (2 cores), ~25 min
    python benchmarks/releq_lenet.py summarize  # markdown for benchmarks/RESULTS.md

The seed of a job is also the seed of every fine-tune it runs, so each search seed sees its
own (slightly noisy) accuracy landscape. The space is therefore enumerated once per seed:
a search is placed on the enumeration of its own seed (the landscape it searched) and on
the frontier of the mean accuracy over the three seeds (a less noisy landscape).

All runs share one cache directory (HIRELC_CACHE_DIR, default benchmarks/.cache) so the fp32
baseline is trained once; evaluations are cached by (plan, fidelity, fine-tune seed), and
every method counts its own real evaluations in its ledger whether or not the disk cache
served them, so budgets compare like for like.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

from hirelc.methods.pareto import ParetoPoint, frontier_gap, pareto_frontier
from hirelc.result_file import read_result  # any result.json version

ROOT = Path(__file__).resolve().parent / "runs" / "releq_lenet"
SEEDS = (0, 1, 2)
BUDGET = 120
BITS = (2, 3, 4, 5, 8)
COMMON = ["--model", "releq_lenet", "--data", "mnist5k", "--bits", ",".join(map(str, BITS)), "--quiet"]


def _cmd(*args: str) -> list[str]:
    return [sys.executable, "-m", "hirelc.cli", *args]


def _pareto(seed: int) -> list[str]:
    return _cmd("pareto", *COMMON, "--seed", str(seed), "--out", str(ROOT / f"pareto_s{seed}"), "--resume")


def _searches(seed: int) -> list[list[str]]:
    return [_cmd("search", *COMMON, "--method", method, "--seed", str(seed), "--budget", str(BUDGET),
                 "--out", str(ROOT / f"{method}_s{seed}"), "--force")
            for method in ("releq", "random", "uniform")]


def lanes() -> list[list[list[str]]]:
    # An enumeration fills the evaluation cache of its seed, so that seed's searches run
    # mostly from cache afterwards (each still counts its own real evaluations).
    return [[_pareto(0), *_searches(0), *_searches(2)], [_pareto(1), *_searches(1), _pareto(2)]]


def run() -> None:
    env = dict(os.environ, OMP_NUM_THREADS="1")
    env.setdefault("HIRELC_CACHE_DIR", str(Path(__file__).resolve().parent / ".cache"))
    ROOT.mkdir(parents=True, exist_ok=True)
    # Train the shared baseline once before the lanes start.
    subprocess.run(_cmd("train", "--model", "releq_lenet", "--data", "mnist5k", "--quiet"), env=env, check=True)
    scripts = [" && ".join(" ".join(f"'{a}'" for a in c) for c in lane) for lane in lanes()]
    procs = [subprocess.Popen(["bash", "-c", s], env=env) for s in scripts]
    codes = [p.wait() for p in procs]
    if any(codes):
        sys.exit(f"a lane failed: exit codes {codes}")


Landscape = dict[tuple[int, ...], ParetoPoint]


def load_landscape(seed: int) -> Landscape:
    pareto = json.loads((ROOT / f"pareto_s{seed}" / "pareto.json").read_text())
    return {tuple(p["bits"]): ParetoPoint.from_dict(p) for p in pareto["points"]}


def _mean_landscape(landscapes: list[Landscape]) -> Landscape:
    """Every configuration's accuracy averaged over the fine-tune seeds."""
    return {bits: ParetoPoint(bits, p.weighted_bits, statistics.mean(ls[bits].accuracy for ls in landscapes))
            for bits, p in landscapes[0].items()}


def _first_frontier_eval(run_dir: Path, frontier: set[tuple[int, ...]]) -> int | None:
    """1-based count of real evaluations until the search first evaluated a frontier plan."""
    lines = (run_dir / "journal.jsonl").read_text().splitlines()
    for i, line in enumerate(lines, 1):
        plan = json.loads(line)["plan"]
        if tuple(cfg["bits"] for cfg in plan.values()) in frontier:
            return i
    return None


def _frontier_line(name: str, landscape: Landscape) -> tuple[list[ParetoPoint], str]:
    front = pareto_frontier(landscape.values())
    text = ", ".join(f"{list(p.bits)} {100 * p.accuracy:.1f}%" for p in front)
    return front, f"- {name}: {len(front)} frontier points: {text}"


def summarize() -> None:
    landscapes = {seed: load_landscape(seed) for seed in SEEDS}
    mean = _mean_landscape(list(landscapes.values()))
    print(f"Enumerations: {len(mean)} configurations each, at the search fidelity on validation data, "
          f"one per fine-tune seed {list(SEEDS)}.\n")
    fronts = {}
    for seed, landscape in landscapes.items():
        fronts[seed], line = _frontier_line(f"seed {seed}", landscape)
        print(line)
    mean_front, line = _frontier_line(f"mean of seeds {list(SEEDS)}", mean)
    print(line + "\n")
    print("| method | seed | bits | weighted bits | fp32 test | final test | loss (pt) | compression | real evals | "
          "evals to first frontier plan (own seed) | gap to own-seed frontier (pt) | gap to mean frontier (pt) | "
          "stop | wall s |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    firsts: dict[str, list[int | None]] = {}
    for method in ("releq", "random", "uniform"):
        for seed in SEEDS:
            d = ROOT / f"{method}_s{seed}"
            r = read_result(d)
            bits = tuple(r["bits"])
            own_gap = frontier_gap(landscapes[seed][bits], fronts[seed])
            mean_gap = frontier_gap(mean[bits], mean_front)
            first = _first_frontier_eval(d, {p.bits for p in fronts[seed]})
            firsts.setdefault(method, []).append(first)
            print(f"| {method} | {seed} | {list(bits)} | {r['plan/param_weighted_avg_bits']:.2f} | "
                  f"{100 * r['test/fp32_accuracy']:.1f} | {100 * r['test/accuracy']:.1f} | "
                  f"{r['test/accuracy_drop_points']:+.1f} | {r['size/file_compression']:.2f}x | {r['search/evaluations']} | "
                  f"{first} | {100 * own_gap:.2f} | {100 * mean_gap:.2f} | {r['search/stop_reason']} | "
                  f"{r['run/wall_seconds']:.0f} |")
    print()
    for method in ("releq", "random", "uniform"):
        results = [read_result(ROOT / f"{method}_s{s}") for s in SEEDS]
        losses = [r["test/accuracy_drop_points"] for r in results]
        wbits = [r["plan/param_weighted_avg_bits"] for r in results]
        ratios = [r["size/file_compression"] for r in results]
        print(f"- {method}: mean test accuracy loss {statistics.mean(losses):+.2f} pt "
              f"(sd {statistics.stdev(losses):.2f}, range {min(losses):+.1f}..{max(losses):+.1f}); "
              f"mean weighted bits {statistics.mean(wbits):.2f}; compression {min(ratios):.2f}-{max(ratios):.2f}x")
    med = {m: _median(firsts[m]) for m in ("releq", "random")}
    print(f"- median real evaluations until a frontier plan (own seed) is first evaluated: releq {med['releq']}, "
          f"random {med['random']}"
          + (f" (ratio random/releq {med['random'] / med['releq']:.2f})" if med["releq"] and med["random"] else ""))


def budgeted(first_hit: int | None) -> int:
    """A search that never evaluated a frontier plan counts as its whole budget (+1)."""
    return first_hit if first_hit is not None else BUDGET + 1


def _median(values: list[int | None]) -> float:
    return statistics.median(budgeted(v) for v in values)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("action", choices=("run", "summarize"))
    {"run": run, "summarize": summarize}[parser.parse_args().action]()
