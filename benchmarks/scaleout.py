"""Scale-out benchmark (issue 14): real evaluations per minute with the serial, process and
ray executors, a pareto slice, and a table-lookup simulation of many workers.

Every run gets a fresh evaluation cache (datasets and fp32 checkpoints are linked from
$HIRELC_CACHE_DIR), so each evaluation is really computed. Ray must run inside a private
network namespace here (it binds the machine's interface address):

    unshare -n sh -c 'ip link set lo up; exec env PYTHONPATH=src OMP_NUM_THREADS=1 \
        /work/venv/bin/python benchmarks/scaleout.py throughput --model releq_lenet --budget 20'
    ... benchmarks/scaleout.py simulate --workers 2,4,8,16 --results 400
    ... benchmarks/scaleout.py journal --records 2000

Prints one JSON line per measurement (also appended to --log).
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import shutil
import tempfile
import time
from pathlib import Path

import torch

SHARED = Path(os.environ.get("HIRELC_CACHE_DIR", "/work/cache_shared"))


def fresh_cache() -> Path:
    """A cache dir sharing datasets/checkpoints with $HIRELC_CACHE_DIR but no evaluations."""
    root = Path(tempfile.mkdtemp(prefix="hirelc_bench_"))
    for sub in ("datasets", "checkpoints"):
        (SHARED / sub).mkdir(parents=True, exist_ok=True)
        (root / sub).symlink_to(SHARED / sub)
    os.environ["HIRELC_CACHE_DIR"] = str(root)
    return root


def emit(record: dict, log: str | None) -> None:
    record = {"load_avg": os.getloadavg(), "cpus": os.cpu_count(), "utc": time.strftime("%H:%M:%S", time.gmtime()),
              **record}
    line = json.dumps(record)
    print(line, flush=True)
    if log:
        with open(log, "a") as f:
            f.write(line + "\n")


def run_search(model: str, executor: str, workers: int, driver_threads: int, args: argparse.Namespace) -> dict:
    from hirelc.methods.api import search
    from hirelc.pipeline import JobConfig, prepare
    from hirelc.workers import job_executor

    cache = fresh_cache()
    torch.set_num_threads(driver_threads)
    config = JobConfig(method="random", model=model, data=args.data, max_evaluations=args.budget,
                       search_steps=args.steps, seed=args.seed, train_epochs=args.train_epochs,
                       executor=executor, workers=workers)
    prep = prepare(config, progress=False, log=lambda _m: None)
    reference = prep.evaluator.fp32_accuracy("val")
    arrivals: list[float] = []
    start = time.perf_counter()
    cpu = time.process_time()
    with job_executor(config, prep, lambda _acc, _cached: arrivals.append(time.perf_counter())) as ex:
        found = search(list(prep.inventory), ex, method="random", bits=config.bits, reference_accuracy=reference,
                       max_evaluations=args.budget, seed=args.seed, space=config.space_config, target=config.target,
                       sizes=prep.guidance.sizes, damage=prep.guidance.damage)
        described = ex.describe()
    wall = time.perf_counter() - start
    shutil.rmtree(cache, ignore_errors=True)
    n = found.n_evaluations
    steady = (n - 1) / (arrivals[-1] - arrivals[0]) * 60 if len(arrivals) > 1 else None
    return {"bench": "throughput", "model": model, "steps": args.steps, "budget": args.budget, **described,
            "driver_threads": driver_threads, "evaluations": n, "search_wall_s": round(wall, 2),
            "evals_per_min": round(n / wall * 60, 2), "first_result_s": round(arrivals[0] - start, 2),
            "steady_evals_per_min": round(steady, 2) if steady else None,
            "driver_cpu_s": round(time.process_time() - cpu, 2),
            "mean_eval_s_in_worker": round(sum(e.seconds for e in found.history) / n, 3),
            "accuracies": [e.accuracy for e in found.history], "plan": found.plan.bits()}


def cmd_throughput(args: argparse.Namespace) -> None:
    serial = [("serial", 1, int(t)) for t in args.serial_threads.split(",")]
    for executor, workers, threads in [*serial, ("process", 2, 1), ("ray", 2, 1)]:
        if executor not in args.executors.split(","):
            continue
        emit(run_search(args.model, executor, workers, threads, args), args.log)


def cmd_pareto(args: argparse.Namespace) -> None:
    """The first `--plans` configurations of the releq_lenet pareto enumeration, batched as
    `enumerate_space` does (same code path), serial vs `--workers`."""
    from hirelc.methods.ledger import EvaluationLedger
    from hirelc.methods.problem import SearchProblem
    from hirelc.pipeline import JobConfig, prepare
    from hirelc.workers import job_executor

    for executor, workers in (("serial", 1), (args.executor, args.workers)):
        cache = fresh_cache()
        torch.set_num_threads(1)
        config = JobConfig(method="random", model=args.model, data=args.data, search_steps=args.steps,
                           executor=executor, workers=workers)
        prep = prepare(config, progress=False, log=lambda _m: None)
        problem = SearchProblem(tuple(prep.inventory), config.bits, prep.evaluator.fp32_accuracy("val"))
        configurations = list(itertools.product(problem.bits, repeat=len(problem.layers)))[: args.plans]
        start = time.perf_counter()
        with job_executor(config, prep, lambda _acc, _cached: None) as ex:
            ledger = EvaluationLedger(ex, len(configurations))
            for i in range(0, len(configurations), ledger.batch_size):
                ledger.evaluate_many([problem.plan(b) for b in configurations[i: i + ledger.batch_size]])
        wall = time.perf_counter() - start
        shutil.rmtree(cache, ignore_errors=True)
        emit({"bench": "pareto_slice", "model": args.model, "steps": args.steps, "plans": len(configurations),
              "of": len(problem.bits) ** len(problem.layers), "executor": executor, "workers": workers,
              "wall_s": round(wall, 1), "accuracy_sum": round(sum(e.accuracy for e in ledger.history), 6)},
             args.log)


def cmd_simulate(args: argparse.Namespace) -> None:
    """Zero-cost table-lookup evaluations through the Ray executor: what the driver pays per
    result (ray round trip + validation + fsynced journal line) at several worker counts."""
    import ray

    from hirelc.methods.ledger import EvaluationLedger
    from hirelc.methods.ray_executor import RayExecutor
    from hirelc.plan import Plan
    from hirelc.rundir import Journal

    names = [f"layer{i}" for i in range(20)]  # a resnet20-sized plan (20 kernels) per message
    for workers in (int(w) for w in args.workers.split(",")):
        ray.init(num_cpus=workers, include_dashboard=False, log_to_driver=False,  # logical CPUs: one per actor
                 _temp_dir=tempfile.mkdtemp(prefix="ray", dir="/tmp"))
        directory = Path(tempfile.mkdtemp(prefix="journal_"))
        ex = RayExecutor(_lookup_factory, workers)
        ledger = EvaluationLedger(ex, args.results + workers, Journal(directory / "journal.jsonl"))
        rng = iter(itertools.product(range(2, 9), repeat=len(names)))
        ledger.evaluate_many([Plan.from_bits(names, next(rng)) for _ in range(workers)])  # start the actors
        start, cpu = time.perf_counter(), time.process_time()
        for _ in range(args.results // workers):
            ledger.evaluate_many([Plan.from_bits(names, next(rng)) for _ in range(workers)])
        wall, cpu = time.perf_counter() - start, time.process_time() - cpu
        n = (args.results // workers) * workers
        ex.close()
        ray.shutdown()
        emit({"bench": "simulate_ray_lookup", "workers": workers, "results": n,
              "results_per_s": round(n / wall, 1), "driver_wall_ms_per_result": round(1000 * wall / n, 3),
              "driver_cpu_ms_per_result": round(1000 * cpu / n, 3)}, args.log)
        shutil.rmtree(directory, ignore_errors=True)


def _lookup_factory():
    return _lookup


def _lookup(plan):
    bits = plan.bits()
    return {"accuracy": 0.5 + sum(bits) / (16 * len(bits)), "loss": 0.1, "logit_mse": 0.01, "status": "ok"}


def cmd_journal(args: argparse.Namespace) -> None:
    """fsynced journal appends per second (an evaluation record of a 20-kernel plan)."""
    from hirelc.methods.ledger import Evaluation
    from hirelc.plan import Plan
    from hirelc.rundir import Journal

    journal = Journal(Path(tempfile.mkdtemp(prefix="journal_")) / "journal.jsonl")
    record = Evaluation(0, Plan.from_bits([f"layer{i}" for i in range(20)], [4] * 20), 0.9,
                        {"loss": 0.1, "logit_mse": 0.01}, 1.0).to_record()
    start = time.perf_counter()
    for _ in range(args.records):
        journal.append(record)
    wall = time.perf_counter() - start
    emit({"bench": "journal_fsync", "records": args.records, "records_per_s": round(args.records / wall, 1),
          "bytes_per_record": len(json.dumps(record)), "journal_dir": str(journal.path.parent)}, args.log)
    shutil.rmtree(journal.path.parent, ignore_errors=True)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--log", default="benchmarks/scaleout.jsonl")
    sub = p.add_subparsers(required=True)
    t = sub.add_parser("throughput")
    t.add_argument("--model", default="releq_lenet")
    t.add_argument("--data", default="mnist5k")
    t.add_argument("--budget", type=int, default=20)
    t.add_argument("--steps", type=int, default=20)
    t.add_argument("--seed", type=int, default=0)
    t.add_argument("--train-epochs", type=int)
    t.add_argument("--executors", default="serial,process,ray")
    t.add_argument("--serial-threads", default="1", help="torch threads of the serial rows, e.g. 1,2")
    t.set_defaults(func=cmd_throughput)
    pa = sub.add_parser("pareto")
    pa.add_argument("--model", default="releq_lenet")
    pa.add_argument("--data", default="mnist5k")
    pa.add_argument("--steps", type=int, default=20)
    pa.add_argument("--plans", type=int, default=100)
    pa.add_argument("--executor", default="process")
    pa.add_argument("--workers", type=int, default=2)
    pa.set_defaults(func=cmd_pareto)
    s = sub.add_parser("simulate")
    s.add_argument("--workers", default="2,4,8")
    s.add_argument("--results", type=int, default=400)
    s.set_defaults(func=cmd_simulate)
    j = sub.add_parser("journal")
    j.add_argument("--records", type=int, default=2000)
    j.set_defaults(func=cmd_journal)
    args = p.parse_args()
    args.func(args)


if __name__ == "__main__":
    main()
