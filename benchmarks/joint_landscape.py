"""Enumerate a joint-space landscape (bits x keep) of cnn1d / mnist1d at the search fidelity
(issue 15, item 1), through the same evaluator, ledger and journal a search job uses.

    python benchmarks/joint_landscape.py run        # resumable: the journal replays
    python benchmarks/joint_landscape.py build      # -> benchmarks/landscapes/cnn1d_mnist1d_joint.json

Space: bits {2, 4} x keep {1, 0.5} on the four prunable Conv1d kernels, bits {2, 4} on the
classifier (int_sym, per channel): 4^4 x 2 = 512 plans (sized to enumerate within an hour on
a busy 2-core machine; 6^4 x 2 with keep 0.25 ran at 0.14 evaluations/s there). Pruning ranks channels by
Fisher saliency, as every search job with a pruning space does. Fidelity: 20 fine-tune
steps (batch 64, Adam lr 3e-4), fine-tune seed 0, validation split (split seed 0).
Each row stores the plan, its validation accuracy, and its whole-model storage bytes by the
job's size model (byte-exact with the packed file's data section).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
RUN = HERE / "runs" / "landscape_cnn1d_joint512"
OUT = HERE / "landscapes" / "cnn1d_mnist1d_joint.json"
SPACE = {"bits": [2, 4], "keep_ratios": [1.0, 0.5], "formats": ["int_sym"], "granularities": ["per_channel"]}


def _config():
    from hirelc.pipeline import JobConfig

    return JobConfig(method="random", model="cnn1d", data="mnist1d", space=SPACE, search_steps=20, seed=0,
                     max_evaluations=10_000)


def run() -> None:
    import torch

    from hirelc.methods.ledger import EvaluationLedger
    from hirelc.methods.space import SearchSpace, SpaceConfig
    from hirelc.pipeline import _val_evaluate_fn, prepare
    from hirelc.rundir import RunDir

    torch.set_num_threads(1)
    config = _config()
    run_dir = RunDir(RUN).create(config.to_dict() | {"job": "joint_landscape"}, resume=(RUN / "config.json").exists())
    prep = prepare(config, progress=False, run_dir=run_dir)
    space = SearchSpace(tuple(prep.inventory), SpaceConfig.from_dict(SPACE))
    ledger = EvaluationLedger(_val_evaluate_fn(prep.evaluator, config.search_fidelity), space.size(), run_dir.journal)
    start, done = time.perf_counter(), ledger.n_evaluations
    for i, plan in enumerate(space.enumerate()):
        ledger.evaluate(plan)
        if i % 100 == 0:
            rate = (ledger.n_evaluations - done) / max(time.perf_counter() - start, 1e-9)
            print(f"{i}/{space.size()} plans, {rate:.2f} new evaluations/s", flush=True)
    print(f"done: {ledger.n_evaluations} plans in the journal")


def build() -> None:
    from hirelc.methods.ledger import Evaluation
    from hirelc.methods.space import SearchSpace, SpaceConfig
    from hirelc.pipeline import prepare

    config = _config()
    prep = prepare(config, progress=False)
    space = SearchSpace(tuple(prep.inventory), SpaceConfig.from_dict(SPACE))
    records = [json.loads(x) for x in (RUN / "journal.jsonl").read_text().splitlines() if x]
    evaluations = [Evaluation.from_record(r) for r in records if r.get("kind") == "evaluation"]
    rows = [[ev.plan.to_dict(), ev.accuracy, prep.guidance.sizes.nbytes(ev.plan)] for ev in evaluations]
    if len(rows) != space.size():
        raise SystemExit(f"the journal holds {len(rows)} of {space.size()} plans: finish `run` first")
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, cwd=HERE).stdout.strip()
    data = {
        "name": "cnn1d_mnist1d_joint", "model": "cnn1d", "data": "mnist1d", "space": SPACE,
        "fidelity": config.search_fidelity.key(), "fp32_val_accuracy": prep.evaluator.fp32_accuracy("val"),
        "split_sizes": prep.data.sizes(), "torch_threads": 1, "hirelc_commit": commit,
        "inventory": [s.to_dict() for s in prep.inventory], "size_model": prep.guidance.sizes.to_dict(),
        "fisher_raw_per_kernel": prep.guidance.sensitivity.raw_per_kernel,
        "fisher_per_channel_saliency": prep.guidance.sensitivity.per_channel_saliency,
        "columns": ["plan", "accuracy", "storage_bytes"], "rows": rows,
    }
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps(data, separators=(",", ":")))
    accs = sorted(r[1] for r in rows)
    print(f"wrote {OUT}: {len(rows)} plans; accuracy min {accs[0]:.3f} median {accs[len(accs) // 2]:.3f} "
          f"max {accs[-1]:.3f}")


if __name__ == "__main__":
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("what", choices=("run", "build"))
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    {"run": run, "build": build}[p.parse_args().what]()
