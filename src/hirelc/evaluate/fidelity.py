"""How hard the evaluator works on one plan: no fine-tune, k steps, or e epochs.

>>> Fidelity.short(200).key()
'short-200'
>>> Fidelity.from_json(Fidelity.final(3).to_json()) == Fidelity.final(3)
True
>>> Fidelity.parse("short:200") == Fidelity.short(200)
True
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

FIDELITY_KINDS = ("none", "short", "final")


@dataclass(frozen=True)
class Fidelity:
    """One evaluation fidelity.

    kind: "none" (compress and measure), "short" (`steps` fine-tune steps on the train
        split), or "final" (`epochs` full passes over the train split).
    Exactly the count that belongs to the kind is set; the other stays 0.
    """

    kind: str = "none"
    steps: int = 0
    epochs: int = 0

    def __post_init__(self) -> None:
        if self.kind not in FIDELITY_KINDS:
            raise ValueError(f"unknown fidelity kind {self.kind!r}; expected one of {FIDELITY_KINDS}")
        for name in ("steps", "epochs"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise ValueError(f"fidelity {name} must be a non-negative integer, got {value!r}")
        if self.kind == "none" and (self.steps or self.epochs):
            raise ValueError("fidelity 'none' takes no steps or epochs")
        if self.kind == "short" and (self.steps < 1 or self.epochs):
            raise ValueError(f"fidelity 'short' needs steps >= 1 and no epochs, got {self}")
        if self.kind == "final" and (self.epochs < 1 or self.steps):
            raise ValueError(f"fidelity 'final' needs epochs >= 1 and no steps, got {self}")

    @classmethod
    def none(cls) -> "Fidelity":
        """Compress and measure, no fine-tuning."""
        return cls("none")

    @classmethod
    def short(cls, steps: int) -> "Fidelity":
        """`steps` fine-tune steps (mini-batches) on the train split."""
        return cls("short", steps=steps)

    @classmethod
    def final(cls, epochs: int) -> "Fidelity":
        """`epochs` full fine-tune passes over the train split (cosine learning rate)."""
        return cls("final", epochs=epochs)

    @property
    def finetunes(self) -> bool:
        return self.kind != "none"

    def key(self) -> str:
        """Short, filesystem-safe, unique string: 'none', 'short-200', 'final-3'."""
        if self.kind == "short":
            return f"short-{self.steps}"
        if self.kind == "final":
            return f"final-{self.epochs}"
        return "none"

    def __str__(self) -> str:
        return self.key()

    @classmethod
    def parse(cls, text: str) -> "Fidelity":
        """Parse the CLI form: 'none', 'short:200' (steps) or 'final:3' (epochs).

        'short-200' / 'final-3' (the `key()` form) are accepted too.
        """
        kind, sep, count = text.strip().replace("-", ":", 1).partition(":")
        if kind == "none" and not sep:
            return cls.none()
        if kind in ("short", "final") and count.isdigit():
            return cls.short(int(count)) if kind == "short" else cls.final(int(count))
        raise ValueError(
            f"cannot parse fidelity {text!r}; expected 'none', 'short:<steps>' or "
            "'final:<epochs>', e.g. 'short:200'"
        )

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "steps": self.steps, "epochs": self.epochs}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "Fidelity":
        unknown = set(d) - {"kind", "steps", "epochs"}
        if unknown:
            raise ValueError(f"unknown Fidelity fields {sorted(unknown)}")
        return cls(**d)

    def to_json(self) -> str:
        return json.dumps(self.to_dict())

    @classmethod
    def from_json(cls, text: str) -> "Fidelity":
        try:
            return cls.from_dict(json.loads(text))
        except (json.JSONDecodeError, TypeError) as e:
            raise ValueError(f"not a fidelity JSON object: {text!r} ({e})") from None
