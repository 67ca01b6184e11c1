"""The commands that search and show a run directory: `search`, `resume`, `pareto` and
`report`."""

from __future__ import annotations

import argparse
from pathlib import Path

from hirelc.cli.common import bits, job_config, method_options, space
from hirelc.cli.output import finish_run, log_fn, out


def cmd_search(args: argparse.Namespace) -> None:
    from hirelc.pipeline import run_job

    options = {k: v for k, v in (("agent", args.agent), ("reward", args.reward),
                                 ("action_space", args.action_space)) if v is not None}
    options |= method_options(args.option)
    config = job_config(args, method=args.method, bits=bits(args.bits), max_evaluations=args.budget,
                        search_steps=args.steps, final_epochs=args.final_epochs, finalists=args.finalists,
                        options=options, space=space(args),
                        target_compression=args.target_compression, target_size=args.target_size,
                        max_accuracy_drop=args.max_accuracy_drop)
    result = run_job(config, args.out, resume=args.resume, force=args.force, progress=not args.quiet,
                     log=log_fn(args))
    finish_run(args.out, result, report=not args.no_report)


def cmd_resume(args: argparse.Namespace) -> None:
    from hirelc.pipeline import JobConfig, run_job
    from hirelc.rundir import RunDir

    config = RunDir(args.run).read_config()
    if config.get("job") == "pareto":
        raise ValueError(f"{args.run} is a pareto enumeration: continue it with `hirelc pareto ... --resume`")
    result = run_job(JobConfig.from_dict(config), args.run, resume=True, force=args.force,
                     progress=not args.quiet, log=log_fn(args))
    finish_run(args.run, result, report=True)


def cmd_pareto(args: argparse.Namespace) -> None:
    from hirelc.pareto_job import run_pareto
    from hirelc.report import write_report

    config = job_config(args, bits=bits(args.bits), search_steps=args.steps)
    data = run_pareto(config, args.out, place=args.place, limit=args.limit, force_space=args.force,
                      resume=args.resume, progress=not args.quiet, log=log_fn(args))
    out.print(f"{len(data['points']):,} configurations, {len(data['frontier'])} on the frontier")
    if "placed" in data:
        out.print(f"search result {data['placed']['bits']}: {100 * data['placed']['gap']:.2f} points below the frontier")
    out.print(f"report: {write_report(args.out)}")
    if args.place is not None:  # the search's own report gains the Pareto view
        from hirelc.report.html import link_pareto

        link_pareto(args.place, Path(args.out) / "pareto.json")
        out.print(f"report: {write_report(args.place)} (now with the Pareto view)")


def cmd_report(args: argparse.Namespace) -> None:
    from hirelc.report import write_report

    out.print(f"report: {write_report(args.run)}")
