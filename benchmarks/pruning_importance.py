"""Which channel ranking should structured pruning use? Real validation accuracy at the search
fidelity (20 fine-tune steps; mean over fine-tune seeds) of the same plans pruned by each importance:

    python benchmarks/pruning_importance.py [--model cnn1d --data mnist1d] [--seeds 0 1 2]

- l1: weight L1 norm of the rows; obd: 1/2 sum F w^2 of the rows (batch-gradient Fisher, the
  job's importance). An "activation" column (the activation Fisher of each channel: a mask on
  the channel at its consumers' inputs, per-sample gradients) was measured with this script at
  commit 7dcd60c, where `hirelc.evaluate.channel_fisher` existed; it ranked worse than obd and
  was removed (benchmarks/RESULTS.md, "Damage model").

Plans: at 8 bits (int_sym per channel), each prunable kernel alone at keep .5 and .25, all of
them at .5 and at .25; and all at 4 bits with keep .5. No evaluation cache (every number is a
fresh fine-tune + validation pass), 1 torch thread.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path


def main(model_name: str, data_name: str, seeds: list[int]) -> None:
    import torch

    from hirelc.data import load_dataset
    from hirelc.evaluate.evaluator import Evaluator
    from hirelc.evaluate.fidelity import Fidelity
    from hirelc.evaluate.sensitivity import fisher_sensitivity, kernels_from_specs
    from hirelc.inventory import inspect
    from hirelc.pipeline import JobConfig, load_baseline
    from hirelc.plan import LayerConfig, Plan

    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from damage_rank import _obd_importance

    torch.set_num_threads(1)
    config = JobConfig(method="random", model=model_name, data=data_name)
    data = load_dataset(data_name, seed=0)
    model, _ = load_baseline(config, data, progress=False)
    inv = inspect(model, data.example_input())
    specs = list(inv)
    kernels, blocks = kernels_from_specs(specs)
    sens = fisher_sensitivity(model, data, kernels, blocks=blocks)
    importances = {"l1": "l1", "obd": _obd_importance(inv.groups, sens.per_channel_saliency)}
    prunable = [s.name for s in specs if s.prunable]
    base = {s.name: LayerConfig(8) for s in specs}
    plans = {f"{n}@{r}": Plan(base | {n: LayerConfig(8, keep_ratio=r)}) for n in prunable for r in (0.5, 0.25)}
    plans |= {f"all@{r}": Plan(base | {n: LayerConfig(8, keep_ratio=r) for n in prunable}) for r in (0.5, 0.25)}
    plans["all 4b @0.5"] = Plan({s.name: LayerConfig(4, keep_ratio=0.5 if s.prunable else 1.0) for s in specs})
    fidelity = Fidelity.short(config.search_steps)
    results: dict[str, dict[str, float]] = {}
    for name, imp in importances.items():
        start = time.perf_counter()
        results[name] = {p: 0.0 for p in plans}
        for seed in seeds:  # the fine-tune seed
            ev = Evaluator(model, data, seed=seed, batch_size=config.finetune_batch_size,
                           finetune_lr=config.finetune_lr, importance=imp)
            for p, plan in plans.items():
                results[name][p] += ev.evaluate(plan, fidelity, split="val").accuracy / len(seeds)
        print(f"{name}: {time.perf_counter() - start:.0f} s", flush=True)
    print("| plan | " + " | ".join(importances) + " |")
    print("|---|" + "---|" * len(importances))
    for p in plans:
        print(f"| {p} | " + " | ".join(f"{100 * results[n][p]:.1f}" for n in importances) + " |")
    print("| mean | " + " | ".join(f"{100 * statistics.mean(results[n].values()):.1f}" for n in importances) + " |")


if __name__ == "__main__":
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default="cnn1d")
    p.add_argument("--data", default="mnist1d")
    p.add_argument("--seeds", type=int, nargs="+", default=[0], help="fine-tune seeds (accuracy averaged)")
    a = p.parse_args()
    main(a.model, a.data, a.seeds)
