"""`apply_plan(model, plan)`: a compressed, fine-tunable copy of a model.

Every kernel the plan names (and every kernel a pruned group shrinks) gets a
`torch.nn.utils.parametrize` parametrization that computes its weight as

    compact = latent[kept rows][:, kept columns]          # pruning
    compact = fake_quantize(compact, plan[name])          # quantization, STE gradient
    weight  = zeros with `compact` scattered back          # full shape, zeros elsewhere

so quantization always sees the compacted weight, exactly as after physical removal
(docs/ARCHITECTURE.md: masked and physically pruned models compute the same function).
Biases of pruned rows and the affine parameters of BatchNorms in a pruned group are masked
too, so a pruned channel is exactly zero after its BatchNorm. The latent weights stay fp32
parameters, so the copy fine-tunes with any optimizer.

>>> net = nn.Sequential(nn.Conv2d(1, 4, 3), nn.ReLU(), nn.Flatten(), nn.Linear(4 * 6 * 6, 3))
>>> x = torch.randn(2, 1, 8, 8)
>>> plan = Plan({"0": LayerConfig(bits=4, keep_ratio=0.5), "3": LayerConfig(bits=2)})
>>> small = apply_plan(net, plan, example_input=x)        # `net` itself is untouched
>>> sorted(compression_state(small).kept)                 # group id -> kept channel indices
['0']
>>> plain = to_physical(small)                            # pruned + dequantized, plain modules
>>> plain[0].out_channels, plain[3].in_features           # 2 channels x 6 x 6 features
(2, 72)
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

import torch
from torch import Tensor, nn
from torch.nn.utils import parametrize

from hirelc.compress.prune import KernelSlice, batchnorm_keeps, kept_indices, kernel_slices, reslice_, stream_keeps
from hirelc.compress.quantize import fake_quantize
from hirelc.compress.tokens import KeepAlong, mask_layernorm_
from hirelc.inventory import ChannelGroup, Inventory, KernelRef, find_kernels, inspect
from hirelc.plan import LayerConfig, Plan

__all__ = [
    "STATE_ATTR",
    "CompressedWeight",
    "CompressionState",
    "apply_plan",
    "compact_latent_weights",
    "compression_state",
    "to_physical",
]

STATE_ATTR = "hirelc_state"  # attribute of a compressed model holding its CompressionState


@dataclass
class CompressionState:
    """What `apply_plan` did to a model, for export and for `to_physical`."""

    plan: Plan
    inventory: Inventory | None  # None when no example input was given (nothing pruned)
    kept: dict[str, Tensor]  # group id -> sorted kept unit indices (pruned groups only)
    kernels: dict[str, KernelRef] = field(default_factory=dict)  # every kernel of the model
    physical: bool = False  # True after `to_physical`: pruned units removed, weights dequantized

    @property
    def groups(self) -> dict[str, ChannelGroup]:
        return self.inventory.groups if self.inventory is not None else {}


class CompressedWeight(nn.Module):
    """Parametrization latent -> scatter(fake_quantize(latent[rows][:, cols])).

    `cfg=None` prunes without quantizing (a kernel the plan leaves in fp32 but whose input
    channels a pruned group removes).
    """

    def __init__(self, cfg: LayerConfig | None, sl: KernelSlice | None, device: torch.device,
                 name: str | None = None) -> None:
        super().__init__()
        self.cfg = cfg
        self.name = name  # the kernel, named by fake_quantize's range errors
        sl = sl or KernelSlice()
        self.register_buffer("rows", None if sl.rows is None else sl.rows.to(device))
        self.register_buffer("cols", None if sl.cols is None else sl.cols.to(device))

    def compact(self, latent: Tensor) -> Tensor:
        """The kept rows x kept columns of the latent weight."""
        w = latent
        if self.rows is not None:
            w = w.index_select(0, self.rows)
        if self.cols is not None:
            w = w.index_select(1, self.cols)
        return w

    def forward(self, latent: Tensor) -> Tensor:
        w = self.compact(latent)
        if self.cfg is not None:
            w = fake_quantize(w, self.cfg, kernel=self.name)
        if self.cols is not None:  # index_copy keeps the gradient path to `w`
            w = w.new_zeros(w.shape[0], *latent.shape[1:]).index_copy(1, self.cols, w)
        if self.rows is not None:
            w = w.new_zeros(latent.shape).index_copy(0, self.rows, w)
        return w


class KeepMask(nn.Module):
    """Parametrization p -> p * mask: zeros the bias / BatchNorm entries of pruned units."""

    def __init__(self, n: int, kept: Tensor, device: torch.device) -> None:
        super().__init__()
        mask = torch.zeros(n, device=device)
        mask[kept.to(device)] = 1.0
        self.register_buffer("mask", mask)

    def forward(self, p: Tensor) -> Tensor:
        return p * self.mask.to(p.dtype)


def _inventory(model: nn.Module, plan: Plan, example_input: Any,
               inventory: Inventory | None, names: list[str]) -> Inventory | None:
    if inventory is not None:
        return inventory
    if example_input is not None:
        return inspect(model, example_input)
    plan.validate_against(names, prunable=names)  # unknown names first, then pruning
    pruned = [n for n, c in plan.items() if c.keep_ratio < 1.0]
    if pruned:
        raise ValueError(f"layer {pruned[0]!r}: keep_ratio {plan[pruned[0]].keep_ratio} asks for "
                         "pruning, which needs the channel groups: pass example_input (or inventory)")
    return None


def _validate(plan: Plan, inv: Inventory) -> None:
    """Plan.validate_against, but naming the inventory's reason when a layer cannot be pruned."""
    plan.validate_against(inv.names(), prunable=inv.names())  # unknown layer names
    for name, cfg in plan.items():
        spec = inv.spec(name)
        if cfg.keep_ratio < 1.0 and not spec.prunable:
            raise ValueError(f"layer {name!r}: keep_ratio {cfg.keep_ratio} asks for pruning, but "
                             f"it cannot be pruned: {spec.prune_reason}; use keep_ratio=1.0")


