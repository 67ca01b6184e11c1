"""Final accuracy of finished cnn1d / mnist1d runs on a large fresh test set (issue 9).

The methods of the joint-search table end within a few tenths of a point of each other on
the 1,000-signal test split, whose standard error near 93 % is about 0.8 point. MNIST-1D is
generated, so fresh signals from the same distribution are free: this script generates
`--seeds` more datasets with other generator seeds (5,000 signals each, the package's own
recipe; never the seed of the job's data), normalises them with the job's training
statistics, and measures each run's written packed model (`model.hirelc`) on all of them.

    python benchmarks/fresh_test.py benchmarks/runs/joint/cnn1d/greedy_s0 [...] [--seeds 4]

Prints one JSON line per run: accuracy on the fresh signals, their count, and the run's own
test accuracy. Test data only: nothing here feeds a search or a choice.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

FIRST_SEED = 1000  # the job's data uses mnist1d's default seed 42


def fresh_signals(n_seeds: int, mean: float, std: float):
    import numpy as np
    import torch

    from hirelc.data.embedded import generate_mnist1d

    xs, ys = [], []
    for seed in range(FIRST_SEED, FIRST_SEED + n_seeds):
        x, y, x_test, y_test = generate_mnist1d(seed)
        xs += [x, x_test]
        ys += [y, y_test]
    x = (torch.from_numpy(np.concatenate(xs)) - mean) / std
    return x, torch.from_numpy(np.concatenate(ys))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("runs", nargs="+", type=Path)
    p.add_argument("--seeds", type=int, default=4, help="fresh datasets of 5,000 signals each")
    a = p.parse_args()

    import torch
    from torch.utils.data import TensorDataset

    from hirelc.data import load_dataset
    from hirelc.export.packed import load_packed
    from hirelc.pipeline import JobConfig, load_baseline
    from hirelc.result_file import read_result
    from hirelc.train import evaluate_accuracy

    torch.set_num_threads(1)
    signals = None
    for run in a.runs:
        if not (run / "model.hirelc").exists():
            sys.exit(f"error: {run} has no model.hirelc: not a finished hirelc search run")
        config = JobConfig.from_dict(json.loads((run / "config.json").read_text()))
        if config.data != "mnist1d":
            sys.exit(f"error: {run} is a {config.data} run; fresh test data can be generated for mnist1d only")
        data = load_dataset(config.data, seed=config.split_seed, root=config.data_root)
        model, _ = load_baseline(config, data, progress=False)  # the job's cached fp32 baseline
        if signals is None:
            signals = TensorDataset(*fresh_signals(a.seeds, data.mean[0], data.std[0]))
        compressed = load_packed(run / "model.hirelc", like=model)
        print(json.dumps({"run": str(run), "fresh_signals": len(signals),
                          "fresh_accuracy": round(evaluate_accuracy(compressed, signals)[0], 5),
                          "fp32_fresh_accuracy": round(evaluate_accuracy(model, signals)[0], 5),
                          "test_accuracy": read_result(run)["test/accuracy"]}), flush=True)


if __name__ == "__main__":
    main()
