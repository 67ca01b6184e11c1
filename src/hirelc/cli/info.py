"""The commands that describe what hirelc has and what a model holds: `list-models`,
`list-datasets`, `train` (the fp32 baseline) and `inspect` (compressible layers, names never
truncated, totals, what stays fp32)."""

from __future__ import annotations

import argparse
import json

from rich.table import Table

from hirelc.cli.common import job_config
from hirelc.cli.output import log_fn, out


def cmd_list_models(args: argparse.Namespace) -> None:
    from hirelc.zoo import get_model_entry, list_models

    table = Table("model", "description", box=None)
    for name in list_models(args.pattern):
        table.add_row(name, get_model_entry(name).description)
    out.print(table)


def cmd_list_datasets(args: argparse.Namespace) -> None:
    from hirelc.data import list_datasets

    table = Table("dataset", "description", box=None)
    for name, text in list_datasets().items():
        table.add_row(name, text)
    out.print(table)


def cmd_train(args: argparse.Namespace) -> None:
    from hirelc.data import load_dataset
    from hirelc.pipeline import load_baseline

    data = load_dataset(args.data, seed=args.split_seed, root=args.data_root)
    log_fn(args)(f"data: {data}")
    _, info = load_baseline(job_config(args), data, progress=not args.quiet)
    out.print(info.summary())


def cmd_inspect(args: argparse.Namespace) -> None:
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
