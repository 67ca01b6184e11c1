"""`hirelc eval`: apply a plan to a model, accuracy before and after the short fine-tune, the
measured sizes and the one compression figure (defined as in a search's result.json)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from hirelc.cli.common import job_config, load_plan
from hirelc.cli.output import log_fn, out, print_table
from hirelc.summary import compression_text


def cmd_eval(args: argparse.Namespace) -> None:
    from hirelc.evaluate.calibrate import measure_size_model
    from hirelc.evaluate.fidelity import Fidelity
    from hirelc.export.packed import storage_bytes_model
    from hirelc.pipeline import eval_plan, plan_costs, prepare, state_dict_bytes
    from hirelc.result_file import COMPRESSION_DEFINITION

    plan = load_plan(args.plan)
    prep = prepare(job_config(args, search_steps=args.steps), progress=not args.quiet, log=log_fn(args))
    plan.validate_against([s.name for s in prep.inventory], [s.name for s in prep.inventory if s.prunable])
    fidelity = Fidelity.short(args.steps) if args.steps else Fidelity.none()
    before, after = eval_plan(prep, plan, fidelity, split=args.split)
    storage = storage_bytes_model(prep.model, plan, inventory=prep.inventory)
    fp32_tensors = measure_size_model(prep.model, prep.inventory).fp32_bytes
    fp32, packed = state_dict_bytes(prep.model), _packed_file_bytes(prep, plan)
    split = args.split
    report = {  # the keys of a search's result.json (hirelc.result_file), on the split asked
        "split": split, "split_sizes": prep.data.sizes(),
        f"{split}/fp32_accuracy": prep.evaluator.reference(split).accuracy,
        f"{split}/accuracy_before_finetune": before.accuracy, f"{split}/accuracy": after.accuracy,
        "finetune": str(fidelity), "status": after.status, "served_from_cache": after.cached,
        "seconds_of_the_real_evaluation": after.seconds,
        "size/packed_data_bytes": storage, "size/fp32_tensor_bytes": fp32_tensors,
        "size/packed_file_bytes": packed, "size/fp32_state_dict_bytes": fp32, "size/file_compression": fp32 / packed,
        # the one compression figure, defined as in a search's result.json
        "size/compression": fp32_tensors / storage, "size/compression_definition": COMPRESSION_DEFINITION,
        **plan_costs(prep.inventory, plan),
    }
    if args.latency:
        report |= _onnx_latency(prep, plan)
    if args.json:
        out.print_json(json.dumps(report))
        return
    print_table(f"plan {Path(args.plan).name} on {args.model} / {args.data}", eval_rows(report))
    out.print(f"compression = {COMPRESSION_DEFINITION}", soft_wrap=True)


def _packed_file_bytes(prep: Any, plan: Any) -> int:
    """Size of the packed file this plan gives (written to a temporary folder and measured),
    so `eval` reports the same compression as a search's result.json, header included."""
    import tempfile

    from hirelc.export.packed import export_packed

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "model.hirelc"
        export_packed(prep.model, plan, path, inventory=prep.inventory)
        return path.stat().st_size


def _onnx_latency(prep: Any, plan: Any) -> dict[str, Any]:
    """Measured onnxruntime latency of the plan (no fine-tune: latency does not depend on
    the weights' values) and of the fp32 model, batch 1, one thread."""
    import tempfile

    from hirelc.export.onnx_latency import onnx_latency_report

    with tempfile.TemporaryDirectory() as folder:
        return onnx_latency_report(prep.model, plan, prep.data.example_input().cpu(), folder,
                                   inventory=prep.inventory)


def eval_rows(r: dict[str, Any]) -> dict[str, str]:
    """`hirelc eval`'s table: labelled rows, accuracies in percent, one compression figure
    (the cost model's kernel-only ratio and raw counters stay in --json)."""
    split = r["split"]
    return {
        f"fp32 accuracy ({split}, {r['split_sizes'][split]:,} examples)": f"{100 * r[f'{split}/fp32_accuracy']:.2f}%",
        "accuracy before fine-tune": f"{100 * r[f'{split}/accuracy_before_finetune']:.2f}%",
        f"accuracy after fine-tune ({_steps_text(r['finetune'])})": f"{100 * r[f'{split}/accuracy']:.2f}%"
        + ("" if r["status"] == "ok" else f" ({r['status']})"),
        "served from cache": "yes" if r["served_from_cache"] else f"no ({r['seconds_of_the_real_evaluation']:.1f} s)",
        "parameter-weighted avg bits": f"{r['plan/param_weighted_avg_bits']:.2f}",
        "compression (measured)": compression_text(r),
        "speedup / energy vs 8-bit (modelled)":
            f"{r['modelled/speedup_vs_8bit']:.2f}x / {r['modelled/energy_reduction_vs_8bit']:.2f}x",
    }


def _steps_text(fidelity: str) -> str:
    """'short-20' (a fidelity key) -> '20 steps'; 'none' -> 'none'.

    >>> _steps_text("short-20"), _steps_text("none")
    ('20 steps', 'none')
    """
    return f"{fidelity.split('-', 1)[1]} steps" if fidelity.startswith("short-") else fidelity
