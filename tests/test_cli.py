"""End-to-end runs of the `hirelc` command on the embedded 8x8 digits (tiny budgets)."""

import argparse
import dataclasses
import json
from pathlib import Path

import pytest

from hirelc.cli import main

COMMON = ["--model", "lenet5", "--data", "digits", "--train-epochs", "1", "--quiet"]


def test_help_lists_every_command(capsys):
    with pytest.raises(SystemExit) as e:
        main(["--help"])
    assert e.value.code == 0
    text = capsys.readouterr().out
    for cmd in ("list-models", "list-datasets", "train", "inspect", "eval", "export", "search", "resume",
                "pareto", "report"):
        assert cmd in text


def test_listings(capsys):
    assert main(["list-models"]) == 0
    assert "releq_lenet" in capsys.readouterr().out
    assert main(["list-datasets"]) == 0
    assert "mnist5k" in capsys.readouterr().out


def test_bad_input_is_one_clear_line_and_exit_2(tmp_path, capsys):
    assert main(["eval", *COMMON, "--plan", str(tmp_path / "missing.json")]) == 2
    assert "plan file" in capsys.readouterr().err
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"features.0": {"bits": 12}}))
    assert main(["eval", *COMMON, "--plan", str(bad)]) == 2
    err = capsys.readouterr().err
    assert "features.0" in err and "bits must be in 1..8, got 12" in err
    assert main(["search", *COMMON, "--out", str(tmp_path / "r"), "--method", "nope"]) == 2
    assert "unknown search method 'nope'" in capsys.readouterr().err
    # A wrong data path leaves no half-made run behind, so the corrected command can reuse --out.
    assert main(["search", *COMMON, "--data", f"mnist-idx:{tmp_path / 'nowhere'}", "--out", str(tmp_path / "r")]) == 2
    assert "does not exist" in capsys.readouterr().err
    assert not (tmp_path / "r").exists()
    long_path = tmp_path / ("a-long-folder-name-" * 6) / "[plan].json"  # longer than a terminal line
    assert main(["eval", *COMMON, "--plan", str(long_path)]) == 2
    err = capsys.readouterr().err
    assert str(long_path) in err and err.count("\n") == 1  # one line, brackets kept (not rich markup)


@pytest.mark.slow
def test_search_eval_export_report(tmp_path, capsys):
    run = tmp_path / "run"
    args = ["search", *COMMON, "--method", "random", "--budget", "3", "--steps", "2", "--final-epochs", "1",
            "--out", str(run)]
    assert main(args) == 0
    result = json.loads((run / "result.json").read_text())
    for key in ("test/fp32_accuracy", "test/accuracy", "plan", "plan/avg_bits", "plan/param_weighted_avg_bits",
                "plan/state_of_quantization", "size/compression", "modelled/speedup_vs_8bit",
                "modelled/energy_reduction_vs_8bit", "search/evaluations", "run/wall_seconds", "seed", "split_sizes",
                "run/torch_threads"):
        assert key in result, key
    assert result["search/evaluations"] == 3
    documented = (Path(__file__).parents[1] / "docs" / "RESULT_JSON.md").read_text()
    assert [k for k in result if f"`{k}`" not in documented] == []  # every key written is in the docs
    assert json.loads((run / "config.json").read_text())["finetune_lr"] == 3e-4
    assert result["size/file_compression"] == pytest.approx(
        result["size/fp32_state_dict_bytes"] / (run / "model.hirelc").stat().st_size)
    assert result["size/compression"] == pytest.approx(result["size/fp32_tensor_bytes"] / result["size/packed_data_bytes"])
    assert (run / "report.html").exists()
    assert len((run / "journal.jsonl").read_text().splitlines()) == 3
    assert main(args) == 2  # an existing run is not overwritten silently
    assert "already holds a run" in capsys.readouterr().err

    capsys.readouterr()
    plan = str(run / "plan.json")
    # 3 fine-tune steps: a fidelity the search (2 steps) did not evaluate, so the first call computes
    assert main(["eval", *COMMON, "--plan", plan, "--steps", "3", "--json"]) == 0
    first = json.loads(capsys.readouterr().out)
    assert main(["eval", *COMMON, "--plan", plan, "--steps", "3", "--json"]) == 0
    second = json.loads(capsys.readouterr().out)
    assert not first["served_from_cache"] and second["served_from_cache"]
    assert first["val/accuracy"] == second["val/accuracy"]
    assert main(["eval", *COMMON, "--plan", plan, "--steps", "3", "--finetune-lr", "1e-3", "--json"]) == 0
    assert not json.loads(capsys.readouterr().out)["served_from_cache"]  # another lr is another result

    packed = tmp_path / "m.hirelc"
    assert main(["export", *COMMON, "--plan", plan, "--epochs", "0", "--out", str(packed)]) == 0
    assert packed.stat().st_size < result["size/fp32_state_dict_bytes"] / 4


