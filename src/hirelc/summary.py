"""The end-of-search summary a user reads: result.json -> labelled rows of text.

Accuracies in percent with the split they were measured on, the chosen config of every layer
by name, why the search stopped, where its evaluations came from (new / served from the
evaluation cache / replayed from the journal), and one compression figure with its
definition (issue "First hour"). Keys: `hirelc.result_file` (old result.json files are
upgraded before they get here).

>>> rows = summary_rows({"method": "tpe", "test/fp32_accuracy": 0.983, "test/accuracy": 0.98,
...     "split_sizes": {"train": 3000, "val": 1000, "test": 1000}, "val/accuracy": 0.982,
...     "val/fp32_accuracy": 0.984, "search/stop_reason": "budget", "search/evaluations": 12,
...     "search/new_evaluations": 7, "search/served_from_cache": 3, "search/replayed": 2,
...     "plan": {"fc1": {"bits": 3, "keep_ratio": 0.5, "number_format": "int_asym", "granularity": "per_tensor",
...              "group_size": None}, "fc2": {"bits": 8, "keep_ratio": 1.0, "number_format": "int_sym",
...              "granularity": "per_channel", "group_size": None}},
...     "size/compression": 16.97, "size/fp32_tensor_bytes": 1724320, "size/packed_data_bytes": 101592,
...     "size/packed_file_bytes": 102480, "size/fp32_state_dict_bytes": 1727949})
>>> rows["test accuracy (1,000 images)"]
'98.3 % fp32 -> 98.0 % compressed (-0.3 point)'
>>> rows["plan per layer"]
'fc1 3b keep 0.5 int_asym per_tensor; fc2 8b'
>>> rows["search"]
'tpe, stopped: budget spent; chosen plan 98.2 % on validation (fp32 98.4 %, 1,000 images)'
>>> rows["real evaluations"]
'12 = 7 new + 3 served from the evaluation cache + 2 replayed from the journal'
>>> rows["compression (measured)"]
'16.97x = fp32 tensors 1,724,320 B / packed tensors 101,592 B (files: 1,727,949 B -> 102,480 B with header)'
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from hirelc.result_file import COMPRESSION_DEFINITION

STOPS = {
    "budget": "budget spent", "converged": "policy converged", "stalled": "no better plan for a while",
    "done": "method finished", "exhausted": "only already-evaluated plans proposed",
    "max_episodes": "episode cap reached",
}


def summary_rows(result: Mapping[str, Any], target_line: str | None = None) -> dict[str, str]:
    """Ordered label -> text rows of a search's result.json (missing fields are left out)."""
    rows: dict[str, str] = {}
    sizes = result.get("split_sizes") or {}
    if "test/accuracy" in result and "test/fp32_accuracy" in result:
        fp32, final = result["test/fp32_accuracy"], result["test/accuracy"]
        rows[f"test accuracy ({sizes.get('test', 0):,} images)"] = (
            f"{_pct(fp32)} fp32 -> {_pct(final)} compressed ({100 * (final - fp32):+.1f} point)")
    if "val/accuracy" in result:
        stop = STOPS.get(result.get("search/stop_reason", ""), result.get("search/stop_reason", "?"))
        rows["search"] = (f"{result.get('method', '?')}, stopped: {stop}; chosen plan {_pct(result['val/accuracy'])} "
                          f"on validation (fp32 {_pct(result.get('val/fp32_accuracy', float('nan')))}, "
                          f"{sizes.get('val', 0):,} images)")
    if "search/evaluations" in result:
        rows["real evaluations"] = evaluations_text(result)
    if "plan" in result:
        rows["plan per layer"] = describe_plan(result["plan"])
    if "size/compression" in result:
        rows["compression (measured)"] = compression_text(result)
    if target_line:
        rows["target"] = target_line
    for key, label in (("modelled/speedup_vs_8bit", "speedup vs 8-bit (modelled, bit-serial)"),
                       ("modelled/energy_reduction_vs_8bit", "energy vs 8-bit (modelled)")):
        if key in result:
            rows[label] = f"{result[key]:.2f}x"
    if "run/wall_seconds" in result:
        rows["wall time"] = f"{result['run/wall_seconds']:.1f} s ({result.get('run/torch_threads', '?')} torch threads)"
    return rows


def evaluations_text(result: Mapping[str, Any]) -> str:
    """'12 = 7 new + 3 served from the evaluation cache + 2 replayed from the journal'; a
    result.json written before the split was recorded says only what it knows.

    >>> evaluations_text({"search/evaluations": 4, "search/replayed": 1})
    '4 (1 replayed from the journal; new vs cached not recorded by this older run)'
    """
    total, replayed = result["search/evaluations"], result.get("search/replayed", 0)
    if "search/new_evaluations" not in result:
        return f"{total} ({replayed} replayed from the journal; new vs cached not recorded by this older run)"
    text = (f"{total} = {result['search/new_evaluations']} new + {result.get('search/served_from_cache', 0)} served "
            f"from the evaluation cache + {replayed} replayed from the journal")
    repeats = result.get("search/repeats", 0)
    return text + (f" (and {repeats} repeated proposals answered from memory, free)" if repeats else "")


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


def compression_text(result: Mapping[str, Any]) -> str:
    """The one compression figure with the byte counts it is made of (COMPRESSION_DEFINITION:
    the packed tensors, which a size target bounds), then the two files' sizes."""
    return (f"{result['size/compression']:.2f}x = fp32 tensors {result.get('size/fp32_tensor_bytes', 0):,} B / "
            f"packed tensors {result.get('size/packed_data_bytes', 0):,} B (files: "
            f"{result.get('size/fp32_state_dict_bytes', 0):,} B -> {result.get('size/packed_file_bytes', 0):,} B "
            "with header)")


def _pct(x: float) -> str:
    return f"{100 * x:.1f} %"


def target_line(result: Mapping[str, Any]) -> str:
    """The target and whether it is met, in bytes: a size target is on the packed file's
    data section against the fp32 tensors, the same measure as the one compression figure
    `size/compression` (COMPRESSION_DEFINITION).

    >>> target_line({"target": {"kind": "compression", "compression": 16.0, "max_bytes": 107770},
    ...              "size/target_met": True, "size/packed_data_bytes": 105034, "size/fp32_tensor_bytes": 1724320})
    'compression >= 16x: packed data section <= 107,770 B (fp32 tensors 1,724,320 B / 16): met, 105,034 B'
    """
    target = result.get("target") or {}
    kind = target.get("kind")
    if kind is None:
        return "none (ReLeQ shaped reward)"
    if kind == "max_accuracy_drop":
        met = result.get("search/target_met")
        return f"validation accuracy within {target['max_accuracy_drop']:g} point of fp32: {'met' if met else 'NOT met'}"
    met = "met" if result.get("size/target_met") else "NOT met"
    data = f"{result.get('size/packed_data_bytes', 0):,} B"
    if kind == "compression":
        return (f"compression >= {target['compression']:g}x: packed data section <= {target['max_bytes']:,} B "
                f"(fp32 tensors {result.get('size/fp32_tensor_bytes', 0):,} B / {target['compression']:g}): {met}, {data}")
    return f"size: packed data section <= {target['max_bytes']:,} B: {met}, {data}"
