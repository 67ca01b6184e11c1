import json
import os
import signal
import subprocess
import sys
import textwrap
import warnings

import pytest

from hirelc.rundir import (
    Journal,
    JournalCorruptError,
    RunDir,
    RunDirError,
    atomic_write_text,
    config_diff,
)


# -- journal ---------------------------------------------------------------------------------


def test_journal_round_trip_and_fsync(tmp_path, monkeypatch):
    synced = []
    real_fsync = os.fsync
    monkeypatch.setattr(os, "fsync", lambda fd: (synced.append(fd), real_fsync(fd)))
    j = Journal(tmp_path / "journal.jsonl")
    j.append({"i": 0, "plan": {"fc": 4}})
    j.append({"i": 1, "acc": 0.5})
    assert len(synced) == 2  # one fsync per record, before append returns
    assert j.records() == [{"i": 0, "plan": {"fc": 4}}, {"i": 1, "acc": 0.5}]
    assert (tmp_path / "journal.jsonl").read_text().count("\n") == 2


def test_journal_missing_file_is_empty(tmp_path):
    assert Journal(tmp_path / "none.jsonl").records() == []


def test_journal_refuses_nan_and_non_dicts(tmp_path):
    j = Journal(tmp_path / "j.jsonl")
    with pytest.raises(ValueError, match=r"NaN or infinity at metrics\.loss"):
        j.append({"metrics": {"loss": float("nan")}})
    with pytest.raises(TypeError, match="must be a dict"):
        j.append([1, 2])  # type: ignore[arg-type]
    assert j.records() == []  # nothing half-written by a refused record


def test_torn_last_line_is_skipped_with_warning(tmp_path):
    path = tmp_path / "journal.jsonl"
    path.write_bytes(b'{"i": 0}\n{"i": 1}\n{"i": 2, "pla')
    with pytest.warns(UserWarning, match=r"journal\.jsonl: line 3 is incomplete"):
        assert Journal(path).records() == [{"i": 0}, {"i": 1}]


def test_append_after_torn_line_cuts_it_off(tmp_path):
    path = tmp_path / "journal.jsonl"
    path.write_bytes(b'{"i": 0}\n{"i": 1, "pla')
    j = Journal(path)
    with pytest.warns(UserWarning, match="removing an incomplete last line"):
        j.append({"i": 1})
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the repaired journal reads without any warning
        assert j.records() == [{"i": 0}, {"i": 1}]


def test_complete_record_missing_only_its_newline_is_kept(tmp_path):
    path = tmp_path / "journal.jsonl"
    path.write_bytes(b'{"i": 0}\n{"i": 1}')
    j = Journal(path)
    assert j.records() == [{"i": 0}, {"i": 1}]
    j.append({"i": 2})
    assert j.records() == [{"i": 0}, {"i": 1}, {"i": 2}]


def test_corrupt_middle_line_is_an_error_naming_the_line(tmp_path):
    path = tmp_path / "journal.jsonl"
    path.write_bytes(b'{"i": 0}\n{"i": 1, garbage\n{"i": 2}\n')
    with pytest.raises(JournalCorruptError, match=r"journal\.jsonl: line 2 is not a valid JSON"):
        Journal(path).records()


def test_non_object_line_counts_as_corrupt(tmp_path):
    path = tmp_path / "journal.jsonl"
    path.write_bytes(b'[1, 2]\n{"i": 2}\n')
    with pytest.raises(JournalCorruptError, match="line 1"):
        Journal(path).records()


_WRITER = textwrap.dedent(
    """
    import sys
    from hirelc.rundir import Journal
    j = Journal(sys.argv[1])
    pad = "x" * int(sys.argv[2])
    i = 0
    while True:
        j.append({"i": i, "pad": pad})
        print(i, flush=True)  # acknowledged: append() returned, so the record is durable
        i += 1
    """
)


