"""`hirelc export --onnx`: writes a runnable ONNX file, never over a user's file."""

from __future__ import annotations

import json

import numpy as np
import pytest

from hirelc.cli import main

ort = pytest.importorskip("onnxruntime")

COMMON = ["--model", "lenet5", "--data", "digits", "--train-epochs", "1", "--quiet"]


@pytest.mark.slow
def test_export_onnx_writes_a_runnable_file_and_keeps_existing_files(tmp_path, capsys) -> None:
    plan = tmp_path / "plan.json"
    plan.write_text(json.dumps({"features.0": {"bits": 4, "keep_ratio": 0.5}, "classifier.1": 3}))
    target = tmp_path / "m.onnx"
    assert main(["export", *COMMON, "--plan", str(plan), "--epochs", "0", "--onnx", str(target)]) == 0
    assert f"wrote {target}" in capsys.readouterr().out.replace("\n", "")
    sess = ort.InferenceSession(str(target), providers=["CPUExecutionProvider"])
    shape = [1 if isinstance(d, str) else d for d in sess.get_inputs()[0].shape]
    assert sess.run(None, {"input": np.zeros(shape, np.float32)})[0].shape == (1, 10)

    before = target.read_bytes()
    assert main(["export", *COMMON, "--plan", str(plan), "--epochs", "0", "--onnx", str(target)]) == 2
    assert "already exists" in capsys.readouterr().err
    assert target.read_bytes() == before
    assert main(["export", *COMMON, "--plan", str(plan)]) == 2
    assert "--out FILE" in capsys.readouterr().err
    folded = tmp_path / "f.onnx"
    assert main(["export", *COMMON, "--plan", str(plan), "--epochs", "0", "--onnx", str(folded),
                 "--onnx-decode", "load"]) == 0
    assert b"Cast" in folded.read_bytes() and b"DequantizeLinear" not in folded.read_bytes()


@pytest.mark.slow
def test_eval_latency_adds_measured_onnx_figures(tmp_path, capsys) -> None:
    plan = tmp_path / "plan.json"
    plan.write_text(json.dumps({"features.0": 4, "classifier.1": 4}))
    assert main(["eval", *COMMON, "--plan", str(plan), "--steps", "0", "--latency", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert 0 < report["onnx_file_bytes"] < report["onnx_fp32_file_bytes"]
    assert report["onnx_latency_ms"] > 0 and report["onnx_fp32_latency_ms"] > 0
    assert "measured" in report["onnx_latency_setting"]
