"""One writer per run directory: a second process is refused, a dead holder's lock is taken over."""

import json
import os
import signal
import subprocess
import sys
import textwrap

import pytest

from hirelc.rundir import RunDir
from hirelc.runlock import LOCK_FILE, RunLock, RunLockedError

HOLD = textwrap.dedent("""
    import sys, time
    from hirelc.rundir import RunDir
    run = RunDir(sys.argv[1]).create({"a": 1}, resume=True)
    print("locked", flush=True)
    time.sleep(60)
""")


def _holder(path):
    proc = subprocess.Popen([sys.executable, "-c", HOLD, str(path)], stdout=subprocess.PIPE, text=True,
                            env=dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path)))
    assert proc.stdout.readline().strip() == "locked"
    return proc


def test_second_writer_is_refused_naming_the_holder_and_a_killed_holder_is_taken_over(tmp_path):
    run = tmp_path / "run"
    proc = _holder(run)
    try:
        for resume in (False, True):
            with pytest.raises(RunLockedError, match=f"in use by process {proc.pid} "):
                RunDir(run).create({"a": 1}, resume=resume)
        assert (run / "config.json").exists()  # the refusal touched nothing
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    assert json.loads((run / LOCK_FILE).read_text())["pid"] == proc.pid  # stale file left behind
    taken = RunDir(run).create({"a": 1}, resume=True)
    assert RunLock.holder(run)["pid"] == os.getpid() and taken.resumed
    taken.close()
    assert not (run / LOCK_FILE).exists()


def test_lock_file_with_garbage_and_no_holder_is_stale(tmp_path):
    (tmp_path / LOCK_FILE).write_text("not json")
    lock = RunLock(tmp_path).acquire()
    assert RunLock.holder(tmp_path)["pid"] == os.getpid()
    lock.release()


def test_lock_is_reentrant_within_a_process_and_released_by_the_last_holder(tmp_path):
    first, second = RunLock(tmp_path).acquire(), RunLock(tmp_path).acquire()
    first.release()
    assert (tmp_path / LOCK_FILE).exists()
    second.release()
    second.release()  # a second release is a no-op
    assert not (tmp_path / LOCK_FILE).exists()


def test_two_searches_racing_on_one_run_leave_one_writer(tmp_path):
    """Both processes try at once; exactly one gets the run, the journal has one writer."""
    script = textwrap.dedent("""
        import sys
        from hirelc.rundir import RunDir
        from hirelc.runlock import RunLockedError
        try:
            run = RunDir(sys.argv[1]).create({"a": 1}, resume=True)
        except RunLockedError:
            print("refused"); sys.exit(0)
        for i in range(50):
            run.journal.append({"writer": sys.argv[2], "i": i})
        print("wrote")
    """)
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path))
    procs = [subprocess.Popen([sys.executable, "-c", script, str(tmp_path / "run"), str(k)],
                              stdout=subprocess.PIPE, text=True, env=env) for k in range(2)]
    outs = sorted(p.communicate(timeout=60)[0].strip() for p in procs)
    records = RunDir(tmp_path / "run").journal.records()
    if outs == ["wrote", "wrote"]:  # the first finished before the second started: sequential
        assert [r["i"] for r in records] == list(range(50)) * 2
        assert records[0]["writer"] == records[49]["writer"] != records[50]["writer"]
    else:
        assert outs == ["refused", "wrote"] and [r["i"] for r in records] == list(range(50))
