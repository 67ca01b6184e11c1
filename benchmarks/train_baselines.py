"""Train the zoo baselines on mnist5k with their default recipes; print test accuracy and wall time.

    python benchmarks/train_baselines.py                      # lenet5 releq_lenet resnet20 vit_tiny
    python benchmarks/train_baselines.py --models resnet20 --seeds 0 1 2 --json results.json
    python benchmarks/train_baselines.py --models cnn1d --dataset mnist1d --seeds 0 1 2

Targets on a 2-core CPU (the reference machine): LeNet-5 and the ReLeQ LeNet in under a
minute each; ResNet-20 and the small ViT at >= 97% test accuracy in under 10 minutes each;
the 1-D CNN (`cnn1d`, on `--dataset mnist1d`) at >= 90% in under 2 minutes.
Wall time is measured with time.perf_counter around the training loop (per-epoch
validation included, data loading and final test evaluation excluded); the machine's
1-minute load average is printed with it, because other processes slow training down.
The split is mnist5k's default: 3,000 train / 1,000 val / 1,000 test (one test image =
0.1 point).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys

import torch
from rich.console import Console
from rich.table import Table

from hirelc.data import load_dataset
from hirelc.train import TrainInfo, train_baseline
from hirelc.zoo import create_model

DEFAULT_MODELS = ("lenet5", "releq_lenet", "resnet20", "vit_tiny")
# model -> (minimum test accuracy or None, maximum wall time in seconds)
TARGETS = {
    "lenet5": (None, 60.0), "releq_lenet": (None, 60.0), "resnet20": (0.97, 600.0), "vit_tiny": (0.97, 600.0),
    "cnn1d": (0.90, 120.0),  # on mnist1d
}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--models", nargs="+", default=list(DEFAULT_MODELS))
    parser.add_argument("--dataset", default="mnist5k")
    parser.add_argument("--seeds", nargs="+", type=int, default=[0],
                        help="training seeds (the split seed stays 0)")
    parser.add_argument("--threads", type=int, default=1,
                        help="torch CPU threads (default 1: on a shared 2-core machine, 2 threads "
                             "contend with other processes and run several times slower)")
    parser.add_argument("--device", default="cpu", help="auto | cpu | cuda")
    parser.add_argument("--use-cache", action="store_true",
                        help="reuse cached checkpoints (default: retrain and measure)")
    parser.add_argument("--json", help="also write the results to this JSON file")
    parser.add_argument("--check", action="store_true", help="exit with status 1 when a target is missed")
    return parser.parse_args(argv)


def machine() -> dict[str, object]:
    """What the numbers were measured on."""
    return {
        "cpu_count": os.cpu_count(), "torch_threads": torch.get_num_threads(), "torch": torch.__version__,
        "python": platform.python_version(), "platform": platform.platform(),
        "load_average_1m": os.getloadavg()[0] if hasattr(os, "getloadavg") else None,
    }


def meets_target(name: str, info: TrainInfo) -> bool | None:
    if name not in TARGETS:
        return None
    min_acc, max_time = TARGETS[name]
    return (min_acc is None or info.test_accuracy >= min_acc) and info.train_time_s <= max_time


def run(args: argparse.Namespace, console: Console) -> list[dict[str, object]]:
    data = load_dataset(args.dataset, seed=0)
    console.print(f"data: {data.describe()}")
    rows = []
    for name in args.models:
        model = create_model(name, data.in_channels, data.num_classes, data.image_size)
        n_params = sum(p.numel() for p in model.parameters())
        for seed in args.seeds:
            _, info = train_baseline(name, data, seed=seed, device=args.device, cache=args.use_cache)
            console.print(info.summary())
            met = meets_target(name, info)
            rows.append({"model": name, "params": n_params, "seed": seed, "target_met": met, **info.to_dict()})
    return rows


def print_table(rows: list[dict[str, object]], console: Console) -> None:
    table = Table(title="fp32 baselines (test accuracy on the held-out test split)")
    for column in ("model", "params", "seeds", "test acc % (mean ± sd)", "val acc %", "epochs",
                   "wall time s (mean)", "s / epoch", "load avg 1m", "target"):
        table.add_column(column, justify="right" if column != "model" else "left")
    for name in dict.fromkeys(r["model"] for r in rows):
        runs = [r for r in rows if r["model"] == name]
        acc = [100 * r["test_accuracy"] for r in runs]
        times = [r["train_time_s"] for r in runs]
        epochs = runs[0]["recipe"]["epochs"]
        spread = f" ± {statistics.stdev(acc):.2f}" if len(acc) > 1 else ""
        met = [r["target_met"] for r in runs]
        table.add_row(
            name, f"{runs[0]['params']:,}", str(len(runs)), f"{statistics.mean(acc):.2f}{spread}",
            f"{statistics.mean(100 * r['val_accuracy'] for r in runs):.2f}", str(epochs),
            f"{statistics.mean(times):.1f}", f"{statistics.mean(times) / epochs:.1f}",
            " / ".join(f"{a:.1f}-{b:.1f}" for a, b in (r["load_average"] for r in runs)),
            "-" if met[0] is None else ("yes" if all(met) else "NO"),
        )
    console.print(table)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    console = Console(width=None if sys.stdout.isatty() else 150)  # logs: keep the table readable
    env = machine()
    console.print(f"machine: {env}")
    rows = run(args, console)
    print_table(rows, console)
    if hasattr(os, "getloadavg"):
        console.print(f"load average (1 min) at the end: {os.getloadavg()[0]:.2f}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"machine": env, "dataset": args.dataset, "runs": rows}, f, indent=2)
    return 1 if args.check and any(r["target_met"] is False for r in rows) else 0


if __name__ == "__main__":
    sys.exit(main())
