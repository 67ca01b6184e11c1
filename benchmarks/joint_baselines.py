"""Joint-space searches at a size target, equal budgets, 3 seeds (issues 8 and 9).

    python benchmarks/joint_baselines.py run [--cases resnet20 cnn1d vit_tiny] [--methods ...] [--seeds 0 1 2] [--finalists K]
        [--option KEY=VALUE ...]   # a method option, e.g. hirelc's ablations: --option flat=true
    python benchmarks/joint_baselines.py verify     # every journaled candidate meets the target
    python benchmarks/joint_baselines.py summarize  # markdown for benchmarks/RESULTS.md
    python benchmarks/joint_baselines.py efficiency # evaluations to the best baseline's accuracy
    python benchmarks/joint_baselines.py rho        # HiReLC's surrogate rho per cycle

Every run is a `hirelc search` job (validation data for the search, held-out test data for
the final number) in its own run directory under benchmarks/runs/joint/; runs that already
hold a result.json are skipped, so `run` resumes. Two lanes share the 2 cores, 1 torch
thread each. `releq` searches bits only and cannot reach most targets; it runs without a
target, for reference (its seed-000 reward decides), as the issue asks.

`verify` does not trust the searches: it rebuilds each job's fp32 model and inventory and
recomputes the packed-file storage (`storage_bytes_model`) of every journaled plan, and
reads the data section of the written packed file.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent / "runs" / "joint"
CASES = {
    # name: (model, data, target compression, search fine-tune steps, final epochs)
    "resnet20": ("resnet20", "mnist5k", 16, 10, 2),
    "cnn1d": ("cnn1d", "mnist1d", 16, 20, 4),
    "vit_tiny": ("vit_tiny", "mnist5k", 12, 10, 2),
}
METHODS = ("uniform", "random", "greedy", "tpe", "releq")
BUDGET = 60


def _cmd(*args: str) -> list[str]:
    return [sys.executable, "-m", "hirelc.cli", *args]


def run_label(method: str, options: list[str]) -> str:
    """The method's name in run directories and tables: its options appended, `=true` dropped.

    >>> run_label("hirelc", ["flat=true", "lla_steps=64"])
    'hirelc-flat-lla_steps=64'
    """
    return "-".join([method, *(o.removesuffix("=true") for o in options)])


def job(case: str, method: str, seed: int, budget: int, finalists: int = 1,
        options: list[str] = ()) -> tuple[Path, list[str]]:
    """A run's directory (method_s0, method_f3_s0 with 3 finalists, hirelc-flat_s0 with an
    option) and its command."""
    model, data, target, steps, epochs = CASES[case]
    label = run_label(method, list(options))
    out = ROOT / case / (f"{label}_s{seed}" if finalists == 1 else f"{label}_f{finalists}_s{seed}")
    args = ["search", "--model", model, "--data", data, "--method", method, "--seed", str(seed),
            "--budget", str(budget), "--steps", str(steps), "--final-epochs", str(epochs), "--out", str(out),
            "--finalists", str(finalists), "--force", "--quiet", "--no-report"]
    args += [a for o in options for a in ("--option", o)]
    if method != "releq":
        args += ["--target-compression", str(target)]
    return out, _cmd(*args)


def run(cases: list[str], methods: list[str], seeds: list[int], budget: int, finalists: int = 1,
        options: list[str] = ()) -> None:
    env = dict(os.environ, OMP_NUM_THREADS="1")
    env.setdefault("HIRELC_CACHE_DIR", str(Path(__file__).resolve().parent / ".cache"))
    for case in cases:  # train each baseline once before the lanes start
        model, data = CASES[case][:2]
        subprocess.run(_cmd("train", "--model", model, "--data", data, "--quiet"), env=env, check=True)
    todo = [job(c, m, s, budget, finalists, options) for c in cases for s in seeds for m in methods]
    todo = [cmd for out, cmd in todo if not (out / "result.json").exists()]
    lanes = [todo[0::2], todo[1::2]]
    scripts = [" ; ".join(" ".join(f"'{a}'" for a in c) for c in lane) for lane in lanes if lane]
    start = time.perf_counter()
    procs = [subprocess.Popen(["bash", "-c", s], env=env) for s in scripts]
    codes = [p.wait() for p in procs]
    print(f"{len(todo)} runs in {time.perf_counter() - start:.0f} s; lane exit codes {codes}")


def _runs() -> list[tuple[str, str, int, Path]]:
    found = []
    for case in CASES:
        for d in sorted((ROOT / case).glob("*_s*")):
            if (d / "result.json").exists():
                method, seed = d.name.rsplit("_s", 1)
                found.append((case, method, int(seed), d))
    return found


def verify() -> bool:
    from hirelc.export.packed import read_layout, storage_bytes_model
    from hirelc.pipeline import JobConfig, prepare
    from hirelc.plan import Plan
    from hirelc.result_file import read_result

    ok = True
    prepared: dict[str, object] = {}
    for case, method, seed, d in _runs():
        result = read_result(d)  # any result.json version
        config = JobConfig.from_dict(json.loads((d / "config.json").read_text()))
        key = f"{config.model}/{config.data}/{config.split_seed}"
        if key not in prepared:
            prepared[key] = prepare(JobConfig(model=config.model, data=config.data, split_seed=config.split_seed),
                                    progress=False, log=lambda _m: None)
        prep = prepared[key]
        records = journal_evaluations(d)
        sizes = [storage_bytes_model(prep.model, Plan.from_dict(r["plan"]), inventory=prep.inventory) for r in records]
        budget = (result.get("target") or {}).get("max_bytes")
        data_bytes = read_layout(d / "model.hirelc").data_bytes
        model_bytes = storage_bytes_model(prep.model, Plan.from_dict(result["plan"]), inventory=prep.inventory)
        all_met = budget is None or all(s <= budget for s in sizes)
        checks = {"every candidate meets the target": all_met, "file data == storage model": data_bytes == model_bytes,
                  "file meets the target": budget is None or data_bytes <= budget}
        ok &= all(checks.values())
        status = "PASS" if all(checks.values()) else "FAIL"
        print(f"{status} {case} {method} s{seed}: {len(records)} candidates, largest {max(sizes):,} B, "
              f"budget {budget if budget is None else f'{budget:,}'} B, file data {data_bytes:,} B vs model "
              f"{model_bytes:,} B; " + ", ".join(f"{k}: {v}" for k, v in checks.items()))
    return ok


def _mean_sd(values: list[float]) -> str:
    if not values:
        return "-"
    sd = statistics.stdev(values) if len(values) > 1 else 0.0
    return f"{statistics.mean(values):.2f} ± {sd:.2f}"


def summarize() -> None:
    from hirelc.result_file import read_result

    rows: dict[tuple[str, str], list[dict]] = {}
    for case, method, seed, d in _runs():
        rows.setdefault((case, method), []).append(read_result(d))  # old run dirs too
    for case in CASES:
        model, data, target, steps, epochs = CASES[case]
        print(f"\n### {model} / {data}, target {target}x, budget {BUDGET} real evaluations\n")
        print(f"Search fidelity {steps} fine-tune steps on validation data; final fine-tune {epochs} epochs; "
              "test accuracy on the held-out split; val %: the kept plan's validation accuracy at the search "
              "fidelity. Mean ± sd over seeds.\n")
        print("| method | seeds | fp32 test % | compressed test % | loss (pt) | val % of the kept plan | compression vs "
              "fp32 tensors (packed data) | file vs .pt | target met (file) | real evals | wall s |")
        print("|---|---|---|---|---|---|---|---|---|---|---|")
        labels = {m for c, m in rows if c == case}
        for method in [*METHODS, "hirelc", *sorted(labels - {*METHODS, "hirelc"})]:
            rs = rows.get((case, method))
            if not rs:
                continue
            size = [r["size/fp32_tensor_bytes"] / r["size/packed_data_bytes"] for r in rs]
            met = [r.get("size/target_met") for r in rs]
            print(f"| {method} | {len(rs)} | {_mean_sd([100 * r['test/fp32_accuracy'] for r in rs])} | "
                  f"{_mean_sd([100 * r['test/accuracy'] for r in rs])} | "
                  f"{_mean_sd([r['test/accuracy_drop_points'] for r in rs])} | "
                  f"{_mean_sd([100 * r['val/accuracy'] for r in rs if r.get('val/accuracy') is not None])} | "
                  f"{_mean_sd(size)}x | "
                  f"{_mean_sd([r['size/file_compression'] for r in rs])}x | "
                  f"{'n/a (no target)' if met[0] is None else f'{sum(bool(m) for m in met)}/{len(met)}'} | "
                  f"{_mean_sd([r['search/evaluations'] for r in rs])} | {_mean_sd([r['run/wall_seconds'] for r in rs])} |")


def journal_evaluations(run_dir: Path) -> list[dict]:
    """The run's journaled real evaluations, in the order the search made them (by index:
    parallel workers journal results as they arrive). Also used by surrogate_ceiling.py."""
    from hirelc.durable import Journal
    from hirelc.methods.ledger import RECORD_KIND
    from hirelc.rundir import JOURNAL_FILE

    records = Journal(run_dir / JOURNAL_FILE).records()
    return sorted((r for r in records if r.get("kind") == RECORD_KIND), key=lambda r: r["index"])


def evaluations_to_reach(accuracies: list[float], threshold: float) -> int | None:
    """1-based count of evaluations until the first accuracy >= threshold, None if never.

    >>> evaluations_to_reach([0.5, 0.7, 0.9], 0.7), evaluations_to_reach([0.5], 0.7)
    (2, None)
    """
    return next((i + 1 for i, a in enumerate(accuracies) if a >= threshold), None)


def efficiency(baselines: tuple[str, ...] = ("uniform", "random", "greedy", "tpe")) -> None:
    """Issue 9: real evaluations each method needs to first evaluate a plan as good (on
    validation, at the search fidelity) as the best `baselines`' chosen plan of the same seed;
    a miss counts as budget + 1. Every candidate meets the target (`verify`). HiReLC's first
    evaluation is its Fisher prior, greedy's plan: wherever greedy leads, HiReLC matches it at
    evaluation 1, so `--baselines uniform random tpe` measures the search itself."""
    journals = {(c, m, s): [r["accuracy"] for r in journal_evaluations(d)] for c, m, s, d in _runs()}
    for case in CASES:
        seeds = sorted({s for c, m, s in journals if c == case and m == "hirelc"})
        if not seeds:
            continue
        print(f"\n### {case}: evaluations to the best baseline's validation accuracy (per seed)\n")
        print("| seed | best baseline (val %) | " + " | ".join(("hirelc", "random", "tpe")) + " |")
        print("|---|---|---|---|---|")
        counts: dict[str, list[int]] = {"hirelc": [], "random": [], "tpe": []}
        for seed in seeds:
            best = {m: max(journals[(case, m, seed)]) for m in baselines if (case, m, seed) in journals}
            leader = max(best, key=best.get)
            cells = []
            for m in counts:
                hit = evaluations_to_reach(journals.get((case, m, seed), []), best[leader])
                counts[m].append(hit or BUDGET + 1)
                cells.append(str(hit) if hit else f"> {BUDGET}")
            print(f"| {seed} | {leader} {100 * best[leader]:.1f} | " + " | ".join(cells) + " |")
        med = {m: statistics.median(v) for m, v in counts.items()}
        print(f"\nMedian evaluations: hirelc {med['hirelc']:g}, random {med['random']:g}, tpe {med['tpe']:g}; "
              f"ratio random / hirelc {med['random'] / med['hirelc']:.2f}, tpe / hirelc {med['tpe'] / med['hirelc']:.2f} "
              f"(a miss counts as {BUDGET + 1}).")


def rho() -> None:
    """Issue 9: the surrogate's held-out rho per cycle of every HiReLC run that recorded it
    (`rho_cv_by_cycle`: cross-validated over the evaluations so far; `rho_by_cycle`: the
    cycle's next picks, predicted before they were evaluated)."""
    from hirelc.result_file import read_result

    for case, method, seed, d in _runs():
        info = read_result(d)["search"].get("options", {}).get("hirelc", {})
        if "rho_cv_by_cycle" not in info:
            continue
        print(f"| {case} | {method} s{seed} | {_cells(info['rho_cv_by_cycle'])} | {_cells(info['rho_by_cycle'])} |")


def _cells(values: list[float | None]) -> str:
    return " ".join("-" if v is None else f"{v:.2f}" for v in values)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("what", choices=("run", "verify", "summarize", "efficiency", "rho"))
    p.add_argument("--cases", nargs="+", default=list(CASES), choices=list(CASES))
    p.add_argument("--methods", nargs="+", default=list(METHODS))
    p.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    p.add_argument("--budget", type=int, default=BUDGET)
    p.add_argument("--finalists", type=int, default=1, help="hirelc search --finalists K (runs named method_fK_sN)")
    p.add_argument("--baselines", nargs="+", default=["uniform", "random", "greedy", "tpe"],
                   help="efficiency: the methods whose best validation accuracy is the bar")
    p.add_argument("--option", action="append", default=[], metavar="KEY=VALUE",
                   help="hirelc search --option KEY=VALUE (runs named method-KEY_sN, or method-KEY=VALUE_sN)")
    a = p.parse_args()
    if a.what == "run":
        run(a.cases, a.methods, a.seeds, a.budget, a.finalists, a.option)
    elif a.what == "verify":
        sys.exit(0 if verify() else 1)
    elif a.what == "efficiency":
        efficiency(tuple(a.baselines))
    elif a.what == "rho":
        rho()
    else:
        summarize()


if __name__ == "__main__":
    main()