@pytest.mark.parametrize("pad", [10, 300_000])  # large records make a torn write likely
def test_sigkill_mid_append_loses_nothing_acknowledged(tmp_path, pad):
    path = tmp_path / "journal.jsonl"
    proc = subprocess.Popen(
        [sys.executable, "-c", _WRITER, str(path), str(pad)],
        stdout=subprocess.PIPE,
        text=True,
    )
    acknowledged = []
    try:
        for line in proc.stdout:
            acknowledged.append(int(line))
            if len(acknowledged) >= 40:
                break
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        proc.stdout.close()
    assert proc.returncode == -signal.SIGKILL

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # a torn last line may or may not exist
        got = [r["i"] for r in Journal(path).records()]
    # every acknowledged record is there, in order, complete; at most a few unacknowledged
    # records after them (written but killed before the print)
    assert got[: len(acknowledged)] == acknowledged
    assert got == list(range(len(got)))
    assert all(len(r["pad"]) == pad for r in _quiet_records(path))

    # nothing else breaks: the journal keeps working after the kill
    j = Journal(path)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        j.append({"i": len(got), "pad": ""})
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert [r["i"] for r in j.records()] == list(range(len(got) + 1))


def _quiet_records(path):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return Journal(path).records()


# -- result and atomic writes ----------------------------------------------------------------


def test_write_result_is_atomic_and_round_trips(tmp_path, monkeypatch):
    run = RunDir(tmp_path / "run").create({"a": 1})
    run.write_result({"accuracy": 0.9, "plan": {"fc": 4}})
    assert run.read_result() == {"accuracy": 0.9, "plan": {"fc": 4}}

    # a crash between writing the temp file and renaming it leaves the old result intact
    def crash(src, dst):
        raise OSError("simulated crash before rename")

    monkeypatch.setattr(os, "replace", crash)
    with pytest.raises(OSError, match="simulated crash"):
        run.write_result({"accuracy": 0.1})
    monkeypatch.undo()
    assert run.read_result() == {"accuracy": 0.9, "plan": {"fc": 4}}
    assert [p.name for p in run.path.iterdir() if p.name.endswith(".tmp")] == []


def test_atomic_write_replaces_whole_file(tmp_path):
    target = tmp_path / "sub" / "f.json"
    atomic_write_text(target, "a" * 1000)
    atomic_write_text(target, "b")
    assert target.read_text() == "b"


def test_read_result_before_finish_says_so(tmp_path):
    run = RunDir(tmp_path / "run").create({"a": 1})
    run.journal.append({"i": 0})
    with pytest.raises(FileNotFoundError, match=r"has not finished \(1 journaled"):
        run.read_result()


def test_result_with_nan_is_refused(tmp_path):
    run = RunDir(tmp_path / "run").create({"a": 1})
    with pytest.raises(ValueError, match="accuracy"):
        run.write_result({"accuracy": float("nan")})


# -- config / resume -------------------------------------------------------------------------


def test_new_run_writes_config(tmp_path):
    run = RunDir(tmp_path / "run").create({"model": "lenet5", "bits": (2, 4)})
    assert json.loads(run.config_path.read_text()) == {"model": "lenet5", "bits": [2, 4]}
    assert run.exists() and not run.resumed


def test_resume_with_same_config(tmp_path):
    RunDir(tmp_path).create({"model": "lenet5", "bits": (2, 4)})
    run = RunDir(tmp_path).create({"bits": [2, 4], "model": "lenet5"}, resume=True)
    assert run.resumed


def test_resume_of_nothing_starts_a_new_run(tmp_path):
    run = RunDir(tmp_path / "fresh").create({"a": 1}, resume=True)
    assert not run.resumed and run.read_config() == {"a": 1}


