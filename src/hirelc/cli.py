"""The `hirelc` command. Each sub-command is a thin shell over one library call; errors a
user can fix (bad plan, missing file, unknown model) print one clear line and exit 2."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from hirelc.cli_args import (
    BITS_ONLY_DEFAULT,
    _DefaultsFormatter,
    _args_pattern,
    _args_model_data,
    _args_inspect,
    _args_eval,
    _args_export,
    _args_search,
    _args_resume,
    _args_pareto,
    _args_run,
    _add,
)
from hirelc.runlock import RunLockedError
from hirelc.methods.executors import EvaluationFailed

console = Console(stderr=True, highlight=False)
out = Console(highlight=False)

EXAMPLES = """examples:
  hirelc search --method releq --model releq_lenet --data mnist5k --out runs/lenet
  hirelc eval --model releq_lenet --data mnist5k --plan runs/lenet/plan.json
  hirelc pareto --model releq_lenet --data mnist5k --bits 2,3,4,5,8 --out runs/pareto --place runs/lenet
  hirelc report runs/lenet
  hirelc export --model releq_lenet --data mnist5k --plan runs/lenet/plan.json --onnx lenet.onnx
"""


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not hasattr(args, "func"):
        parser.print_help()
        return 0
    try:
        return args.func(args) or 0
    except USER_ERRORS as e:
        # One unwrapped line (paths stay copyable); the message is text, not rich markup.
        console.print(f"[bold red]error:[/] {escape(_one_line(e))}", soft_wrap=True)
        return 2
    except KeyboardInterrupt:
        console.print("interrupted: journaled evaluations are kept; continue with `hirelc resume RUN`")
        return 130


# Errors a user causes and can fix. ValueError covers bad values, files and factories
# (hirelc converts user-caused TypeError/AttributeError/RuntimeError into ValueErrors where
# they arise); OSError names the file it could not read or write; FloatingPointError is a
# diverged fp32 training; RunLockedError another process on the run. Not TypeError or
# KeyError in general: those are bugs, and a bug should show its traceback.
USER_ERRORS: tuple[type[BaseException], ...] = (ValueError, ImportError, OSError, FloatingPointError, RunLockedError,
                                                 EvaluationFailed)


def _one_line(e: BaseException) -> str:
    """The exception's message; an OSError whose text lacks its file name gets it appended."""
    text = str(e) or type(e).__name__
    if isinstance(e, OSError) and e.filename and str(e.filename) not in text:
        text += f": {e.filename}"
    return text


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="hirelc",
        description="Compress trained PyTorch models: search, per layer, structured pruning, bit-width, "
        "number format and granularity (HiReLC; bit-widths only with ReLeQ) for a size or accuracy target, "
        "fine-tune, and write a packed model that is really smaller (and, optionally, an ONNX model).",
        epilog=EXAMPLES,
        formatter_class=_DefaultsFormatter,
    )
    sub = p.add_subparsers(title="commands", metavar="COMMAND")
    _add(sub, "list-models", "list the built-in models", _cmd_list_models, _args_pattern)
    _add(sub, "list-datasets", "list the built-in datasets and file formats", _cmd_list_datasets)
    _add(sub, "train", "train (or load the cached) fp32 baseline", _cmd_train, _args_model_data)
    _add(sub, "inspect", "list a model's compressible layers and what stays fp32", _cmd_inspect, _args_inspect)
    _add(sub, "eval", "apply a plan: accuracy before/after fine-tune, size, modelled speed", _cmd_eval, _args_eval)
    _add(sub, "export", "fine-tune a plan and write the packed model file", _cmd_export, _args_export)
    _add(sub, "search", "search a plan and write a run directory", _cmd_search, _args_search)
    _add(sub, "resume", "continue a killed search from its run directory", _cmd_resume, _args_resume)
    _add(sub, "pareto", "enumerate a small bitwidth space and its Pareto frontier", _cmd_pareto, _args_pareto)
    _add(sub, "report", "write report.html and figures for a run directory", _cmd_report, _args_run)
    return p



def _cmd_list_models(args: argparse.Namespace) -> None:
    from hirelc.zoo import get_model_entry, list_models

    table = Table("model", "description", box=None)
    for name in list_models(args.pattern):
        table.add_row(name, get_model_entry(name).description)
    out.print(table)


def _cmd_list_datasets(args: argparse.Namespace) -> None:
    from hirelc.data import list_datasets

    table = Table("dataset", "description", box=None)
    for name, text in list_datasets().items():
        table.add_row(name, text)
    out.print(table)


def _cmd_train(args: argparse.Namespace) -> None:
    from hirelc.data import load_dataset
    from hirelc.pipeline import load_baseline

    data = load_dataset(args.data, seed=args.split_seed, root=args.data_root)
    _log(args)(f"data: {data}")
    _, info = load_baseline(_job(args), data, progress=not args.quiet)
    out.print(info.summary())


