"""Measure on a model the loss increase of compressing one kernel at a time: the anchors that
turn the Fisher estimates of `hirelc.methods.damage.DamageModel` into expected loss increases.

A second-order (Fisher) estimate of a large perturbation is far off on a well-fit model: its
per-sample gradients are tiny, and 2-bit weights or a halved layer are not small changes. On
cnn1d / mnist1d the Fisher estimates were 400-2,700 times below the measured loss increases,
and by a different factor for pruning than for quantization, so a knapsack over them over-pruned
(benchmarks/RESULTS.md, "Damage model"). Measuring is cheap when it is one forward pass over a
few calibration batches per anchor:

- pruning: for every keep choice of every prunable kernel, its group is masked exactly as the
  evaluator prunes it (`kept_indices` with the job's importance, then `apply_masks_`: weight
  rows, biases, BatchNorm, downstream columns), all of the group's kernels at that keep;
- quantization: for every bitwidth of every kernel, the weight is replaced by its quantized
  value under one anchor config of that width (int_sym per_channel when the space has it).

The loss is the mean calibration loss of the model in eval mode (no fine-tune); each value is
the increase over the fp32 model's loss on the same batches, floored at 0 (a tiny perturbation
can lower the loss by noise).

>>> from hirelc.data import load_dataset
>>> from hirelc.inventory import inspect
>>> from hirelc.methods.space import SearchSpace, SpaceConfig
>>> data = load_dataset("digits", seed=0)
>>> _ = torch.manual_seed(0)
>>> net = nn.Sequential(nn.Flatten(), nn.Linear(64, 16), nn.ReLU(), nn.Linear(16, 10))
>>> inv = inspect(net, data.example_input(2))
>>> space = SearchSpace(tuple(inv), SpaceConfig(bits=(2, 8), keep_ratios=(1.0, 0.5)))
>>> quant, prune = measure_losses(net, data, inv, space, importance=None, n_batches=2)
>>> sorted(quant["1"]), sorted(prune["1"]), "3" in prune   # one anchor per bitwidth
([(2, 'int_sym', 'per_channel', None), (8, 'int_sym', 'per_channel', None)], [0.5, 1.0], False)
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Mapping
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from hirelc.compress.prune import apply_masks_, kernel_tensors, kept_indices
from hirelc.compress.quantize import dequantize, quantize
from hirelc.evaluate.sensitivity import _calibration_batches
from hirelc.methods.damage import QuantKey, quant_key
from hirelc.methods.space import SearchSpace
from hirelc.plan import LayerConfig, Plan

LossFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def anchor_keys(space: SearchSpace, name: str) -> list[QuantKey]:
    """One quantizer config per bitwidth of kernel `name`: int_sym per_channel if the space
    has it, else the first of that width in a fixed order."""
    by_bits: dict[int, list[QuantKey]] = {}
    for key in sorted({quant_key(c) for c in space.kernel_configs(name)}, key=str):
        by_bits.setdefault(key[0], []).append(key)
    preferred = [("int_sym", "per_channel"), ("int_sym", "per_group"), ("int_sym", "per_tensor")]
    out = []
    for keys in by_bits.values():
        ranked = sorted(keys, key=lambda k: preferred.index(k[1:3]) if k[1:3] in preferred else len(preferred))
        out.append(ranked[0])
    return out


def measure_losses(model: nn.Module, data: Any, inventory: Any, space: SearchSpace,
                   importance: str | Mapping[str, torch.Tensor] | None, n_batches: int = 4, batch_size: int = 64,
                   seed: int = 0, loss_fn: LossFn = F.cross_entropy
                   ) -> tuple[dict[str, dict[QuantKey, float]], dict[str, dict[float, float]]]:
    """(kernel -> anchor QuantKey -> loss increase, prunable kernel -> keep -> loss increase)
    over `n_batches` train batches (see the module docstring). A group shared by several
    kernels gives each an equal share of its measured increase (as `DamageModel` adds them)."""
    batches = [(x, y) for x, y in _calibration_batches(data, batch_size, seed, n_batches)]
    if not batches:
        raise ValueError("measure_losses: the train split yielded no batches")
    was_training = model.training
    model.eval()
    try:
        base = _loss(model, batches, loss_fn)
        quant = {s.name: {k: max(v - base, 0.0) for k, v in _quantized_losses(model, s.name, anchor_keys(space, s.name),
                                                                             batches, loss_fn).items()}
                 for s in space.layers}
        prune = _pruned_losses(model, inventory, space, importance, batches, loss_fn, base)
    finally:
        model.train(was_training)
    return quant, prune


@torch.no_grad()
def _loss(model: nn.Module, batches: list, loss_fn: LossFn) -> float:
    device = next(model.parameters()).device
    total = sum(float(loss_fn(model(x.to(device)), y.to(device))) * len(y) for x, y in batches)
    return total / sum(len(y) for _, y in batches)


@torch.no_grad()
def _quantized_losses(model: nn.Module, name: str, keys: list[QuantKey], batches: list,
                      loss_fn: LossFn) -> dict[QuantKey, float]:
    module, attr, _ = kernel_tensors(model, name)
    weight = getattr(module, attr)
    original = weight.detach().clone()
    out = {}
    try:
        for key in keys:
            cfg = LayerConfig(key[0], 1.0, key[1], key[2], key[3])
            weight.copy_(dequantize(quantize(original.float().cpu(), cfg)).reshape(original.shape).to(weight))
            out[key] = _loss(model, batches, loss_fn)
    finally:
        weight.copy_(original)
    return out


def _pruned_losses(model: nn.Module, inventory: Any, space: SearchSpace, importance: Any, batches: list,
                   loss_fn: LossFn, base: float) -> dict[str, dict[float, float]]:
    members: dict[str, list[str]] = {}
    for s in space.layers:
        if s.prunable:
            members.setdefault(s.prune_group or s.name, []).append(s.name)
    out: dict[str, dict[float, float]] = {}
    for gid, names in members.items():
        keeps = sorted({float(r) for n in names for r in space.keep_choices(n)})
        measured = {1.0: 0.0}
        for r in keeps:
            if r < 1.0:
                plan = Plan({n: LayerConfig(8, keep_ratio=r) for n in names})
                kept = kept_indices(model, inventory.groups, plan, importance)
                pruned = apply_masks_(copy.deepcopy(model), kept, inventory.groups)
                measured[r] = max(_loss(pruned, batches, loss_fn) - base, 0.0)
        for n in names:
            out[n] = {float(r): measured[float(r)] / len(names) for r in space.keep_choices(n)}
    return out
