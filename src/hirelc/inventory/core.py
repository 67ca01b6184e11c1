"""`inspect(model, example_input) -> Inventory`: every kernel of a model, measured.

>>> import torch
>>> net = nn.Sequential(nn.Conv2d(1, 4, 3), nn.ReLU(), nn.Flatten(), nn.Linear(4 * 26 * 26, 10))
>>> inv = inspect(net, torch.randn(2, 1, 28, 28))
>>> [(s.name, s.n_macs, s.prunable) for s in inv]
[('0', 24336, True), ('3', 27040, False)]
>>> inv.groups["0"].consumers
(('3', 676),)
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import replace
from typing import Any

from torch import nn

from hirelc.inventory.channels import ChannelFlow, analyse_channels
from hirelc.inventory.coverage import Coverage, measure_coverage
from hirelc.inventory.groups import ChannelGroup
from hirelc.inventory.heads import head_group, probe_head_removal
from hirelc.inventory.kernels import KernelRef, find_kernels, is_attention, kernel_weight, unsupported_parameters
from hirelc.inventory.local import local_flow
from hirelc.inventory.measure import TRANSFORMER_LAYERS, Measurement, as_args, frozen, measure
from hirelc.inventory.spec import LayerSpec
from hirelc.inventory.torch_layers import feedforward_group, mha_head_group
from hirelc.inventory.trace import block_of, residual_blocks, trace

log = logging.getLogger(__name__)

MHA_REASON = "nn.MultiheadAttention cannot change its head count without replacing the module"


class Inventory(list[LayerSpec]):
    """The kernels of a model in forward execution order, plus:

    - `unsupported`: (module or parameter name, reason) for every parameter not compressed;
    - `groups`: group id -> `ChannelGroup`, every channel/head group found (prunable or not);
    - `trace_error`: why torch.fx could not trace the model ("" when it could);
    - `coverage`: the share of the parameters that are compressible kernels, prunable, kept
      fp32 by design, unsupported (`hirelc.inventory.coverage.Coverage`; None when built by
      hand without a model).
    """

    def __init__(
        self,
        specs: Iterable[LayerSpec] = (),
        unsupported: Iterable[tuple[str, str]] = (),
        groups: Mapping[str, ChannelGroup] | None = None,
        trace_error: str = "",
        coverage: Coverage | None = None,
    ) -> None:
        super().__init__(specs)
        self.unsupported: list[tuple[str, str]] = [tuple(u) for u in unsupported]
        self.groups: dict[str, ChannelGroup] = dict(groups or {})
        self.trace_error = trace_error
        self.coverage = coverage

    def names(self) -> list[str]:
        return [s.name for s in self]

    def prunable_names(self) -> list[str]:
        return [s.name for s in self if s.prunable]

    def spec(self, name: str) -> LayerSpec:
        """The spec of kernel `name` (KeyError naming the known kernels otherwise)."""
        for s in self:
            if s.name == name:
                return s
        raise KeyError(f"no kernel named {name!r}; kernels: {', '.join(self.names())}")

    def to_dict(self) -> dict[str, Any]:
        return {
            "layers": [s.to_dict() for s in self],
            "unsupported": [list(u) for u in self.unsupported],
            "groups": [g.to_dict() for g in self.groups.values()],
            "trace_error": self.trace_error,
            "coverage": self.coverage.to_dict() if self.coverage is not None else None,
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "Inventory":
        groups = [ChannelGroup.from_dict(g) for g in d.get("groups", ())]
        coverage = Coverage(**d["coverage"]) if d.get("coverage") else None
        return cls(
            (LayerSpec.from_dict(s) for s in d["layers"]),
            (tuple(u) for u in d.get("unsupported", ())),
            {g.id: g for g in groups},
            d.get("trace_error", ""),
            coverage,
        )


def _execution_order(refs: Sequence[KernelRef], measured: Measurement) -> dict[str, int]:
    """Kernel name -> index: executed kernels first in call order, then the others."""
    names = list(measured.order) + [r.name for r in refs if r.name not in measured.order]
    return {n: i for i, n in enumerate(names)}


def _spec(model: nn.Module, ref: KernelRef, macs: int, block: str, index: int) -> LayerSpec:
    w = kernel_weight(model, ref).detach().float()
    return LayerSpec(
        name=ref.name, kind=ref.kind, weight_shape=tuple(w.shape), n_macs=macs,
        n_params=w.numel(), weight_mean=float(w.mean()),
        weight_std=float(w.std()) if w.numel() > 1 else 0.0,
        weight_min=float(w.min()), weight_max=float(w.max()), block=block, index=index,
        module=ref.module, param=ref.param, conv_groups=ref.conv_groups, n_heads=ref.n_heads,
    )


def _head_groups(model: nn.Module, refs: Sequence[KernelRef], measured: Measurement) -> list[ChannelGroup]:
    """Head groups of every attention module (module-local: no traced graph needed)."""
    by_name = {r.name: r for r in refs}
    groups = []
    for path in (p for p, m in model.named_modules() if is_attention(m)):
        g = head_group(model, path, by_name)
        if g.prunable and path not in measured.attention_inputs:
            g = replace(g, prunable=False, reason="the attention module is not executed on the example input")
        if g.prunable:
            attn, inputs = model.get_submodule(path), measured.attention_inputs[path]
            why = probe_head_removal(attn, inputs, g)
            if why:  # its code keeps the head count: try zero-filled head slots
                why_padded = probe_head_removal(attn, inputs, g, padded=True)
                g = replace(g, padded=not why_padded)
                why = f"{why}; with zero-filled head slots: {why_padded}" if why_padded else ""
            g = replace(g, prunable=not why, reason=why)
        groups.append(g)
    return groups


def _untraced_reason(spec: LayerSpec, trace_error: str, failed: Mapping[str, str]) -> str:
    inner = [p for p in failed if spec.module.startswith(p + ".")]
    if not inner:
        return (f"the model could not be traced with torch.fx ({trace_error}), and no module "
                "holding this kernel could be traced on its own")
    path = max(inner, key=len)
    return (f"the model could not be traced with torch.fx, nor could the module '{path}' "
            f"holding it ({failed[path]}); only channels local to a traceable module are pruned")


def _feedforward_groups(model: nn.Module, refs: Sequence[KernelRef],
                        measured: Measurement) -> list[ChannelGroup]:
    by_name = {r.name: r for r in refs}
    found = [feedforward_group(model, path, by_name, measured.attention_inputs.get(path))
             for path, mod in model.named_modules() if isinstance(mod, TRANSFORMER_LAYERS)]
    heads = [mha_head_group(model, path, by_name, measured.attention_inputs.get(path))
             for path, mod in model.named_modules() if isinstance(mod, nn.MultiheadAttention)]
    return found + [g for g in heads if g is not None]


def _unassigned_reason(model: nn.Module, spec: LayerSpec, flow: ChannelFlow | None,
                       trace_error: str, executed: bool, failed: Mapping[str, str]) -> str:
    """Why a kernel that produces no channel group cannot be pruned."""
    if flow is None or (trace_error and not spec.kind.startswith("mha_") and spec.kind != "attn_proj"
                        and spec.name not in flow.kernel_reasons
                        and not any(spec.module.startswith(p + ".") for p in flow.leaf_calls)):
        return _untraced_reason(spec, trace_error, failed)
    if spec.kind == "mha_out_proj":
        return ("output projection of nn.MultiheadAttention: its columns shrink with the heads "
                "pruned through in_proj, its outputs leave the attention module")
    if spec.kind.startswith("mha_"):
        return MHA_REASON
    if spec.kind == "attn_proj":
        return ("output projection of an attention module: its heads are pruned through the "
                "qkv kernel, its outputs leave the attention module, which is analysed as a unit")
    if spec.name in flow.kernel_reasons:
        return flow.kernel_reasons[spec.name]
    if not executed:
        return "it is not executed on the example input"
    leaves = [p for p in flow.leaf_calls if spec.module.startswith(p + ".")]
    if leaves:
        leaf = max(leaves, key=len)
        return (f"it runs inside '{leaf}' ({type(model.get_submodule(leaf)).__name__}), which "
                "the channel analysis treats as a unit")
    return "its output channels are not followed by the channel analysis"


def _assign_groups(model: nn.Module, specs: list[LayerSpec], groups: Mapping[str, ChannelGroup],
                   flow: ChannelFlow | None, trace_error: str, executed: set[str],
                   failed: Mapping[str, str]) -> None:
    by_name = {s.name: s for s in specs}
    for g in groups.values():
        for name in g.producers + g.embeddings + g.depthwise:
            s = by_name[name]
            if s.prune_group is not None and s.prunable and not g.prunable:
                continue  # a tied weight: its columns prunable, its rows not (the prunable group names it)
            s.prune_group, s.prunable, s.prune_reason = g.id, g.prunable, g.reason
            s.prune_segments = g.segments * (g.row_chunks if g.kind == "channels" else 1)
            if g.kind == "heads":  # keep_ratio counts heads (hirelc.cost.prune_units)
                s.n_heads = g.size
            s.consumers = tuple(c for c, _ in g.consumers)
    head_outputs = {c: g.module for g in groups.values() if g.kind == "heads" and g.prunable
                    for c, _ in g.consumers}
    for s in specs:
        if s.prune_group is None and s.name in head_outputs:
            s.prunable = False
            s.prune_reason = (f"output projection of attention module '{head_outputs[s.name]}': its "
                              "input columns shrink with the pruned heads, its outputs leave the module")
        elif s.prune_group is None:
            s.prunable = False
            s.prune_reason = _unassigned_reason(model, s, flow, trace_error, s.name in executed, failed)


def _report_unsupported(model: nn.Module, refs: Sequence[KernelRef]) -> list[tuple[str, str, bool, int]]:
    found = unsupported_parameters(model, refs)
    for name, reason, warn, _ in found:
        if warn:
            log.warning("hirelc does not compress %r: %s", name, reason)
    return found


def inspect(model: nn.Module, example_input: Any) -> Inventory:
    """Every kernel of `model`, measured on `example_input` (a batch: dim 0 is the batch; a
    tuple is passed as positional arguments). The model is run in eval mode without grad and
    left exactly as it was.

    >>> import torch
    >>> net = nn.Sequential(nn.Conv2d(3, 8, 3), nn.BatchNorm2d(8), nn.ReLU(), nn.Flatten(),
    ...                     nn.Linear(8 * 30 * 30, 10))
    >>> inv = inspect(net, torch.randn(1, 3, 32, 32))
    >>> inv.spec("0").prune_group, inv.groups["0"].batchnorms, inv.unsupported
    ('0', ('1',), [('1', 'normalisation layer (BatchNorm2d), kept in fp32')])
    """
    args = as_args(example_input)
    refs = find_kernels(model)
    with frozen(model):
        measured = measure(model, refs, args)
        order = _execution_order(refs, measured)
        gm, trace_error = trace(model, args)
        failed: dict[str, str] = {}
        if gm is not None:
            flow = analyse_channels(gm, refs, order)
        else:  # per-module fallback: groups local to a traceable module stay prunable
            flow, failed = local_flow(model, refs, order, args)
        heads = _head_groups(model, refs, measured)
        heads += _feedforward_groups(model, refs, measured)
    blocks = residual_blocks(model, gm)
    specs = sorted(
        (_spec(model, r, measured.macs[r.name], block_of(r.caller, blocks), order[r.name]) for r in refs),
        key=lambda s: s.index,
    )
    found = (flow.groups if flow is not None else []) + heads
    groups = {g.id: g for g in sorted(found, key=lambda g: order.get(g.id, len(order)))}
    _assign_groups(model, specs, groups, flow, trace_error, set(measured.order), failed)
    found = _report_unsupported(model, refs)
    coverage = measure_coverage(model, specs, groups, found)
    return Inventory(specs, [(n, r) for n, r, _, _ in found], groups, trace_error, coverage)