def _cmd_inspect(args: argparse.Namespace) -> None:
    from hirelc.data import load_dataset
    from hirelc.inventory import inspect
    from hirelc.inventory.summary import compact, fp32_summary, inventory_totals, uncompressed_param_counts
    from hirelc.zoo import create_model

    data = load_dataset(args.data, seed=args.split_seed, root=args.data_root)
    model = create_model(args.model, data.in_channels, data.num_classes, data.image_size)
    inv = inspect(model, data.example_input())
    if args.json:
        out.print_json(json.dumps({"layers": [s.to_dict() for s in inv], "uncompressed": inv.unsupported,
                                   "coverage": inv.coverage.to_dict()}))
        return
    totals = inventory_totals(inv)
    # Names never truncated: the layer column keeps its full width and the rest shrink (MACs
    # compact, e.g. 1.8M; exact counts in --json).
    table = Table("#", "layer", "kind", "shape", "params", "MACs", "block", "prune", box=None, pad_edge=False,
                  show_footer=True)
    table.columns[1].no_wrap = True
    table.columns[1].min_width = max([len(s.name) for s in inv] + [5])
    for s in inv:
        table.add_row(str(s.index), s.name, s.kind, "x".join(map(str, s.weight_shape)), f"{s.n_params:,}",
                      compact(s.n_macs), "" if s.block == s.name else s.block, "yes" if s.prunable else "no")
    for column, text in zip(table.columns, ("", f"total ({totals['layers']} layers)", "", "",
                                            f"{totals['params']:,}", compact(totals["macs"]), "",
                                            f"{totals['prunable']}/{totals['layers']}")):
        column.footer = text
    out.print(table)
    model_params = sum(p.numel() for p in model.parameters())
    out.print(f"compressible: {totals['params']:,} of {model_params:,} parameters; "
              f"{totals['macs']:,} MACs per example (measured with forward hooks)", soft_wrap=True)
    for s in inv:
        if not s.prunable and s.prune_reason:
            out.print(f"not prunable: {s.name}: {s.prune_reason}", soft_wrap=True)
    counts = uncompressed_param_counts(model, [name for name, _ in inv.unsupported])
    out.print(fp32_summary(inv.unsupported, counts, model_params), soft_wrap=True)
    out.print(f"coverage of the {inv.coverage.total:,} parameters (what the search can reach):", markup=False)
    for line in inv.coverage.lines():
        out.print(f"  {line}", markup=False)


def _load_plan(path: str) -> Any:
    from hirelc.plan import Plan

    p = Path(path)
    if not p.exists():
        raise FileNotFoundError(f"plan file {p} not found")
    return Plan.from_json(p.read_text())


def _job(args: argparse.Namespace, **extra: Any) -> Any:
    from hirelc.pipeline import JobConfig

    return JobConfig(model=args.model, data=args.data, data_root=args.data_root, split_seed=args.split_seed,
                     seed=getattr(args, "seed", 0), device=args.device, train_epochs=args.train_epochs,
                     **({"finetune_lr": args.finetune_lr} if args.finetune_lr is not None else {}),
                     **_executor_fields(args), **extra)


def _executor_fields(args: argparse.Namespace) -> dict[str, Any]:
    """--executor / --workers / --ray-address, for the commands that have them."""
    if not hasattr(args, "executor"):
        return {}
    return {"executor": args.executor, "workers": args.workers, "ray_address": args.ray_address}


def _cmd_eval(args: argparse.Namespace) -> None:
    from hirelc.evaluate.fidelity import Fidelity
    from hirelc.export.packed import storage_bytes_model
    from hirelc.pipeline import eval_plan, plan_costs, prepare, state_dict_bytes

    plan = _load_plan(args.plan)
    prep = prepare(_job(args, search_steps=args.steps), progress=not args.quiet, log=_log(args))
    plan.validate_against([s.name for s in prep.inventory], [s.name for s in prep.inventory if s.prunable])
    fidelity = Fidelity.short(args.steps) if args.steps else Fidelity.none()
    before, after = eval_plan(prep, plan, fidelity, split=args.split)
    storage = storage_bytes_model(prep.model, plan, inventory=prep.inventory)
    fp32, packed = state_dict_bytes(prep.model), _packed_file_bytes(prep, plan)
    report = {
        "split": args.split, "split_sizes": prep.data.sizes(),
        "fp32_accuracy": prep.evaluator.reference(args.split).accuracy,
        "accuracy_before_finetune": before.accuracy, "accuracy_after_finetune": after.accuracy,
        "finetune": str(fidelity), "status": after.status, "served_from_cache": after.cached,
        "seconds_of_the_real_evaluation": after.seconds,
        "packed_data_bytes": storage, "packed_bytes": packed, "fp32_state_dict_bytes": fp32,
        # the one compression figure, defined as in a search's result.json
        "compression_ratio": fp32 / packed, "compression_definition": COMPRESSION_DEFINITION,
        **plan_costs(prep.inventory, plan),
    }
    if args.latency:
        report |= _onnx_latency(prep, plan)
    if args.json:
        out.print_json(json.dumps(report))
        return
    _print_table(f"plan {Path(args.plan).name} on {args.model} / {args.data}", _eval_rows(report))
    out.print(f"compression = {COMPRESSION_DEFINITION}", soft_wrap=True)


