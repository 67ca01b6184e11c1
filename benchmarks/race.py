"""The race of issue 15: real evaluations until a near-optimal plan, every method, on enumerated
landscapes (complete tables plan -> validation accuracy at the search fidelity).

    python benchmarks/race.py run [--landscapes cnn1d_bits cnn1d_joint] [--methods ...] [--seeds 15]
    python benchmarks/race.py summarize
    python benchmarks/race.py random-exact   # random search's distribution, computed, not run

Each run is `hirelc.methods.search(layers, evaluate=<table lookup>, ...)` with the job's
size model, damage model and a size target, so every method sees exactly what it
would see in a job, and a "real evaluation" costs a lookup. Per landscape:

- optimum: the highest accuracy among the plans that meet the target (scanned exactly);
- near-optimal: accuracy >= 0.99 x optimum (within 1 %);
- per run: evaluations until the first near-optimal plan is evaluated (a miss counts as
  budget + 1), and the returned plan's accuracy / optimum.

Landscapes (benchmarks/landscapes/): `cnn1d_bits` (cnn1d/mnist1d, bits {2,3,4,5,8}^5,
kernel storage, target 12x on the kernels: 138 feasible plans, 7 within 1 % of the optimum) and `cnn1d_joint` (cnn1d/mnist1d, bits {2,4} x
keep {1,.5}, whole-model storage, target 12x).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

HERE = Path(__file__).resolve().parent
OUT = HERE / "runs" / "race"
METHODS = ("random", "tpe", "uniform", "greedy", "releq", "hirelc")
BUDGET = 150


def _bits_landscape():
    sys.path.insert(0, str(HERE))
    from landscape import load_landscape

    from hirelc.methods.sizing import SizeModel
    from hirelc.methods.space import SpaceConfig
    from hirelc.methods.target import Target
    from hirelc.plan import Plan

    ls = load_landscape("cnn1d_mnist1d_bits")
    layers = tuple(ls.layers)
    space = SpaceConfig.bits_only(ls.bits)
    table = {bits: row[0] for bits, row in ls.table.items()}

    def evaluate(plan: Plan) -> float:
        return table[tuple(plan.bits())]

    sizes = SizeModel(layers)  # kernel storage: the landscape's storage_bits column
    return layers, evaluate, space, sizes, Target(compression=12), ls.reference_accuracy, \
        [(Plan.from_bits([s.name for s in layers], b), acc) for b, acc in table.items()], ("cnn1d", "mnist1d")


def _joint_landscape():
    from hirelc.inventory.spec import LayerSpec
    from hirelc.methods.sizing import SizeModel
    from hirelc.methods.space import SpaceConfig
    from hirelc.methods.target import Target
    from hirelc.plan import Plan

    data = json.loads((HERE / "landscapes" / "cnn1d_mnist1d_joint.json").read_text())
    layers = tuple(LayerSpec.from_dict(d) for d in data["inventory"])
    table = {Plan.from_dict(plan).content_hash(): acc for plan, acc, _ in data["rows"]}

    def evaluate(plan: Plan) -> float:
        return table[plan.content_hash()]

    sizes = SizeModel.from_dict(data["size_model"], layers)
    return layers, evaluate, SpaceConfig.from_dict(data["space"]), sizes, Target(compression=12), \
        data["fp32_val_accuracy"], [(Plan.from_dict(p), acc) for p, acc, _ in data["rows"]], ("cnn1d", "mnist1d")


LANDSCAPES = {"cnn1d_bits": _bits_landscape, "cnn1d_joint": _joint_landscape}
_CACHE: dict[str, tuple] = {}


def _damage(name: str, layers, space):
    """The damage model a job on this model would use (measured on the cached fp32 baseline:
    `hirelc.guidance.measure_damage`), for the landscape's space."""
    from hirelc.guidance import measure_guidance
    from hirelc.methods.target import Target
    from hirelc.pipeline import JobConfig, load_baseline
    from hirelc.data import load_dataset
    from hirelc.inventory import inspect

    model_name, data_name = LANDSCAPES[name]()[-1]
    config = JobConfig(method="random", model=model_name, data=data_name)
    data = load_dataset(data_name, seed=0)
    model, _ = load_baseline(config, data, progress=False)
    inventory = inspect(model, data.example_input())
    assert [s.name for s in inventory] == [s.name for s in layers], "the landscape's model changed"
    return measure_guidance(model, data, inventory, space, Target(compression=2), "greedy").damage


