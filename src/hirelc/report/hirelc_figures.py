"""Figures of a HiReLC search, from result.json (`search.options.hirelc`, written by
`hirelc.methods.hirelc.search.HiReLCSearch.summary`):

- the surrogate's prediction vs the real score of evaluations it had not been trained on,
  per cycle, with Spearman's rho (seed 002's missing "correlation plots"), and at the end
  its cross-validated rho over every real evaluation;
- the chosen plan's per-kernel decisions (bits, keep ratio, number format, granularity);
- the budget share the HLA vote gave each block, cycle by cycle.

Every figure returns None when the run holds nothing to draw (another method, no cycles).

>>> import tempfile, pathlib
>>> cycles = [{"hla": {"vote": [0.6, 0.4]}, "surrogate": {"pairs": [[0.9, 0.8], [0.7, 0.6], [0.8, 0.9]],
...                                                        "rho_unseen": 0.5}}]
>>> out = pathlib.Path(tempfile.mkdtemp())
>>> plot_hla_budgets(cycles, [["a"], ["b"]], out / "b.png").name, plot_surrogate(cycles, out / "s.png").name
('b.png', 's.png')
>>> plot_surrogate(cycles, out / "cv.png", {"rho": 0.9, "folds": 5, "n": 60}).name
'cv.png'
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.ticker import MaxNLocator  # noqa: E402
import numpy as np  # noqa: E402

FORMATS = ("int_sym", "int_asym", "pow2", "float")
GRANULARITIES = ("per_tensor", "per_channel", "per_group")


def hirelc_figures(result: Mapping[str, Any], run_dir: Path) -> list[tuple[str, Path | None]]:
    """(title, path) of every HiReLC figure of a run (empty for other methods)."""
    info = result.get("search", {}).get("options", {}).get("hirelc")
    if not info:
        return []
    cycles = info.get("cycles", [])
    return [
        ("HiReLC surrogate: predicted vs real on unseen evaluations",
         plot_surrogate(cycles, run_dir / "fig_hirelc_surrogate.png", info.get("rho_cross_validated"))),
        ("Per-kernel decisions of the chosen plan",
         plot_decisions(result.get("plan", {}), run_dir / "fig_hirelc_decisions.png")),
        ("HLA budget share per block over cycles",
         plot_hla_budgets(cycles, info.get("blocks", []), run_dir / "fig_hirelc_budgets.png")),
    ]


def plot_surrogate(cycles: Sequence[Mapping[str, Any]], path: Path,
                   cross_validated: Mapping[str, Any] | None = None) -> Path | None:
    """cross_validated: `{"rho", "folds", "n"}` of the search's end, drawn after the last cycle."""
    rows = [(i, c["surrogate"]) for i, c in enumerate(cycles) if c.get("surrogate", {}).get("pairs")]
    if not rows:
        return None
    fig, (ax, ax_rho) = plt.subplots(1, 2, figsize=(9, 3.8))
    for i, s in rows:
        pred, real = np.array(s["pairs"]).T
        ax.scatter(pred, real, s=18, label=f"cycle {i}: rho {_fmt(s.get('rho_unseen'))}")
    lo = min(min(min(p) for p in s["pairs"]) for _, s in rows)
    hi = max(max(max(p) for p in s["pairs"]) for _, s in rows)
    ax.plot([lo, hi], [lo, hi], color="grey", lw=0.8)
    ax.set(xlabel="surrogate prediction (before seeing them)", ylabel="real score (validation)")
    ax.legend(fontsize=7)
    rho = [c.get("surrogate", {}).get("rho_unseen") for c in cycles]
    ax_rho.plot(range(len(rho)), [np.nan if r is None else r for r in rho], marker="o", label="next picks")
    cv = [(c.get("rho_cv") or {}).get("rho") for c in cycles]
    if any(r is not None for r in cv):
        ax_rho.plot(range(len(cv)), [np.nan if r is None else r for r in cv], marker="s", ms=3, color="C3",
                    label="every evaluation so far, cross-validated")
    if cross_validated and cross_validated.get("rho") is not None:
        ax_rho.scatter([len(rho) - 1], [cross_validated["rho"]], marker="s", color="C3", zorder=3,
                       label=f"all {cross_validated['n']}, {cross_validated['folds']}-fold CV: "
                             f"{_fmt(cross_validated['rho'])}")
    ax_rho.legend(fontsize=7, loc="lower right")
    ax_rho.axhline(0.8, color="grey", ls="--", lw=0.8)
    ax_rho.set(xlabel="cycle", ylabel="Spearman rho (unseen)", ylim=(-1.05, 1.05))
    fig.tight_layout()
    return _save(fig, path)


def plot_decisions(plan: Mapping[str, Mapping[str, Any]], path: Path) -> Path | None:
    if not plan:
        return None
    names = list(plan)
    cfgs = [plan[n] for n in names]
    rows = {
        "bits": [c["bits"] for c in cfgs],
        "keep": [c["keep_ratio"] for c in cfgs],
        "format": [FORMATS.index(c["number_format"]) for c in cfgs],
        "granularity": [GRANULARITIES.index(c["granularity"]) for c in cfgs],
    }
    labels = {
        "bits": [str(c["bits"]) for c in cfgs],
        "keep": [f"{c['keep_ratio']:g}" for c in cfgs],
        "format": [c["number_format"] for c in cfgs],
        "granularity": [c["granularity"].replace("per_", "") + (f"{c['group_size']}" if c.get("group_size") else "")
                        for c in cfgs],
    }
    grid = np.array([_unit(v) for v in rows.values()])  # (4, K), each row scaled to [0, 1]
    fig, ax = plt.subplots(figsize=(max(4, 0.9 * len(names) + 2), 2.8))
    ax.imshow(grid, aspect="auto", cmap="viridis", vmin=0, vmax=1)
    for r, key in enumerate(rows):
        for k, text in enumerate(labels[key]):
            ax.text(k, r, text, ha="center", va="center", fontsize=7, color="w" if grid[r, k] < 0.6 else "k")
    ax.set_yticks(range(len(rows)), list(rows))
    ax.set_xticks(range(len(names)), names, rotation=45, ha="right", fontsize=7)
    fig.tight_layout()
    return _save(fig, path)


def plot_hla_budgets(cycles: Sequence[Mapping[str, Any]], blocks: Sequence[Sequence[str]], path: Path) -> Path | None:
    votes = [c["hla"]["vote"] for c in cycles if c.get("hla", {}).get("vote")]
    if not votes:
        return None
    shares = np.array(votes)  # (cycles, blocks)
    fig, ax = plt.subplots(figsize=(6, 3.6))
    names = [b[0] if len(b) == 1 else f"{b[0]}..({len(b)})" for b in blocks] or [str(i) for i in range(shares.shape[1])]
    ax.stackplot(range(len(votes)), shares.T, labels=names[: shares.shape[1]])
    ax.set(xlabel="cycle", ylabel="share of the kernel budget", ylim=(0, 1))
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))  # cycles are counted, never 0.2 of one
    ax.legend(fontsize=6, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    fig.tight_layout()
    return _save(fig, path)


def _unit(values: Sequence[float]) -> list[float]:
    lo, hi = min(values), max(values)
    return [0.5 if hi == lo else (v - lo) / (hi - lo) for v in values]


def _fmt(x: Any) -> str:
    return "n/a" if x is None else f"{x:.2f}"


def _save(fig: Any, path: Path) -> Path:
    path = Path(path)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
