"""`hirelc export`: fine-tune a plan and write the packed model file and/or an ONNX model,
with their measured sizes."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from hirelc.cli.common import job_config, load_plan
from hirelc.cli.output import log_fn, out


def cmd_export(args: argparse.Namespace) -> None:
    from hirelc.export.packed import export_packed, is_packed_file
    from hirelc.pipeline import prepare, state_dict_bytes
    from hirelc.rundir import check_output_file

    if not (args.out or args.onnx):
        raise ValueError("export needs --out FILE (the packed model) and/or --onnx FILE")
    if args.onnx:
        _check_onnx_target(Path(args.onnx))
    plan = load_plan(args.plan)
    if args.out:
        check_output_file(args.out, is_packed_file, "packed file")  # before the fine-tune, not after
    prep = prepare(job_config(args), progress=not args.quiet, log=log_fn(args))
    model = prep.model  # export_packed compresses an fp32 model itself
    if args.epochs:
        model, result = prep.evaluator.final_finetune(plan, args.epochs, split="test")
        log_fn(args)(f"fine-tuned {args.epochs} epochs: test accuracy {result.accuracy:.4f}")
    fp32 = state_dict_bytes(prep.model)
    if args.out:
        path = Path(args.out)
        export_packed(model, plan, path, inventory=prep.inventory)
        size = path.stat().st_size
        out.print(f"wrote {path}: {size:,} bytes (fp32 state_dict {fp32:,} bytes, {fp32 / size:.2f}x smaller, measured)")
    if args.onnx:
        _export_onnx(args, model, plan, prep, fp32)


def _check_onnx_target(path: Path) -> None:
    """Fail before any work: onnx missing, or a file the user owns at the target path."""
    from hirelc.export.onnx import require_onnx

    require_onnx()
    if path.exists():
        raise ValueError(f"{path} already exists; remove it or choose another --onnx path")


def _export_onnx(args: argparse.Namespace, model: Any, plan: Any, prep: Any, fp32: int) -> None:
    from hirelc.export.onnx import export_onnx

    device = next(prep.model.parameters()).device
    result = export_onnx(model, plan, args.onnx, prep.data.example_input().to(device), inventory=prep.inventory,
                         decode=args.onnx_decode)
    for line in result.lines():
        log_fn(args)(f"  {line}")
    size = result.file_bytes
    out.print(f"wrote {result.path}: {size:,} bytes (fp32 state_dict {fp32:,} bytes, "
              f"{fp32 / size:.2f}x smaller, measured); run it with onnxruntime, input name 'input'")
