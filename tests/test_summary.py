"""The end-of-search summary: percent with split sizes, per-layer configs by name, stop reason."""

from hirelc.summary import describe_plan, summary_rows


def test_rows_leave_out_what_the_result_does_not_have_and_name_the_stop():
    rows = summary_rows({"method": "releq", "search_val_accuracy": 0.9, "fp32_val_accuracy": 0.95,
                         "stop_reason": "converged", "split_sizes": {"val": 360}}, target_line="none")
    assert list(rows) == ["search", "target"]
    assert "policy converged" in rows["search"] and "90.0 %" in rows["search"] and "360 images" in rows["search"]


def test_plan_description_names_only_what_differs_from_the_defaults():
    plan = {"a": {"bits": 4, "keep_ratio": 1.0, "number_format": "int_sym", "granularity": "per_channel",
                  "group_size": None},
            "b": {"bits": 2, "keep_ratio": 0.25, "number_format": "pow2", "granularity": "per_group",
                  "group_size": 16}}
    assert describe_plan(plan) == "a 4b; b 2b keep 0.25 pow2 per_group:16"
