"""`SizeModel`: whole-model storage bytes of a plan, without building the model.

The packed file's data section (hirelc.export.packed, docs/ARCHITECTURE.md) holds every
kernel at `hirelc.cost.quantized_weight_bits` of its kept matrix, and every other tensor
(biases, norms, position embeddings, fp32 kernels) at its dtype size after pruning. The
non-kernel tensors shrink linearly with the kept units (channels or heads) of the channel
group they belong to, so

    bytes(plan) = sum_k quantized_weight_bits(kept rows_k, kept cols_k, cfg_k) / 8
                + fixed_bytes + sum_g unit_bytes[g] * kept_units_g(plan)

`hirelc.evaluate.calibrate.measure_size_model` measures `fixed_bytes` and `unit_bytes` on
the model (and tests check the sum equals `storage_bytes_model` to the byte); a model-free
search counts kernels only (fixed_bytes = 0, no unit bytes) unless told otherwise.

>>> from hirelc.inventory.spec import LayerSpec
>>> from hirelc.plan import LayerConfig, Plan
>>> fc = LayerSpec("fc", "linear", (10, 20), n_macs=200, prunable=True)
>>> sizes = SizeModel([fc], fixed_bytes=40, unit_bytes={"fc": 4})  # e.g. a bias of 10 floats
>>> sizes.fp32_bytes  # 800 + 40 + 4 * 10
880
>>> sizes.nbytes(Plan({"fc": LayerConfig(bits=4, keep_ratio=0.5)}))  # 5*20*4/8 + 5*2 + 40 + 4*5
120
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from hirelc import cost
from hirelc.inventory.spec import LayerSpec
from hirelc.plan import LayerConfig
from hirelc.pruned_shapes import PruneStructure

MEMO_LIMIT = 4096  # keep vectors whose pruned shapes a SizeModel remembers


@dataclass(frozen=True)
class SizeModel:
    """Storage bytes of plans over `layers`; see the module docstring for the formula.

    fp32_bytes: the uncompressed model's tensor bytes (default: kernels at fp32 plus the
    non-kernel tensors at full width), the denominator of every compression ratio.
    """

    layers: tuple[LayerSpec, ...]
    fixed_bytes: int = 0
    unit_bytes: Mapping[str, int] = field(default_factory=dict)
    fp32_bytes: int = 0

    def __post_init__(self) -> None:
        object.__setattr__(self, "layers", tuple(self.layers))
        object.__setattr__(self, "unit_bytes", dict(self.unit_bytes))
        object.__setattr__(self, "_memo", {})
        object.__setattr__(self, "_structure", PruneStructure.of(self.layers))
        if self.fixed_bytes < 0 or any(v < 0 for v in self.unit_bytes.values()):
            raise ValueError("fixed_bytes and unit_bytes must be >= 0")
        if not self.fp32_bytes:
            full = cost.kept_units(self.layers, {})
            other = self.fixed_bytes + sum(self.unit_bytes.get(g, 0) * n for g, n in full.items())
            object.__setattr__(self, "fp32_bytes", sum(cost.fp32_bits(s) for s in self.layers) // 8 + other)

    def kernel_bytes(self, plan: Mapping[str, LayerConfig]) -> int:
        """Bytes of the kernels' weights alone (codes, scales, zero points; fp32 if absent)."""
        return cost.total_storage_bits(self.layers, plan, self.kept_shapes(plan)) // 8

    def other_bytes(self, plan: Mapping[str, LayerConfig]) -> int:
        """Bytes of every non-kernel tensor after pruning."""
        if not self.unit_bytes:
            return self.fixed_bytes
        kept = self._pruned(plan)[1]
        return self.fixed_bytes + sum(self.unit_bytes.get(g, 0) * n for g, n in kept.items())

    def kept_shapes(self, plan: Mapping[str, LayerConfig]) -> dict[str, tuple[int, int]]:
        """`cost.kept_shapes` of the layers under `plan` (memoised: see `_pruned`)."""
        return self._pruned(plan)[0]

    def _pruned(self, plan: Mapping[str, LayerConfig]) -> tuple[dict[str, tuple[int, int]], dict[str, int]]:
        """(kept shapes, kept units) under `plan`. They depend on the keep ratios alone, and a
        budget repair asks for the same few keep vectors thousands of times (exact rational
        arithmetic made it 80 % of a repair's time on vit_tiny), so they are memoised by the
        keep vector, at most MEMO_LIMIT of them."""
        keeps = self._structure.keeps(plan)
        memo = self._memo
        if keeps not in memo:
            if len(memo) >= MEMO_LIMIT:
                memo.clear()
            memo[keeps] = (self._structure.shapes(keeps), self._structure.units_kept(keeps))
        return memo[keeps]

    def canonical(self, plan: Mapping[str, LayerConfig]) -> dict[str, LayerConfig]:
        """`plan` (as a dict) with each shared channel group's members at the keep ratio that
        decides the group (`PruneStructure.canonical_keeps`): the same pruned model, bytes
        and evaluation, one form. Kernels outside `layers` are left as they are."""
        keeps = self._structure.keeps(plan)
        out = dict(plan)
        for name, old, new in zip(self._structure.names, keeps, self._structure.canonical_keeps(keeps)):
            if new != old and name in out:
                out[name] = replace(out[name], keep_ratio=new)
        return out

    def nbytes(self, plan: Mapping[str, LayerConfig]) -> int:
        """Whole-model storage bytes of `plan` (the packed file's data section)."""
        return self.kernel_bytes(plan) + self.other_bytes(plan)

    def ratio(self, plan: Mapping[str, LayerConfig]) -> float:
        """fp32 bytes / storage bytes of `plan`."""
        return self.fp32_bytes / self.nbytes(plan)

    def to_dict(self) -> dict[str, Any]:
        return {"fixed_bytes": self.fixed_bytes, "unit_bytes": dict(self.unit_bytes), "fp32_bytes": self.fp32_bytes}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any], layers: Sequence[LayerSpec]) -> "SizeModel":
        return cls(tuple(layers), int(d["fixed_bytes"]), {k: int(v) for k, v in d["unit_bytes"].items()},
                   int(d["fp32_bytes"]))
