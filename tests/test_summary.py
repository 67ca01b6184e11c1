"""The end-of-search summary: percent with split sizes, per-layer configs by name, stop reason,
evaluations by origin, and one compression figure (the target is stated in bytes)."""

import re
from pathlib import Path

from hirelc.result_file import read_result
from hirelc.summary import describe_plan, evaluations_text, summary_rows, target_line

OLD_RUN = Path(__file__).parent / "fixtures" / "run_v1"


def test_rows_leave_out_what_the_result_does_not_have_and_name_the_stop():
    rows = summary_rows({"method": "releq", "val/accuracy": 0.9, "val/fp32_accuracy": 0.95,
                         "search/stop_reason": "converged", "split_sizes": {"val": 360}}, target_line="none")
    assert list(rows) == ["search", "target"]
    assert "policy converged" in rows["search"] and "90.0 %" in rows["search"] and "360 images" in rows["search"]


def test_plan_description_names_only_what_differs_from_the_defaults():
    plan = {"a": {"bits": 4, "keep_ratio": 1.0, "number_format": "int_sym", "granularity": "per_channel",
                  "group_size": None},
            "b": {"bits": 2, "keep_ratio": 0.25, "number_format": "pow2", "granularity": "per_group",
                  "group_size": 16}}
    assert describe_plan(plan) == "a 4b; b 2b keep 0.25 pow2 per_group:16"


def test_evaluations_are_split_into_new_cached_and_replayed_and_repeats_are_named_free():
    text = evaluations_text({"search/evaluations": 10, "search/new_evaluations": 5, "search/served_from_cache": 3,
                             "search/replayed": 2, "search/repeats": 4})
    assert text.startswith("10 = 5 new + 3 served from the evaluation cache + 2 replayed from the journal")
    assert "4 repeated proposals answered from memory, free" in text
    assert "repeated" not in evaluations_text({"search/evaluations": 1, "search/new_evaluations": 1})


def test_the_target_line_states_bytes_and_no_second_compression_figure():
    result = {"target": {"kind": "compression", "compression": 16.0, "max_bytes": 107770},
              "size/target_met": False, "size/packed_data_bytes": 108000, "size/fp32_tensor_bytes": 1724320}
    line = target_line(result)
    assert "NOT met" in line and "108,000 B" in line and "107,770 B" in line
    assert re.findall(r"[\d.]+x", line) == ["16x"]  # the target the user asked for, no measured ratio
    size = target_line({"target": {"kind": "size", "size_bytes": 5000, "max_bytes": 5000},
                        "size/target_met": True, "size/packed_data_bytes": 4000})
    assert size == "size: packed data section <= 5,000 B: met, 4,000 B"


def test_an_old_result_json_gives_the_same_summary_figures():
    rows = summary_rows(read_result(OLD_RUN), target_line(read_result(OLD_RUN)))
    assert rows["test accuracy (1,000 images)"] == "98.3 % fp32 -> 98.1 % compressed (-0.2 point)"
    assert rows["compression (measured)"] == ("16.42x = fp32 tensors 1,724,320 B / packed tensors 105,034 B "
                                              "(files: 1,727,949 B -> 105,898 B with header)")
    assert rows["real evaluations"].startswith("4 (0 replayed from the journal; new vs cached not recorded")
    assert "met, 105,034 B" in rows["target"] and "16.42" not in rows["target"]  # one figure, stated once
