"""ONNX export: file size and onnxruntime CPU latency per zoo model and plan, measured, next
to the modelled bit-serial speedup.

    python benchmarks/onnx_latency.py                          # all zoo models, ~5-8 min
    python benchmarks/onnx_latency.py --models resnet20 vit_tiny --budget 0.3

Issue "Deployable export: ONNX". For each zoo model (1x28x28 inputs, 10 classes, as the
models of RESULTS.md; random initialisation: latency and size do not depend on the weights'
values) and each plan

    fp32      Plan({}): the model as torch.onnx exports it (BatchNorm folded into convs)
    int8      Plan.uniform(specs, bits=8)                    per-channel int_sym
    int4      Plan.uniform(specs, bits=4)
    int4 k0.5 Plan.uniform(specs, bits=4, keep_ratio=0.5)    prunes every prunable kernel
    releq     releq_lenet only: ReLeQ's plan [2, 2, 2, 2] from RESULTS.md ("the main job"),
              and the same with its 2-bit Linears stored at 4 bits (min_matmul_bits=4)

`hirelc.export_onnx` writes the file (size: os.stat). Latency: onnxruntime CPU session,
intra-op threads 1 and 2, sequential execution, batch 1 and 64; 3 warm-up runs (not
counted), then repeated runs for `--budget` seconds (at least 5, at most 200), each timed
with time.perf_counter; the median is reported. "folded" is the same file in a session with
`session.disable_quant_qdq=1`, where onnxruntime folds DequantizeLinear of constant weights
into float32 at load (smaller file, float32 compute); "decode=load" is the plan exported with
`export_onnx(..., decode="load")` (Cast/Mul nodes that a default session folds; Linears of
<= 4 bits as 4-bit MatMulNBits), timed in a default session (one thread). PyTorch fp32 is the eval model under
torch.inference_mode with torch.set_num_threads(threads). Measured speedup = fp32 ONNX
latency / this plan's latency at the same batch and threads; modelled = Stripes-style
bit-serial speedup over 8 bits (`hirelc.cost.stripes_speedup`), a model, not a measurement.

Batch-1 profiles (`--profile`, default resnet20 and vit_tiny at "int4 k0.5" and fp32, one
thread): onnxruntime's profiler, 50 runs, time per operator type summed over nodes.

Writes a JSON of every figure to --json (default: onnx_latency.json in the current folder).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

import numpy as np
import onnxruntime as ort
import torch

from hirelc.cost import stripes_speedup
from hirelc.export.onnx import export_onnx
from hirelc.export.onnx_latency import median_seconds, onnx_session, session_latency
from hirelc.inventory import inspect
from hirelc.plan import Plan
from hirelc.zoo import create_model, list_models

ort.set_default_logger_severity(3)
BATCHES = (1, 64)
THREADS = (1, 2)


def plans(name: str, specs) -> dict[str, tuple[Plan, int]]:
    """label -> (plan, min_matmul_bits of export_onnx)."""
    out = {"fp32": (Plan({}), 2), "int8": (Plan.uniform(specs, bits=8), 2), "int4": (Plan.uniform(specs, bits=4), 2),
           "int4 k0.5": (Plan.uniform(specs, bits=4, keep_ratio=0.5), 2)}
    if name == "releq_lenet":
        releq = Plan.from_bits([s.name for s in specs], [2, 2, 2, 2])
        out["releq"] = (releq, 2)
        out["releq, linears at 4b"] = (releq, 4)
    return out


def onnx_latency(path: str, x: np.ndarray, threads: int, budget: float, fold: bool = False) -> float:
    return session_latency(path, x, threads, budget, fold_dequantize=fold)


def torch_latency(model: torch.nn.Module, x: torch.Tensor, threads: int, budget: float) -> float:
    torch.set_num_threads(threads)
    try:
        with torch.inference_mode():
            return median_seconds(lambda: model(x), budget)
    finally:
        torch.set_num_threads(1)


def profile_ops(path: str, x: np.ndarray, tmp: Path, fold: bool = False) -> list[tuple[str, float]]:
    """op type -> share of summed node time over 50 batch-1 runs (onnxruntime profiler)."""
    sess = onnx_session(path, 1, fold_dequantize=fold, profile_prefix=str(tmp / "prof"))
    for _ in range(50):
        sess.run(None, {"input": x})
    events = json.loads(Path(sess.end_profiling()).read_text())
    per_op: dict[str, float] = defaultdict(float)
    for e in events:
        if e.get("cat") == "Node" and e.get("name", "").endswith("_kernel_time"):
            per_op[e["args"]["op_name"]] += e["dur"]
    total = sum(per_op.values()) or 1.0
    return sorted(((op, us / total) for op, us in per_op.items()), key=lambda t: -t[1])


def bench_model(name: str, args: argparse.Namespace, tmp: Path) -> dict:
    torch.manual_seed(0)
    model = create_model(name, in_channels=1, num_classes=10, image_size=28).eval()
    example = torch.randn(1, 1, 28, 28)
    specs = inspect(model, example)
    xs = {b: torch.randn(b, 1, 28, 28) for b in BATCHES}
    rows = {}
    for label, (plan, min_bits) in plans(name, specs).items():
        path = str(tmp / f"{name}-{label.replace(' ', '_').replace(',', '')}.onnx")
        result = export_onnx(model, plan, path, example, inventory=specs, min_matmul_bits=min_bits)
        row = {"file_bytes": result.file_bytes, "modelled_stripes_vs_8bit": stripes_speedup(specs, plan),
               "lines": result.lines(), "onnx": {}, "folded": {}, "conv_fold": {}}
        if label != "fp32":  # the same plan with decode="load" (Cast/Mul, folded at load)
            fold_path = path.replace(".onnx", "-fold.onnx")
            fold = export_onnx(model, plan, fold_path, example, inventory=specs, min_matmul_bits=min_bits,
                               decode="load")
            row["conv_fold_file_bytes"] = fold.file_bytes
        for b in BATCHES:
            for t in THREADS:
                key = f"b{b}/t{t}"
                row["onnx"][key] = onnx_latency(path, xs[b].numpy(), t, args.budget)
                if label != "fp32" and t == 1:
                    row["folded"][key] = onnx_latency(path, xs[b].numpy(), t, args.budget, fold=True)
                    row["conv_fold"][key] = onnx_latency(fold_path, xs[b].numpy(), t, args.budget)
        rows[label] = row
        print(f"  {name} {label}: {result.file_bytes:,} B, b1/t1 {row['onnx']['b1/t1'] * 1e3:.3f} ms", flush=True)
    pytorch = {f"b{b}/t{t}": torch_latency(model, xs[b], t, args.budget) for b in BATCHES for t in THREADS}
    profiles = {}
    if name in args.profile:
        for label, fold in (("fp32", False), ("int4 k0.5", False), ("int4 k0.5", True)):
            path = str(tmp / f"{name}-{label.replace(' ', '_')}.onnx")
            profiles[label + (" folded" if fold else "")] = profile_ops(path, xs[1].numpy(), tmp, fold)
    return {"plans": rows, "pytorch_fp32": pytorch, "profiles": profiles}


def _ms(seconds: float) -> str:
    return f"{seconds * 1e3:.3f}" if seconds < 0.01 else f"{seconds * 1e3:.1f}"


def markdown(results: dict) -> str:
    cols = [f"b{b} t{t}" for b in BATCHES for t in THREADS]
    head = ("| model | plan | ONNX file B | fp32 ONNX / this | " + " | ".join(f"ORT {c} ms" for c in cols)
            + " | session-folded b1 t1 / b64 t1 ms | decode=load: file B, b1 t1 / b64 t1 ms "
            "| PyTorch fp32 b1 t1 / b64 t1 ms | measured speedup vs fp32 ONNX, b1 t1 / b64 t1 | same, "
            "session-folded | same, decode=load | modelled vs 8-bit |")
    out = [head, "|" + "---|" * (head.count("|") - 1)]
    for name, r in results.items():
        fp32 = r["plans"]["fp32"]["onnx"]
        for label, row in r["plans"].items():
            lat = " | ".join(_ms(row["onnx"][c.replace(" ", "/")]) for c in cols)
            f = row["folded"]
            folded = f"{_ms(f['b1/t1'])} / {_ms(f['b64/t1'])}" if f else "-"
            pt = r["pytorch_fp32"]
            torch_ms = f"{_ms(pt['b1/t1'])} / {_ms(pt['b64/t1'])}" if label == "fp32" else ""
            speed = f"{fp32['b1/t1'] / row['onnx']['b1/t1']:.2f}x / {fp32['b64/t1'] / row['onnx']['b64/t1']:.2f}x"
            fspeed = f"{fp32['b1/t1'] / f['b1/t1']:.2f}x / {fp32['b64/t1'] / f['b64/t1']:.2f}x" if f else "-"
            c = row.get("conv_fold") or {}
            cfold = (f"{row['conv_fold_file_bytes']:,}, {_ms(c['b1/t1'])} / {_ms(c['b64/t1'])}" if c else "-")
            cspeed = f"{fp32['b1/t1'] / c['b1/t1']:.2f}x / {fp32['b64/t1'] / c['b64/t1']:.2f}x" if c else "-"
            size = r["plans"]["fp32"]["file_bytes"] / row["file_bytes"]
            out.append(f"| {name} | {label} | {row['file_bytes']:,} | {size:.2f}x | {lat} | {folded} | {cfold} | "
                       f"{torch_ms} | {speed} | {fspeed} | {cspeed} | {row['modelled_stripes_vs_8bit']:.2f}x |")
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--models", nargs="*", default=list_models())
    p.add_argument("--budget", type=float, default=0.4, help="seconds of timed runs per figure")
    p.add_argument("--profile", nargs="*", default=["resnet20", "vit_tiny"])
    p.add_argument("--json", default="onnx_latency.json")
    args = p.parse_args(argv)
    torch.set_num_threads(1)
    load_before = os.getloadavg()
    start = time.perf_counter()
    results = {}
    with tempfile.TemporaryDirectory() as d:
        for name in args.models:
            results[name] = bench_model(name, args, Path(d))
    meta = {"command": "python " + " ".join(sys.argv), "load_before": load_before, "load_after": os.getloadavg(),
            "wall_s": time.perf_counter() - start, "onnxruntime": ort.__version__, "torch": torch.__version__,
            "cpus": os.cpu_count()}
    Path(args.json).write_text(json.dumps({"meta": meta, "results": results}, indent=1))
    print(markdown(results))
    for name, r in results.items():
        for label, ops in r["profiles"].items():
            top = ", ".join(f"{op} {share:.0%}" for op, share in ops[:5])
            print(f"profile {name} {label} (batch 1, 1 thread): {top}")
    print(f"load average before {load_before}, after {meta['load_after']}; {meta['wall_s']:.0f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
