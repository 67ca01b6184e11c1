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

ROOT = Path(__file__).resolve().parent / "runs" / "releq_lenet"
SEEDS = (0, 1, 2)
BUDGET = 120
COMMON = ["--model", "releq_lenet", "--data", "mnist5k", "--bits", "2,3,4,5,8", "--quiet"]


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


def _frontier_bits(pareto: dict) -> set[tuple[int, ...]]:
    return {tuple(p["bits"]) for p in pareto["frontier"]}


def _first_frontier_eval(run_dir: Path, frontier: set[tuple[int, ...]]) -> int | None:
    """1-based count of real evaluations until the search first evaluated a frontier plan."""
    lines = (run_dir / "journal.jsonl").read_text().splitlines()
    for i, line in enumerate(lines, 1):
        plan = json.loads(line)["plan"]
        if tuple(cfg["bits"] for cfg in plan.values()) in frontier:
            return i
    return None


def summarize() -> None:
    pareto = json.loads((ROOT / "pareto" / "pareto.json").read_text())
    frontier = _frontier_bits(pareto)
    points = {tuple(p["bits"]): p for p in pareto["points"]}
    front_pts = pareto["frontier"]
    print(f"Enumeration: {len(points)} configurations at fidelity {pareto['fidelity']} on validation data; "
          f"{len(frontier)} on the frontier: {sorted(frontier)}\n")
    print("| method | seed | bits | weighted bits | fp32 test | final test | loss (pt) | compression | "
          "real evals | evals to first frontier plan | on frontier | gap to frontier (pt) | stop | wall s |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    firsts: dict[str, list[int | None]] = {}
    for method in ("releq", "random", "uniform"):
        for seed in SEEDS:
            d = ROOT / f"{method}_s{seed}"
            r = json.loads((d / "result.json").read_text())
            bits = tuple(r["bits"])
            gap = _gap(points[bits], front_pts)
            first = _first_frontier_eval(d, frontier)
            firsts.setdefault(method, []).append(first)
            print(f"| {method} | {seed} | {list(bits)} | {r['param_weighted_avg_bits']:.2f} | "
                  f"{100 * r['baseline_test_accuracy']:.1f} | {100 * r['final_test_accuracy']:.1f} | "
                  f"{r['accuracy_loss_points']:+.1f} | {r['compression_ratio']:.2f}x | {r['real_evaluations']} | "
                  f"{first} | {'yes' if bits in frontier else 'no'} | {100 * gap:.2f} | {r['stop_reason']} | "
                  f"{r['wall_seconds']:.0f} |")
    print()
    for method in ("releq", "random"):
        losses = [json.loads((ROOT / f"{method}_s{s}" / "result.json").read_text())["accuracy_loss_points"] for s in SEEDS]
        wbits = [json.loads((ROOT / f"{method}_s{s}" / "result.json").read_text())["param_weighted_avg_bits"] for s in SEEDS]
        print(f"{method}: mean test accuracy loss {statistics.mean(losses):+.2f} pt (spread {min(losses):+.1f}..{max(losses):+.1f}); "
              f"mean weighted bits {statistics.mean(wbits):.2f}")
    med = {m: _median(firsts[m]) for m in ("releq", "random")}
    print(f"median real evaluations until a frontier plan is first evaluated: releq {med['releq']}, random {med['random']}"
          + (f" (ratio random/releq {med['random'] / med['releq']:.2f})" if med["releq"] and med["random"] else ""))


def _gap(point: dict, frontier: list[dict]) -> float:
    eligible = [f["accuracy"] for f in frontier if f["weighted_bits"] <= point["weighted_bits"] + 1e-12]
    return max(0.0, max(eligible) - point["accuracy"]) if eligible else 0.0


def _median(values: list[int | None]) -> float | None:
    # A search that never evaluated a frontier plan counts as its whole budget (+1).
    return statistics.median([v if v is not None else BUDGET + 1 for v in values])


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("action", choices=("run", "summarize"))
    {"run": run, "summarize": summarize}[parser.parse_args().action]()
