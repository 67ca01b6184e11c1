"""CPU time and wall time of one fine-tune per torch thread count and OpenMP wait policy,
on a machine kept busy by one CPU-bound competitor: the evidence behind hirelc's thread
default (hirelc.threads).

    HIRELC_CACHE_DIR=... python benchmarks/threads_busy.py [--steps 300] [--busy 1] [--reverse]

Each configuration runs in a fresh child process (OpenMP reads OMP_WAIT_POLICY once, when
torch starts), fine-tunes releq_lenet / mnist5k's 4-bit plan for `--steps` Adam steps
(batch 64, no cache) and reports its own user+system CPU time (getrusage) and wall time.
`--busy` CPU-bound `while True` loops run for the whole measurement and are then killed.
Prints a markdown table.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys

CHILD = r"""
import json, resource, sys, time, torch
threads, steps = int(sys.argv[1]), int(sys.argv[2])
torch.set_num_threads(threads)
from hirelc.evaluate.evaluator import Evaluator
from hirelc.evaluate.fidelity import Fidelity
from hirelc.pipeline import JobConfig, prepare
from hirelc.plan import Plan
prep = prepare(JobConfig(), progress=False, log=lambda _l: None)
plan = Plan.from_bits([s.name for s in prep.inventory], [4] * len(prep.inventory))
ev = Evaluator(prep.model, prep.data, seed=0, batch_size=64)
r0 = resource.getrusage(resource.RUSAGE_SELF); w0 = time.perf_counter()
result = ev.evaluate(plan, Fidelity.short(steps), split="val")
r1 = resource.getrusage(resource.RUSAGE_SELF); w1 = time.perf_counter()
cpu = (r1.ru_utime - r0.ru_utime) + (r1.ru_stime - r0.ru_stime)
print(json.dumps({"cpu_s": cpu, "wall_s": w1 - w0, "accuracy": result.accuracy,
                  "threads": torch.get_num_threads()}))
"""

CONFIGS = [(1, None), (2, None), (2, "PASSIVE"), (1, "PASSIVE")]


def measure(threads: int, policy: str | None, steps: int) -> dict[str, float]:
    env = {k: v for k, v in os.environ.items() if k not in ("OMP_WAIT_POLICY", "OMP_NUM_THREADS")}
    env["HIRELC_THREADS_AUTO"] = "0"  # measure the raw runtime, not hirelc's own default
    if policy:
        env["OMP_WAIT_POLICY"] = policy
    done = subprocess.run([sys.executable, "-c", CHILD, str(threads), str(steps)], env=env, check=True,
                          capture_output=True, text=True, timeout=900)
    return json.loads(done.stdout.strip().splitlines()[-1])


def main(steps: int, busy: int, reverse: bool = False) -> None:
    hogs = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(busy)]
    try:
        print(f"{steps} fine-tune steps, batch 64, {busy} busy loop(s), {os.cpu_count()} CPUs, "
              f"load average {os.getloadavg()[0]:.2f} at start\n")
        print("| torch threads | OMP_WAIT_POLICY | CPU time (s) | wall time (s) | CPU / wall |")
        print("|---|---|---|---|---|")
        for threads, policy in (CONFIGS[::-1] if reverse else CONFIGS):
            r = measure(threads, policy, steps)
            print(f"| {threads} | {policy or 'unset (runtime default)'} | {r['cpu_s']:.1f} | {r['wall_s']:.1f} | "
                  f"{r['cpu_s'] / r['wall_s']:.2f} |", flush=True)
    finally:
        for hog in hogs:
            hog.kill()
            hog.wait()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--busy", type=int, default=1)
    parser.add_argument("--reverse", action="store_true", help="measure the configurations in reverse order")
    args = parser.parse_args()
    main(args.steps, args.busy, args.reverse)
