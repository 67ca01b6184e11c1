"""The `hirelc` command. Each sub-command is a thin shell over one library call; errors a
user can fix (bad plan, missing file, unknown model) print one clear line and exit 2.

One module per job: `args` (options and the help formatter), `common` (job config, plan,
bits, space and --option parsing), `output` (consoles, tables, the run summary), and the
commands: `info` (list-models, list-datasets, train, inspect), `evaluate` (eval), `export`,
`search` (search, resume, pareto, report).

>>> build_parser().parse_args(["search", "--out", "runs/x", "--max-evaluations", "12"]).budget
12
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from rich.markup import escape

from hirelc.cli.args import (
    _DefaultsFormatter,
    _add,
    _args_eval,
    _args_export,
    _args_inspect,
    _args_model_data,
    _args_pareto,
    _args_pattern,
    _args_resume,
    _args_run,
    _args_search,
)
from hirelc.cli.common import method_options as _method_options  # noqa: F401 -- its old import path
from hirelc.cli.evaluate import cmd_eval
from hirelc.cli.export import cmd_export
from hirelc.cli.info import cmd_inspect, cmd_list_datasets, cmd_list_models, cmd_train
from hirelc.cli.output import console
from hirelc.cli.search import cmd_pareto, cmd_report, cmd_resume, cmd_search
from hirelc.methods.executors import EvaluationFailed
from hirelc.runlock import RunLockedError

__all__ = ["main", "build_parser", "USER_ERRORS"]

EXAMPLES = """examples:
  hirelc search --method releq --model releq_lenet --data mnist5k --out runs/lenet
  hirelc eval --model releq_lenet --data mnist5k --plan runs/lenet/plan.json
  hirelc pareto --model releq_lenet --data mnist5k --bits 2,3,4,5,8 --out runs/pareto --place runs/lenet
  hirelc report runs/lenet
  hirelc export --model releq_lenet --data mnist5k --plan runs/lenet/plan.json --onnx lenet.onnx
"""

# Errors a user causes and can fix. ValueError covers bad values, files and factories
# (hirelc converts user-caused TypeError/AttributeError/RuntimeError into ValueErrors where
# they arise); OSError names the file it could not read or write; FloatingPointError is a
# diverged fp32 training; RunLockedError another process on the run. Not TypeError or
# KeyError in general: those are bugs, and a bug should show its traceback.
USER_ERRORS: tuple[type[BaseException], ...] = (ValueError, ImportError, OSError, FloatingPointError, RunLockedError,
                                                 EvaluationFailed)


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
    _add(sub, "list-models", "list the built-in models", cmd_list_models, _args_pattern)
    _add(sub, "list-datasets", "list the built-in datasets and file formats", cmd_list_datasets)
    _add(sub, "train", "train (or load the cached) fp32 baseline", cmd_train, _args_model_data)
    _add(sub, "inspect", "list a model's compressible layers and what stays fp32", cmd_inspect, _args_inspect)
    _add(sub, "eval", "apply a plan: accuracy before/after fine-tune, size, modelled speed", cmd_eval, _args_eval)
    _add(sub, "export", "fine-tune a plan and write the packed model file", cmd_export, _args_export)
    _add(sub, "search", "search a plan and write a run directory", cmd_search, _args_search)
    _add(sub, "resume", "continue a killed search from its run directory", cmd_resume, _args_resume)
    _add(sub, "pareto", "enumerate a small bitwidth space and its Pareto frontier", cmd_pareto, _args_pareto)
    _add(sub, "report", "write report.html and figures for a run directory", cmd_report, _args_run)
    return p