def _holders(ref: KernelRef) -> list[tuple[str, str]]:
    """(module path, attribute) of every place holding a kernel's weight tensor: the kernel,
    its aliases (other kernels tied to it), and non-kernel modules tied to it."""
    return [(p, ref.param) for p in (ref.module, *ref.aliases)] + list(ref.tied)


def _parametrize_kernels(model: nn.Module, plan: Plan, refs: Mapping[str, KernelRef],
                         slices: Mapping[str, KernelSlice]) -> None:
    for name in dict.fromkeys([*plan, *slices]):
        ref, sl = refs[name], slices.get(name)
        for path, attr in _holders(ref):  # a shared weight is compressed wherever it is read
            mod = model.get_submodule(path)
            device = getattr(mod, attr).device
            parametrize.register_parametrization(mod, attr, CompressedWeight(plan.get(name), sl, device, name))
            bias_attr = {"weight": "bias", "in_proj_weight": "in_proj_bias"}.get(attr)
            bias = getattr(mod, bias_attr, None) if bias_attr and (path, attr) not in ref.tied else None
            if sl is not None and sl.rows is not None and bias is not None:
                parametrize.register_parametrization(mod, bias_attr, KeepMask(len(bias), sl.rows, bias.device))


def _mask_batchnorms(
    model: nn.Module, groups: Mapping[str, ChannelGroup], kept: Mapping[str, Tensor]
) -> None:
    for path, idx in batchnorm_keeps(groups, kept).items():
        bn = model.get_submodule(path)
        for name in ("weight", "bias"):
            p = getattr(bn, name)
            if p is not None:
                parametrize.register_parametrization(bn, name, KeepMask(len(p), idx, p.device))


def _mask_stream(model: nn.Module, groups: Mapping[str, ChannelGroup], kept: Mapping[str, Tensor]) -> None:
    """LayerNorms over a pruned residual stream normalise over the kept channels only; its
    bare parameters (cls token, position embedding) are masked (hirelc.compress.tokens)."""
    for path, idx in stream_keeps(groups, kept, "layernorms").items():
        mask_layernorm_(model.get_submodule(path), idx)
    for (path, dim), idx in stream_keeps(groups, kept, "params").items():
        head, _, name = path.rpartition(".")
        owner = model.get_submodule(head) if head else model
        p = getattr(owner, name)
        parametrize.register_parametrization(owner, name, KeepAlong(p.shape[dim], dim, p.dim(), idx, p.device))


def apply_plan(
    model: nn.Module,
    plan: Plan,
    example_input: Any = None,
    importance: str | Mapping[str, Tensor] | None = None,
    *,
    inventory: Inventory | None = None,
) -> nn.Module:
    """A compressed deep copy of `model` that runs and fine-tunes; `model` is not changed.

    example_input: needed to find channel groups when the plan prunes (keep_ratio < 1),
        unless `inventory` (from `hirelc.inspect`, reused across plans) is given.
    importance: how channels/heads are ranked: "l1" (default), "l2", or a mapping
        group id -> per-unit scores (e.g. Fisher).
    Raises ValueError for a plan naming a layer the model lacks, or pruning a layer that
    cannot be pruned (the message names it).

    >>> net = nn.Sequential(nn.Conv2d(1, 4, 3), nn.ReLU(), nn.Flatten(), nn.Linear(4 * 6 * 6, 3))
    >>> plan = Plan({"0": LayerConfig(bits=4, keep_ratio=0.5), "3": LayerConfig(bits=2)})
    >>> small = apply_plan(net, plan, example_input=torch.randn(1, 1, 8, 8))
    >>> small(torch.randn(5, 1, 8, 8)).shape
    torch.Size([5, 3])
    """
    refs = {r.name: r for r in find_kernels(model)}
    inv = _inventory(model, plan, example_input, inventory, list(refs))
    groups: dict[str, ChannelGroup] = {}
    if inv is not None:
        _validate(plan, inv)
        groups = inv.groups
    kept = kept_indices(model, groups, plan, importance)
    out = copy.deepcopy(model)
    _parametrize_kernels(out, plan, refs, kernel_slices(groups, kept))
    _mask_batchnorms(out, groups, kept)
    _mask_stream(out, groups, kept)
    setattr(out, STATE_ATTR, CompressionState(plan, inv, kept, refs))
    return out


