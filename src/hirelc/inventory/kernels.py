"""Find the compressible weights ("kernels") of any `nn.Module`, without running it.

Kernels: Conv1d, Conv2d (grouped and depthwise), Linear, the fused input projection and the
output projection of `nn.MultiheadAttention`, and the `qkv` / `proj` Linears of a timm-style
attention module. Every other parameter is listed by `unsupported_parameters`.

>>> [k.name for k in find_kernels(nn.Sequential(nn.Conv2d(1, 4, 3), nn.Flatten(), nn.Linear(4, 2)))]
['0', '2']
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace

import torch
from torch import nn
from torch.nn.utils import parametrize

NORM_CLASS = re.compile(r"Norm(\dd)?$")  # BatchNorm2d, LayerNorm, GroupNorm, RMSNorm, ...


@dataclass(frozen=True)
class KernelRef:
    """Where one kernel lives in a model."""

    name: str  # kernel name (module path; `<mha>.in_proj` for a fused MHA projection)
    kind: str  # one of `hirelc.inventory.spec.KERNEL_KINDS`
    module: str  # path of the module holding the weight parameter
    param: str  # attribute of `module` holding the weight
    caller: str  # path of the module whose forward computes it (the MHA for mha_* kinds)
    conv_groups: int = 1
    n_heads: int | None = None
    aliases: tuple[str, ...] = ()  # other module paths holding the same weight parameter


def is_timm_attention(module: nn.Module) -> bool:
    """A timm-style attention: a fused `qkv` Linear, a `proj` Linear and an int `num_heads`."""
    return (
        isinstance(getattr(module, "qkv", None), nn.Linear)
        and isinstance(getattr(module, "proj", None), nn.Linear)
        and isinstance(getattr(module, "num_heads", None), int)
        and not isinstance(module, nn.MultiheadAttention)
    )


def is_depthwise(conv: nn.Module) -> bool:
    """A depthwise conv maps channel c to channel c alone (no channel multiplier)."""
    return (
        isinstance(conv, (nn.Conv1d, nn.Conv2d))
        and conv.groups > 1
        and conv.groups == conv.in_channels == conv.out_channels
    )


def _parent(model: nn.Module, path: str) -> tuple[nn.Module | None, str]:
    """The parent module of `path` and the child's attribute name."""
    if not path:
        return None, ""
    head, _, leaf = path.rpartition(".")
    return model.get_submodule(head), leaf


def _module_kernels(model: nn.Module, path: str, mod: nn.Module) -> list[KernelRef]:
    """The kernels a single module holds (without alias/dedupe bookkeeping)."""
    if isinstance(mod, nn.MultiheadAttention):
        refs = []
        if mod.in_proj_weight is not None:  # None when kdim/vdim differ: listed as unsupported
            refs.append(KernelRef(f"{path}.in_proj", "mha_in_proj", path, "in_proj_weight", path,
                                  n_heads=mod.num_heads))
        out = f"{path}.out_proj"
        refs.append(KernelRef(out, "mha_out_proj", out, "weight", path, n_heads=mod.num_heads))
        return refs
    parent, leaf = _parent(model, path)
    if isinstance(mod, nn.Linear):
        if isinstance(parent, nn.MultiheadAttention):
            return []  # its out_proj, reported with the MHA
        if parent is not None and is_timm_attention(parent) and leaf in ("qkv", "proj"):
            kind = "attn_qkv" if leaf == "qkv" else "attn_proj"
            return [KernelRef(path, kind, path, "weight", path, n_heads=parent.num_heads)]
        return [KernelRef(path, "linear", path, "weight", path)]
    if isinstance(mod, (nn.Conv1d, nn.Conv2d)):
        kind = "conv1d" if isinstance(mod, nn.Conv1d) else "conv2d"
        return [KernelRef(path, kind, path, "weight", path, conv_groups=mod.groups)]
    return []


