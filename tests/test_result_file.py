"""result.json keys: namespaced, one name per concept, and a run directory written before the
rename (tests/fixtures/run_v1, by main be04308) still reads, reports and resumes."""

import json
import shutil
import warnings
from pathlib import Path

import pytest

import hirelc
from hirelc.cli import main
from hirelc.plan import Plan
from hirelc.result_file import DROPPED, NESTED_SIZE, RENAMED, RESULT_VERSION, Result, read_result, upgrade

OLD_RUN = Path(__file__).parent / "fixtures" / "run_v1"
PREFIXES = ("val/", "test/", "size/", "plan/", "modelled/", "search/", "run/")


def _old() -> dict:
    return json.loads((OLD_RUN / "result.json").read_text())


def test_every_old_key_has_one_namespaced_name():
    assert all(new.startswith(PREFIXES) for new in RENAMED.values())
    assert len(set(RENAMED.values())) == len(RENAMED)  # no two old names merged into one


def test_an_old_result_json_upgrades_without_losing_a_figure():
    old = _old()
    assert "result_version" not in old  # the fixture really is the old format
    new = hirelc.read_result(OLD_RUN)  # the public name
    for key, name in RENAMED.items():
        if key in old:
            assert new[name] == old[key], key
    for key in NESTED_SIZE:
        assert new[f"size/{key}"] == old["size"][key]
    assert not set(RENAMED) & set(new) and "size" not in new and not set(DROPPED) & set(new)
    assert new["size/compression_definition"].startswith("fp32 tensor bytes / packed tensor bytes")
    assert new["size/compression"] == old["size"]["fp32_tensor_bytes"] / old["size"]["packed_data_bytes"]
    assert new["size/file_compression"] == old["compression_ratio"]
    assert new["plan"] == old["plan"] and new["search"] == old["search"]  # identity and log unchanged
    assert upgrade(new) == new  # idempotent


def test_the_current_version_is_read_as_written():
    written = {"result_version": RESULT_VERSION, "test/accuracy": 0.9, "size": "a key of a future version"}
    assert upgrade(written) == written


def test_old_key_names_still_answer_with_a_deprecation_warning():
    result = read_result(OLD_RUN)
    with pytest.warns(DeprecationWarning, match="'final_test_accuracy' is now 'test/accuracy'"):
        assert result["final_test_accuracy"] == _old()["final_test_accuracy"]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert result.get("no_such_key", 7) == 7
    with pytest.raises(KeyError):
        Result({})["final_test_accuracy"]  # an old name of a figure the result does not have


def test_an_old_run_directory_reports_resumes_and_feeds_eval(tmp_path, capsys):
    run = tmp_path / "old"
    shutil.copytree(OLD_RUN, run)
    assert main(["report", str(run)]) == 0
    page = (run / "report.html").read_text()
    assert "98.10%" in page and "16.42" in page and "new vs cached not recorded" in page
    assert main(["resume", str(run)]) == 0  # finished: shows the recorded result, recomputes nothing
    captured = capsys.readouterr()
    out = captured.out
    assert "is finished" in captured.err
    assert "98.1 % compressed" in out and "16.42x" in out
    assert json.loads((run / "result.json").read_text()) == _old()  # never rewritten
    assert Plan.from_json((run / "result.json").read_text()) == Plan.from_dict(_old()["plan"])  # eval --plan
