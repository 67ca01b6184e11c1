"""ReLeQ ablations on releq_lenet / mnist5k (seed 000 §2.3-2.5: LSTM vs MLP agent, reward
forms, restricted action space) and end-to-end runs on resnet20 and vgg11.

    python benchmarks/releq_extra.py run        # two lanes in parallel (2 cores)
    python benchmarks/releq_extra.py summarize  # markdown for benchmarks/RESULTS.md

Ablations use seeds 0, 1, 2 and the same budget, fidelity and evaluation cache as
benchmarks/releq_lenet.py (set the same HIRELC_CACHE_DIR), so plans evaluated before are
served from the disk cache; each run still counts its own real evaluations in its ledger.
The default LSTM agent's runs are those of benchmarks/releq_lenet.py (run it first).
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE / "runs" / "releq_extra"
LENET = ["--model", "releq_lenet", "--data", "mnist5k", "--bits", "2,3,4,5,8", "--budget", "120", "--quiet"]
ABLATIONS = {
    "mlp_agent": ["--agent", "mlp"],
    "reward_ratio": ["--reward", "ratio"],
    "reward_difference": ["--reward", "difference"],
    "restricted_actions": ["--action-space", "restricted"],
}
DEEP = {
    "resnet20": ["--model", "resnet20", "--data", "mnist5k", "--bits", "2,3,4,5,8", "--budget", "60", "--steps", "10",
                 "--final-epochs", "2", "--quiet"],
    # The same search with a larger budget: how far 60 evaluations are from a longer search.
    "resnet20_budget200": ["--model", "resnet20", "--data", "mnist5k", "--bits", "2,3,4,5,8", "--budget", "200",
                           "--steps", "10", "--final-epochs", "2", "--quiet"],
    "vgg11": ["--model", "vgg11", "--data", "mnist5k", "--bits", "2,3,4,5,8", "--budget", "60", "--steps", "10",
              "--final-epochs", "2", "--quiet"],
}


def _cmd(*args: str) -> str:
    return " ".join(f"'{a}'" for a in (sys.executable, "-m", "hirelc.cli", *args))


SEEDS = (0, 1, 2)


def run(only: str | None = None) -> None:
    env = dict(os.environ, OMP_NUM_THREADS="1")
    env.setdefault("HIRELC_CACHE_DIR", str(HERE / ".cache"))
    ablations = [_cmd("search", *LENET, *flags, "--seed", str(seed), "--out", str(ROOT / f"{name}_s{seed}"), "--force")
                 for name, flags in ABLATIONS.items() for seed in SEEDS] if only != "deep" else []
    deep = [_cmd("search", *flags, "--out", str(ROOT / name), "--force")
            for name, flags in DEEP.items()] if only != "ablations" else []
    half = len(ablations) // 2
    lanes = [lane for lane in (ablations[:half], deep + ablations[half:]) if lane]
    procs = [subprocess.Popen(["bash", "-c", " ; ".join(lane)], env=env) for lane in lanes]
    for p in procs:
        p.wait()


def _episodes_to_best(r: dict) -> int | None:
    eps = r["search"]["episodes"]
    return next((e["index"] for e in eps if e["bits"] == r["bits"]), None)


def _result(d: Path) -> dict | None:
    from hirelc.result_file import read_result  # any result.json version

    return read_result(d) if (d / "result.json").exists() else None


def _row(name: str, r: dict | None) -> str:
    if r is None:
        return f"| {name} | (no result: run failed or did not finish) |"
    return (f"| {name} | {r['bits']} | {r['plan/param_weighted_avg_bits']:.2f} | {100 * r['test/fp32_accuracy']:.1f} | "
            f"{100 * r['test/accuracy']:.1f} | {r['size/file_compression']:.2f}x | {r['search/evaluations']} | "
            f"{len(r['search']['episodes'])} | {_episodes_to_best(r)} | {r['search/converged_at_episode']} | "
            f"{r['search/stop_reason']} | {r['run/wall_seconds']:.0f} |")


def _variant_runs() -> dict[str, list[dict | None]]:
    default = HERE / "runs" / "releq_lenet"
    runs = {"lstm_agent (default)": [_result(default / f"releq_s{s}") for s in SEEDS]}
    runs.update({name: [_result(ROOT / f"{name}_s{s}") for s in SEEDS] for name in ABLATIONS})
    return runs


def _aggregate(name: str, results: list[dict | None]) -> str:
    done = [r for r in results if r is not None]
    converged = [r["search/converged_at_episode"] for r in done if r["search/converged_at_episode"] is not None]
    episodes = [len(r["search"]["episodes"]) for r in done]
    firsts = [e for e in (_episodes_to_best(r) for r in done) if e is not None]
    conv = f"{statistics.mean(converged):.0f} ({', '.join(map(str, converged))})" if converged else "-"
    return (f"| {name} | {len(converged)}/{len(results)} | {conv} | {statistics.mean(episodes):.0f} | "
            f"{statistics.median(firsts):.0f} | {statistics.mean(r['search/evaluations'] for r in done):.0f} | "
            f"{statistics.mean(r['plan/param_weighted_avg_bits'] for r in done):.2f} | "
            f"{statistics.mean(100 * r['test/accuracy'] for r in done):.1f} |")


def summarize() -> None:
    header = ("| run | bits | weighted bits | fp32 test | final test | compression | real evals | "
              "episodes | episode best first seen | converged at episode | stop | wall s |\n"
              "|---|---|---|---|---|---|---|---|---|---|---|---|")
    runs = _variant_runs()
    print("Per run (releq_lenet / mnist5k, budget 120):\n")
    print(header)
    for name, results in runs.items():
        for seed, r in zip(SEEDS, results):
            print(_row(f"{name} s{seed}", r))
    print(f"\nPer variant over seeds {list(SEEDS)}:\n")
    print("| variant | converged | episodes to converge: mean (each) | episodes run (mean) | "
          "episode best first seen (median) | real evals (mean) | weighted bits (mean) | final test % (mean) |")
    print("|---|---|---|---|---|---|---|---|")
    for name, results in runs.items():
        if any(r is not None for r in results):
            print(_aggregate(name, results))
    print("\nDeeper networks (seed 0):\n")
    print(header)
    for name in DEEP:
        print(_row(name, _result(ROOT / name)))


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("action", choices=("run", "summarize"))
    parser.add_argument("--only", choices=("ablations", "deep"), help="run one part only")
    args = parser.parse_args()
    run(args.only) if args.action == "run" else summarize()