def find_kernels(model: nn.Module) -> list[KernelRef]:
    """Every kernel of `model` in registration order; a weight shared by several modules once.

    >>> net = nn.Sequential(nn.Linear(4, 4), nn.Linear(4, 4)); net[1].weight = net[0].weight
    >>> [(k.name, k.aliases) for k in find_kernels(net)]
    [('0', ('1',))]
    """
    refs: list[KernelRef] = []
    owner: dict[int, int] = {}  # id(weight parameter) -> index in refs
    for path, mod in model.named_modules():
        for ref in _module_kernels(model, path, mod):
            weight = _stored_weight(model.get_submodule(ref.module), ref.param)
            if id(weight) in owner:
                i = owner[id(weight)]
                refs[i] = replace(refs[i], aliases=refs[i].aliases + (ref.module,))
                continue
            owner[id(weight)] = len(refs)
            refs.append(ref)
    return refs


def kernel_weight(model: nn.Module, ref: KernelRef) -> torch.Tensor:
    """The weight tensor of a kernel."""
    return getattr(model.get_submodule(ref.module), ref.param)


def _stored_weight(mod: nn.Module, param: str) -> torch.Tensor:
    """The tensor object holding a weight: the latent `original` of a parametrized one
    (reading a parametrized weight computes a new tensor each time, so its id means nothing)."""
    if parametrize.is_parametrized(mod, param):
        return mod.parametrizations[param].original
    return getattr(mod, param)


def _claimed_parameters(model: nn.Module, refs: list[KernelRef]) -> set[int]:
    """ids of kernel weights and their biases: compressed or carried along with a kernel."""
    claimed: set[int] = set()
    for ref in refs:
        for path in (ref.module, *ref.aliases):
            mod = model.get_submodule(path)
            claimed.add(id(_stored_weight(mod, ref.param)))
            bias_name = "in_proj_bias" if ref.kind == "mha_in_proj" else "bias"
            bias = _stored_weight(mod, bias_name) if hasattr(mod, bias_name) else None
            if isinstance(bias, torch.Tensor):
                claimed.add(id(bias))
    return claimed


def _weight_like(p: torch.Tensor) -> bool:
    """A matrix-shaped parameter (not a per-channel vector or a broadcast embedding like
    pos_embed (1, N, D)): leaving it in fp32 is worth a warning."""
    return p.dim() >= 2 and p.shape[0] > 1


def unsupported_parameters(model: nn.Module, refs: list[KernelRef]) -> list[tuple[str, str, bool]]:
    """Every parameter hirelc will not compress: (module or parameter name, reason, warn?).

    Normalisation layers and bare vectors/embeddings (cls_token, pos_embed, layer scales) are
    expected to stay in fp32 (warn=False); matrix-shaped weights of other modules (Embedding,
    custom layers) get warn=True so a user sees what the compressed model leaves out.
    """
    claimed = _claimed_parameters(model, refs)
    found: list[tuple[str, str, bool]] = []
    seen: set[int] = set()
    for path, mod in model.named_modules():
        own = [(n, p) for n, p in mod.named_parameters(recurse=False)
               if id(p) not in claimed and id(p) not in seen]
        seen.update(id(p) for _, p in own)
        if not own:
            continue
        cls = type(mod).__name__
        if NORM_CLASS.search(cls):
            found.append((path, f"normalisation layer ({cls}), kept in fp32", False))
        elif not any(True for _ in mod.children()):
            shapes = ", ".join(f"{n} {tuple(p.shape)}" for n, p in own)
            found.append((path, f"{cls} is not a supported kernel; its parameters ({shapes}) "
                          "are kept in fp32", any(_weight_like(p) for _, p in own)))
        else:  # parameters held directly by a container module
            for n, p in own:
                full = f"{path}.{n}" if path else n
                if _weight_like(p):
                    reason = (f"matrix parameter {tuple(p.shape)} of {cls} used outside a "
                              "supported kernel; kept in fp32")
                else:
                    reason = f"bare parameter {tuple(p.shape)} of {cls}, kept in fp32"
                found.append((full, reason, _weight_like(p)))
    return found
