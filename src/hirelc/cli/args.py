"""The `hirelc` command's arguments: one function per group of options, and a help
formatter that states every default. The commands are in the other modules of `hirelc.cli`."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import Any

BITS_ONLY_DEFAULT = "2,3,4,5,8"  # the public ReLeQ code's bit set


class _DefaultsFormatter(argparse.RawDescriptionHelpFormatter):
    """Every option's help ends with its default, unless the text already states it or there
    is none (a None default or an on/off flag)."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        no_default = any(action.default is d for d in (None, False, argparse.SUPPRESS))
        if "(default" in text or no_default or not action.option_strings:
            return text
        return f"{text} (default: %(default)s)"

def _add(sub: Any, name: str, help: str, func: Callable, *arg_fns: Callable) -> None:
    sp = sub.add_parser(name, help=help, description=help, formatter_class=_DefaultsFormatter)
    for fn in arg_fns:
        fn(sp)
    sp.set_defaults(func=func)


# -- arguments --------------------------------------------------------------------------------


def _args_pattern(p: argparse.ArgumentParser) -> None:
    p.add_argument("pattern", nargs="?", help="shell-style filter, e.g. '*net*'")


def _args_model_data(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", default="releq_lenet", help="zoo name or 'package.module:factory'")
    p.add_argument("--data", default="mnist5k", help="dataset name, 'FORMAT:PATH' or 'package.module:factory'")
    p.add_argument("--data-root", help="folder for file-based datasets")
    p.add_argument("--split-seed", type=int, default=0, help="data split and fp32 baseline seed")
    p.add_argument("--device", default="auto", help="auto (a CUDA GPU if usable, else the CPU) | cpu | cuda | cuda:N")
    p.add_argument("--train-epochs", type=int, help="fp32 baseline epochs (default: the model's recipe)")
    p.add_argument("--finetune-lr", type=float, help="Adam learning rate of every fine-tune (default 3e-4)")
    p.add_argument("--quiet", action="store_true", help="no progress output")


def _args_inspect(p: argparse.ArgumentParser) -> None:
    _args_model_data(p)
    p.add_argument("--json", action="store_true", help="machine-readable output")


def _args_plan(p: argparse.ArgumentParser) -> None:
    p.add_argument("--plan", required=True, help="plan JSON (layer -> config or bits), or a run's result.json")
    p.add_argument("--seed", type=int, default=0, help="fine-tune seed")


def _args_eval(p: argparse.ArgumentParser) -> None:
    _args_model_data(p)
    _args_plan(p)
    p.add_argument("--search-steps", "--steps", dest="steps", metavar="N", type=int, default=20,
                   help="short fine-tune steps, as in a search evaluation (0 = none; --steps is the old spelling)")
    p.add_argument("--split", default="val", choices=("val", "test"))
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.add_argument("--latency", action="store_true",
                   help="also export to ONNX and measure onnxruntime latency (needs pip install 'hirelc[onnx]')")


def _args_export(p: argparse.ArgumentParser) -> None:
    _args_model_data(p)
    _args_plan(p)
    p.add_argument("--epochs", type=int, default=4, help="final fine-tune epochs before export (0 = none)")
    p.add_argument("--out", help="packed file to write, e.g. model.hirelc")
    p.add_argument("--onnx", help="ONNX file to write, e.g. model.onnx (needs pip install 'hirelc[onnx]')")
    p.add_argument("--onnx-decode", default="runtime", choices=("runtime", "load"),
                   help="runtime: weights stay low-bit in onnxruntime (MatMulNBits, DequantizeLinear); "
                   "load: decoded to float32 when the file is loaded (same file size, faster on CPU)")


def _args_search_common(p: argparse.ArgumentParser) -> None:
    _args_model_data(p)
    p.add_argument("--out", required=True, help="run directory")
    p.add_argument("--bits", default=BITS_ONLY_DEFAULT, help="bitwidth choices, e.g. 1,2,3,4,5,6,7,8 "
                                                            "(joint space default: 2,3,4,5,6,8)")
    p.add_argument("--seed", type=int, default=0, help="search and fine-tune seed")
    p.add_argument("--search-steps", "--steps", dest="steps", metavar="N", type=int, default=20,
                   help="fine-tune steps per search evaluation (0 = none; --steps is the old spelling)")
    _args_executor(p)


def _args_executor(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("parallel evaluation (random, tpe, uniform, greedy and pareto propose in batches; "
                             "releq runs its episodes one at a time, so it is serial only)")
    g.add_argument("--executor", default="serial", choices=("serial", "process", "ray"),
                   help="where real evaluations run: in this process (default), a local process pool, "
                        "or a Ray cluster (pip install 'hirelc[ray]')")
    g.add_argument("--workers", type=int, help="evaluations in flight, also the batch size a method proposes "
                                               "(same seed and --workers give the same result on any executor); "
                                               "default 1 for serial, one per core otherwise")
    g.add_argument("--ray-address", help="Ray cluster to join: auto or HOST:PORT (default: start a local one)")


def _args_search(p: argparse.ArgumentParser) -> None:
    _args_search_common(p)
    p.add_argument("--method", default="releq", help="releq (bits only, serial) | uniform | random | greedy | tpe | hirelc")
    p.add_argument("--space", default="auto", choices=("auto", "bits", "joint"),
                   help="bits: bit-widths only; joint: bits x keep x format x granularity; auto: bits for "
                        "releq, and for uniform/random without a size target; joint otherwise")
    p.add_argument("--keep", help="keep-ratio choices of the joint space (default 1,.875,.75,.625,.5,.375,.25)")
    p.add_argument("--formats", help="number formats of the joint space (default int_sym,int_asym,pow2,float)")
    p.add_argument("--granularity", help="granularities of the joint space "
                                         "(default per_tensor,per_channel,per_group:32)")
    target = p.add_mutually_exclusive_group()
    target.add_argument("--target-compression", help="whole-model storage at least X times below fp32, e.g. 16")
    target.add_argument("--target-size", help="whole-model storage at most this size, e.g. 64KB")
    target.add_argument("--max-accuracy-drop", type=float,
                        help="validation accuracy at most P points below fp32; the smallest such plan wins")
    p.add_argument("--max-evaluations", "--budget", dest="budget", metavar="N", type=int, default=120,
                   help="maximum real evaluations (each a compress + short fine-tune + validation pass; "
                   "cached and replayed ones are free; --budget is the old spelling)")
    p.add_argument("--final-epochs", type=int, default=4, help="final fine-tune epochs")
    p.add_argument("--finalists", type=int, default=1, metavar="K",
                   help="fine-tune the search's K best plans for --final-epochs on validation data and keep the "
                        "best (K real fine-tunes beyond the budget; hirelc's Fisher prior plan takes the last place "
                        "when not among them); 1: keep the search's best plan")
    p.add_argument("--agent", help="releq agent: lstm (default) | mlp")
    p.add_argument("--reward", help="releq reward: shaped (default) | ratio | difference")
    p.add_argument("--action-space", help="releq actions: flexible (default) | restricted")
    p.add_argument("--option", action="append", default=[], metavar="KEY=VALUE",
                   help="a method option (repeatable), e.g. --option flat=true --option evals_per_cycle=6 "
                        "for hirelc; values are read as JSON, else as text")
    p.add_argument("--resume", action="store_true", help="continue the run in --out")
    p.add_argument("--force", action="store_true", help="overwrite the run in --out")
    p.add_argument("--no-report", action="store_true", help="skip report.html")


def _args_resume(p: argparse.ArgumentParser) -> None:
    p.add_argument("run", help="run directory")
    p.add_argument("--force", action="store_true", help="accept a changed config.json")
    p.add_argument("--quiet", action="store_true")


def _args_pareto(p: argparse.ArgumentParser) -> None:
    _args_search_common(p)
    p.add_argument("--place", help="a search run directory whose plan to place on the frontier")
    p.add_argument("--limit", type=int, default=5000, help="refuse larger spaces unless --force")
    p.add_argument("--force", action="store_true", help="enumerate above --limit")
    p.add_argument("--resume", action="store_true", help="continue the enumeration in --out")


def _args_run(p: argparse.ArgumentParser) -> None:
    p.add_argument("run", help="run directory")


