"""Find the compressible weights ("kernels") of any `nn.Module`, without running it.

Kernels: Conv1d, Conv2d (grouped and depthwise), Linear, Embedding and EmbeddingBag (rows =
tokens), the fused input projection and the output projection of `nn.MultiheadAttention`, and
the `qkv` / `proj` Linears of a timm-style attention module. Every other parameter is listed
by `unsupported_parameters`.

>>> [k.name for k in find_kernels(nn.Sequential(nn.Conv2d(1, 4, 3), nn.Flatten(), nn.Linear(4, 2)))]
['0', '2']
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import torch
from torch import nn
from torch.nn.utils import parametrize

# Normalisation layers by base class, so subclasses (a fused BatchNorm + activation, a
# framework's own LayerNorm) are recognised whatever they are called.
NORM_TYPES: tuple[type, ...] = (
    nn.modules.batchnorm._NormBase, nn.LayerNorm, nn.GroupNorm, nn.LocalResponseNorm,
    *((nn.RMSNorm,) if hasattr(nn, "RMSNorm") else ()),
)
EMBEDDINGS = (nn.Embedding, nn.EmbeddingBag)


def is_norm(module: nn.Module) -> bool:
    """A normalisation layer: an instance of one of torch's norm base classes.

    >>> class BatchNormAct2d(nn.BatchNorm2d): ...
    >>> is_norm(BatchNormAct2d(4)), is_norm(nn.Linear(2, 2))
    (True, False)
    """
    return isinstance(module, NORM_TYPES)


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
    aliases: tuple[str, ...] = ()  # other kernel modules holding the same weight parameter
    # (module path, attribute) of every non-kernel module holding the same tensor (a custom
    # output head tied to an embedding): it is compressed there too, so every reader sees
    # the compressed weight
    tied: tuple[tuple[str, str], ...] = ()


def is_timm_attention(module: nn.Module) -> bool:
    """A timm-style attention: a fused `qkv` Linear, a `proj` Linear and an int `num_heads`."""
    return (
        isinstance(getattr(module, "qkv", None), nn.Linear)
        and isinstance(getattr(module, "proj", None), nn.Linear)
        and isinstance(getattr(module, "num_heads", None), int)
        and not isinstance(module, nn.MultiheadAttention)
    )


HEAD_ATTRS = ("num_heads", "num_attention_heads", "n_heads", "n_head", "heads")


def split_attention_parts(module: nn.Module) -> tuple[str, list[str], str] | None:
    """(head-count attribute, [q, k, v child names], output child name) of an attention
    module with separate q / k / v Linears (Hugging Face / lucidrains style), else None.

    Found by structure: exactly four Linear children, the first three (registration order)
    with the same out_features D, the last reading D inputs, and an int head count dividing
    D. A wrong guess is caught by the removal probe (`hirelc.inventory.heads`).

    >>> class SelfAttention(nn.Module):
    ...     def __init__(self):
    ...         super().__init__()
    ...         self.heads = 2
    ...         self.q, self.k, self.v, self.out = (nn.Linear(8, 8) for _ in range(4))
    >>> split_attention_parts(SelfAttention())
    ('heads', ['q', 'k', 'v'], 'out')
    """
    if isinstance(module, nn.MultiheadAttention) or is_timm_attention(module):
        return None
    linears = [(n, m) for n, m in module.named_children() if isinstance(m, nn.Linear)]
    if len(linears) != 4:
        return None
    (q, lq), (k, lk), (v, lv), (o, lo) = linears
    width = lq.out_features
    if not (lk.out_features == lv.out_features == width == lo.in_features):
        return None
    for attr in HEAD_ATTRS:
        heads = getattr(module, attr, None)
        if isinstance(heads, int) and not isinstance(heads, bool) and heads >= 1 and width % heads == 0:
            return attr, [q, k, v], o
    return None


def is_attention(module: nn.Module) -> bool:
    """An attention module whose heads hirelc prunes as a unit (timm-style or split q/k/v)."""
    return is_timm_attention(module) or split_attention_parts(module) is not None


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
    if isinstance(mod, EMBEDDINGS):  # rows are tokens: quantized per token like any row
        return [KernelRef(path, "embedding", path, "weight", path)]
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
    return _with_tied_holders(model, refs, owner)


def _with_tied_holders(model: nn.Module, refs: list[KernelRef], owner: dict[int, int]) -> list[KernelRef]:
    """Record every other module attribute holding a kernel's weight tensor."""
    claimed = {(p, r.param) for r in refs for p in (r.module, *r.aliases)}
    for path, mod in model.named_modules():
        if isinstance(mod, parametrize.ParametrizationList):  # the latent of a kernel itself
            continue
        for name, p in list(mod.named_parameters(recurse=False)) + list(mod.named_buffers(recurse=False)):
            i = owner.get(id(p))
            if i is not None and (path, name) not in claimed:
                refs[i] = replace(refs[i], tied=refs[i].tied + ((path, name),))
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
        claimed.update(id(_stored_weight(model.get_submodule(p), n)) for p, n in ref.tied)
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


def unsupported_parameters(model: nn.Module, refs: list[KernelRef]) -> list[tuple[str, str, bool, int]]:
    """Every parameter hirelc will not compress: (module or parameter name, reason, warn?,
    number of parameter values).

    Normalisation layers and bare vectors/embeddings (cls_token, pos_embed, layer scales) are
    expected to stay in fp32 (warn=False); matrix-shaped weights of other modules (Embedding,
    custom layers) get warn=True so a user sees what the compressed model leaves out.
    """
    claimed = _claimed_parameters(model, refs)
    found: list[tuple[str, str, bool, int]] = []
    seen: set[int] = set()
    for path, mod in model.named_modules():
        own = [(n, p) for n, p in mod.named_parameters(recurse=False)
               if id(p) not in claimed and id(p) not in seen]
        seen.update(id(p) for _, p in own)
        if not own:
            continue
        cls, count = type(mod).__name__, sum(p.numel() for _, p in own)
        if is_norm(mod):
            found.append((path, f"normalisation layer ({cls}), kept in fp32", False, count))
        elif not any(True for _ in mod.children()):
            shapes = ", ".join(f"{n} {tuple(p.shape)}" for n, p in own)
            found.append((path, f"{cls} is not a supported kernel; its parameters ({shapes}) "
                          "are kept in fp32", any(_weight_like(p) for _, p in own), count))
        else:  # parameters held directly by a container module
            for n, p in own:
                full = f"{path}.{n}" if path else n
                if _weight_like(p):
                    reason = (f"matrix parameter {tuple(p.shape)} of {cls} used outside a "
                              "supported kernel; kept in fp32")
                else:
                    reason = f"bare parameter {tuple(p.shape)} of {cls}, kept in fp32"
                found.append((full, reason, _weight_like(p), p.numel()))
    return found