COMPRESSION_DEFINITION = "fp32 state_dict file bytes / packed .hirelc file bytes (both measured)"


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


def _cmd_export(args: argparse.Namespace) -> None:
    from hirelc.export.packed import export_packed, is_packed_file
    from hirelc.pipeline import prepare, state_dict_bytes
    from hirelc.rundir import check_output_file

    if not (args.out or args.onnx):
        raise ValueError("export needs --out FILE (the packed model) and/or --onnx FILE")
    if args.onnx:
        _check_onnx_target(Path(args.onnx))
    plan = _load_plan(args.plan)
    if args.out:
        check_output_file(args.out, is_packed_file, "packed file")  # before the fine-tune, not after
    prep = prepare(_job(args), progress=not args.quiet, log=_log(args))
    model = prep.model  # export_packed compresses an fp32 model itself
    if args.epochs:
        model, result = prep.evaluator.final_finetune(plan, args.epochs, split="test")
        _log(args)(f"fine-tuned {args.epochs} epochs: test accuracy {result.accuracy:.4f}")
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
        _log(args)(f"  {line}")
    size = result.file_bytes
    out.print(f"wrote {result.path}: {size:,} bytes (fp32 state_dict {fp32:,} bytes, "
              f"{fp32 / size:.2f}x smaller, measured); run it with onnxruntime, input name 'input'")


def _cmd_search(args: argparse.Namespace) -> None:
    from hirelc.pipeline import run_job

    options = {k: v for k, v in (("agent", args.agent), ("reward", args.reward),
                                 ("action_space", args.action_space)) if v is not None}
    options |= _method_options(args.option)
    config = _job(args, method=args.method, bits=_bits(args.bits), max_evaluations=args.budget,
                  search_steps=args.steps, final_epochs=args.final_epochs, options=options, space=_space(args),
                  target_compression=args.target_compression, target_size=args.target_size,
                  max_accuracy_drop=args.max_accuracy_drop)
    result = run_job(config, args.out, resume=args.resume, force=args.force, progress=not args.quiet, log=_log(args))
    _finish_run(args.out, result, report=not args.no_report)


def _method_options(items: list[str]) -> dict[str, Any]:
    """--option KEY=VALUE pairs -> options (JSON values: true, 6, 0.5; anything else is text)."""
    out: dict[str, Any] = {}
    for item in items:
        key, sep, text = item.partition("=")
        if not sep or not key.strip():
            raise ValueError(f"--option {item!r}: expected KEY=VALUE, e.g. --option flat=true")
        try:
            out[key.strip()] = json.loads(text)
        except json.JSONDecodeError:
            out[key.strip()] = text
    return out


def _cmd_resume(args: argparse.Namespace) -> None:
    from hirelc.pipeline import JobConfig, run_job
    from hirelc.rundir import RunDir

    config = RunDir(args.run).read_config()
    if config.get("job") == "pareto":
        raise ValueError(f"{args.run} is a pareto enumeration: continue it with `hirelc pareto ... --resume`")
    result = run_job(JobConfig.from_dict(config), args.run, resume=True, force=args.force,
                     progress=not args.quiet, log=_log(args))
    _finish_run(args.run, result, report=True)


def _cmd_pareto(args: argparse.Namespace) -> None:
    from hirelc.pareto_job import run_pareto
    from hirelc.report import write_report

    config = _job(args, bits=_bits(args.bits), search_steps=args.steps)
    data = run_pareto(config, args.out, place=args.place, limit=args.limit, force_space=args.force,
                      resume=args.resume, progress=not args.quiet, log=_log(args))
    out.print(f"{len(data['points']):,} configurations, {len(data['frontier'])} on the frontier")
    if "placed" in data:
        out.print(f"search result {data['placed']['bits']}: {100 * data['placed']['gap']:.2f} points below the frontier")
    out.print(f"report: {write_report(args.out)}")
    if args.place is not None:  # the search's own report gains the Pareto view
        from hirelc.report.html import link_pareto

        link_pareto(args.place, Path(args.out) / "pareto.json")
        out.print(f"report: {write_report(args.place)} (now with the Pareto view)")


