"""`write_report(run_dir)`: report.html + PNG figures from what a run directory holds.

Reads `result.json` (written by a search) and, when present, `pareto.json` (written by
`hirelc pareto`); draws the seed 000 figures next to them and writes one self-contained
HTML page that links them. Every number shown is copied from those files, with the label
they carry (measured or modelled).
"""

from __future__ import annotations

import html
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from hirelc.report.figures import plot_action_probabilities, plot_convergence, plot_pareto
from hirelc.report.hirelc_figures import hirelc_figures

# (key in result.json, label shown); modelled figures say so.
SUMMARY_ROWS = [
    ("method", "method"),
    ("model", "model"),
    ("data", "dataset"),
    ("seed", "seed"),
    ("split_sizes", "split sizes (train / val / test)"),
    ("baseline_test_accuracy", "fp32 test accuracy"),
    ("final_test_accuracy", "compressed test accuracy (after final fine-tune)"),
    ("accuracy_loss_points", "accuracy loss (points)"),
    ("bits", "bits per layer"),
    ("avg_bits", "average bits"),
    ("param_weighted_avg_bits", "parameter-weighted average bits"),
    ("state_of_quantization", "State of Quantization (seed 000 eq. 1)"),
    ("packed_bytes", "packed file size (bytes, measured)"),
    ("fp32_state_dict_bytes", "fp32 state_dict size (bytes, measured)"),
    ("compression_ratio", "compression ratio (measured on the files)"),
    ("modelled_speedup_vs_8bit", "speedup vs 8-bit (MODELLED, bit-serial accelerator)"),
    ("modelled_energy_reduction_vs_8bit", "energy reduction vs 8-bit (MODELLED)"),
    ("real_evaluations", "real evaluations"),
    ("converged_at_episode", "converged at episode"),
    ("stop_reason", "search stopped because"),
    ("wall_seconds", "wall time (s, measured)"),
]


def write_report(run_dir: str | Path) -> Path:
    """Draw the figures and write `report.html` in `run_dir`; return its path.

    >>> write_report("runs/releq_lenet")  # doctest: +SKIP
    PosixPath('runs/releq_lenet/report.html')
    """
    run_dir = Path(run_dir)
    result = _read_json(run_dir / "result.json", required=False)
    pareto = _read_json(run_dir / "pareto.json", required=False)
    if result is None and pareto is None:
        raise FileNotFoundError(
            f"{run_dir} holds neither result.json nor pareto.json: is it a hirelc run directory? "
            "(create one with `hirelc search ... --out DIR` or `hirelc pareto ... --out DIR`)"
        )
    figures = _draw(run_dir, result or {}, pareto)
    page = _page(result or {}, pareto, figures)
    out = run_dir / "report.html"
    out.write_text(page, encoding="utf-8")
    return out


def _draw(run_dir: Path, result: Mapping[str, Any], pareto: Mapping[str, Any] | None) -> list[tuple[str, Path]]:
    search = result.get("search", {})
    episodes = search.get("episodes", [])
    actions = [str(a) for a in search.get("actions", result.get("bit_choices", []))]
    drawn = [
        ("Action probabilities per layer", plot_action_probabilities(
            episodes, result.get("layers", []), actions, run_dir / "fig_action_probabilities.png")),
        ("Reward, StateAcc and StateQ", plot_convergence(episodes, run_dir / "fig_convergence.png")),
    ]
    drawn += hirelc_figures(result, run_dir)  # empty unless the run is a HiReLC search
    if pareto is not None:
        found = pareto.get("placed")
        drawn.append(("Pareto frontier", plot_pareto(
            pareto["points"], pareto["frontier"], run_dir / "fig_pareto.png", found)))
    return [(title, p) for title, p in drawn if p is not None]


def _page(result: Mapping[str, Any], pareto: Mapping[str, Any] | None, figures: list[tuple[str, Path]]) -> str:
    rows = "".join(
        f"<tr><th>{html.escape(label)}</th><td>{html.escape(_fmt(result[key]))}</td></tr>"
        for key, label in SUMMARY_ROWS
        if key in result
    )
    pareto_html = _pareto_summary(pareto) if pareto else ""
    figs = "".join(
        f'<figure><img src="{html.escape(p.name)}" alt="{html.escape(t)}"><figcaption>{html.escape(t)}'
        "</figcaption></figure>"
        for t, p in figures
    )
    title = f"hirelc report: {result.get('method', 'pareto')} on {result.get('model', '')} / {result.get('data', '')}"
    return (
        f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
        "<style>body{font-family:sans-serif;max-width:1100px;margin:2em auto}"
        "th{text-align:left;padding-right:2em}img{max-width:100%}</style></head><body>"
        f"<h1>{html.escape(title)}</h1><table>{rows}</table>{pareto_html}{figs}"
        "<p><small>Accuracies: search on validation data, final numbers on held-out test data. "
        "Sizes are measured on the written files; speedup and energy are modelled.</small></p>"
        "</body></html>"
    )


def _pareto_summary(pareto: Mapping[str, Any]) -> str:
    n, f = len(pareto["points"]), len(pareto["frontier"])
    text = f"<h2>Pareto enumeration</h2><p>{n} configurations evaluated; {f} on the frontier."
    placed = pareto.get("placed")
    if placed:
        text += (f" Search result {html.escape(str(placed.get('bits')))}: gap to the frontier "
                 f"{100 * placed['gap']:.2f} points.")
    return text + "</p>"


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, Mapping):
        return " / ".join(f"{k} {v}" for k, v in value.items())
    return str(value)


def _read_json(path: Path, required: bool) -> dict[str, Any] | None:
    if not path.exists():
        if required:
            raise FileNotFoundError(f"{path} not found")
        return None
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as e:
        raise ValueError(f"{path} is not valid JSON ({e}); was the run interrupted while writing it?") from None
