"""What a search is for (`Target`) and the one rule that picks its best plan (`Objective`).

A target is one of:

- `compression=X`: whole-model storage at least X times smaller than fp32, every tensor
  counted as the packed file stores it (codes, float16 scales, zero points, tensors kept in
  fp32); the size of a plan comes from `SizeModel`, byte-exact with the packed file's data
  section;
- `size_bytes=N`: at most N bytes of that storage;
- `max_accuracy_drop=P`: validation accuracy at most P points below fp32; then the
  smallest plan within the drop wins;
- nothing: ReLeQ's seed-000 shaped reward picks (the ReLeQ default).

Every method's best plan is chosen by the same `Objective.selection_key` over its real
evaluations: feasible first, then accuracy (or, for an accuracy-drop target, size), then
size, then earlier.

>>> Target.parse(compression="16x").compression, Target.parse(size="64KB").size_bytes
(16.0, 65536)
>>> Target.parse(max_accuracy_drop=1.0).describe()
'validation accuracy within 1 point of fp32'
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from hirelc.methods.ledger import Evaluation
from hirelc.plan import Plan

_UNITS = {"": 1, "b": 1, "kb": 1024, "kib": 1024, "mb": 1024**2, "mib": 1024**2, "gb": 1024**3, "gib": 1024**3}


def parse_size(text: str | int) -> int:
    """'64KB' / '1.5MB' / '2048' -> bytes (KB = 1024 bytes).

    >>> parse_size("64KB"), parse_size("1.5 MiB"), parse_size(2048)
    (65536, 1572864, 2048)
    """
    if isinstance(text, int) and not isinstance(text, bool):
        value, unit = float(text), ""
    else:
        m = re.fullmatch(r"\s*([0-9]*\.?[0-9]+)\s*([a-zA-Z]*)\s*", str(text))
        if not m or m.group(2).lower() not in _UNITS:
            raise ValueError(f"size {text!r} is not a size; use e.g. 64KB, 1.5MB or a number of bytes")
        value, unit = float(m.group(1)), m.group(2).lower()
    nbytes = int(value * _UNITS[unit])
    if nbytes < 1:
        raise ValueError(f"target size must be at least 1 byte, got {text!r}")
    return nbytes


@dataclass(frozen=True)
class Target:
    """At most one of compression (x vs fp32), size_bytes, max_accuracy_drop (points)."""

    compression: float | None = None
    size_bytes: int | None = None
    max_accuracy_drop: float | None = None

    def __post_init__(self) -> None:
        given = [k for k in ("compression", "size_bytes", "max_accuracy_drop") if getattr(self, k) is not None]
        if len(given) > 1:
            raise ValueError(f"give one target, not {given} (--target-compression, --target-size or "
                             "--max-accuracy-drop)")
        if self.compression is not None and not float(self.compression) > 1.0:
            raise ValueError(f"target compression must be > 1 (times smaller than fp32), got {self.compression!r}")
        if self.max_accuracy_drop is not None and not 0.0 <= float(self.max_accuracy_drop) < 100.0:
            raise ValueError(f"max accuracy drop is in points, 0 <= P < 100, got {self.max_accuracy_drop!r}")

    @classmethod
    def parse(cls, *, compression: str | float | None = None, size: str | int | None = None,
              max_accuracy_drop: float | None = None) -> "Target":
        """From CLI/API values: compression '16' or '16x', size '64KB', drop in points."""
        ratio = None
        if compression is not None:
            try:
                ratio = float(str(compression).strip().rstrip("xX"))
            except ValueError:
                raise ValueError(f"target compression {compression!r} is not a number, e.g. 16 or 16x") from None
        nbytes = parse_size(size) if size is not None else None
        drop = float(max_accuracy_drop) if max_accuracy_drop is not None else None
        return cls(ratio, nbytes, drop)

    @property
    def kind(self) -> str | None:
        for k in ("compression", "size_bytes", "max_accuracy_drop"):
            if getattr(self, k) is not None:
                return k
        return None

    @property
    def bounds_size(self) -> bool:
        """True for a size target (compression or bytes), which repair enforces."""
        return self.compression is not None or self.size_bytes is not None

    def max_bytes(self, fp32_bytes: int) -> int | None:
        """The storage budget in bytes, or None when the target does not bound size."""
        if self.compression is not None:
            return int(fp32_bytes // self.compression)
        return self.size_bytes

    def describe(self) -> str:
        if self.compression is not None:
            return f"compression >= {self.compression:g}x vs fp32 (whole-model storage)"
        if self.size_bytes is not None:
            return f"storage <= {self.size_bytes:,} bytes"
        if self.max_accuracy_drop is not None:
            return f"validation accuracy within {self.max_accuracy_drop:g} point of fp32"
        return "none (ReLeQ shaped reward)"

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "compression": self.compression, "size_bytes": self.size_bytes,
                "max_accuracy_drop": self.max_accuracy_drop}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any] | None) -> "Target":
        d = dict(d or {})
        d.pop("kind", None)
        return cls(**d)


class Objective(Protocol):
    """How evaluated plans are compared: the same rule for every method."""

    def feasible(self, ev: Evaluation) -> bool: ...

    def selection_key(self, ev: Evaluation) -> tuple: ...

    def score(self, ev: Evaluation) -> float: ...


SizeFn = Callable[[Plan], int]


@dataclass(frozen=True)
class SizeObjective:
    """Size target: feasible = size <= max_bytes; then highest accuracy; then smallest.

    score (for samplers and agents): accuracy when feasible, else accuracy - 1 - overshoot.

    >>> from hirelc.plan import Plan
    >>> obj = SizeObjective(100, lambda plan: 80 if plan.bits() == [4] else 120)
    >>> a, b = (Evaluation(i, Plan.from_bits(["fc"], [bits]), 0.9) for i, bits in enumerate((4, 8)))
    >>> obj.feasible(a), obj.feasible(b), obj.selection_key(a) > obj.selection_key(b)
    (True, False, True)
    """

    max_bytes: int
    size_of: SizeFn

    def feasible(self, ev: Evaluation) -> bool:
        return self.size_of(ev.plan) <= self.max_bytes

    def selection_key(self, ev: Evaluation) -> tuple:
        size = self.size_of(ev.plan)
        return (size <= self.max_bytes, ev.accuracy, -size, -ev.index)

    def score(self, ev: Evaluation) -> float:
        size = self.size_of(ev.plan)
        return ev.accuracy if size <= self.max_bytes else ev.accuracy - 1.0 - size / self.max_bytes


@dataclass(frozen=True)
class AccuracyDropObjective:
    """Accuracy target: feasible = accuracy >= reference - drop/100; then the smallest plan;
    among infeasible plans the most accurate.

    score: 2 - size/fp32 when feasible (in (1, 2]), else accuracy - floor (negative).
    """

    reference: float
    max_drop_points: float
    size_of: SizeFn
    fp32_bytes: int

    @property
    def floor(self) -> float:
        return self.reference - self.max_drop_points / 100.0

    def feasible(self, ev: Evaluation) -> bool:
        return ev.accuracy >= self.floor - 1e-12

    def selection_key(self, ev: Evaluation) -> tuple:
        size = self.size_of(ev.plan)
        if self.feasible(ev):
            return (True, -size, ev.accuracy, -ev.index)
        return (False, ev.accuracy - self.floor, -size, -ev.index)

    def score(self, ev: Evaluation) -> float:
        if self.feasible(ev):
            return 2.0 - self.size_of(ev.plan) / self.fp32_bytes
        return ev.accuracy - self.floor
