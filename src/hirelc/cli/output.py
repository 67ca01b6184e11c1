"""What the `hirelc` command prints: the two consoles (results on stdout, progress and errors
on stderr), labelled tables, and the end-of-search summary of a run."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import Any

from rich.console import Console
from rich.table import Table

console = Console(stderr=True, highlight=False)  # progress, logs, errors
out = Console(highlight=False)  # results


def print_table(title: str, rows: dict[str, Any]) -> None:
    table = Table(title=title, show_header=False, box=None)
    for k, v in rows.items():
        table.add_row(str(k), f"{v:.4g}" if isinstance(v, float) else str(v))
    out.print(table)


def log_fn(args: argparse.Namespace) -> Callable[[str], None]:
    """Progress messages of a command: nothing with --quiet, else one line each on stderr."""
    if getattr(args, "quiet", False):
        return lambda _msg: None
    return lambda msg: console.print(msg, soft_wrap=True)  # one line per message, also in logs


def finish_run(run: str, result: dict[str, Any], report: bool) -> None:
    """The summary table of a finished search, its notes, and (optionally) its report."""
    from hirelc.summary import summary_rows, target_line

    print_table(f"{result['method']} on {result['model']} / {result['data']} (seed {result['seed']})",
                summary_rows(result, target_line(result)))
    for note in result.get("search/notes", []):
        out.print(f"note: {note}")
    if report:
        from hirelc.report import write_report

        out.print(f"report: {write_report(run)}")
