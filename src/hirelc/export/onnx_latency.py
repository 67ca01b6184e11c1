"""Measured onnxruntime CPU latency of an exported model (for `hirelc eval --latency` and
benchmarks/onnx_latency.py).

Median of repeated `session.run` calls timed with time.perf_counter, after 3 warm-up runs
that are not counted. A measurement on the machine it runs on, never a model.

>>> import os, tempfile
>>> from torch import nn
>>> from hirelc.plan import LayerConfig, Plan
>>> net = nn.Sequential(nn.Linear(64, 32), nn.ReLU(), nn.Linear(32, 10)).eval()
>>> x = torch.randn(1, 64)
>>> report = onnx_latency_report(net, Plan({"0": LayerConfig(bits=4)}), x, tempfile.mkdtemp(), budget=0.05)
>>> sorted(report)
['onnx_file_bytes', 'onnx_fp32_file_bytes', 'onnx_fp32_latency_ms', 'onnx_latency_folded_ms', 'onnx_latency_ms', 'onnx_latency_setting']
"""

from __future__ import annotations

import os
import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from hirelc.export.onnx import export_onnx, require_onnx
from hirelc.inventory import Inventory
from hirelc.plan import Plan

__all__ = ["median_seconds", "onnx_latency_report", "onnx_session", "session_latency"]


def onnx_session(path: str | os.PathLike, threads: int = 1, fold_dequantize: bool = False,
                 profile_prefix: str | None = None) -> Any:
    """A CPU onnxruntime session with `threads` intra-op threads, sequential execution.

    fold_dequantize: let onnxruntime fold DequantizeLinear of constant weights into float32
    at load (`session.disable_quant_qdq`): the small file, float32 compute."""
    require_onnx()
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    opts.log_severity_level = 3
    if fold_dequantize:
        opts.add_session_config_entry("session.disable_quant_qdq", "1")
    if profile_prefix:
        opts.enable_profiling = True
        opts.profile_file_prefix = profile_prefix
    return ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])


def median_seconds(fn: Callable[[], Any], budget: float, min_runs: int = 5, max_runs: int = 200) -> float:
    """Median wall time of `fn()` over runs filling `budget` seconds (3 warm-up runs first)."""
    for _ in range(3):
        fn()
    times: list[float] = []
    start = time.perf_counter()
    while len(times) < min_runs or (time.perf_counter() - start < budget and len(times) < max_runs):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def session_latency(path: str | os.PathLike, x: np.ndarray, threads: int = 1, budget: float = 0.5,
                    fold_dequantize: bool = False) -> float:
    """Median seconds per `run` of the model at `path` on input `x`."""
    sess = onnx_session(path, threads, fold_dequantize)
    feed = {"input": x}
    return median_seconds(lambda: sess.run(None, feed), budget)


def onnx_latency_report(model: nn.Module, plan: Plan, example_input: torch.Tensor, folder: str | os.PathLike,
                        *, inventory: Inventory | None = None, threads: int = 1, budget: float = 0.5) -> dict:
    """Export `model` with `plan` and without (fp32) into `folder`, and measure both at the
    batch of `example_input`: flat keys for a report or result.json. "folded" is the
    quantized file in a session that folds DequantizeLinear into float32 weights at load."""
    folder = Path(folder)
    x = example_input.detach().cpu()
    quant = export_onnx(model, plan, folder / "model.onnx", x, inventory=inventory)
    fp32 = export_onnx(model, Plan({}), folder / "model_fp32.onnx", x, inventory=inventory)
    xs = x.numpy()
    return {
        "onnx_file_bytes": quant.file_bytes,
        "onnx_fp32_file_bytes": fp32.file_bytes,
        "onnx_latency_ms": 1e3 * session_latency(quant.path, xs, threads, budget),
        "onnx_latency_folded_ms": 1e3 * session_latency(quant.path, xs, threads, budget, fold_dequantize=True),
        "onnx_fp32_latency_ms": 1e3 * session_latency(fp32.path, xs, threads, budget),
        "onnx_latency_setting": f"onnxruntime CPU, batch {x.shape[0]}, {threads} thread(s), median, measured",
    }
