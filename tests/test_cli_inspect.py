"""`hirelc inspect` reports what share of the parameters the search can reach."""

import json

from hirelc.cli import main


def test_inspect_prints_the_coverage_and_its_json_sums_to_the_total(capsys):
    assert main(["inspect", "--model", "lenet5", "--data", "digits"]) == 0
    text = capsys.readouterr().out
    assert "compressible kernels" in text and "prunable" in text and "kept fp32 by design" in text
    assert main(["inspect", "--model", "lenet5", "--data", "digits", "--json"]) == 0
    cov = json.loads(capsys.readouterr().out)["coverage"]
    assert cov["kernels"] + cov["fp32_by_design"] + cov["unsupported"] == cov["total"]
    assert 0 < cov["prunable_rows"] <= cov["prunable"] <= cov["kernels"]
