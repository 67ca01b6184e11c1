"""`PlanCompressor`: the evaluator's default `compress`, `apply_plan` with a reused inventory.

>>> from hirelc.data import load_dataset
>>> from hirelc.plan import LayerConfig
>>> data = load_dataset("digits", seed=0)
>>> model = nn.Sequential(nn.Flatten(), nn.Linear(64, 32), nn.ReLU(), nn.Linear(32, 10))
>>> plan = Plan({"1": LayerConfig(bits=4, keep_ratio=0.5), "3": LayerConfig(bits=8)})
>>> compress = PlanCompressor(data.example_input(2))
>>> small = compress(model, plan)    # a masked + fake-quantized deep copy of `model`
>>> int(small[1].weight.abs().sum(1).gt(0).sum()), int(model[1].weight.abs().sum(1).gt(0).sum())
(16, 32)
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from typing import Any

import torch
from torch import nn

from hirelc.evaluate.fingerprint import tensor_bytes
from hirelc.plan import Plan


class PlanCompressor:
    """The default `compress`: `apply_plan` with the inventory found once and reused.

    The inventory (channel groups, via `hirelc.inspect` on `example_input`) is only needed
    for pruning, so it is computed on the first plan that prunes: a quantization-only search
    works even on a model torch.fx cannot trace. `importance` ranks pruned channels ("l1",
    "l2", or group id -> scores, e.g. from Fisher sensitivity).

    >>> model = nn.Sequential(nn.Flatten(), nn.Linear(64, 32), nn.ReLU(), nn.Linear(32, 10))
    >>> compress = PlanCompressor(torch.randn(2, 1, 8, 8), importance="l2")
    >>> small = compress(model, Plan.from_bits(["1", "3"], [4, 4]))    # no pruning: no inventory
    >>> max(row.unique().numel() for row in small[1].weight) <= 15     # 4-bit symmetric levels
    True
    >>> compress.identity()
    'hirelc.compress.apply.apply_plan(importance=l2)'
    """

    def __init__(
        self, example_input: Any, importance: str | Mapping[str, torch.Tensor] | None = None
    ) -> None:
        self.example_input = example_input
        self.importance = importance
        self._inventory: Any = None

    def __call__(self, model: nn.Module, plan: Plan) -> nn.Module:
        from hirelc.compress.apply import apply_plan  # late: a user-supplied compress needs none
        from hirelc.inventory import inspect

        if self._inventory is None and any(c.keep_ratio < 1.0 for c in plan.values()):
            self._inventory = inspect(model, self.example_input)
        return apply_plan(model, plan, importance=self.importance, inventory=self._inventory)

    def identity(self) -> str:
        """What distinguishes this compressor's results, for the disk-cache fingerprint."""
        if self.importance is None or isinstance(self.importance, str):
            return f"hirelc.compress.apply.apply_plan(importance={self.importance or 'l1'})"
        digest = hashlib.sha256()
        for gid in sorted(self.importance):
            digest.update(gid.encode() + tensor_bytes(torch.as_tensor(self.importance[gid]).float()))
        return f"hirelc.compress.apply.apply_plan(importance=sha256:{digest.hexdigest()[:16]})"
