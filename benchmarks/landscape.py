"""Enumerated accuracy landscapes (benchmarks/landscapes/*.json): build them from a `hirelc
pareto` run, load them, and replay searches on them through `hirelc.search`.

    python benchmarks/landscape.py build benchmarks/runs/landscape_cnn1d_mnist1d_s0 \\
        benchmarks/landscapes/cnn1d_mnist1d_bits.json     # after the `hirelc pareto` run
    python benchmarks/landscape.py stats cnn1d_mnist1d_bits

A landscape is a complete table plan -> validation accuracy at the search fidelity, with the
inventory of the model (so a replay needs neither the model nor the data), the fp32
validation accuracy (StateAcc's denominator), and per plan its parameter-weighted bits and
its storage bits (`hirelc.cost.total_storage_bits`: kernel codes plus scales). Replaying a
search on it costs a dictionary lookup per "real evaluation":

>>> ls = load_landscape("cnn1d_mnist1d_bits")                       # doctest: +SKIP
>>> result = hirelc.search(ls.layers, ls.evaluate, method="random", bits=ls.bits,
...                        reference_accuracy=ls.reference_accuracy, max_evaluations=200, seed=0)  # doctest: +SKIP
>>> ls.reward(result.plan.bits()) / ls.best_reward()                # doctest: +SKIP

See benchmarks/landscapes/README.md for the regenerating commands.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

from hirelc.cost import param_weighted_avg_bits, total_storage_bits
from hirelc.inventory import Inventory
from hirelc.inventory.spec import LayerSpec
from hirelc.methods.problem import SearchProblem
from hirelc.plan import Plan

HERE = Path(__file__).resolve().parent
LANDSCAPES = HERE / "landscapes"
COLUMNS = ["accuracy", "loss", "logit_mse", "weighted_bits", "storage_bits", "seconds"]
FORMAT = 1


@dataclass(frozen=True)
class Landscape:
    """One enumerated table: `table[bits] = (accuracy, loss, logit_mse, weighted_bits, storage_bits, seconds)`."""

    name: str
    meta: dict[str, Any]
    inventory: Inventory
    bits: tuple[int, ...]
    table: dict[tuple[int, ...], tuple[float, ...]]

    @property
    def layers(self) -> list[LayerSpec]:
        return list(self.inventory)

    @property
    def reference_accuracy(self) -> float:
        """fp32 validation accuracy of the model the landscape was enumerated on."""
        return float(self.meta["fp32_val_accuracy"])

    def column(self, name: str) -> dict[tuple[int, ...], float]:
        i = COLUMNS.index(name)
        return {bits: row[i] for bits, row in self.table.items()}

    def accuracy(self, bits: Any) -> float:
        return self.table[tuple(int(b) for b in bits)][0]

    def evaluate(self, plan: Plan) -> float:
        """The `evaluate(plan)` of `hirelc.search`: the table's validation accuracy."""
        return self.accuracy(plan.bits())

    @cached_property
    def problem(self) -> SearchProblem:
        return SearchProblem(tuple(self.inventory), self.bits, self.reference_accuracy)

    @cached_property
    def rewards(self) -> dict[tuple[int, ...], float]:
        """Seed 000's shaped reward of every plan (what `hirelc.search` selects by, absent a target)."""
        from hirelc.methods.releq.reward import shaped_reward

        p = self.problem
        return {bits: shaped_reward(p.state_acc(row[0]), p.state_q(p.plan(bits)), p.reward.a, p.reward.b,
                                    p.reward.th)
                for bits, row in self.table.items()}

    def reward(self, bits: Any) -> float:
        return self.rewards[tuple(int(b) for b in bits)]

    def best_reward(self) -> float:
        return max(self.rewards.values())

    def near_best(self, within: float = 0.01) -> set[tuple[int, ...]]:
        """Plans whose reward is at least (1 - within) x the best reward."""
        threshold = self.best_reward() * (1 - within)
        return {bits for bits, r in self.rewards.items() if r >= threshold}


def load_landscape(name_or_path: str | Path) -> Landscape:
    """A landscape by name (a file in benchmarks/landscapes/) or path."""
    path = Path(name_or_path)
    if not path.suffix:
        path = LANDSCAPES / f"{name_or_path}.json"
    data = json.loads(path.read_text())
    if data.get("format") != FORMAT or data.get("columns") != COLUMNS:
        raise ValueError(f"{path}: not a format-{FORMAT} landscape with columns {COLUMNS}")
    n = len(data["inventory"]["layers"])
    table = {tuple(row[:n]): tuple(row[n:]) for row in data["rows"]}
    expected = len(data["bits"]) ** n
    if len(table) != expected:
        raise ValueError(f"{path}: {len(table)} plans, expected the full {expected}")
    meta = {k: v for k, v in data.items() if k not in ("rows", "inventory")}
    return Landscape(path.stem, meta, Inventory.from_dict(data["inventory"]), tuple(data["bits"]), table)


