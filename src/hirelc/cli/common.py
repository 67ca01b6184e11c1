"""What several `hirelc` commands share: the job config built from their arguments, and the
parsing of plan files, bit sets, search spaces and --option pairs."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from hirelc.cli.args import BITS_ONLY_DEFAULT


def job_config(args: argparse.Namespace, **extra: Any) -> Any:
    """The `JobConfig` of a command's model/data/seed/executor arguments, plus `extra` fields."""
    from hirelc.pipeline import JobConfig

    return JobConfig(model=args.model, data=args.data, data_root=args.data_root, split_seed=args.split_seed,
                     seed=getattr(args, "seed", 0), device=args.device, train_epochs=args.train_epochs,
                     **({"finetune_lr": args.finetune_lr} if args.finetune_lr is not None else {}),
                     **executor_fields(args), **extra)


def executor_fields(args: argparse.Namespace) -> dict[str, Any]:
    """--executor / --workers / --ray-address, for the commands that have them."""
    if not hasattr(args, "executor"):
        return {}
    return {"executor": args.executor, "workers": args.workers, "ray_address": args.ray_address}


def load_plan(path: str) -> Any:
    """The `Plan` in a plan file (or a run's result.json); a missing file is named."""
    from hirelc.plan import Plan

    p = Path(path)
    if not p.exists():
        raise FileNotFoundError(f"plan file {p} not found")
    return Plan.from_json(p.read_text())


def method_options(items: list[str]) -> dict[str, Any]:
    """--option KEY=VALUE pairs -> options (JSON values: true, 6, 0.5; anything else is text).

    >>> method_options(["flat=true", "evals_per_cycle=6", "hla=ppo"])
    {'flat': True, 'evals_per_cycle': 6, 'hla': 'ppo'}
    """
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


def space(args: argparse.Namespace) -> dict[str, Any] | None:
    """The search space asked on the command line (None: the method's default)."""
    from hirelc.methods.space import SpaceConfig

    joint_flags = {k: getattr(args, k) for k in ("keep", "formats", "granularity") if getattr(args, k)}
    if args.space == "bits":
        if joint_flags:
            raise ValueError(f"--space bits takes no {', '.join('--' + k for k in joint_flags)}")
        return SpaceConfig.bits_only(bits(args.bits)).to_dict()
    if args.space == "joint" or joint_flags:
        chosen = args.bits if args.bits != BITS_ONLY_DEFAULT else None  # joint default bits unless given
        return SpaceConfig.parse(bits=chosen, keep=args.keep, formats=args.formats,
                                 granularity=args.granularity).to_dict()
    return None


def bits(text: str) -> tuple[int, ...]:
    """'2,4,8' -> (2, 4, 8), or a one-line error naming --bits.

    >>> bits("2,4,8")
    (2, 4, 8)
    """
    try:
        return tuple(int(b) for b in text.split(","))
    except ValueError:
        raise ValueError(f"--bits must be comma-separated integers, got {text!r}") from None
