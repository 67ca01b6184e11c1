"""`hirelc search --option KEY=VALUE`: method options from the command line."""

import pytest

from hirelc.cli import _method_options


def test_option_values_are_read_as_json_else_as_text():
    assert _method_options(["flat=true", "evals_per_cycle=6", "uncertain_share=0.5", "agent=mlp"]) == {
        "flat": True, "evals_per_cycle": 6, "uncertain_share": 0.5, "agent": "mlp"}


def test_an_option_without_a_value_is_a_clear_error():
    with pytest.raises(ValueError, match="expected KEY=VALUE"):
        _method_options(["flat"])