def _cmd_report(args: argparse.Namespace) -> None:
    from hirelc.report import write_report

    out.print(f"report: {write_report(args.run)}")


# -- output -----------------------------------------------------------------------------------

def _finish_run(run: str, result: dict[str, Any], report: bool) -> None:
    from hirelc.summary import summary_rows

    _print_table(f"{result['method']} on {result['model']} / {result['data']} (seed {result['seed']})",
                 summary_rows(result, _target_line(result)))
    for note in result.get("notes", []):
        out.print(f"note: {note}")
    if report:
        from hirelc.report import write_report

        out.print(f"report: {write_report(run)}")


def _target_line(result: dict[str, Any]) -> str:
    """'compression >= 16x: met (17.1x measured on the packed data)' or 'none'."""
    target, size = result.get("target") or {}, result.get("size") or {}
    kind = target.get("kind")
    if kind is None:
        return "none (ReLeQ shaped reward)"
    if kind == "max_accuracy_drop":
        met = result.get("target_met")
        return f"validation accuracy within {target['max_accuracy_drop']:g} point of fp32: {'met' if met else 'NOT met'}"
    met = result.get("target_met_by_file")
    ratio = size.get("compression_vs_fp32_tensors", float("nan"))
    return (f"storage <= {target['max_bytes']:,} B: {'met' if met else 'NOT met'} "
            f"({size.get('packed_data_bytes', 0):,} B packed data, {ratio:.2f}x vs fp32 tensors)")


def _print_table(title: str, rows: dict[str, Any]) -> None:
    table = Table(title=title, show_header=False, box=None)
    for k, v in rows.items():
        table.add_row(str(k), f"{v:.4g}" if isinstance(v, float) else str(v))
    out.print(table)


def _eval_rows(r: dict[str, Any]) -> dict[str, str]:
    """`hirelc eval`'s table: labelled rows, accuracies in percent, one compression figure
    (the cost model's kernel-only ratio and raw counters stay in --json)."""
    split = r["split"]
    return {
        f"fp32 accuracy ({split}, {r['split_sizes'][split]:,} examples)": f"{100 * r['fp32_accuracy']:.2f}%",
        "accuracy before fine-tune": f"{100 * r['accuracy_before_finetune']:.2f}%",
        f"accuracy after fine-tune ({_steps_text(r['finetune'])})": f"{100 * r['accuracy_after_finetune']:.2f}%"
        + ("" if r["status"] == "ok" else f" ({r['status']})"),
        "served from cache": "yes" if r["served_from_cache"] else f"no ({r['seconds_of_the_real_evaluation']:.1f} s)",
        "parameter-weighted avg bits": f"{r['param_weighted_avg_bits']:.2f}",
        "packed file / fp32 state_dict": f"{r['packed_bytes']:,} B / {r['fp32_state_dict_bytes']:,} B",
        "compression (measured)": f"{r['compression_ratio']:.2f}x",
        "speedup / energy vs 8-bit (modelled)":
            f"{r['modelled_speedup_vs_8bit']:.2f}x / {r['modelled_energy_reduction_vs_8bit']:.2f}x",
    }


def _steps_text(fidelity: str) -> str:
    """'short-20' (a fidelity key) -> '20 steps'; 'none' -> 'none'."""
    return f"{fidelity.split('-', 1)[1]} steps" if fidelity.startswith("short-") else fidelity


def _space(args: argparse.Namespace) -> dict[str, Any] | None:
    """The search space asked on the command line (None: the method's default)."""
    from hirelc.methods.space import SpaceConfig

    joint_flags = {k: getattr(args, k) for k in ("keep", "formats", "granularity") if getattr(args, k)}
    if args.space == "bits":
        if joint_flags:
            raise ValueError(f"--space bits takes no {', '.join('--' + k for k in joint_flags)}")
        return SpaceConfig.bits_only(_bits(args.bits)).to_dict()
    if args.space == "joint" or joint_flags:
        bits = args.bits if args.bits != BITS_ONLY_DEFAULT else None  # joint default bits unless given
        return SpaceConfig.parse(bits=bits, keep=args.keep, formats=args.formats,
                                 granularity=args.granularity).to_dict()
    return None


def _bits(text: str) -> tuple[int, ...]:
    try:
        return tuple(int(b) for b in text.split(","))
    except ValueError:
        raise ValueError(f"--bits must be comma-separated integers, got {text!r}") from None


def _log(args: argparse.Namespace) -> Callable[[str], None]:
    if getattr(args, "quiet", False):
        return lambda _msg: None
    return lambda msg: console.print(msg, soft_wrap=True)  # one line per message, also in logs


if __name__ == "__main__":
    sys.exit(main())
