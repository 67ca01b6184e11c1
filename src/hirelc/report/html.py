"""`write_report(run_dir)`: report.html + PNG figures from what a run directory holds.

Reads `result.json` (written by a search), `config.json`, and the Pareto enumeration when
there is one: `pareto.json` in the same directory (written by `hirelc pareto`), or the one
that placed this search on its frontier (`pareto_link.json`, written by
`hirelc pareto --place`). Draws the ReLeQ paper's figures and the chosen plan next to them
and writes one self-contained HTML page that links them. Every number shown is copied from
those files, with the label they carry (measured or modelled).
"""

from __future__ import annotations

import html
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from hirelc.result_file import COMPRESSION_DEFINITION, read_result
from hirelc.summary import describe_plan, evaluations_text, target_line
from hirelc.report.figures import plot_action_probabilities, plot_convergence, plot_pareto, plot_plan
from hirelc.report.hirelc_figures import hirelc_figures

PARETO_LINK = "pareto_link.json"

# (key in result.json, label shown); modelled figures say so. Keys: hirelc.result_file
# (an old result.json is upgraded by `read_result` before it is shown).
SUMMARY_ROWS = [
    ("method", "method"),
    ("model", "model"),
    ("data", "dataset"),
    ("seed", "seed"),
    ("split_sizes", "split sizes (train / val / test)"),
    ("test/fp32_accuracy", "fp32 test accuracy"),
    ("test/accuracy", "compressed test accuracy (after final fine-tune)"),
    ("test/accuracy_drop_points", "accuracy loss (points)"),
    ("val/accuracy", "chosen plan's validation accuracy (search fidelity)"),
    ("plan", "plan per layer (bits, then what differs from keep 1, int_sym, per_channel)"),
    ("plan/avg_bits", "average bits"),
    ("plan/param_weighted_avg_bits", "parameter-weighted average bits"),
    ("plan/state_of_quantization", "State of Quantization (ReLeQ paper, eq. 1)"),
    ("size/packed_file_bytes", "packed file size (bytes, measured)"),
    ("size/fp32_state_dict_bytes", "fp32 state_dict size (bytes, measured)"),
    ("size/compression", f"compression ({COMPRESSION_DEFINITION})"),
    ("modelled/speedup_vs_8bit", "speedup vs 8-bit (MODELLED, bit-serial accelerator)"),
    ("modelled/energy_reduction_vs_8bit", "energy reduction vs 8-bit (MODELLED)"),
    ("search/evaluations", "real evaluations"),
    ("search/converged_at_episode", "converged at episode"),
    ("search/finalist_chosen_rank", "kept finalist (its rank in the search; --finalists)"),
    ("search/stop_reason", "search stopped because"),
    ("run/wall_seconds", "wall time (s, measured)"),
]


def write_report(run_dir: str | Path) -> Path:
    """Draw the figures and write `report.html` in `run_dir`; return its path.

    >>> write_report("runs/releq_lenet")  # doctest: +SKIP
    PosixPath('runs/releq_lenet/report.html')
    """
    run_dir = Path(run_dir)
    result = read_result(run_dir) if (run_dir / "result.json").exists() else None
    pareto = _read_json(run_dir / "pareto.json", required=False) or _linked_pareto(run_dir)
    if result is None and pareto is None:
        raise FileNotFoundError(
            f"{run_dir} holds neither result.json nor pareto.json: is it a hirelc run directory? "
            "(create one with `hirelc search ... --out DIR` or `hirelc pareto ... --out DIR`)"
        )
    config = _read_json(run_dir / "config.json", required=False) or {}
    figures = _draw(run_dir, result or {}, pareto)
    page = _page(result or {}, pareto, figures, config)
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
        ("The chosen plan: bits and keep ratio per layer", plot_plan(
            result.get("plan", {}), result.get("layer_params"), run_dir / "fig_plan.png")),
    ]
    drawn += hirelc_figures(result, run_dir)  # empty unless the run is a HiReLC search
    if pareto is not None:
        found = pareto.get("placed")
        drawn.append(("Pareto frontier", plot_pareto(
            pareto["points"], pareto["frontier"], run_dir / "fig_pareto.png", found)))
    return [(title, p) for title, p in drawn if p is not None]


