"""How much a short search fine-tune depends on its seed, per learning rate: the evidence
behind the default `finetune_lr` of 3e-4 (hirelc.evaluate.evaluator.DEFAULT_FINETUNE_LR).

    HIRELC_CACHE_DIR=... python benchmarks/finetune_noise.py [--steps 20] [--seeds 5]

releq_lenet / mnist5k (split seed 0), validation accuracy of a few plans after `--steps`
Adam steps (batch 64, constant lr) at fine-tune seeds 0..seeds-1; one torch thread.
Prints a markdown table: per lr and plan, every seed's accuracy, the mean and the sd.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from hirelc.evaluate.evaluator import Evaluator
from hirelc.evaluate.fidelity import Fidelity
from hirelc.pipeline import JobConfig, prepare
from hirelc.plan import Plan

PLANS = ([2, 2, 2, 2], [3, 2, 2, 2], [2, 2, 2, 3], [2, 3, 2, 3], [8, 2, 2, 3], [3, 3, 3, 3], [4, 4, 4, 4], [8, 8, 8, 8])
LEARNING_RATES = (1e-3, 3e-4, 1e-4)


def main(steps: int, n_seeds: int) -> None:
    torch.set_num_threads(1)
    config = JobConfig()
    prep = prepare(config, progress=False, log=lambda _line: None)
    names = [s.name for s in prep.inventory]
    print(f"fp32 val accuracy {100 * prep.evaluator.fp32_accuracy('val'):.1f} %; {steps} steps, "
          f"batch {config.finetune_batch_size}, seeds 0..{n_seeds - 1}\n")
    print("| lr | plan | no fine-tune | accuracy per seed (%) | mean | sd |")
    print("|---|---|---|---|---|---|")
    start = time.perf_counter()
    for lr in LEARNING_RATES:
        evaluators = [Evaluator(prep.model, prep.data, seed=s, batch_size=config.finetune_batch_size, finetune_lr=lr)
                      for s in range(n_seeds)]
        for bits in PLANS:
            plan = Plan.from_bits(names, bits)
            before = evaluators[0].evaluate(plan).accuracy
            accs = [100 * ev.evaluate(plan, Fidelity.short(steps)).accuracy for ev in evaluators]
            print(f"| {lr:g} | {bits} | {100 * before:.1f} | {' '.join(f'{a:.1f}' for a in accs)} | "
                  f"{statistics.mean(accs):.2f} | {statistics.stdev(accs):.2f} |")
    print(f"\nwall time {time.perf_counter() - start:.0f} s")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--seeds", type=int, default=5)
    args = parser.parse_args()
    main(args.steps, args.seeds)
