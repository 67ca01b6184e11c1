"""Per-sample Fisher of what pruning and quantization really change: a channel's whole output,
and each kernel's weight (the measurement behind `hirelc.methods.damage.DamageModel`).

Removing output channels zeroes more than the producer's weight rows: the channel's bias,
its BatchNorm shift (beta, which a ReLU may pass on as a constant), and everything that the
following layers computed from it. The Optimal-Brain-Damage sum 1/2 sum F w^2 over the
removed rows sees none of that. Fisher pruning (Theis et al. 2018, "Faster gaze prediction
with dense networks and Fisher pruning"; Molchanov et al. 2019, "Importance estimation for
neural network pruning") instead puts a mask m = 1 on the channel where it is removed and
takes the per-sample gradient g_n = dL_n/dm. Here the mask multiplies the channel in the
*input* of every consumer of the group (a consumer's columns are exactly what removal
deletes), so m = 0 is the pruned network whatever lies between producer and consumer
(BatchNorm, bias, ReLU, depthwise convolutions, residual adds; an attention head's columns
of the output projection). With the per-sample Fisher
standing in for the Hessian, removing a set S of a group's units costs about

    D(S) = 1/(2N) sum_n (sum_{c in S} g_{n,c})^2 = 1/2 1_S^T G 1_S,   G = (1/N) sum_n g_n g_n^T,

so `gram[group]` = G is kept and a removal is scored jointly (correlated channels add up,
not just their diagonals). A unit's importance is its diagonal 1/2 G_cc.

The weight side uses the same per-sample Fisher F_i = (1/N) sum_n (dL_n/dw_i)^2 (not the
squared gradient of a batch mean, which is about batch_size times smaller), so quantization
damage 1/2 trace(F) mse and pruning damage are both expected loss increases per sample.

Groups whose units cannot be masked at their consumers (consumers reading a concatenation,
the output projection inside nn.MultiheadAttention, which is not called as a module) get a
diagonal G = diag(2 * OBD saliency) of their producer rows: the old estimate, in the same
units (`sources` says which). Embedding groups (channels = columns) are not measured.

>>> from hirelc.data import load_dataset
>>> from hirelc.inventory import inspect
>>> data = load_dataset("digits", seed=0)
>>> _ = torch.manual_seed(0)
>>> net = nn.Sequential(nn.Flatten(), nn.Linear(64, 8), nn.BatchNorm1d(8), nn.ReLU(), nn.Linear(8, 10))
>>> cf = measure_channel_fisher(net, data, inspect(net, data.example_input(2)), n_batches=2)
>>> cf.gram["1"].shape, cf.sources["1"], len(cf.row_saliency["1"]), cf.n_samples
(torch.Size([8, 8]), 'activation', 8, 128)
>>> cf.removal_damage("1", torch.tensor([0, 1])) >= 0
True
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call, grad, vmap

from hirelc.compress.prune import kernel_tensors
from hirelc.evaluate.sensitivity import _calibration_batches
from hirelc.inventory.groups import ChannelGroup

LossFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
_CONVS = (nn.Conv1d, nn.Conv2d, nn.Conv3d)


@dataclass
class ChannelFisher:
    """Per-sample Fisher measurements of one model (see the module docstring).

    trace: kernel -> trace of the per-sample diagonal Fisher of its weight.
    diag: kernel -> the per-sample diagonal Fisher itself (the weight's shape).
    row_saliency: kernel -> 1/2 sum F w^2 of each output row (OBD, per-sample Fisher).
    gram: prunable group -> G (size x size), the mean outer product of the per-sample mask
        gradients (or diag(2 * OBD saliency) where masking is not possible).
    sources: group -> "activation" or "obd" (which of the two `gram` holds).
    """

    trace: dict[str, float]
    diag: dict[str, torch.Tensor]
    row_saliency: dict[str, list[float]]
    gram: dict[str, torch.Tensor]
    sources: dict[str, str]
    n_samples: int

    def importance(self) -> dict[str, torch.Tensor]:
        """group -> 1/2 G_cc per unit: the loss increase of removing that unit alone; the
        `importance` argument of `apply_plan` / `Evaluator` (least important pruned first)."""
        return {gid: 0.5 * torch.diagonal(g).float() for gid, g in self.gram.items()}

    def removal_damage(self, gid: str, removed: torch.Tensor) -> float:
        """Expected loss increase of removing the units `removed` of group `gid` together."""
        g = self.gram[gid]
        idx = removed.long().reshape(-1)
        return float(0.5 * g[idx][:, idx].sum())


def measure_channel_fisher(model: nn.Module, data: Any, inventory: Any, n_batches: int = 16,
                           batch_size: int = 64, seed: int = 0, loss_fn: LossFn = F.cross_entropy) -> ChannelFisher:
    """`ChannelFisher` of `model` over `n_batches` train batches (the calibration batches of
    `fisher_sensitivity`), in eval mode, with per-sample gradients (torch.func.vmap)."""
    specs = list(inventory)
    weights = {s.name: getattr(*_kernel_param(model, s.name)) for s in specs}
    groups = {gid: g for gid, g in inventory.groups.items() if g.prunable and not g.embeddings}
    device = next(iter(weights.values())).device
    maskable = _maskable(model, groups, _example(data, batch_size, seed, device))
    sq = {n: torch.zeros_like(w, dtype=torch.float32) for n, w in weights.items()}
    gram = {gid: torch.zeros(groups[gid].size, groups[gid].size, dtype=torch.float64) for gid in maskable}
    was_training, n = model.training, 0
    model.eval()  # the function being compressed: BN running statistics, no dropout
    try:
        with _mask_hooks(model, {gid: groups[gid] for gid in maskable}) as holder:
            per_sample = _per_sample_grads(model, holder, loss_fn, list(weights))
            masks = {gid: torch.ones(groups[gid].size, device=device) for gid in maskable}
            frozen = {k: w.detach() for k, w in weights.items()}
            for x, y in _calibration_batches(data, batch_size, seed, n_batches):
                gw, gm = per_sample(frozen, masks, x.to(device), y.to(device))
                for k, g in gw.items():
                    sq[k] += g.detach().float().pow(2).sum(0)
                for gid, g in gm.items():
                    g = g.detach().double().cpu()
                    gram[gid] += g.t() @ g
                n += x.shape[0]
    finally:
        model.train(was_training)
    if n == 0:
        raise ValueError("measure_channel_fisher: the train split yielded no batches")
    fisher = {k: v / n for k, v in sq.items()}
    rows = {k: (0.5 * _rows(fisher[k]) * _rows(weights[k].detach().float()) ** 2).sum(1) for k in fisher}
    gram = {gid: g / n for gid, g in gram.items()}
    sources = {gid: "activation" for gid in gram}
    for gid, g in groups.items():
        if gid not in gram:
            gram[gid], sources[gid] = torch.diag(2.0 * _obd_units(g, rows)), "obd"
    return ChannelFisher({k: float(f.sum()) for k, f in fisher.items()}, fisher, {k: r.tolist() for k, r in rows.items()},
                         gram, sources, n)


def _kernel_param(model: nn.Module, name: str) -> tuple[nn.Module, str]:
    mod, weight_attr, _ = kernel_tensors(model, name)
    return mod, weight_attr


def _rows(t: torch.Tensor) -> torch.Tensor:
    return t.reshape(t.shape[0], -1) if t.dim() > 1 else t.reshape(-1, 1)


def _obd_units(group: ChannelGroup, rows: Mapping[str, torch.Tensor]) -> torch.Tensor:
    """OBD saliency of each unit, summed over the group's producers (heads: q, k, v rows)."""
    score = torch.zeros(group.size, dtype=torch.float64)
    for name in group.producers:
        score += rows[name].double().reshape(group.row_chunks, group.size, group.unit).sum(dim=(0, 2))
    return score


def _example(data: Any, batch_size: int, seed: int, device: torch.device) -> torch.Tensor:
    for x, _ in _calibration_batches(data, batch_size, seed, 1):
        return x[:2].to(device)
    raise ValueError("measure_channel_fisher: the train split yielded no batches")


def _channel_dim(module: nn.Module) -> int | None:
    if isinstance(module, nn.Linear):
        return -1
    if isinstance(module, _CONVS):
        return 1
    return None  # e.g. nn.MultiheadAttention: its out_proj is not called as a module


def _maskable(model: nn.Module, groups: Mapping[str, ChannelGroup], example: torch.Tensor) -> list[str]:
    """Groups whose every consumer is a Conv/Linear module reading exactly the group's
    channels (group.size * repeat wide on its channel dimension), checked on a forward."""
    widths: dict[str, list[int]] = {}
    handles = []
    candidates = []
    for gid, g in groups.items():
        if g.spans or not g.consumers:
            continue
        mods = [(model.get_submodule(c), r) for c, r in g.consumers]
        if any(kernel_tensors(model, c)[1] != "weight" or _channel_dim(m) is None for (c, _), (m, _) in zip(g.consumers, mods)):
            continue
        candidates.append(gid)
    seen = {c for gid in candidates for c, _ in groups[gid].consumers}
    for name in seen:
        mod = model.get_submodule(name)
        handles.append(mod.register_forward_pre_hook(
            lambda m, args, name=name: widths.setdefault(name, []).append(args[0].shape[_channel_dim(m)])))
    try:
        with torch.no_grad():
            model.eval()
            model(example)
    finally:
        for h in handles:
            h.remove()
    return [gid for gid in candidates
            if all(widths.get(c) and set(widths[c]) == {groups[gid].size * r} for c, r in groups[gid].consumers)]


@contextmanager
def _mask_hooks(model: nn.Module, groups: Mapping[str, ChannelGroup]) -> Iterator[dict[str, Any]]:
    """Pre-hooks multiplying each consumer's input channels by its group's mask, read from
    `holder["masks"]` at call time (so the masks can be function arguments under vmap)."""
    holder: dict[str, Any] = {"masks": {}}
    handles = []
    for gid, g in groups.items():
        for consumer, repeat in g.consumers:
            hook = _make_hook(holder, gid, repeat)
            handles.append(model.get_submodule(consumer).register_forward_pre_hook(hook))
    try:
        yield holder
    finally:
        for h in handles:
            h.remove()


def _make_hook(holder: dict[str, Any], gid: str, repeat: int) -> Callable:
    def hook(module: nn.Module, args: tuple) -> tuple:
        x, dim = args[0], _channel_dim(module)
        m = holder["masks"][gid].repeat_interleave(repeat)
        shape = [1] * x.dim()
        shape[dim] = m.numel()
        return (x * m.view(shape), *args[1:])
    return hook


def _per_sample_grads(model: nn.Module, holder: dict[str, Any], loss_fn: LossFn, kernels: list[str]) -> Callable:
    """(weights, masks, x, y) -> (kernel -> (B, *w.shape), group -> (B, size)) per-sample grads."""
    names = {k: _qualified(model, k) for k in kernels}

    def loss_one(weights: dict, masks: dict, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        holder["masks"] = masks
        out = functional_call(model, {names[k]: w for k, w in weights.items()}, (x.unsqueeze(0),))
        return loss_fn(out, y.unsqueeze(0))

    return vmap(grad(loss_one, argnums=(0, 1)), in_dims=(None, None, 0, 0))


def _qualified(model: nn.Module, kernel: str) -> str:
    mod, attr = _kernel_param(model, kernel)
    for path, m in model.named_modules():
        if m is mod:
            return f"{path}.{attr}" if path else attr
    raise ValueError(f"kernel {kernel!r} is not a module of the model")