@pytest.mark.slow
def test_pareto_places_a_search_result_and_checks_the_place_first(tmp_path, capsys):
    tiny = [*COMMON, "--bits", "2,8", "--steps", "0"]
    run = tmp_path / "run"
    assert main(["search", *tiny, "--method", "uniform", "--budget", "2", "--final-epochs", "1",
                 "--out", str(run), "--no-report"]) == 0
    searched = json.loads((run / "result.json").read_text())["bits"]

    missing = tmp_path / "no-such-run"
    assert main(["pareto", *tiny, "--out", str(tmp_path / "p0"), "--place", str(missing)]) == 2
    assert f"run directory {missing} does not exist" in capsys.readouterr().err
    assert not (tmp_path / "p0").exists()  # refused before enumerating anything

    assert main(["pareto", *tiny, "--out", str(tmp_path / "p"), "--place", str(run)]) == 0
    pareto = json.loads((tmp_path / "p" / "pareto.json").read_text())
    assert len(pareto["points"]) == 2 ** len(pareto["layers"])
    n = len(pareto["points"])  # the search's 2 uniform plans were computed by the same evaluator
    assert (pareto["evaluations/evaluations"], pareto["evaluations/served_from_cache"]) == (n, 2)
    assert pareto["evaluations/new_evaluations"] == n - 2 and pareto["evaluations/replayed"] == 0
    placed = pareto["placed"]
    assert placed["bits"] == searched
    point = next(p for p in pareto["points"] if p["bits"] == searched)
    best_allowed = max(f["accuracy"] for f in pareto["frontier"] if f["weighted_bits"] <= point["weighted_bits"] + 1e-12)
    assert placed["gap"] == pytest.approx(max(0.0, best_allowed - point["accuracy"]))


# -- every user error is one line, never a traceback (issue 10 item 5) ------------------------


def _one_error_line(capsys, *needles):
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1 and "Traceback" not in err, err
    for needle in needles:
        assert needle in err, (needle, err)
    return err


USER_MODULE = '''
import torch
from torch import nn

def wrong_input(num_classes):
    return nn.Sequential(nn.Flatten(), nn.Linear(10, num_classes))  # digits are 1x8x8 = 64 values

def nan_weights(in_channels, num_classes, image_size):
    net = nn.Sequential(nn.Flatten(), nn.Linear(in_channels * image_size ** 2, num_classes))
    with torch.no_grad():
        net[1].weight.fill_(float("nan"))
    return net

def broken(num_classes):
    raise FileNotFoundError("weights.pt")
'''


@pytest.fixture
def user_module(tmp_path, monkeypatch):
    (tmp_path / "usermod.py").write_text(USER_MODULE)
    monkeypatch.syspath_prepend(str(tmp_path))
    return "usermod"


@pytest.mark.parametrize("model, needles", [
    ("math:nope", ["'math:nope'", "no attribute 'nope'"]),             # AttributeError at the source
    ("math:pi", ["'math:pi'", "not a callable"]),
    ("no_such_pkg.models:net", ["'no_such_pkg.models:net'", "not found"]),
    ("usermod:broken", ["model factory 'usermod:broken' failed: FileNotFoundError"]),
    ("usermod:wrong_input", ["training model 'usermod:wrong_input' on 'digits' failed",
                             "must take 1x8x8 inputs"]),                # torch RuntimeError
    ("usermod:nan_weights", ["training diverged"]),                   # FloatingPointError
])
def test_model_import_and_training_errors_are_one_line(user_module, tmp_path, capsys, model, needles):
    args = ["train", "--model", model, "--data", "digits", "--train-epochs", "1", "--quiet"]
    assert main(args) == 2
    _one_error_line(capsys, *needles)


def test_os_errors_name_the_path(tmp_path, capsys):
    blocker = tmp_path / "file"
    blocker.write_text("the user's")
    assert main(["search", *COMMON, "--out", str(blocker / "run")]) == 2
    _one_error_line(capsys, str(blocker))
    assert main(["report", str(tmp_path / "no-run")]) == 2
    _one_error_line(capsys, "no-run")


def test_out_that_is_a_user_folder_is_refused_before_any_work(tmp_path, capsys):
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "result.json").write_text("{}")
    assert main(["search", *COMMON, "--out", str(mine)]) == 2
    _one_error_line(capsys, "not empty (result.json)", "choose a new or empty directory")
    assert sorted(p.name for p in mine.iterdir()) == ["result.json"]


def test_export_target_is_checked_before_the_fine_tune(tmp_path, capsys):
    from hirelc.paths import cache_dir

    plan = tmp_path / "plan.json"
    plan.write_text(json.dumps({"features.0": 4}))
    mine = tmp_path / "notes.txt"
    mine.write_text("the user's own file")
    for target, needle in ((tmp_path, "is a directory"), (mine, "not a packed file written by hirelc")):
        assert main(["export", *COMMON, "--plan", str(plan), "--out", str(target)]) == 2
        _one_error_line(capsys, str(target), needle)
    assert mine.read_text() == "the user's own file"
    assert not any(cache_dir("checkpoints").glob("*.pt"))  # refused before the baseline was trained


