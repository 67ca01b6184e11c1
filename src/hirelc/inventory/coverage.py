"""What share of a model's parameters the search can reach, before it runs.

Every parameter value of the model falls in exactly one of three classes:
- `kernels`: compressible kernel weights (quantized, possibly pruned);
- `fp32_by_design`: biases, normalisation layers, bare vectors (cls token, position
  embedding, layer scales): small, and kept in fp32 on purpose;
- `unsupported`: matrix-shaped weights of modules hirelc does not know (a warning names them).
`prunable` counts the kernel weights that structured pruning shrinks: a kernel whose rows
(or an embedding's columns) a prunable group removes, or whose input columns it removes.
`prunable_rows` counts only the former.

>>> c = Coverage(total=100, kernels=90, prunable=80, prunable_rows=60, fp32_by_design=6, unsupported=4)
>>> c.share("prunable"), c.share("unsupported")
(0.8, 0.04)
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

from torch import nn

from hirelc.inventory.groups import ChannelGroup
from hirelc.inventory.spec import LayerSpec

FIELDS = ("kernels", "prunable", "prunable_rows", "fp32_by_design", "unsupported")


@dataclass(frozen=True)
class Coverage:
    """Parameter counts (values, tied tensors once) by what hirelc does with them."""

    total: int
    kernels: int
    prunable: int
    prunable_rows: int
    fp32_by_design: int
    unsupported: int

    def share(self, field: str) -> float:
        """`field` / total (0.0 for a model without parameters)."""
        if field not in FIELDS:
            raise ValueError(f"unknown coverage field {field!r}; expected one of {FIELDS}")
        return getattr(self, field) / self.total if self.total else 0.0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def lines(self) -> list[str]:
        """Human-readable lines, one per class (for `hirelc inspect`)."""
        labels = {
            "kernels": "compressible kernels", "prunable": "prunable (rows or input columns)",
            "prunable_rows": "  of which output channels / heads", "fp32_by_design": "kept fp32 by design",
            "unsupported": "unsupported (kept fp32)",
        }
        return [f"{labels[f]:<36} {getattr(self, f):>12,} {100 * self.share(f):6.1f} %" for f in FIELDS]


def _pruned_kernels(groups: Iterable[ChannelGroup]) -> tuple[set[str], set[str]]:
    """(kernels that pruning shrinks, of which those losing rows or embedding columns)."""
    rows: set[str] = set()
    cols: set[str] = set()
    for g in groups:
        if g.prunable:
            rows.update(g.producers + g.embeddings + g.depthwise)
            cols.update(name for name, _ in g.consumers)
    return rows | cols, rows


def measure_coverage(model: nn.Module, specs: Sequence[LayerSpec], groups: Mapping[str, ChannelGroup],
                     unsupported: Iterable[tuple[str, str, bool, int]]) -> Coverage:
    """The coverage of `model` from its inventory (`unsupported` as from
    `hirelc.inventory.kernels.unsupported_parameters`)."""
    total = sum(p.numel() for p in model.parameters())  # each tensor once, tied ones too
    kernels = sum(s.n_params for s in specs)
    shrunk, rows = _pruned_kernels(groups.values())
    return Coverage(
        total=total, kernels=kernels,
        prunable=sum(s.n_params for s in specs if s.name in shrunk),
        prunable_rows=sum(s.n_params for s in specs if s.name in rows),
        unsupported=sum(n for _, _, warn, n in unsupported if warn),
        fp32_by_design=total - kernels - sum(n for _, _, warn, n in unsupported if warn),
    )