def _page(result: Mapping[str, Any], pareto: Mapping[str, Any] | None, figures: list[tuple[str, Path]],
          config: Mapping[str, Any] | None = None) -> str:
    config = config or {}
    shown = {**{k: v for k, v in config.items() if k in ("model", "data", "seed")}, **result}
    rows = "".join(
        f"<tr><th>{html.escape(label)}</th><td>{html.escape(_cell(key, shown))}</td></tr>"
        for key, label in SUMMARY_ROWS
        if key in shown and _applies(key, shown)
    )
    if result.get("target"):
        rows += f"<tr><th>target</th><td>{html.escape(target_line(result))}</td></tr>"
    if not result and pareto is not None:  # a Pareto enumeration's own directory
        rows += "".join(f"<tr><th>{html.escape(k)}</th><td>{html.escape(_fmt(v))}</td></tr>"
                        for k, v in _pareto_rows(pareto).items())
    pareto_html = _pareto_summary(pareto) if pareto else ""
    figs = "".join(
        f'<figure><img src="{html.escape(p.name)}" alt="{html.escape(t)}"><figcaption>{html.escape(t)}'
        "</figcaption></figure>"
        for t, p in figures
    )
    title = _title(result, config)
    return (
        f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
        "<style>body{font-family:sans-serif;max-width:1100px;margin:2em auto}"
        "th{text-align:left;padding-right:2em}img{max-width:100%}</style></head><body>"
        f"<h1>{html.escape(title)}</h1><table>{rows}</table>{pareto_html}{figs}"
        "<p><small>Accuracies: search on validation data, final numbers on held-out test data. "
        "Sizes are measured on the written files; speedup and energy are modelled.</small></p>"
        "</body></html>"
    )


def _title(result: Mapping[str, Any], config: Mapping[str, Any]) -> str:
    """Never blank: a search names method, model and data; a Pareto run names its space."""
    model = result.get("model") or config.get("model") or "a model"
    data = result.get("data") or config.get("data") or "its data"
    if result:
        return f"hirelc report: {result.get('method', 'search')} on {model} / {data}"
    return f"hirelc report: Pareto enumeration of {model} / {data}"


def _pareto_rows(pareto: Mapping[str, Any]) -> dict[str, Any]:
    """The enumeration's table rows (a Pareto run has no result.json to fill the table)."""
    rows = {
        "layers": ", ".join(pareto.get("layers", [])),
        "bit choices": pareto.get("bits", ""),
        "search fidelity (fine-tune per evaluation)": pareto.get("fidelity", ""),
        "configurations evaluated": f"{len(pareto['points']):,}",
        "on the Pareto frontier": len(pareto["frontier"]),
    }
    best = max(pareto["points"], key=lambda p: p["accuracy"], default=None)
    if best is not None:
        rows["most accurate (validation)"] = f"{best['bits']}: {100 * best['accuracy']:.2f}%"
    placed = pareto.get("placed")
    if placed:
        rows["search result placed"] = f"{placed['bits']} from {placed.get('from', '?')}: " \
                                       f"{100 * placed['gap']:.2f} points below the frontier"
    return rows


def link_pareto(run_dir: str | Path, pareto_json: str | Path) -> Path:
    """Record in a search's run directory which enumeration placed it, so its report shows
    the Pareto view; returns the link file.

    >>> import tempfile
    >>> link_pareto(tempfile.mkdtemp(), "runs/pareto/pareto.json").name
    'pareto_link.json'
    """
    link = Path(run_dir) / PARETO_LINK
    link.write_text(json.dumps({"pareto": str(Path(pareto_json).resolve())}), encoding="utf-8")
    return link


def _linked_pareto(run_dir: Path) -> dict[str, Any] | None:
    link = _read_json(run_dir / PARETO_LINK, required=False)
    if not link:
        return None
    return _read_json(Path(link["pareto"]), required=False)  # moved or deleted since: no Pareto view


def _pareto_summary(pareto: Mapping[str, Any]) -> str:
    n, f = len(pareto["points"]), len(pareto["frontier"])
    text = f"<h2>Pareto enumeration</h2><p>{n} configurations evaluated; {f} on the frontier."
    placed = pareto.get("placed")
    if placed:
        text += (f" Search result {html.escape(str(placed.get('bits')))}: gap to the frontier "
                 f"{100 * placed['gap']:.2f} points.")
    return text + "</p>"


def _cell(key: str, shown: Mapping[str, Any]) -> str:
    """A row's text: the evaluations split by origin, else the value formatted by its key."""
    if key == "search/evaluations":
        return evaluations_text(shown)
    if key == "plan":
        return describe_plan(shown["plan"])
    return _fmt_row(key, shown[key])


def _applies(key: str, shown: Mapping[str, Any]) -> bool:
    """Only ReLeQ detects convergence (its policy's top actions); for the other methods the
    row would say 'not converged' about something they never measure."""
    return key != "search/converged_at_episode" or shown.get("method") == "releq"


def _fmt_row(key: str, value: Any) -> str:
    """Accuracies in percent (as everywhere else in hirelc's output); a search that did not
    converge says so rather than 'None'."""
    if key.endswith("accuracy") and isinstance(value, (int, float)):
        return f"{100 * value:.2f}%"
    if key == "search/converged_at_episode" and value is None:
        return "not converged"
    return _fmt(value)


def _fmt(value: Any) -> str:
    if isinstance(value, int) and not isinstance(value, bool):
        return f"{value:,}"  # byte counts: 1,727,949
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, Mapping):
        return " / ".join(f"{k} {_fmt(v)}" for k, v in value.items())
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
