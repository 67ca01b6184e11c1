"""`TrainRecipe`: how a baseline is trained (registered per model next to its zoo entry).

It lives in the zoo package, not in `hirelc.train`, so that model entries can declare
their recipe without importing the trainer; `hirelc.train` re-exports it.

>>> recipe = TrainRecipe(epochs=5, lr=0.05, optimizer="sgd")
>>> TrainRecipe.from_dict(recipe.to_dict()) == recipe
True
>>> len(recipe.hash())
16
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import asdict, dataclass
from typing import Any

OPTIMIZERS = ("sgd", "adamw", "adam")
SCHEDULES = ("cosine", "onecycle", "constant")


@dataclass(frozen=True)
class TrainRecipe:
    """Hyper-parameters of one fp32 baseline training run.

    epochs: passes over the training split. batch_size: examples per step.
    optimizer: "sgd" (momentum, optionally Nesterov), "adamw" or "adam". lr: peak learning
    rate. weight_decay: L2 (sgd/adam) or decoupled (adamw). label_smoothing: for the
    cross-entropy loss. schedule: "cosine" (per-step cosine decay to 0 after
    `warmup_epochs` of linear warm-up), "onecycle" (torch's OneCycleLR) or "constant".
    Augmentation (all off by default): shift: random translations of up to `shift`
    pixels. rotate: random rotations of up to `rotate` degrees. scale: random zoom by a
    factor in [1 - scale, 1 + scale]. hflip: random horizontal flips (not for digits).
    grad_clip: max gradient norm (None = off).
    """

    epochs: int = 10
    batch_size: int = 128
    optimizer: str = "adamw"
    lr: float = 1e-3
    momentum: float = 0.9
    nesterov: bool = True
    weight_decay: float = 5e-4
    label_smoothing: float = 0.0
    schedule: str = "cosine"
    warmup_epochs: float = 0.0
    shift: int = 0
    rotate: float = 0.0
    scale: float = 0.0
    hflip: bool = False
    grad_clip: float | None = None

    def __post_init__(self) -> None:
        _check_int("epochs", self.epochs, 1)
        _check_int("batch_size", self.batch_size, 1)
        _check_int("shift", self.shift, 0)
        if self.optimizer not in OPTIMIZERS:
            raise ValueError(f"unknown optimizer {self.optimizer!r}; expected one of {OPTIMIZERS}")
        if self.schedule not in SCHEDULES:
            raise ValueError(f"unknown schedule {self.schedule!r}; expected one of {SCHEDULES}")
        _check_number("lr", self.lr, low=0.0, low_inclusive=False)
        _check_number("momentum", self.momentum, low=0.0, high=1.0)
        _check_number("weight_decay", self.weight_decay, low=0.0)
        _check_number("label_smoothing", self.label_smoothing, low=0.0, high=1.0, high_inclusive=False)
        _check_number("rotate", self.rotate, low=0.0, high=180.0)
        _check_number("scale", self.scale, low=0.0, high=1.0, high_inclusive=False)
        _check_number("warmup_epochs", self.warmup_epochs, low=0.0, high=float(self.epochs))
        if self.grad_clip is not None:
            _check_number("grad_clip", self.grad_clip, low=0.0, low_inclusive=False)

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready dict of every field."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TrainRecipe:
        """Inverse of `to_dict`; unknown keys are an error (a typo must not pass silently)."""
        unknown = set(data) - {f.name for f in dataclasses.fields(cls)}
        if unknown:
            raise ValueError(f"unknown TrainRecipe fields {sorted(unknown)}")
        return cls(**data)

    def replace(self, **changes: Any) -> TrainRecipe:
        """A copy with some fields changed (validated), e.g. `recipe.replace(epochs=2)`."""
        return dataclasses.replace(self, **changes)

    def hash(self) -> str:
        """Stable 16-hex-digit content hash (part of the checkpoint cache key)."""
        text = json.dumps(self.to_dict(), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(text.encode()).hexdigest()[:16]


def _check_int(name: str, value: Any, low: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        raise ValueError(f"{name} must be an integer >= {low}, got {value!r}")


def _check_number(
    name: str, value: Any, low: float, high: float | None = None,
    low_inclusive: bool = True, high_inclusive: bool = True,
) -> None:
    ok = not isinstance(value, bool) and isinstance(value, (int, float))
    ok = ok and (value >= low if low_inclusive else value > low)
    if high is not None:
        ok = ok and (value <= high if high_inclusive else value < high)
    if not ok:
        left, right = "[" if low_inclusive else "(", "]" if high_inclusive else ")"
        span = f"{left}{low}, {high}{right}" if high is not None else f"{left}{low}, inf)"
        raise ValueError(f"{name} must be a number in {span}, got {value!r}")