def _landscape(name: str) -> tuple:
    if name not in _CACHE:
        layers, evaluate, space, sizes, target, ref, rows, _ = LANDSCAPES[name]()
        budget = target.max_bytes(sizes.fp32_bytes)
        optimum = max(acc for plan, acc in rows if sizes.nbytes(plan) <= budget)
        _CACHE[name] = (layers, evaluate, space, sizes, target, ref, optimum, _damage(name, layers, space), len(rows))
    return _CACHE[name]


def one_run(job: tuple[str, str, int, int, tuple]) -> dict:
    import torch

    from hirelc.methods import search

    torch.set_num_threads(1)
    name, method, seed, budget, options = job
    layers, evaluate, space, sizes, target, ref, optimum, damage, n_plans = _landscape(name)
    start = time.perf_counter()
    r = search(list(layers), evaluate, method=method, reference_accuracy=ref, max_evaluations=budget, seed=seed,
               space=space, target=target, sizes=sizes, damage=damage, **dict(options))
    limit = target.max_bytes(sizes.fp32_bytes)
    assert all(sizes.nbytes(ev.plan) <= limit for ev in r.history), "a candidate exceeded the target"
    hit = next((ev.index + 1 for ev in r.history if ev.accuracy >= 0.99 * optimum), None)
    return {"landscape": name, "method": _label(method, options), "seed": seed, "budget": budget, "first_hit": hit,
            "returned_ratio": r.best_accuracy / optimum, "evaluations": r.n_evaluations, "optimum": optimum,
            "n_plans": n_plans, "stop": r.stop_reason, "seconds": round(time.perf_counter() - start, 2),
            "rho_by_cycle": r.options.get("hirelc", {}).get("rho_by_cycle")}  # hirelc's surrogate on unseen plans


def _label(method: str, options: tuple) -> str:
    """The method's row name: options (sorted KEY=VALUE) after it, e.g. 'hirelc lla_steps=512'."""
    return " ".join([method] + [f"{k}={v}" for k, v in options])


def run(landscapes: list[str], methods: list[str], seeds: int, budget: int, workers: int,
        options: tuple = ()) -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    jobs = [(n, m, s, budget, options) for n in landscapes for m in methods for s in range(seeds)
            if not (m == "releq" and n.endswith("_joint"))]  # ReLeQ searches bit-widths only
    done = set()
    path = OUT / "runs.jsonl"
    if path.exists():
        done = {(r["landscape"], r["method"], r["seed"], r["budget"]) for r in map(json.loads, path.read_text().splitlines())}
    jobs = [j for j in jobs if (j[0], _label(j[1], options), j[2], j[3]) not in done]
    with ProcessPoolExecutor(workers) as pool, path.open("a") as f:
        for result in pool.map(one_run, jobs):
            f.write(json.dumps(result) + "\n")
            f.flush()
            print(result, flush=True)