def test_resume_with_different_config_is_refused_naming_keys(tmp_path):
    RunDir(tmp_path).create({"model": "lenet5", "search": {"episodes": 10, "seed": 0}})
    with pytest.raises(RunDirError) as err:
        RunDir(tmp_path).create(
            {"model": "lenet5", "search": {"episodes": 20, "seed": 0}, "x": 1}, resume=True
        )
    msg = str(err.value)
    assert "search.episodes: 10 -> 20" in msg
    assert "x: '<absent>' -> 1" in msg
    assert "model" not in msg.split("(key")[1]  # unchanged keys are not listed
    assert RunDir(tmp_path).read_config()["search"]["episodes"] == 10  # untouched


def test_force_resume_accepts_new_config_and_keeps_journal(tmp_path):
    run = RunDir(tmp_path).create({"episodes": 10})
    run.journal.append({"i": 0})
    run = RunDir(tmp_path).create({"episodes": 20}, resume=True, force=True)
    assert run.read_config() == {"episodes": 20}
    assert run.journal.records() == [{"i": 0}]


def test_existing_run_without_resume_is_refused(tmp_path):
    RunDir(tmp_path).create({"a": 1})
    with pytest.raises(RunDirError, match="already holds a run"):
        RunDir(tmp_path).create({"a": 1})


def test_force_without_resume_starts_over(tmp_path):
    run = RunDir(tmp_path).create({"a": 1})
    run.journal.append({"i": 0})
    run.write_result({"ok": True})
    run.checkpoint_path("agent.pt").write_bytes(b"x")
    (tmp_path / "notes.txt").write_text("user file")
    run = RunDir(tmp_path).create({"a": 2}, force=True)
    assert run.read_config() == {"a": 2}
    assert run.journal.records() == []
    assert not run.result_path.exists()
    assert not (tmp_path / "checkpoints").exists()
    assert (tmp_path / "notes.txt").read_text() == "user file"  # not ours: kept


def test_checkpoint_and_artifact_paths(tmp_path):
    run = RunDir(tmp_path)
    p = run.checkpoint_path("agent.pt")
    assert p == tmp_path / "checkpoints" / "agent.pt" and p.parent.is_dir()
    with pytest.raises(ValueError, match="plain file name"):
        run.checkpoint_path("../escape.pt")
    assert run.artifacts.plan.name == "plan.json"
    assert run.artifacts.model.name == "model.hirelc"
    assert run.artifacts.report.name == "report.html"


def test_config_diff_nested():
    assert config_diff({"a": {"b": 1, "c": 2}}, {"a": {"b": 1, "c": 3}}) == [("a.c", 2, 3)]
    assert config_diff({"a": [1, 2]}, {"a": [1, 2]}) == []


def test_discard_if_unused_removes_only_a_run_that_recorded_nothing(tmp_path):
    fresh = RunDir(tmp_path / "fresh").create({"a": 1})
    assert fresh.discard_if_unused() and not (tmp_path / "fresh").exists()
    used = RunDir(tmp_path / "used").create({"a": 1})
    used.journal.append({"plan": {}, "accuracy": 0.5})
    assert not used.discard_if_unused() and (tmp_path / "used" / "config.json").exists()
    shared = RunDir(tmp_path / "shared").create({"a": 1})
    (tmp_path / "shared" / "notes.txt").write_text("the user's own file")
    assert not shared.discard_if_unused() and (tmp_path / "shared" / "notes.txt").exists()
    assert not RunDir(tmp_path / "never-made").discard_if_unused()


# -- the user's files are never overwritten, a resume never deletes ---------------------------


@pytest.mark.parametrize("names", [["result.json", "plan.json"], ["journal.jsonl"], ["notes.txt"]])
def test_non_empty_folder_without_a_run_is_refused_and_left_alone(tmp_path, names):
    for name in names:
        (tmp_path / name).write_text('{"mine": true}\n')
    for flags in ({}, {"resume": True}, {"force": True}, {"resume": True, "force": True}):
        with pytest.raises(RunDirError, match="not empty .* holds no hirelc run"):
            RunDir(tmp_path).create({"a": 1}, **flags)
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(names)  # nothing added, nothing lost
    assert all((tmp_path / n).read_text() == '{"mine": true}\n' for n in names)


