"""Totals and one-line summaries of an inventory, for `hirelc inspect` (pure: no printing).

>>> from hirelc.inventory.spec import LayerSpec
>>> specs = [LayerSpec("conv", "conv2d", (8, 1, 3, 3), n_macs=5000, prunable=True),
...          LayerSpec("fc", "linear", (10, 200), n_macs=2000)]
>>> inventory_totals(specs)
{'layers': 2, 'params': 2072, 'macs': 7000, 'prunable': 1}
>>> fp32_summary([("bn", "normalisation layer (BatchNorm2d), kept in fp32")], {"bn": 16}, 2072 + 16)
'kept in fp32 (not compressed): 1 normalisation layer (BatchNorm2d); 16 parameters, 0.8% of the model'
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from torch import nn


def inventory_totals(specs: Iterable[Any]) -> dict[str, int]:
    """Number of compressible layers, their parameters and MACs, and how many are prunable."""
    specs = list(specs)
    return {"layers": len(specs), "params": sum(s.n_params for s in specs),
            "macs": sum(s.n_macs for s in specs), "prunable": sum(bool(s.prunable) for s in specs)}


def reason_kind(reason: str) -> str:
    """The kind of an uncompressed-parameter reason, without its per-tensor details.

    >>> reason_kind("normalisation layer (LayerNorm), kept in fp32")
    'normalisation layer (LayerNorm)'
    >>> reason_kind("Embedding is not a supported kernel; its parameters (weight (100, 8)) are kept in fp32")
    'unsupported Embedding'
    """
    if reason.startswith("normalisation layer ("):
        return reason.split(",")[0]
    if " is not a supported kernel" in reason:
        return "unsupported " + reason.split(" is not")[0]
    if reason.startswith("bare parameter"):
        return "bare parameter (vector, token or scale)"
    if reason.startswith("matrix parameter"):
        return "matrix parameter outside a supported kernel"
    return reason


def fp32_summary(unsupported: Sequence[tuple[str, str]], n_params: Mapping[str, int], model_params: int) -> str:
    """One line: how many tensors stay fp32, of which kinds, and what share of the model."""
    if not unsupported:
        return "kept in fp32 (not compressed): nothing besides biases"
    kinds = Counter(reason_kind(reason) for _, reason in unsupported)
    listed = ", ".join(f"{n} {_plural(kind, n)}" for kind, n in kinds.most_common())
    kept = sum(n_params.get(name, 0) for name, _ in unsupported)
    share = 100 * kept / model_params if model_params else 0.0
    return f"kept in fp32 (not compressed): {listed}; {kept:,} parameters, {share:.1f}% of the model"


def uncompressed_param_counts(model: nn.Module, names: Iterable[str]) -> dict[str, int]:
    """Parameters held by each named module (its own, not its children's) or parameter."""
    modules, params = dict(model.named_modules()), dict(model.named_parameters())
    counts = {}
    for name in names:
        if name in params:
            counts[name] = params[name].numel()
        elif name in modules:
            counts[name] = sum(p.numel() for p in modules[name].parameters(recurse=False))
    return counts


def compact(n: float) -> str:
    """12,345,678 -> '12.3M': short enough for an 80-column table.

    >>> compact(640), compact(112_896), compact(1_806_336), compact(4.1e9)
    ('640', '112.9K', '1.8M', '4.1G')
    """
    for unit, size in (("G", 1e9), ("M", 1e6), ("K", 1e3)):
        if n >= size:
            return f"{n / size:.1f}{unit}"
    return f"{n:,.0f}"


def _plural(kind: str, n: int) -> str:
    if n == 1:
        return kind
    head, sep, tail = kind.partition(" (")
    return f"{head}s{sep}{tail}" if not head.endswith("s") else kind
