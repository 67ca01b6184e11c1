"""Fault injection: kill -9 a search at random moments, damage its caches between runs,
resume it until it finishes, and check every trial ends exactly where an undisturbed run
does (issue 10, "Done when").

One trial: start `hirelc search` into a fresh run directory; after a random delay (drawn
uniformly over the undisturbed run's wall time, so a kill can land in start-up, baseline
loading, the search, the final fine-tune, the export or the report) send SIGKILL; damage
one or two caches chosen at random (half the kills land at a random moment of the run, half
right after a random number of journaled evaluations); continue with `hirelc resume` (or `search` again when
the kill came before config.json existed), and kill again, `--kills` times at most; then
let the last resume finish. The trial passes when result.json agrees with the reference
run on every outcome field, the packed model file is byte-identical, the journal holds
each evaluation once (one writer), and the journaled evaluations (plan, accuracy, metrics)
equal the undisturbed run's, in order.

Damage applied between runs (each kill also leaves a stale lock file behind):
  (an eval-* damage also drops the last journal record and damages that plan's entry, so
   the resume has to look it up: a kill between caching and journaling)
  eval-garbage      an evaluation-cache entry overwritten with random bytes
  eval-truncate     an evaluation-cache entry cut in half
  eval-plausible    an entry's accuracy changed to another whole count of examples (valid JSON)
  ckpt-edit         one weight of the cached fp32 checkpoint changed (a loadable file)
  ckpt-truncate     the cached fp32 checkpoint cut in half
  journal-torn      half a JSON record appended to the journal (a writer killed mid-line)

Usage (2 cores shared; one torch thread per process):
  OMP_NUM_THREADS=1 python benchmarks/fault_injection.py --trials 5 --seed 0
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from hirelc.result_file import read_result  # any result.json version

SEARCH = ["--method", "random", "--model", "lenet5", "--data", "digits", "--train-epochs", "4",
          "--steps", "8", "--final-epochs", "1", "--quiet"]
COMPARED = ("plan", "bits", "test/accuracy", "val/accuracy", "test/fp32_accuracy",
            "search/evaluations", "size/compression", "size/packed_file_bytes", "val/fp32_accuracy")
DAMAGE = ("eval-garbage", "eval-truncate", "eval-plausible", "ckpt-edit", "ckpt-truncate", "journal-torn")


def hirelc(args: list[str], env: dict[str, str]) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "hirelc.cli", *args], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)


def search_args(run: Path, budget: int) -> list[str]:
    return ["search", *SEARCH, "--budget", str(budget), "--out", str(run)]


def finish(proc: subprocess.Popen, timeout: float) -> bool:
    """True when `proc` succeeded, False when a signal from outside this script stopped it
    (on a shared machine; it is then resumed like any kill); an error exit raises."""
    _, err = proc.communicate(timeout=timeout)
    if proc.returncode in (-signal.SIGTERM, -signal.SIGKILL):
        return False
    if proc.returncode != 0:
        raise RuntimeError(f"hirelc exited {proc.returncode}: {err.strip()[-2000:]}")
    return True


# -- damage -----------------------------------------------------------------------------------


def damage(kind: str, cache: Path, run: Path, rng: random.Random) -> str:
    """Apply one kind of damage; returns what was done ('' when there was nothing to damage)."""
    entries = sorted(cache.glob("evaluations/**/*.json"))
    checkpoints = sorted(cache.glob("checkpoints/*.pt"))
    if kind.startswith("eval-") and entries:
        # A journaled plan is replayed, never looked up again: to make the resume read the
        # damaged entry, also drop its plan's journal record, as if the kill had landed
        # between the evaluator caching the result and the ledger journaling it.
        plan_hash = _drop_last_record(run / "journal.jsonl")
        mine = [e for e in entries if plan_hash and e.name.startswith(plan_hash)]
        path = rng.choice(mine or entries)
        data = path.read_bytes()
        if kind == "eval-garbage":
            path.write_bytes(rng.randbytes(len(data)))
        elif kind == "eval-truncate":
            path.write_bytes(data[: len(data) // 2])
        else:
            done = _plausible_edit(path, rng)
            return done + (" (its journal record dropped)" if done and mine else "")
        return f"{kind} {path.name}" + (" (its journal record dropped)" if mine else "")
    if kind.startswith("ckpt-") and checkpoints:
        path = rng.choice(checkpoints)
        if kind == "ckpt-truncate":
            path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
        else:
            import torch

            try:
                state = torch.load(path, weights_only=True)
            except Exception:  # noqa: BLE001 - already damaged (truncated) by an earlier kill
                return ""
            key = rng.choice([k for k, v in state.items() if v.is_floating_point()])
            state[key].view(-1)[0] += 0.25
            torch.save(state, path)
        return f"{kind} {path.name}"
    journal = run / "journal.jsonl"
    if kind == "journal-torn" and journal.exists():
        with open(journal, "ab") as f:
            f.write(b'{"kind":"evaluation","index":99,"plan":{"features.0":{"bi')
        return kind
    return ""


def _drop_last_record(journal: Path) -> str:
    """Remove the last complete evaluation record; returns its plan hash ('' if none)."""
    if not journal.exists():
        return ""
    lines = journal.read_bytes().split(b"\n")
    for i in range(len(lines) - 1, -1, -1):
        try:
            record = json.loads(lines[i])
        except ValueError:
            continue
        if isinstance(record, dict) and record.get("kind") == "evaluation":
            journal.write_bytes(b"\n".join(lines[:i]) + (b"\n" if i else b""))
            return str(record.get("plan_hash", ""))
    return ""


def _plausible_edit(path: Path, rng: random.Random) -> str:
    try:
        entry = json.loads(path.read_text())
        n = entry["result"]["n_examples"]
        entry["result"]["accuracy"] = rng.randrange(n + 1) / n
    except (ValueError, KeyError, TypeError, UnicodeDecodeError):
        return ""  # already damaged by an earlier kind
    path.write_text(json.dumps(entry))
    return f"eval-plausible {path.name}"


# -- one trial --------------------------------------------------------------------------------


def trial(index: int, args: argparse.Namespace, env: dict[str, str], cache: Path, root: Path,
          reference: dict[str, Any], ref_model: str, ref_seconds: float) -> dict[str, Any]:
    rng = random.Random(args.seed * 1000 + index)
    run = root / f"trial{index}"
    shutil.rmtree(cache / "evaluations", ignore_errors=True)  # kills must hit real evaluations
    start, kills, damages, restarts, killed = time.perf_counter(), [], [], 0, True
    n_kills, scale = rng.randint(1, args.kills), 1.0
    while len(kills) < n_kills:
        started = (run / "config.json").exists()
        proc = hirelc(["resume", str(run), "--quiet"] if started else search_args(run, args.budget), env)
        restarts += 1
        if rng.random() < 0.5:  # at a moment: start-up, baseline, search, final fine-tune, export, report
            delay = rng.uniform(0.15, 1.0) * ref_seconds * scale
            at, deadline = f"{delay:.1f}s", time.monotonic() + delay
            alive = _wait_for(proc, lambda: time.monotonic() >= deadline)
        else:  # within the search: as soon as a given number of evaluations is journaled
            k = rng.randrange(args.budget)
            at = f"record {k}"
            alive = _wait_for(proc, lambda: _records(run) >= k)
        if alive:
            proc.send_signal(signal.SIGKILL)
            proc.wait()
            kills.append(at)
        else:
            if proc.returncode in (-signal.SIGTERM, -signal.SIGKILL):  # stopped from outside: resume it
                kills.append("external")
                continue
            if proc.returncode != 0:
                raise RuntimeError(f"trial {index}: a run failed: {proc.stderr.read()[-2000:]}")
            if kills or scale < 0.1:
                killed = False
                break  # it finished before the next kill: the trial is complete
            # Finished before its first kill (the machine got faster than the reference run):
            # start the trial again with earlier kills, so every trial is killed at least once.
            shutil.rmtree(run)
            shutil.rmtree(cache / "evaluations", ignore_errors=True)
            scale /= 2
            continue
        wanted = rng.randint(1, 2)
        for kind in rng.sample(DAMAGE, len(DAMAGE)):  # the first kinds that find something to damage
            done = damage(kind, cache, run, rng) if wanted else ""
            if done:
                damages.append(done)
                wanted -= 1
    while killed:  # the last process was killed: resume until one finishes
        started = (run / "config.json").exists()
        killed = not finish(hirelc(["resume", str(run), "--quiet"] if started else search_args(run, args.budget),
                                   env), 1800)
        restarts += 1
        if killed:
            kills.append("external")
    return _verdict(index, run, reference, ref_model, kills, damages, restarts, time.perf_counter() - start)


def _wait_for(proc: subprocess.Popen, ready: Any) -> bool:
    """Poll until `ready()` (True: kill now) or until `proc` ends by itself (False)."""
    while proc.poll() is None:
        if ready():
            return True
        time.sleep(0.02)
    return False


def _records(run: Path) -> int:
    path = run / "journal.jsonl"
    return path.read_bytes().count(b"\n") if path.exists() else 0


def _verdict(index: int, run: Path, reference: dict[str, Any], ref_model: str, kills: list[str],
             damages: list[str], restarts: int, seconds: float) -> dict[str, Any]:
    reference_records = read_records(run.parent / "reference" / "journal.jsonl")
    result = read_result(run)
    differ = [k for k in COMPARED if result.get(k) != reference.get(k)]
    if sha256(run / "model.hirelc") != ref_model:
        differ.append("model.hirelc bytes")
    records = read_records(run / "journal.jsonl")
    indices = [r["index"] for r in records if r.get("kind") == "evaluation"]
    if sorted(set(indices)) != list(range(result["search/evaluations"])):
        differ.append(f"journal indices {indices}")
    if _evaluations(records) != _evaluations(reference_records):
        differ.append("journaled evaluations (plan, accuracy, metrics) differ from the undisturbed run's")
    return {"trial": index, "kills": kills, "damage": damages, "processes": restarts,
            "replayed": result.get("search/replayed"), "seconds": round(seconds, 1),
            "same_as_undisturbed": not differ, "differs": differ}


def _evaluations(records: list[dict[str, Any]]) -> list[tuple]:
    """Each journaled evaluation's plan and measured numbers, in order (times left out)."""
    return [(r["plan_hash"], r["accuracy"], json.dumps(r.get("metrics"), sort_keys=True), r.get("status"))
            for r in records if r.get("kind") == "evaluation"]