def test_a_file_or_a_foreign_config_is_not_a_run(tmp_path):
    (tmp_path / "file").write_text("x")
    with pytest.raises(RunDirError, match="is a file"):
        RunDir(tmp_path / "file").create({"a": 1})
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "config.json").write_text("[1, 2]")  # some other tool's config
    with pytest.raises(RunDirError, match="not a hirelc run"):
        RunDir(tmp_path / "other").create({"a": 1}, force=True)
    assert (tmp_path / "other" / "config.json").read_text() == "[1, 2]"


def test_empty_folder_is_used_and_a_refusal_removes_no_user_folder(tmp_path):
    RunDir(tmp_path / "empty").create({"a": 1}).close()
    assert (tmp_path / "empty" / "config.json").exists()
    (tmp_path / "mine").mkdir()
    run = RunDir(tmp_path / "mine").create({"a": 1})
    assert run.discard_if_unused() and (tmp_path / "mine").is_dir()  # the user's folder stays


def test_a_resumed_run_is_never_discarded(tmp_path):
    RunDir(tmp_path / "run").create({"a": 1}).close()  # a run killed before its first evaluation
    again = RunDir(tmp_path / "run").create({"a": 1}, resume=True)
    assert not again.discard_if_unused()
    assert (tmp_path / "run" / "config.json").exists()


@pytest.mark.parametrize("failure", [KeyboardInterrupt, ValueError])
def test_interrupted_or_failing_resume_keeps_the_run(tmp_path, monkeypatch, failure):
    from hirelc import pipeline

    config = pipeline.JobConfig(method="random", model="lenet5", data="digits", max_evaluations=2)
    RunDir(tmp_path / "run").create(config.to_dict()).close()

    def prepare(*args, **kwargs):
        raise failure("stopped while preparing the baseline")

    monkeypatch.setattr(pipeline, "prepare", prepare)
    with pytest.raises(failure):
        pipeline.run_job(config, tmp_path / "run", resume=True, progress=False, log=lambda m: None)
    assert (tmp_path / "run" / "config.json").exists()


@pytest.mark.parametrize("failure, kept", [(KeyboardInterrupt, True), (ValueError, False)])
def test_new_run_failing_while_preparing_is_removed_but_an_interrupted_one_is_resumable(
        tmp_path, monkeypatch, failure, kept):
    from hirelc import pipeline

    def prepare(*args, **kwargs):
        raise failure("stopped while preparing")

    monkeypatch.setattr(pipeline, "prepare", prepare)
    config = pipeline.JobConfig(method="random", model="lenet5", data="digits", max_evaluations=2)
    with pytest.raises(failure):
        pipeline.run_job(config, tmp_path / "new", progress=False, log=lambda m: None)
    assert (tmp_path / "new" / "config.json").exists() == kept


def test_a_run_killed_while_writing_its_first_config_can_be_started_again(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    (run / ".config.json.k2j3.tmp").write_text('{"a": ')  # the writer died before its rename
    (run / ".hirelc.lock").write_text('{"pid": 999999999}')
    assert RunDir(run).create({"a": 1}).read_config() == {"a": 1}


def test_atomic_writes_take_the_umask_mode_not_0600(tmp_path):
    import os
    import stat

    from hirelc.durable import atomic_write_bytes, atomic_write_text

    old = os.umask(0o022)
    try:
        atomic_write_text(tmp_path / "r.json", "{}")
        atomic_write_bytes(tmp_path / "m.hirelc", b"\x00")
    finally:
        os.umask(old)
    for name in ("r.json", "m.hirelc"):
        assert stat.S_IMODE((tmp_path / name).stat().st_mode) == 0o644, name
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.hirelc", "r.json"]  # no temporary left
