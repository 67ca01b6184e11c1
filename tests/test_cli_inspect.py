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


def test_inspect_at_80_columns_keeps_every_name_whole_totals_and_summarises_fp32_in_one_line(capsys, monkeypatch):
    from hirelc.cli.output import out

    monkeypatch.setattr(out, "_width", 80)  # a narrow terminal (and rich's width in logs)
    assert main(["inspect", "--model", "vit_tiny", "--data", "digits"]) == 0
    lines = capsys.readouterr().out.splitlines()
    table = [line for line in lines if line[:1].isdigit()]
    assert len(table) == 28 and all(len(line) <= 80 for line in table)
    assert [line.split()[1] for line in table][:4] == ["patch_embed.stem.0", "patch_embed.stem.3",
                                                        "patch_embed.proj", "blocks.0.attn.qkv"]
    assert any(line.split()[:3] == ["total", "(28", "layers)"] for line in lines)
    fp32 = [line for line in lines if line.startswith("kept in fp32")]
    assert len(fp32) == 1 and "LayerNorm" in fp32[0] and "parameters" in fp32[0]
