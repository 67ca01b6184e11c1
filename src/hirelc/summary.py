"""The end-of-search summary a user reads: result.json -> labelled rows of text.

Accuracies in percent with the split they were measured on, the chosen config of every layer
by name, why the search stopped, where its evaluations came from, and one compression figure
with its definition (issue "First hour").

>>> rows = summary_rows({"method": "tpe", "baseline_test_accuracy": 0.983, "final_test_accuracy": 0.98,
...     "split_sizes": {"train": 3000, "val": 1000, "test": 1000}, "search_val_accuracy": 0.982,
...     "fp32_val_accuracy": 0.984, "stop_reason": "budget", "real_evaluations": 12, "replayed_evaluations": 2,
...     "plan": {"fc1": {"bits": 3, "keep_ratio": 0.5, "number_format": "int_asym", "granularity": "per_tensor",
...              "group_size": None}, "fc2": {"bits": 8, "keep_ratio": 1.0, "number_format": "int_sym",
...              "granularity": "per_channel", "group_size": None}},
...     "compression_ratio": 16.86, "packed_bytes": 102000, "fp32_state_dict_bytes": 1720000})
>>> rows["test accuracy (1,000 images)"]
'98.3 % fp32 -> 98.0 % compressed (-0.3 point)'
>>> rows["plan per layer"]
'fc1 3b keep 0.5 int_asym per_tensor; fc2 8b'
>>> rows["search"]
'tpe, stopped: budget spent; chosen plan 98.2 % on validation (fp32 98.4 %, 1,000 images)'
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

STOPS = {
    "budget": "budget spent", "converged": "policy converged", "stalled": "no better plan for a while",
    "done": "method finished", "exhausted": "only already-evaluated plans proposed",
    "max_episodes": "episode cap reached",
}


def summary_rows(result: Mapping[str, Any], target_line: str | None = None) -> dict[str, str]:
    """Ordered label -> text rows of a search's result.json (missing fields are left out)."""
    rows: dict[str, str] = {}
    sizes = result.get("split_sizes") or {}
    if "final_test_accuracy" in result and "baseline_test_accuracy" in result:
        fp32, final = result["baseline_test_accuracy"], result["final_test_accuracy"]
        rows[f"test accuracy ({sizes.get('test', 0):,} images)"] = (
            f"{_pct(fp32)} fp32 -> {_pct(final)} compressed ({100 * (final - fp32):+.1f} point)")
    if "search_val_accuracy" in result:
        stop = STOPS.get(result.get("stop_reason", ""), result.get("stop_reason", "?"))
        rows["search"] = (f"{result.get('method', '?')}, stopped: {stop}; chosen plan {_pct(result['search_val_accuracy'])} "
                          f"on validation (fp32 {_pct(result.get('fp32_val_accuracy', float('nan')))}, "
                          f"{sizes.get('val', 0):,} images)")
    if "real_evaluations" in result:
        rows["real evaluations"] = (f"{result['real_evaluations']} ({result.get('replayed_evaluations', 0)} replayed "
                                    "from the journal, not recomputed)")
    if "plan" in result:
        rows["plan per layer"] = describe_plan(result["plan"])
    if "compression_ratio" in result:
        rows["compression (measured)"] = (
            f"{result['compression_ratio']:.2f}x = fp32 state_dict file {result.get('fp32_state_dict_bytes', 0):,} B "
            f"/ packed file {result.get('packed_bytes', 0):,} B")
    if target_line:
        rows["target"] = target_line
    for key, label in (("modelled_speedup_vs_8bit", "speedup vs 8-bit (modelled, bit-serial)"),
                       ("modelled_energy_reduction_vs_8bit", "energy vs 8-bit (modelled)")):
        if key in result:
            rows[label] = f"{result[key]:.2f}x"
    if "wall_seconds" in result:
        rows["wall time"] = f"{result['wall_seconds']:.1f} s ({result.get('torch_threads', '?')} torch threads)"
    return rows


def describe_plan(plan: Mapping[str, Mapping[str, Any]]) -> str:
    """'name 4b; name 3b keep 0.5 int_asym per_tensor': what differs from 8-bit-style defaults."""
    parts = []
    for name, cfg in plan.items():
        text = f"{name} {cfg['bits']}b"
        if cfg.get("keep_ratio", 1.0) < 1.0:
            text += f" keep {cfg['keep_ratio']:g}"
        if cfg.get("number_format", "int_sym") != "int_sym":
            text += f" {cfg['number_format']}"
        if cfg.get("granularity", "per_channel") != "per_channel":
            text += " " + (f"per_group:{cfg['group_size']}" if cfg["granularity"] == "per_group" else cfg["granularity"])
        parts.append(text)
    return "; ".join(parts)


def _pct(x: float) -> str:
    return f"{100 * x:.1f} %"


COMPRESSION_DEFINITION = "fp32 state_dict file bytes / packed .hirelc file bytes (both measured)"


def target_line(result: Mapping[str, Any]) -> str:
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
