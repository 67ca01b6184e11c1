"""Measure, on a model, the tables that the pure search math uses: storage (`SizeModel`),
damage (`DamageModel`) and Fisher pruning importance.

The search math (hirelc.methods: repair, greedy, agents) must be fast and model-free, so the
model is touched once, here, before the search:

- `measure_size_model`: the non-kernel bytes of the packed file (biases, norms, embeddings
  kept fp32) as fixed bytes + bytes per kept channel of each prunable group, measured with
  `storage_bytes_model` (the packed file's data section) at no pruning and with each group
  pruned alone. Linear in the kept units by construction of the format; checked here.
- `measure_damage_model`: the Fisher estimate of the damage: per kernel, 1/2 sum F err^2 of
  its weight's quantization error under every (bits, format, granularity) of the space
  (seed 002: "Fisher Information-based sensitivity"), and the OBD saliency of removing its
  least important units (see hirelc.methods.damage). On a model, the search steers by
  `hirelc.guidance.measure_damage`, which puts these estimates on measured loss increases.
- `fisher_importance`: per channel group, the Fisher (OBD) saliency of each unit summed over
  the group's producers: the pruning importance when a model and data are present.

>>> from hirelc.inventory import inspect
>>> from hirelc.export.packed import storage_bytes_model
>>> from hirelc.plan import LayerConfig, Plan
>>> net = nn.Sequential(nn.Linear(16, 8), nn.ReLU(), nn.Linear(8, 4))
>>> inv = inspect(net, torch.randn(2, 16))
>>> sizes = measure_size_model(net, inv)
>>> plan = Plan({"0": LayerConfig(bits=3, keep_ratio=0.5, granularity="per_tensor"), "2": LayerConfig(bits=2)})
>>> sizes.nbytes(plan) == storage_bytes_model(net, plan, inventory=inv)
True
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch import nn

from hirelc import cost
from hirelc.compress.quantize import dequantize, quantize
from hirelc.inventory.spec import LayerSpec
from hirelc.methods.damage import DamageModel, quant_key
from hirelc.methods.sizing import SizeModel
from hirelc.methods.space import SearchSpace
from hirelc.plan import LayerConfig, Plan

_PROBE = LayerConfig(bits=8)  # any config: non-kernel bytes do not depend on the quantizer


def measure_size_model(model: nn.Module, inventory: Any) -> SizeModel:
    """`SizeModel` of `model`, byte-exact with `storage_bytes_model` (see the module doc)."""
    from hirelc.export.packed import storage_bytes_model  # the format is only needed here

    specs = list(inventory)
    base = Plan({s.name: _PROBE for s in specs})
    kernels_only = SizeModel(tuple(specs))

    def other(plan: Plan) -> int:
        return storage_bytes_model(model, plan, inventory=inventory) - kernels_only.kernel_bytes(plan)

    full_other = other(base)
    full_units = cost.kept_units(specs, base)
    unit_bytes: dict[str, int] = {}
    for group, members in _prunable_groups(specs).items():
        pruned = Plan(base.layers | {m: LayerConfig(8, keep_ratio=0.5) for m in members})
        removed = full_units[group] - cost.kept_units(specs, pruned)[group]
        if removed == 0:
            continue
        delta = full_other - other(pruned)
        if delta % removed:
            raise RuntimeError(f"group {group!r}: {delta} non-kernel bytes for {removed} removed units is not "
                               "a whole number per unit; the storage model cannot be linear here")
        unit_bytes[group] = delta // removed
    fixed = full_other - sum(unit_bytes[g] * full_units[g] for g in unit_bytes)
    fp32 = storage_bytes_model(model, Plan({}), inventory=inventory)
    return SizeModel(tuple(specs), fixed, unit_bytes, fp32)


def _prunable_groups(specs: Sequence[LayerSpec]) -> dict[str, list[str]]:
    groups: dict[str, list[str]] = {}
    for s in specs:
        if s.prunable:
            groups.setdefault(s.prune_group or s.name, []).append(s.name)
    return groups


def kernel_weights(model: nn.Module, specs: Sequence[LayerSpec]) -> dict[str, torch.Tensor]:
    """kernel name -> its weight tensor (detached, fp32, on the CPU)."""
    out = {}
    for s in specs:
        module = model.get_submodule(s.module) if s.module else model
        out[s.name] = getattr(module, s.param).detach().float().cpu()
    return out


def measure_damage_model(
    space: SearchSpace,
    weights: Mapping[str, torch.Tensor] | None = None,
    fisher_trace: Mapping[str, float] | None = None,
    unit_saliency: Mapping[str, Sequence[float]] | None = None,
    seed: int = 0,
    fisher_diag: Mapping[str, torch.Tensor] | None = None,
) -> DamageModel:
    """`DamageModel` over every config of `space` (see hirelc.methods.damage).

    weights: kernel -> weight (measured errors); missing -> a Gaussian stand-in of the
        kernel's shape and `weight_std` (model-free searches).
    fisher_diag: kernel -> its diagonal Fisher F (the weight's shape, or e.g. each row's
        Fisher spread over its weights): then D_q = 1/2 sum F * (quantization error)^2 over
        the weight (no assumption that F and the error are uncorrelated across rows).
    fisher_trace: for kernels without `fisher_diag`: the trace of its diagonal Fisher, and
        D_q = 1/2 trace * mse; missing -> its parameter count (plain weight MSE).
    unit_saliency: kernel -> 1/2 sum F w^2 of each output unit (OBD); missing -> 1/2 sum w^2.
        Pruning damage = the sum over the units removed (the least salient). With a model,
        `hirelc.guidance.measure_damage` replaces both tables by measured loss increases.
    """
    gen = torch.Generator().manual_seed(seed)
    quant: dict[str, dict] = {}
    prune: dict[str, dict[float, float]] = {}
    for s in space.layers:
        w = weights[s.name] if weights and s.name in weights else _stand_in(s, gen)
        if fisher_diag and s.name in fisher_diag:
            f = fisher_diag[s.name].float().reshape(w.shape)
        else:  # the trace spread evenly over the weights: 1/2 sum F err^2 = 1/2 trace mse
            trace = float(fisher_trace[s.name]) if fisher_trace and s.name in fisher_trace else float(w.numel())
            f = torch.full_like(w, trace / w.numel())
        keys = {quant_key(c) for c in space.kernel_configs(s.name)}
        quant[s.name] = {k: _weighted_error(w, f, LayerConfig(k[0], 1.0, k[1], k[2], k[3]))
                         for k in sorted(keys, key=str)}
        saliency = (list(unit_saliency[s.name]) if unit_saliency and s.name in unit_saliency
                    else (0.5 * w.reshape(w.shape[0], -1).pow(2).sum(1)).tolist())
        prune[s.name] = _pruning_damage(s, saliency, space.keep_choices(s.name))
    return DamageModel(quant, prune)


def _stand_in(spec: LayerSpec, gen: torch.Generator) -> torch.Tensor:
    std = spec.weight_std if spec.weight_std > 0 else 1.0
    rows = spec.weight_shape[0]
    cols = min(math.prod(spec.weight_shape[1:]), 4096)  # the error per weight does not need more
    return torch.randn(rows, cols, generator=gen) * std


def _weighted_error(w: torch.Tensor, fisher: torch.Tensor, cfg: LayerConfig) -> float:
    """1/2 sum F (Q(w) - w)^2 under cfg; a stand-in weight (fewer columns than the kernel)
    is scaled up to the kernel's Fisher total."""
    err2 = (dequantize(quantize(w, cfg)).reshape(w.shape) - w).pow(2)
    return float(0.5 * (fisher * err2).sum())