def compression_state(model: nn.Module) -> CompressionState:
    """The plan, inventory and kept indices stored on a model by `apply_plan` / `to_physical`.

    >>> plan = Plan({"0": LayerConfig(bits=4)})
    >>> compression_state(apply_plan(nn.Sequential(nn.Linear(3, 2)), plan)).plan == plan
    True
    """
    state = getattr(model, STATE_ATTR, None)
    if not isinstance(state, CompressionState):
        raise ValueError("this model was not produced by hirelc.apply_plan (no compression state)")
    return state


@torch.no_grad()
def _bake_(model: nn.Module) -> None:
    """Replace every parametrization of `model` by a plain parameter holding its value.

    Not `parametrize.remove_parametrizations`: a deepcopy shares the injected
    `Parametrized*` class with the model it was copied from, and removal deletes the
    property from that shared class, breaking the original. Resetting each module's class
    touches nothing shared. A latent weight shared by several modules stays shared.
    """
    replacement: dict[int, nn.Parameter] = {}  # id(latent) -> its baked parameter
    for m in list(model.modules()):
        if not parametrize.is_parametrized(m):
            continue
        values = {}
        for name, plist in m.parametrizations.items():
            latent = plist.original
            if id(latent) not in replacement:
                replacement[id(latent)] = nn.Parameter(getattr(m, name).detach().clone(),
                                                       requires_grad=latent.requires_grad)
            values[name] = replacement[id(latent)]
        m.__class__ = parametrize.type_before_parametrizations(m)
        del m._modules["parametrizations"]
        for name, p in values.items():
            m.register_parameter(name, p)


def to_physical(model: nn.Module) -> nn.Module:
    """The physically pruned, dequantized equivalent of a model from `apply_plan`: plain
    modules with the pruned channels and heads removed and every compressed weight holding
    its dequantized values. Same outputs as `model` (up to float summation order).

    >>> net = nn.Sequential(nn.Linear(3, 8), nn.ReLU(), nn.Linear(8, 2))
    >>> x = torch.randn(4, 3)
    >>> small = apply_plan(net, Plan({"0": LayerConfig(bits=3, keep_ratio=0.5)}), example_input=x)
    >>> plain = to_physical(small)
    >>> plain[0].weight.shape, torch.allclose(plain(x), small(x), atol=1e-6)
    (torch.Size([4, 3]), True)
    """
    state = compression_state(model)
    out = copy.deepcopy(model)
    if not state.physical:
        _bake_(out)
        reslice_(out, state.kept, state.groups)
    setattr(out, STATE_ATTR, replace(state, physical=True))
    return out


def compact_latent_weights(model: nn.Module) -> dict[str, Tensor]:
    """kernel name -> latent weight compacted to kept rows x kept columns, for every kernel
    the plan quantizes: `quantize(w, plan[name])` gives exactly the codes `model` computes
    with (fake_quantize's forward value is `dequantize(quantize(w))`).

    >>> from hirelc.compress.quantize import dequantize, quantize
    >>> net = nn.Sequential(nn.Linear(3, 8), nn.ReLU(), nn.Linear(8, 2))
    >>> plan = Plan({"0": LayerConfig(bits=3, keep_ratio=0.5)})
    >>> small = apply_plan(net, plan, example_input=torch.randn(1, 3))
    >>> w = compact_latent_weights(small)["0"]            # (kept rows, columns)
    >>> w.shape, torch.equal(dequantize(quantize(w, plan["0"])), to_physical(small)[0].weight)
    (torch.Size([4, 3]), True)
    """
    state = compression_state(model)
    if state.physical:
        raise ValueError("compact_latent_weights needs the model from apply_plan, not to_physical")
    weights = {}
    for name in state.plan:
        ref = state.kernels[name]
        p = model.get_submodule(ref.module).parametrizations[ref.param]
        weights[name] = p[0].compact(p.original).detach().clone()
    return weights
