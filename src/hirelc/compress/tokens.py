"""Pruning the residual stream of a transformer: LayerNorms and bare parameters.

A LayerNorm's mean and variance run over every channel it sees, so a zeroed channel is not
the same as a removed one. In the masked (search) model, a LayerNorm over a pruned stream
becomes a `MaskedLayerNorm`: statistics over the kept channels only, zeros elsewhere, which
is exactly what the physically pruned LayerNorm computes on the kept channels. Bare
parameters in the stream (cls token, position embedding) are masked or sliced along their
channel dim.

>>> import copy
>>> ln = nn.LayerNorm(4)
>>> x = torch.tensor([[1.0, 0.0, 3.0, 0.0]])            # channels 1 and 3 pruned (zero)
>>> masked = mask_layernorm_(copy.deepcopy(ln), torch.tensor([0, 2]))
>>> small = slice_layernorm_(copy.deepcopy(ln), torch.tensor([0, 2]))
>>> [round(v, 4) + 0.0 for v in masked(x)[0].tolist()], [round(v, 4) for v in small(x[:, [0, 2]])[0].tolist()]
([-1.0, 0.0, 1.0, 0.0], [-1.0, 1.0])
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

KEEP = "hirelc_keep"  # buffer (not saved): 1.0 on kept channels


class MaskedLayerNorm(nn.LayerNorm):
    """A LayerNorm over the kept channels only (last dim), zero on the others."""

    def forward(self, x: Tensor) -> Tensor:
        keep = getattr(self, KEEP).to(x.dtype)  # (C,)
        n = keep.sum()
        mean = (x * keep).sum(-1, keepdim=True) / n
        var = (((x - mean) * keep) ** 2).sum(-1, keepdim=True) / n
        y = (x - mean) / torch.sqrt(var + self.eps)
        if self.weight is not None:
            y = y * self.weight
        if self.bias is not None:
            y = y + self.bias
        return y * keep


def slow_path_marker(module: nn.Module, args: tuple) -> None:
    """A no-op forward pre-hook. torch's fused nn.TransformerEncoderLayer kernel reads its
    norms' weights directly (bypassing a MaskedLayerNorm's forward); a hook on any of the
    layer's submodules makes the layer take its slow path, which calls them."""
    return None


def mask_layernorm_(ln: nn.Module, kept: Tensor) -> nn.Module:
    """Make `ln` (a plain nn.LayerNorm) normalise over the `kept` channels only (in place)."""
    if type(ln) not in (nn.LayerNorm, MaskedLayerNorm):
        raise ValueError(f"only a plain nn.LayerNorm can be pruned, got {type(ln).__name__}")
    keep = torch.zeros(ln.normalized_shape[-1], device=_device(ln))
    keep[kept.to(keep.device)] = 1.0
    ln.__class__ = MaskedLayerNorm
    ln.register_buffer(KEEP, keep, persistent=False)
    if slow_path_marker not in ln._forward_pre_hooks.values():
        ln.register_forward_pre_hook(slow_path_marker)
    return ln


def slice_layernorm_(ln: nn.Module, kept: Tensor) -> nn.Module:
    """Keep only the `kept` channels of `ln` (a LayerNorm, masked or not), in place."""
    for name in ("weight", "bias"):
        p = getattr(ln, name, None)
        if p is not None:
            setattr(ln, name, nn.Parameter(p.detach().index_select(0, kept.to(p.device)).clone(),
                                           requires_grad=p.requires_grad))
    if isinstance(ln, MaskedLayerNorm):
        del ln._buffers[KEEP]
        ln.__class__ = nn.LayerNorm
        for key in [k for k, hook in ln._forward_pre_hooks.items() if hook is slow_path_marker]:
            del ln._forward_pre_hooks[key]
    ln.normalized_shape = (len(kept),)
    return ln


def _device(m: nn.Module) -> torch.device:
    p = next(iter(m.parameters()), None)
    return p.device if p is not None else torch.device("cpu")


def _owner(model: nn.Module, path: str) -> tuple[nn.Module, str]:
    head, _, leaf = path.rpartition(".")
    return (model.get_submodule(head) if head else model), leaf


def mask_param_(model: nn.Module, path: str, dim: int, kept: Tensor) -> None:
    """Zero, in place, the entries of parameter `path` outside `kept` along `dim`."""
    owner, name = _owner(model, path)
    p = getattr(owner, name)
    shape = [1] * p.dim()
    shape[dim] = p.shape[dim]
    keep = torch.zeros(p.shape[dim], device=p.device)
    keep[kept.to(p.device)] = 1.0
    with torch.no_grad():
        p.mul_(keep.view(shape))


def slice_param_(model: nn.Module, path: str, dim: int, kept: Tensor) -> None:
    """Replace parameter `path` by its `kept` entries along `dim`."""
    owner, name = _owner(model, path)
    p = getattr(owner, name)
    setattr(owner, name, nn.Parameter(p.detach().index_select(dim, kept.to(p.device)).clone(),
                                      requires_grad=p.requires_grad))


class KeepAlong(nn.Module):
    """Parametrization p -> p * mask along `dim` (a cls token / position embedding)."""

    def __init__(self, n: int, dim: int, rank: int, kept: Tensor, device: torch.device) -> None:
        super().__init__()
        shape = [1] * rank
        shape[dim] = n
        mask = torch.zeros(n, device=device)
        mask[kept.to(device)] = 1.0
        self.register_buffer("mask", mask.view(shape))

    def forward(self, p: Tensor) -> Tensor:
        return p * self.mask.to(p.dtype)