def _pruning_damage(spec: LayerSpec, row_saliency: Sequence[float], keeps: Sequence[float]) -> dict[float, float]:
    """keep ratio -> summed saliency of the least salient units removed at that ratio."""
    units = cost.prune_units(spec)
    per_unit = _per_unit(torch.as_tensor(row_saliency, dtype=torch.float64), units, spec)
    ascending = torch.sort(per_unit).values
    return {float(r): float(ascending[: units - cost.kept_count(units, r)].sum()) for r in keeps}


def _per_unit(rows: torch.Tensor, units: int, spec: LayerSpec) -> torch.Tensor:
    if rows.numel() == units:
        return rows
    if spec.kind in ("attn_qkv", "mha_in_proj") and rows.numel() % (3 * units) == 0:
        return rows.reshape(3, units, -1).sum(dim=(0, 2))  # fused q/k/v rows: (chunk, head, head_dim)
    return rows.reshape(units, -1).sum(1)


def fisher_importance(sensitivity: Any, groups: Mapping[str, Any]) -> dict[str, torch.Tensor]:
    """group id -> Fisher saliency of each unit (channel or head), summed over producers;
    the `importance` argument of `apply_plan` / `Evaluator` (seed 002: Fisher-guided pruning)."""
    out = {}
    for gid, group in groups.items():
        if not group.prunable or group.embeddings:  # an embedding's units are columns: L1 instead
            continue
        score = torch.zeros(group.size, dtype=torch.float64)
        for name in group.producers:
            rows = sensitivity.per_channel_saliency.get(name)
            if rows is None:
                break
            rows = torch.as_tensor(rows, dtype=torch.float64)
            score += rows.reshape(group.row_chunks, group.size, group.unit).sum(dim=(0, 2))
        else:
            out[gid] = score.float()
    return out
