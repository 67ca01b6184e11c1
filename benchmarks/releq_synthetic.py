"""ReLeQ vs random vs uniform on the synthetic sensitive-layer problem, same ledger budget.

The problem (`hirelc.methods.synthetic.sensitive_layer_problem`) has a known best plan,
(3, 5, 3, 3) over the bit set {2, 3, 4, 5, 8}. For each method and seed we report the
best plan, its reward (seed 000 §2.4), whether it is the true optimum, how many real
evaluations had been spent when the best plan was first evaluated, how many were spent
in all, and the wall time.

    python benchmarks/releq_synthetic.py --seeds 3 --budget 300
    python benchmarks/releq_synthetic.py --methods releq --agent mlp    # LSTM ablation
"""

from __future__ import annotations

import argparse
import json
import time
from typing import Any

import torch

from hirelc.methods import search
from hirelc.methods.synthetic import sensitive_layer_problem

OPTIMUM = [3, 5, 3, 3]


def run_one(method: str, seed: int, budget: int, bits: tuple[int, ...], options: dict[str, Any]) -> dict[str, Any]:
    """One search; returns a row of the results table."""
    synthetic = sensitive_layer_problem()
    start = time.perf_counter()
    result = search(
        list(synthetic.layers),
        synthetic.evaluate,
        method=method,
        bits=bits,
        reference_accuracy=synthetic.reference_accuracy,
        max_evaluations=budget,
        seed=seed,
        **(options if method == "releq" else {}),
    )
    return {
        "method": method,
        "seed": seed,
        "plan": result.plan.bits(),
        "reward": round(result.best_reward, 4),
        "optimum": result.plan.bits() == OPTIMUM,
        "evals_to_best": result.evaluations_to_best,
        "evals": result.n_evaluations,
        "episodes": len(result.episodes),
        "stop": result.stop_reason,
        "seconds": round(time.perf_counter() - start, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--methods", nargs="+", default=["releq", "random", "uniform"])
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--budget", type=int, default=300)
    parser.add_argument("--bits", type=int, nargs="+", default=[2, 3, 4, 5, 8])
    parser.add_argument("--agent", default="lstm", choices=["lstm", "mlp"])
    parser.add_argument("--json", action="store_true", help="one JSON object per line instead of a table")
    args = parser.parse_args()
    torch.set_num_threads(1)
    header = "method   seed  plan            reward  optimum  evals_to_best  evals  episodes  stop         s"
    if not args.json:
        print(header)
    for method in args.methods:
        for seed in range(args.seeds):
            row = run_one(method, seed, args.budget, tuple(args.bits), {"agent": args.agent})
            if args.json:
                print(json.dumps(row), flush=True)
            else:
                print(
                    f"{row['method']:<8} {row['seed']:>4}  {str(row['plan']):<14} {row['reward']:>7}  "
                    f"{str(row['optimum']):<7}  {str(row['evals_to_best']):>13}  {row['evals']:>5}  "
                    f"{row['episodes']:>8}  {row['stop']:<11} {row['seconds']:>5}",
                    flush=True,
                )


if __name__ == "__main__":
    main()
