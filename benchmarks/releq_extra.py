"""ReLeQ ablations on releq_lenet / mnist5k (seed 000 §2.3-2.5: LSTM vs MLP agent, reward
forms, restricted action space) and end-to-end runs on resnet20 and vgg11.

    python benchmarks/releq_extra.py run        # two lanes in parallel (2 cores)
    python benchmarks/releq_extra.py summarize  # markdown for benchmarks/RESULTS.md

Ablations use seed 0 and the same budget, fidelity and evaluation cache as
benchmarks/releq_lenet.py (set the same HIRELC_CACHE_DIR), so plans evaluated before are
served from the disk cache; each run still counts its own real evaluations in its ledger.
"""

from __future__ import annotations

import argparse
import json
import os
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
    "resnet20": ["--model", "resnet20", "--data", "mnist5k", "--bits", "2,3,4,5,8", "--budget", "30", "--steps", "10",
                 "--final-epochs", "2", "--quiet"],
    "vgg11": ["--model", "vgg11", "--data", "mnist5k", "--bits", "2,3,4,5,8", "--budget", "40", "--steps", "10",
              "--final-epochs", "2", "--quiet"],
}


def _cmd(*args: str) -> str:
    return " ".join(f"'{a}'" for a in (sys.executable, "-m", "hirelc.cli", *args))


def run() -> None:
    env = dict(os.environ, OMP_NUM_THREADS="1")
    env.setdefault("HIRELC_CACHE_DIR", str(HERE / ".cache"))
    ablations = [_cmd("search", *LENET, *flags, "--out", str(ROOT / name), "--force") for name, flags in ABLATIONS.items()]
    deep = [_cmd("search", *flags, "--out", str(ROOT / name), "--force") for name, flags in DEEP.items()]
    procs = [subprocess.Popen(["bash", "-c", " ; ".join(lane)], env=env) for lane in (ablations, deep)]
    for p in procs:
        p.wait()


def _episodes_to_best(r: dict) -> int | None:
    eps = r["search"]["episodes"]
    return next((e["index"] for e in eps if e["bits"] == r["bits"]), None)


def summarize() -> None:
    reference = HERE / "runs" / "releq_lenet" / "releq_s0"
    rows = [("lstm_agent (default)", reference)] + [(n, ROOT / n) for n in ABLATIONS] + [(n, ROOT / n) for n in DEEP]
    print("| run | bits | weighted bits | fp32 test | final test | compression | real evals | "
          "episodes | episode best first seen | converged at episode | stop | wall s |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|")
    for name, d in rows:
        path = d / "result.json"
        if not path.exists():
            print(f"| {name} | (no result: run failed or did not finish) |")
            continue
        r = json.loads(path.read_text())
        print(f"| {name} | {r['bits']} | {r['param_weighted_avg_bits']:.2f} | {100 * r['baseline_test_accuracy']:.1f} | "
              f"{100 * r['final_test_accuracy']:.1f} | {r['compression_ratio']:.2f}x | {r['real_evaluations']} | "
              f"{len(r['search']['episodes'])} | {_episodes_to_best(r)} | {r['converged_at_episode']} | "
              f"{r['stop_reason']} | {r['wall_seconds']:.0f} |")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("action", choices=("run", "summarize"))
    {"run": run, "summarize": summarize}[parser.parse_args().action]()
