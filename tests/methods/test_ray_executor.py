"""The Ray executor on a real local Ray cluster (2 CPUs) bound to loopback, against the
serial run. Ray binds the machine's interface address even when told 127.0.0.1, so these
tests run only inside a private network namespace whose only interface is loopback:

    unshare -n sh -c 'ip link set lo up; exec python -m pytest tests/methods/test_ray_executor.py -m "slow or not slow"'
"""

import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from hirelc.inventory.spec import LayerSpec
from hirelc.methods.api import search
from hirelc.methods.executors import EvaluationFailed, SerialExecutor
from hirelc.methods.ledger import EvaluationLedger
from hirelc.plan import Plan

from .fakes import MemoryJournal
from .worker_fakes import DieOn, Table, table_accuracy


def _loopback_only() -> bool:
    return [name for _, name in socket.if_nameindex()] == ["lo"]


pytestmark = pytest.mark.skipif(
    not _loopback_only(),
    reason="Ray binds the machine's interface address: run inside a network namespace with only loopback "
           "(unshare -n sh -c 'ip link set lo up; exec python -m pytest tests/methods/test_ray_executor.py')")
ray = pytest.importorskip("ray")

LAYERS = [LayerSpec("conv", "conv2d", (8, 1, 3, 3), n_macs=5000), LayerSpec("fc", "linear", (10, 200), n_macs=2000)]


@pytest.fixture(scope="module")
def cluster():
    """A local Ray cluster with 2 CPUs on loopback; yields its GCS address (HOST:PORT)."""
    temp = tempfile.mkdtemp(prefix="ray", dir="/tmp")  # short: Ray's socket paths have a length limit
    # The cluster's workers must import this package's fakes (pytest put tests/ on sys.path).
    tests_dir = str(Path(__file__).resolve().parents[1])
    os.environ["PYTHONPATH"] = os.pathsep.join(p for p in (tests_dir, os.environ.get("PYTHONPATH")) if p)
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, _temp_dir=temp,
             _node_ip_address="127.0.0.1")
    try:
        yield ray.get_runtime_context().gcs_address
    finally:
        ray.shutdown()


def _records(journal):
    return sorted(repr({k: v for k, v in r.items() if k != "seconds"}) for r in journal.records())


@pytest.mark.parametrize("method", ["random", "tpe"])
def test_ray_search_equals_the_serial_search_with_the_same_batches(cluster, method):
    from hirelc.methods.ray_executor import RayExecutor

    kwargs = dict(method=method, bits=(2, 3, 4, 8), reference_accuracy=0.95, max_evaluations=8, seed=2)
    serial = search(LAYERS, SerialExecutor(table_accuracy, 2), journal=MemoryJournal(), **kwargs)
    with RayExecutor(Table(), workers=2) as ex:
        parallel = search(LAYERS, ex, journal=(journal := MemoryJournal()), **kwargs)
    assert [ev.plan for ev in parallel.history] == [ev.plan for ev in serial.history]
    assert _records(journal) == _records(MemoryJournal([ev.to_record() for ev in serial.history]))
    assert parallel.plan == serial.plan
    assert ray.is_initialized()  # joined an existing cluster: closing the executor leaves it running


def test_a_dead_ray_worker_costs_one_retry_then_fails_its_candidate_by_name(cluster, tmp_path):
    from hirelc.methods.ray_executor import RayExecutor

    plans = [Plan.from_bits(["conv", "fc"], b) for b in ([2, 2], [4, 4], [8, 8])]
    (once := tmp_path / "once").mkdir()
    with RayExecutor(DieOn([4, 4], str(once), times=1), workers=2) as ex:
        got = EvaluationLedger(ex, 10).evaluate_many(plans)
        assert ex.deaths == 1 and [ev.accuracy for ev in got] == [table_accuracy(p)["accuracy"] for p in plans]
    (always := tmp_path / "always").mkdir()
    journal = MemoryJournal()
    with RayExecutor(DieOn([4, 4], str(always), times=9), workers=2) as ex:
        with pytest.raises(EvaluationFailed, match=plans[1].content_hash()):
            EvaluationLedger(ex, 10, journal).evaluate_many(plans)
    assert sorted(r["plan"]["conv"]["bits"] for r in journal.records()) == [2, 8]


def test_an_evaluator_that_cannot_be_built_on_ray_is_one_clear_error(cluster):
    from hirelc.methods.ray_executor import RayExecutor

    from .worker_fakes import BrokenFactory

    with RayExecutor(BrokenFactory(), workers=1) as ex:
        with pytest.raises(RuntimeError, match="could not build its evaluator.*no such dataset"):
            EvaluationLedger(ex, 10).evaluate(Plan.from_bits(["conv", "fc"], [2, 2]))


@pytest.mark.slow
def test_cli_search_on_the_ray_cluster_matches_the_serial_run(cluster, tmp_path):
    common = ["search", "--method", "random", "--model", "lenet5", "--data", "digits", "--train-epochs", "1",
              "--budget", "6", "--steps", "4", "--final-epochs", "1", "--quiet", "--no-report", "--workers", "2"]
    env = dict(os.environ, HIRELC_CACHE_DIR=str(tmp_path / "cache"), OMP_NUM_THREADS="1")
    runs = {}
    for name, extra in (("serial", []), ("ray", ["--executor", "ray", "--ray-address", cluster])):
        out = tmp_path / name
        done = subprocess.run([sys.executable, "-m", "hirelc.cli", *common, "--out", str(out), *extra], env=env,
                              capture_output=True, text=True, timeout=900)
        assert done.returncode == 0, done.stderr
        shutil.rmtree(tmp_path / "cache" / "evaluations", ignore_errors=True)  # the ray run must compute
        lines = (out / "journal.jsonl").read_text().splitlines()
        runs[name] = (sorted(repr({k: v for k, v in json.loads(x).items() if k != "seconds"}) for x in lines),
                      json.loads((out / "result.json").read_text()))
    assert runs["ray"][0] == runs["serial"][0] and len(runs["ray"][0]) == 6
    assert runs["ray"][1]["plan"] == runs["serial"][1]["plan"]
    assert runs["ray"][1]["run/executor"]["executor"] == "ray"
    assert runs["ray"][1]["search/new_evaluations"] == 6  # computed on the cluster, counted by the ledger
