"""Job-level executors: settings checked before any work, config.json of serial runs
unchanged, and a process-pool job killed with -9 resumes to the serial run's result."""

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from hirelc.cli import main
from hirelc.pipeline import JobConfig
from hirelc.workers import check_batched, resolve_workers


@pytest.mark.parametrize("args, message", [
    (("random", "threads", None, None), "unknown executor 'threads'"),
    (("random", "process", 0, None), "workers must be a positive integer"),
    (("random", "process", 2, "auto"), "--ray-address is for --executor ray"),
    (("random", "ray", None, "10.0.0.1:6379"), "needs --workers N"),
])
def test_executor_settings_are_checked_before_any_work(args, message):
    with pytest.raises(ValueError, match=message):
        resolve_workers(*args)


@pytest.mark.parametrize("executor, workers", [("process", 1), ("serial", 2)])
def test_releq_refuses_parallel_workers(executor, workers):
    with pytest.raises(ValueError, match="method 'releq' runs its episodes one at a time"):
        check_batched("releq", executor, workers)
    check_batched("random", executor, workers)


def test_serial_config_json_is_unchanged_and_parallel_settings_are_recorded():
    assert not {"executor", "workers", "ray_address"} & set(JobConfig(method="random").to_dict())
    d = JobConfig(method="random", executor="process").to_dict()
    assert d["executor"] == "process" and d["workers"] == os.cpu_count()
    assert JobConfig.from_dict(d).workers == d["workers"]


def test_cli_refuses_a_parallel_releq_in_one_line(tmp_path, capsys):
    assert main(["search", "--method", "releq", "--executor", "process", "--out", str(tmp_path / "r")]) == 2
    err = capsys.readouterr().err
    assert "one at a time" in err and "Traceback" not in err and not (tmp_path / "r").exists()


ARGS = ["search", "--method", "random", "--model", "lenet5", "--data", "digits", "--train-epochs", "1",
        "--budget", "14", "--steps", "30", "--final-epochs", "1", "--quiet", "--no-report", "--workers", "2"]


def _hirelc(args, env):
    return subprocess.Popen([sys.executable, "-m", "hirelc.cli", *args], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def _lines(run: Path) -> list[str]:
    path = run / "journal.jsonl"
    return path.read_text().splitlines() if path.exists() else []


def _children(pid: int) -> list[int]:
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            if int(stat.read_text().rsplit(")", 1)[1].split()[1]) == pid:
                found.append(int(stat.parent.name))
        except (OSError, ValueError, IndexError):
            pass
    return found


def _content(lines):
    return sorted(repr({k: v for k, v in json.loads(x).items() if k not in ("seconds", "index")}) for x in lines)


@pytest.mark.slow
@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="reads worker pids from /proc")
def test_killed_process_pool_search_loses_nothing_and_resumes_to_the_serial_result(tmp_path):
    cache = tmp_path / "cache"
    env = dict(os.environ, HIRELC_CACHE_DIR=str(cache), OMP_NUM_THREADS="1")
    reference = tmp_path / "serial"
    assert _hirelc([*ARGS, "--out", str(reference)], env).wait(timeout=600) == 0
    shutil.rmtree(cache / "evaluations")  # the parallel run must compute everything itself

    run = tmp_path / "process"
    proc = _hirelc([*ARGS, "--out", str(run), "--executor", "process"], env)
    deadline, workers = time.time() + 300, set()
    while len(_lines(run)) < 4 and time.time() < deadline and proc.poll() is None:
        workers |= set(_children(proc.pid))
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    journaled = _lines(run)
    assert 4 <= len(journaled) < 14, "the kill must land in the middle of the search"
    assert [json.loads(x) for x in journaled]  # every line whole
    deadline = time.time() + 60  # the workers notice the driver's death and exit
    while any(Path(f"/proc/{pid}").exists() for pid in workers) and time.time() < deadline:
        time.sleep(0.2)
    assert workers and not any(Path(f"/proc/{pid}").exists() for pid in workers)

    resumed = _hirelc(["resume", str(run), "--quiet"], env)
    assert resumed.wait(timeout=600) == 0, resumed.stderr.read()
    got, want = (json.loads((r / "result.json").read_text()) for r in (run, reference))
    assert got["search/replayed"] == len(journaled)
    # the ledger counts the workers' evaluations too (one in flight at the kill may be in the disk cache)
    assert got["search/new_evaluations"] + got["search/served_from_cache"] == 14 - len(journaled)
    assert got["search/new_evaluations"] >= 14 - len(journaled) - 2
    assert _lines(run)[: len(journaled)] == journaled  # journaled lines are never rewritten
    assert _content(_lines(run)) == _content(_lines(reference))
    for key in ("plan", "val/accuracy", "search/evaluations"):
        assert got[key] == want[key], key


@pytest.mark.slow
def test_result_json_splits_evaluations_by_origin_for_serial_and_process_executors(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("HIRELC_CACHE_DIR", str(tmp_path / "cache"))
    args = ["search", "--method", "random", "--model", "lenet5", "--data", "digits", "--train-epochs", "1",
            "--budget", "3", "--steps", "2", "--final-epochs", "1", "--quiet", "--no-report", "--workers", "2"]
    assert main([*args, "--out", str(tmp_path / "serial")]) == 0
    assert main([*args, "--out", str(tmp_path / "process"), "--executor", "process"]) == 0
    out = capsys.readouterr().out
    serial, process = (json.loads((tmp_path / r / "result.json").read_text()) for r in ("serial", "process"))
    counts = ("search/evaluations", "search/new_evaluations", "search/served_from_cache", "search/replayed")
    assert [serial[k] for k in counts] == [3, 3, 0, 0]  # a fresh cache: everything computed
    assert [process[k] for k in counts] == [3, 0, 3, 0]  # the workers were served by the serial run's cache
    assert "3 = 3 new + 0 served" in " ".join(out.split()) and "3 = 0 new + 3 served" in " ".join(out.split())


def test_a_worker_uses_the_jobs_evaluation_cache_not_its_own_environments(tmp_path, monkeypatch):
    """A Ray worker's environment is the cluster's: its HIRELC_CACHE_DIR may name another
    cache, which would serve it evaluations the job never counted as new."""
    from hirelc.data import load_dataset
    from hirelc.plan import Plan
    from hirelc.workers import JobEvaluatorRecipe, module_bytes
    from hirelc.zoo import create_model

    config = JobConfig(method="random", model="lenet5", data="digits", search_steps=1)
    data = load_dataset("digits", seed=config.split_seed)
    model = create_model("lenet5", image_size=data.example_input().shape[-1])
    job_cache = tmp_path / "job" / "evaluations"
    recipe = JobEvaluatorRecipe(config.to_dict(), module_bytes(model), data=data, evaluations_cache=str(job_cache))
    monkeypatch.setenv("HIRELC_CACHE_DIR", str(tmp_path / "worker"))  # the worker's own environment
    evaluate = recipe()
    names = [name for name, _ in model.named_modules() if isinstance(_, (torch.nn.Conv2d, torch.nn.Linear))]
    evaluate(Plan.from_bits(names, [8] * len(names)))
    assert list(job_cache.rglob("*.json")) and not list((tmp_path / "worker").rglob("*.json"))
