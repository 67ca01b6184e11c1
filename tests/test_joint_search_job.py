"""A joint-space search job with a size target, end to end through the CLI (tiny budgets)."""

import json

import pytest

from hirelc.cli import main
from hirelc.export.packed import read_layout, storage_bytes_model
from hirelc.pipeline import JobConfig, prepare
from hirelc.plan import Plan

COMMON = ["--model", "lenet5", "--data", "digits", "--train-epochs", "1", "--quiet"]


@pytest.mark.parametrize("method", ["tpe", "greedy"])
def test_joint_search_meets_the_target_on_the_packed_file(tmp_path, method):
    run = tmp_path / method
    assert main(["search", *COMMON, "--method", method, "--budget", "4", "--steps", "2", "--final-epochs", "1",
                 "--target-compression", "12", "--out", str(run), "--no-report"]) == 0
    result = json.loads((run / "result.json").read_text())
    assert result["size/packed_data_bytes"] == read_layout(run / "model.hirelc").data_bytes
    assert result["size/storage_model_matches_file"]
    assert result["size/storage_model_bytes"] == result["size/packed_data_bytes"]
    assert result["target"]["kind"] == "compression" and result["size/target_met"] is True
    assert result["size/fp32_tensor_bytes"] / result["size/packed_data_bytes"] >= 12
    assert result["space"]["keep_ratios"][-1] == 0.25  # the joint space by default with a target
    journal = [json.loads(line) for line in (run / "journal.jsonl").read_text().splitlines()]
    assert len(journal) == result["search/evaluations"] <= 4
    # every evaluated candidate met the target: recomputed with the packed-file storage model
    prep = prepare(JobConfig.from_dict(json.loads((run / "config.json").read_text())), progress=False,
                   log=lambda _msg: None)
    budget = result["target"]["max_bytes"]
    for record in journal:
        assert storage_bytes_model(prep.model, Plan.from_dict(record["plan"]), inventory=prep.inventory) <= budget


def test_bad_target_and_space_flags_fail_before_any_work(tmp_path, capsys):
    out = str(tmp_path / "r")
    assert main(["search", *COMMON, "--method", "releq", "--keep", "1,0.5", "--out", out]) == 2
    assert "bit-widths only" in capsys.readouterr().err
    assert main(["search", *COMMON, "--method", "tpe", "--target-size", "lots", "--out", out]) == 2
    assert "is not a size" in capsys.readouterr().err
    assert main(["search", *COMMON, "--method", "greedy", "--out", out]) == 2
    assert "greedy" in capsys.readouterr().err
    assert not (tmp_path / "r").exists()
