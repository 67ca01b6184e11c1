"""What a search job measures on the model before it searches: Fisher sensitivity, the
storage model, the damage model and the Fisher pruning importance (seeds 001/002:
"sensitivity-aware guidance"). Each is computed only when the search needs it:

- storage (`SizeModel`): always (cheap); result.json reports the chosen plan's bytes by it
  and checks them against the packed file;
- Fisher sensitivity: when the space prunes, a size target is given, or the method
  allocates by sensitivity (greedy, hirelc); cached in the run directory;
- damage (`DamageModel`): with a size target or such a method (repair, greedy, agents), in
  measured loss increases (`measure_damage`: about 0.5 s on cnn1d, 46 s on resnet20 with
  one thread);
- pruning importance: when the space prunes: per channel group, the Fisher (OBD) saliency
  of each unit, so the evaluator removes the least salient channels (instead of L1 norms);
  the damage model measures the removal of exactly those units, so it sees the BatchNorm
  shifts, biases and downstream layers that go with them. (Ranking channels by their
  activation Fisher instead was measured and kept worse channels on cnn1d:
  benchmarks/RESULTS.md, "Damage model".)

>>> from hirelc.methods.space import SpaceConfig
>>> from hirelc.methods.target import Target
>>> needs_fisher(SpaceConfig.bits_only([2, 4]), Target(), "releq"), needs_fisher(SpaceConfig(), Target(), "random")
(False, True)
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from hirelc.evaluate.calibrate import fisher_importance, kernel_weights, measure_damage_model, measure_size_model
from hirelc.evaluate.loss_probe import measure_losses
from hirelc.evaluate.sensitivity import Sensitivity, fisher_sensitivity, kernels_from_specs
from hirelc.methods.damage import DamageModel, calibrated
from hirelc.methods.sizing import SizeModel
from hirelc.methods.space import SearchSpace, SpaceConfig
from hirelc.methods.target import Target

SENSITIVITY_GUIDED = ("greedy", "hirelc")  # methods that allocate by Fisher sensitivity


@dataclass
class Guidance:
    """The tables a job's search steers by (never a reported number)."""

    sizes: SizeModel
    sensitivity: Sensitivity | None = None
    damage: DamageModel | None = None
    importance: dict[str, torch.Tensor] | None = None

    def summary(self) -> dict[str, Any]:
        return {"size_model": self.sizes.to_dict(), "fisher": self.sensitivity is not None,
                "pruning_importance": "fisher" if self.importance else "l1"}


def needs_fisher(space: SpaceConfig, target: Target, method: str) -> bool:
    prunes = any(k < 1.0 for k in space.keep_ratios)
    return prunes or target.bounds_size or method in SENSITIVITY_GUIDED


def measure_guidance(model: nn.Module, data: Any, inventory: Any, space: SpaceConfig, target: Target, method: str,
                     *, seed: int = 0, run_dir: str | Path | None = None) -> Guidance:
    """The guidance of a search of `space` for `target` with `method` on `model`."""
    specs = list(inventory)
    guidance = Guidance(measure_size_model(model, inventory))
    if not needs_fisher(space, target, method):
        return guidance
    kernels, blocks = kernels_from_specs(specs)
    guidance.sensitivity = fisher_sensitivity(model, data, kernels, seed=seed, blocks=blocks, run_dir=run_dir)
    if any(k < 1.0 for k in space.keep_ratios):
        guidance.importance = fisher_importance(guidance.sensitivity, inventory.groups) or None
    if target.bounds_size or method in SENSITIVITY_GUIDED:
        guidance.damage = measure_damage(model, data, inventory, SearchSpace(tuple(specs), space),
                                         guidance.sensitivity, guidance.importance, seed)
    return guidance


def measure_damage(model: nn.Module, data: Any, inventory: Any, space: SearchSpace, sensitivity: Sensitivity,
                   importance: Mapping[str, torch.Tensor] | None, seed: int = 0) -> DamageModel:
    """The `DamageModel` of `space` on `model`, in measured loss increases: every pruning
    keep and one quantizer per bitwidth measured on calibration batches
    (`hirelc.evaluate.loss_probe`), the other quantizers of a kernel placed between those
    anchors by their Fisher estimate 1/2 sum F (Q(w) - w)^2 (F per output row).

    >>> from hirelc.data import load_dataset
    >>> from hirelc.inventory import inspect
    >>> data = load_dataset("digits", seed=0)
    >>> net = nn.Sequential(nn.Flatten(), nn.Linear(64, 16), nn.ReLU(), nn.Linear(16, 10))
    >>> inv = inspect(net, data.example_input(2))
    >>> sens = fisher_sensitivity(net, data, kernels_from_specs(list(inv))[0], n_batches=2)
    >>> space = SearchSpace(tuple(inv), SpaceConfig(bits=(2, 8), keep_ratios=(1.0, 0.5)))
    >>> damage = measure_damage(net, data, inv, space, sens, importance=None)
    >>> from hirelc.plan import LayerConfig
    >>> damage.of("1", LayerConfig(bits=2, keep_ratio=0.5)) >= damage.of("1", LayerConfig(bits=8)) >= 0
    True
    """
    specs = list(inventory)
    weights = kernel_weights(model, specs)
    rows = {n: _row_fisher(sensitivity.per_channel[n], w) for n, w in weights.items() if n in sensitivity.per_channel}
    estimate = measure_damage_model(space, weights, fisher_diag=rows, seed=seed)
    quant, prune = measure_losses(model, data, inventory, space, importance, seed=seed)
    return calibrated(estimate, quant, prune)


def _row_fisher(per_row: list[float], w: torch.Tensor) -> torch.Tensor:
    """Each row's Fisher trace spread over its weights, in the weight's shape."""
    f = torch.as_tensor(per_row, dtype=torch.float32) / max(w[0].numel(), 1)
    return f.view(-1, *[1] * (w.dim() - 1)).expand(w.shape)