def read_records(journal: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in journal.read_text().splitlines()
            if line.strip().startswith("{") and line.strip().endswith("}")]


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


# -- main -------------------------------------------------------------------------------------


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--trials", type=int, default=5)
    p.add_argument("--kills", type=int, default=3, help="most kills per trial (at least 1)")
    p.add_argument("--budget", type=int, default=10, help="real evaluations per search")
    p.add_argument("--seed", type=int, default=0, help="seed of the kill times and damage")
    p.add_argument("--workdir", help="keep the runs here (default: a temporary folder)")
    p.add_argument("--json", help="also write the report to this file")
    args = p.parse_args()
    root = Path(args.workdir or tempfile.mkdtemp(prefix="hirelc-faults-"))
    cache = root / "cache"
    env = dict(os.environ, HIRELC_CACHE_DIR=str(cache), OMP_NUM_THREADS="1")
    t0 = time.perf_counter()
    if not finish(hirelc(["train", *SEARCH[2:6], "--train-epochs", "4", "--quiet"], env), 600):
        raise RuntimeError("the baseline training was stopped by a signal from outside")
    start = time.perf_counter()
    if not finish(hirelc(search_args(root / "reference", args.budget), env), 1800):
        raise RuntimeError("the undisturbed reference run was stopped by a signal from outside")
    ref_seconds = time.perf_counter() - start
    reference = read_result(root / "reference")
    ref_model = sha256(root / "reference" / "model.hirelc")
    rows = []
    for i in range(args.trials):
        rows.append(trial(i, args, env, cache, root, reference, ref_model, ref_seconds))
        print(json.dumps(rows[-1]), flush=True)
    report = {
        "trials": args.trials, "passed": sum(r["same_as_undisturbed"] for r in rows),
        "kills": sum(len(r["kills"]) for r in rows),
        "external_kills": sum(r["kills"].count("external") for r in rows), "damages": sum(len(r["damage"]) for r in rows),
        "undisturbed_run_seconds": round(ref_seconds, 1), "total_seconds": round(time.perf_counter() - t0, 1),
        "reference": {k: reference.get(k) for k in COMPARED}, "rows": rows,
    }
    print(json.dumps({k: v for k, v in report.items() if k != "rows"}, indent=1))
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=1))
    return 0 if report["passed"] == args.trials else 1


if __name__ == "__main__":
    sys.exit(main())
