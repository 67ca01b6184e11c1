"""kill -9 in the middle of a search, resume, and get the uninterrupted run's result."""

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

ARGS = ["search", "--method", "random", "--model", "lenet5", "--data", "digits", "--train-epochs", "1",
        "--budget", "14", "--steps", "8", "--final-epochs", "1", "--quiet"]


def _hirelc(args, env, **kw):
    return subprocess.Popen([sys.executable, "-m", "hirelc.cli", *args], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, **kw)


def _journal_lines(run: Path) -> int:
    path = run / "journal.jsonl"
    return len(path.read_bytes().splitlines()) if path.exists() else 0


@pytest.mark.slow
def test_killed_search_resumes_without_recomputing(tmp_path):
    cache = tmp_path / "cache"
    env = dict(os.environ, HIRELC_CACHE_DIR=str(cache), OMP_NUM_THREADS="1")
    # Train the shared baseline first so that the search starts evaluating at once.
    assert _hirelc(["train", "--model", "lenet5", "--data", "digits", "--train-epochs", "1", "--quiet"],
                   env).wait(timeout=300) == 0

    run = tmp_path / "killed"
    proc = _hirelc([*ARGS, "--out", str(run)], env)
    deadline = time.time() + 240
    while _journal_lines(run) < 5 and time.time() < deadline and proc.poll() is None:
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    journaled = _journal_lines(run)
    assert 5 <= journaled < 14, "the kill must land in the middle of the search"
    assert not (run / "result.json").exists()

    shutil.rmtree(cache / "evaluations", ignore_errors=True)  # only the journal may supply old results
    resumed = _hirelc(["resume", str(run), "--quiet"], env)
    assert resumed.wait(timeout=600) == 0, resumed.stderr.read()
    got = json.loads((run / "result.json").read_text())
    assert got["search/replayed"] == journaled
    assert got["search/new_evaluations"] == 14 - journaled  # nothing recomputed
    assert got["search/served_from_cache"] == 0  # the evaluation cache was removed

    shutil.rmtree(cache / "evaluations", ignore_errors=True)
    ref_run = tmp_path / "uninterrupted"
    ref = _hirelc([*ARGS, "--out", str(ref_run)], env)
    assert ref.wait(timeout=600) == 0, ref.stderr.read()
    want = json.loads((ref_run / "result.json").read_text())
    for key in ("plan", "test/accuracy", "val/accuracy", "search/evaluations", "size/compression"):
        assert got[key] == want[key], key
    accuracies = [json.loads(line)["accuracy"] for line in (run / "journal.jsonl").read_text().splitlines()]
    assert accuracies == [json.loads(line)["accuracy"]
                          for line in (ref_run / "journal.jsonl").read_text().splitlines()]


@pytest.mark.slow
def test_fault_injection_two_trials_end_like_an_undisturbed_run(tmp_path):
    """benchmarks/fault_injection.py, small: random kill -9s and damaged caches between
    resumes; every trial must end with the undisturbed run's result and packed file."""
    script = Path(__file__).resolve().parents[1] / "benchmarks" / "fault_injection.py"
    report = tmp_path / "report.json"
    env = dict(os.environ, OMP_NUM_THREADS="1")
    proc = subprocess.run([sys.executable, str(script), "--trials", "2", "--kills", "2", "--budget", "6",
                           "--seed", "3", "--workdir", str(tmp_path / "work"), "--json", str(report)],
                          env=env, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    data = json.loads(report.read_text())
    assert data["passed"] == data["trials"] == 2 and data["kills"] >= 2
    assert all(row["same_as_undisturbed"] and not row["differs"] for row in data["rows"])