def random_distribution(name: str, budget: int = BUDGET, orders: int = 200_000, seed: int = 0) -> dict:
    """Random search's distribution of evaluations to a near-optimal plan, without running it:
    `RandomSearch` proposes the space's plans in a uniformly random order without repeats,
    each repaired onto the target; a candidate already evaluated is a free repeat. So with
    every plan of the space mapped through the repair once, the count for one order is the
    number of distinct candidates up to the first near-optimal one; `orders` random orders give
    the distribution (a Monte Carlo estimate of the exact one; no evaluation is made)."""
    import numpy as np

    from hirelc.methods.problem import SearchProblem
    from hirelc.methods.space import SearchSpace

    layers, evaluate, space, sizes, target, ref, optimum, damage, _ = _landscape(name)
    problem = SearchProblem(layers, reference_accuracy=ref, space=SearchSpace(layers, space), target=target,
                            sizes=sizes, damage=damage)
    ids: dict[str, int] = {}
    cand, near = [], []
    for plan in problem.space.enumerate():
        c = problem.candidate(plan)
        key = c.content_hash()
        if key not in ids:
            ids[key] = len(ids)
            near.append(evaluate(c) >= 0.99 * optimum)
        cand.append(ids[key])
    cand, near = np.array(cand), np.array(near)
    rng = np.random.default_rng(seed)
    counts = np.empty(orders, dtype=int)
    for i in range(orders):
        seq = cand[rng.permutation(len(cand))]
        first_near = int(np.argmax(near[seq]))  # some candidate is near-optimal: the optimum's own plan
        counts[i] = len(np.unique(seq[: first_near + 1]))
    capped = np.minimum(counts, budget + 1)
    q1, med, q3 = np.percentile(capped, [25, 50, 75])
    return {"landscape": name, "plans": len(cand), "candidates": len(ids), "near_optimal_candidates": int(near.sum()),
            "median": float(med), "q1": float(q1), "q3": float(q3), "p_hit": float((counts <= budget).mean()),
            "orders": orders}


def summarize() -> None:
    rows = [json.loads(x) for x in (OUT / "runs.jsonl").read_text().splitlines() if x]
    for name in LANDSCAPES:
        mine = [r for r in rows if r["landscape"] == name]
        if not mine:
            continue
        print(f"\n### {name}: {mine[0]['n_plans']:,} plans, optimum under the target {100 * mine[0]['optimum']:.1f} %, "
              f"budget {mine[0]['budget']}\n")
        print("| method | runs | evals to a plan within 1 %: median (IQR) | hit within budget | "
              "returned / optimum: median (min) | returned >= 0.98 | wall s per run |")
        print("|---|---|---|---|---|---|---|")
        for method in sorted({r["method"] for r in mine}, key=lambda m: (METHODS.index(m.split()[0]), m)):
            rs = [r for r in mine if r["method"] == method]
            if not rs:
                continue
            hits = sorted((r["first_hit"] or r["budget"] + 1) for r in rs)
            q = statistics.quantiles(hits, n=4) if len(hits) > 1 else [hits[0]] * 3
            ratio = [r["returned_ratio"] for r in rs]
            print(f"| {method} | {len(rs)} | {statistics.median(hits):g} ({q[0]:g}-{q[2]:g}) | "
                  f"{sum(r['first_hit'] is not None for r in rs)}/{len(rs)} | {statistics.median(ratio):.3f} "
                  f"({min(ratio):.3f}) | {sum(x >= 0.98 for x in ratio)}/{len(rs)} | "
                  f"{statistics.median(r['seconds'] for r in rs):.1f} |")


if __name__ == "__main__":
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("what", choices=("run", "summarize", "random-exact"))
    p.add_argument("--landscapes", nargs="+", default=list(LANDSCAPES), choices=list(LANDSCAPES))
    p.add_argument("--methods", nargs="+", default=list(METHODS))
    p.add_argument("--seeds", type=int, default=15)
    p.add_argument("--budget", type=int, default=BUDGET)
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--option", action="append", default=[], metavar="KEY=VALUE",
                   help="a method option for every run (e.g. lla_steps=512 for hirelc); the rows are labelled with it")
    a = p.parse_args()
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    if a.what == "random-exact":
        for name in a.landscapes:
            print(random_distribution(name, a.budget))
    elif a.what == "run":
        from hirelc.cli.common import method_options

        run(a.landscapes, a.methods, a.seeds, a.budget, a.workers, tuple(sorted(method_options(a.option).items())))
    else:
        summarize()