def test_a_run_locked_by_another_process_is_one_line(tmp_path, capsys):
    import os
    import signal
    import subprocess
    import sys

    hold = ("import sys, time\nfrom hirelc.rundir import RunDir\n"
            "run = RunDir(sys.argv[1]).create({'a': 1})\nprint('locked', flush=True)\ntime.sleep(60)\n")
    proc = subprocess.Popen([sys.executable, "-c", hold, str(tmp_path / "run")], stdout=subprocess.PIPE,
                            text=True, env=dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path)))
    try:
        assert proc.stdout.readline().strip() == "locked"
        assert main(["resume", str(tmp_path / "run"), "--quiet"]) == 2  # {'a': 1} is no search config
        _one_error_line(capsys, "not a hirelc search config: unknown keys ['a']")
        assert main(["search", *COMMON, "--out", str(tmp_path / "run"), "--resume"]) == 2
        _one_error_line(capsys, f"in use by process {proc.pid}")
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()


def test_a_bug_is_not_hidden_behind_an_error_line(monkeypatch):
    import hirelc.cli as cli

    def buggy(args):
        return {}["missing"]  # a KeyError inside hirelc is a bug: it must show its traceback

    monkeypatch.setattr(cli, "cmd_list_models", buggy)
    with pytest.raises(KeyError):
        cli.main(["list-models"])

def _subparser(name):
    from hirelc.cli import build_parser

    sub = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    return sub.choices[name]


@pytest.mark.parametrize("command", ["train", "inspect", "eval", "export", "search", "pareto"])
def test_help_states_every_default(command, capsys):
    from hirelc.cli import _DefaultsFormatter

    parser = _subparser(command)
    formatter = _DefaultsFormatter(command)
    for action in parser._actions:
        if action.option_strings and action.default not in (None, False, argparse.SUPPRESS):
            assert "default" in formatter._get_help_string(action), action.option_strings
    with pytest.raises(SystemExit):
        main([command, "--help"])
    text = " ".join(capsys.readouterr().out.split())  # argparse wraps lines
    assert "(default: releq_lenet)" in text and "(default: mnist5k)" in text and "(default: auto)" in text
    if command == "search":
        for shown in ("(default: 120)", "(default: 2,3,4,5,8)", "(default: 20)", "(default: 4)", "(default: 0)",
                      "(default: releq)"):
            assert shown in text, shown


def test_old_and_new_spellings_of_budget_and_steps_agree():
    parser = _subparser("search")
    old = parser.parse_args(["--out", "r", "--budget", "7", "--steps", "3"])
    new = parser.parse_args(["--out", "r", "--max-evaluations", "7", "--search-steps", "3"])
    assert vars(old) == vars(new) and new.budget == 7 and new.steps == 3


def test_search_options_are_named_like_the_job_config_fields():
    """The canonical spelling of every `search` option is a JobConfig field, a method option
    or a run flag: one name per concept across CLI, API and config.json."""
    from hirelc.pipeline import JobConfig

    fields = {f.name for f in dataclasses.fields(JobConfig)}
    method_options = {"agent", "reward", "action_space", "option"}  # --option KEY=VALUE: any method option
    space_choices = {"keep", "formats", "granularity"}  # parts of JobConfig.space
    run_flags = {"out", "resume", "force", "quiet", "no_report"}
    for action in _subparser("search")._actions:
        if not action.option_strings or action.dest == "help":
            continue
        canonical = action.option_strings[0].lstrip("-").replace("-", "_")
        assert canonical in fields | method_options | space_choices | run_flags, action.option_strings


@pytest.mark.slow
def test_a_search_in_a_log_prints_progress_and_resuming_it_when_finished_changes_nothing(tmp_path, capsys):
    run = tmp_path / "run"
    args = ["search", "--model", "lenet5", "--data", "digits", "--train-epochs", "1", "--method", "random",
            "--budget", "3", "--steps", "2", "--final-epochs", "1", "--out", str(run), "--no-report"]
    assert main(args) == 0  # capsys: stderr is not a terminal, as in a log file or CI
    err = capsys.readouterr().err
    assert "training lenet5 on digits" in err and "steps (100%)" in err  # baseline training
    assert "search: 1/3 evaluations (33%), best val acc" in err and "ETA" in err
    assert "search: 3/3 evaluations (100%)" in err and "done" in err
    assert "final fine-tune (1 epoch): " in err
    before = (run / "result.json").read_text()
    assert main(["resume", str(run)]) == 0
    err = capsys.readouterr().err
    assert "is finished" in err and "final fine-tune" not in err
    assert (run / "result.json").read_text() == before  # wall time and all kept
    result = json.loads(before)
    assert result["run/omp_wait_policy"] and result["run/torch_threads"] >= 1
    assert result["layer_params"] and len(result["layer_params"]) == len(result["layers"])
