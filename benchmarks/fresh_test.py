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

    from hirelc.data.embedded import _generate_mnist1d

    xs, ys = [], []
    for seed in range(FIRST_SEED, FIRST_SEED + n_seeds):
        x, y, x_test, y_test = _generate_mnist1d(seed)
        xs += [x, x_test]
        ys += [y, y_test]
    x = (torch.from_numpy(np.concatenate(xs)) - mean) / std
    return x, torch.from_numpy(np.concatenate(ys))


def accuracy(model, x, y, batch: int = 1000) -> float:
    import torch

    model.eval()
    with torch.no_grad():
        correct = sum(int((model(x[i:i + batch]).argmax(1) == y[i:i + batch]).sum()) for i in range(0, len(y), batch))
    return correct / len(y)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("runs", nargs="+", type=Path)
    p.add_argument("--seeds", type=int, default=4, help="fresh datasets of 5,000 signals each")
    a = p.parse_args()

    import torch

    from hirelc.export.packed import load_packed
    from hirelc.pipeline import JobConfig, prepare
    from hirelc.result_file import read_result

    torch.set_num_threads(1)
    signals = None
    for run in a.runs:
        if not (run / "model.hirelc").exists():
            sys.exit(f"error: {run} has no model.hirelc: not a finished hirelc search run")
        config = JobConfig.from_dict(json.loads((run / "config.json").read_text()))
        if config.data != "mnist1d":
            sys.exit(f"error: {run} is a {config.data} run; fresh test data can be generated for mnist1d only")
        prep = prepare(config, progress=False, log=lambda _m: None)
        if signals is None:
            signals = fresh_signals(a.seeds, prep.data.mean[0], prep.data.std[0])
        compressed = load_packed(run / "model.hirelc", like=prep.model)
        result = read_result(run)
        print(json.dumps({"run": str(run), "fresh_signals": len(signals[1]),
                          "fresh_accuracy": round(accuracy(compressed, *signals), 5),
                          "fp32_fresh_accuracy": round(accuracy(prep.model, *signals), 5),
                          "test_accuracy": result["test/accuracy"]}), flush=True)


if __name__ == "__main__":
    main()
