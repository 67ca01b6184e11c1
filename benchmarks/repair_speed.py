"""Seconds per budget repair of uniformly random plans: the cost of HiReLC's random pool and of
random search's proposals (issue 9: on vit_tiny the pool's repairs were half of a search).

    python benchmarks/repair_speed.py [--model vit_tiny] [--data mnist5k] [--target 12] [--plans 30]

Builds the job's search problem (fp32 baseline from the cache, measured damage and size
models) exactly as `hirelc search` does, repairs `--plans` plans drawn with
`numpy.random.default_rng(0)`, and prints the time per plan and a digest of the repaired
plans (equal digests: the same plans, so a faster repair changed nothing it returns).
"""

from __future__ import annotations

import argparse
import hashlib
import time

import numpy as np


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default="vit_tiny")
    p.add_argument("--data", default="mnist5k")
    p.add_argument("--target", type=float, default=12.0, help="--target-compression")
    p.add_argument("--plans", type=int, default=30)
    a = p.parse_args()

    import torch

    from hirelc.methods.api import build_problem
    from hirelc.pipeline import JobConfig, prepare, problem_inputs

    torch.set_num_threads(1)
    config = JobConfig(model=a.model, data=a.data, method="random", target_compression=a.target)
    prep = prepare(config, progress=False, log=lambda _m: None)
    problem = build_problem(**problem_inputs(config, prep))
    layers = problem.layers
    rng = np.random.default_rng(0)
    plans = [problem.space.sample(rng) for _ in range(a.plans)]
    start = time.perf_counter()
    repaired = [problem.candidate(plan) for plan in plans]
    seconds = time.perf_counter() - start
    digest = hashlib.sha1("".join(plan.content_hash() for plan in repaired).encode()).hexdigest()[:12]
    print(f"{a.model} / {a.data} at {a.target:g}x, {len(layers)} kernels: {a.plans} random plans repaired in "
          f"{seconds:.1f} s, {seconds / a.plans:.3f} s each (1 thread); digest of the repaired plans {digest}")


if __name__ == "__main__":
    main()