def build(run_dir: Path, out: Path) -> None:
    """Write the landscape file of a finished `hirelc pareto` run (its journal holds every plan)."""
    from hirelc.pipeline import JobConfig, prepare

    config = json.loads((run_dir / "config.json").read_text())
    config = {k: v for k, v in config.items() if k in JobConfig.__dataclass_fields__}
    job = JobConfig.from_dict(config)
    prep = prepare(job, progress=False, log=lambda _line: None)  # the cached baseline: no training
    inventory = prep.inventory
    names = [s.name for s in inventory]
    records = [json.loads(line) for line in (run_dir / "journal.jsonl").read_text().splitlines()]
    rows = {}
    for r in records:
        if r.get("kind") != "evaluation" or r.get("status") != "ok":
            continue
        plan = Plan.from_dict(r["plan"])
        bits = tuple(plan[n].bits for n in names)
        rows[bits] = [*bits, r["accuracy"], r["metrics"]["loss"], r["metrics"]["logit_mse"],
                      round(param_weighted_avg_bits(inventory, plan), 6), total_storage_bits(inventory, plan),
                      round(r["seconds"], 3)]
    if len(rows) != len(job.bits) ** len(names):
        raise ValueError(f"{run_dir}: {len(rows)} evaluated plans, expected {len(job.bits) ** len(names)}; "
                         "finish the enumeration first (hirelc pareto ... --resume)")
    meta = {
        "format": FORMAT, "model": job.model, "data": job.data, "split_seed": job.split_seed,
        "finetune_seed": job.seed, "fidelity": job.search_fidelity.key(),
        "finetune_batch_size": job.finetune_batch_size, "finetune_lr": job.finetune_lr,
        "fp32_val_accuracy": prep.evaluator.fp32_accuracy("val"),
        "fp32_test_accuracy": prep.evaluator.fp32_accuracy("test"),
        "split_sizes": prep.data.sizes(), "bits": list(job.bits), "layers": names,
        "torch_threads": 1, "hirelc_commit": _git_commit(),
        "enumeration_seconds": round(sum(r[-1] for r in rows.values()), 1),
        "command": f"hirelc pareto --model {job.model} --data {job.data} --bits {','.join(map(str, job.bits))} "
                   f"--seed {job.seed} --steps {job.search_steps} --out {run_dir.name} (OMP_NUM_THREADS=1)",
        "columns": COLUMNS,
    }
    out.parent.mkdir(parents=True, exist_ok=True)
    # One plan per line: compact, and a diff shows which plans changed.
    body = ",\n".join(json.dumps(row) for _, row in sorted(rows.items()))
    head = json.dumps(meta, indent=1)[:-2]
    out.write_text(f'{head},\n "inventory": {json.dumps(inventory.to_dict())},\n "rows": [\n{body}\n]}}\n')
    print(f"wrote {out} ({len(rows)} plans, {out.stat().st_size:,} bytes)")


def _git_commit() -> str:
    result = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=HERE, capture_output=True, text=True)
    return result.stdout.strip()


def stats(ls: Landscape) -> dict[str, Any]:
    """How much the plan matters: accuracy spread, and how many plans are near the best."""
    acc = sorted(ls.column("accuracy").values())
    best_acc = acc[-1]
    best_bits = max(ls.rewards, key=ls.rewards.__getitem__)
    return {
        "plans": len(acc), "fp32_val_accuracy": ls.reference_accuracy,
        "accuracy_min": acc[0], "accuracy_median": statistics.median(acc), "accuracy_max": best_acc,
        "within_1pt_of_best_accuracy": sum(a >= best_acc - 0.01 for a in acc),
        "best_reward": ls.best_reward(), "best_reward_plan": list(best_bits),
        "best_reward_plan_accuracy": ls.accuracy(best_bits),
        "within_1pct_of_best_reward": len(ls.near_best(0.01)),
        "within_2pct_of_best_reward": len(ls.near_best(0.02)),
        "reward_negative": sum(r < 0 for r in ls.rewards.values()),
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="action", required=True)
    b = sub.add_parser("build", help="write a landscape file from a finished `hirelc pareto` run")
    b.add_argument("run_dir", type=Path)
    b.add_argument("out", type=Path)
    s = sub.add_parser("stats", help="accuracy spread and near-best counts of a landscape")
    s.add_argument("name")
    args = parser.parse_args(argv)
    if args.action == "build":
        build(args.run_dir, args.out)
    else:
        print(json.dumps(stats(load_landscape(args.name)), indent=1))


if __name__ == "__main__":
    sys.exit(main())
