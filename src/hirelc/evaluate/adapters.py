"""Accept a user's own evaluator (`plan -> float` or `plan -> {"accuracy": ...}`) wherever an
`Evaluator` is accepted, validated the same way.

>>> plan = Plan.from_bits(["fc1", "fc2"], [8, 4])
>>> fn = as_evaluate_fn(lambda plan: {"accuracy": 0.91, "latency_ms": 3.2})
>>> fn(plan)
{'accuracy': 0.91, 'latency_ms': 3.2}
>>> as_evaluate_fn(lambda plan: 91.0)(plan)  # doctest: +ELLIPSIS
Traceback (most recent call last):
    ...
ValueError: evaluate function returned 91.0 for plan ...; accuracy must be in [0, 1] (a percentage? divide by 100)
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Callable, Mapping
from typing import Any

import torch

from hirelc.evaluate.evaluator import EvalResult, Evaluator
from hirelc.evaluate.fidelity import Fidelity
from hirelc.plan import Plan


def as_evaluate_fn(
    obj: Evaluator | Callable[[Plan], Any],
    *,
    fidelity: Fidelity | None = None,
    split: str = "val",
) -> Callable[[Plan], dict[str, Any]]:
    """Normalise an `Evaluator` or a user callable to `plan -> {"accuracy": float, ...}`.

    A user callable may return a float accuracy or a dict with an "accuracy" key (other keys
    are passed through). The accuracy must be a finite number in [0, 1]; anything else
    raises a ValueError/TypeError naming the plan. `fidelity` and `split` apply to an
    Evaluator only (default: no fine-tune, "val").

    >>> from hirelc.data import load_dataset
    >>> plan = Plan.from_bits(["1"], [4])
    >>> fn = as_evaluate_fn(lambda plan: 0.9)
    >>> fn(plan)
    {'accuracy': 0.9}
    >>> model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(64, 10))
    >>> ev = Evaluator(model, load_dataset("digits", seed=0))
    >>> result = as_evaluate_fn(ev, fidelity=Fidelity.short(10))(plan)
    >>> result["status"], result["fidelity"], result["finetune_steps"], result["split"]
    ('ok', 'short-10', 10, 'val')
    """
    if isinstance(obj, Evaluator):
        evaluator, fid = obj, fidelity or Fidelity.none()

        def evaluate_fn(plan: Plan) -> dict[str, Any]:
            return _normalise(evaluator.evaluate(plan, fid, split).to_dict(), plan)

        return evaluate_fn
    if not callable(obj):
        raise TypeError(
            f"expected an Evaluator or a callable plan -> accuracy, got {type(obj).__name__}"
        )
    user_fn = obj

    def user_evaluate_fn(plan: Plan) -> dict[str, Any]:
        return _normalise(user_fn(plan), plan)

    return user_evaluate_fn


def _normalise(value: Any, plan: Plan) -> dict[str, Any]:
    where = f"evaluate function returned {{}} for plan {plan.content_hash()}"
    if isinstance(value, EvalResult):
        value = value.to_dict()
    if isinstance(value, Mapping):
        if "accuracy" not in value:
            raise ValueError(where.format(f"a dict without 'accuracy' (keys: {sorted(value)})"))
        return dict(value) | {"accuracy": check_accuracy(value["accuracy"], where)}
    return {"accuracy": check_accuracy(value, where)}


def check_accuracy(value: Any, where: str = "accuracy is {}") -> float:
    """`value` as a float if it is a finite real number in [0, 1], else a clear error."""
    if isinstance(value, torch.Tensor) and value.numel() == 1:
        value = value.item()
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(
            where.format(f"{value!r} ({type(value).__name__})")
            + "; expected a float accuracy in [0, 1] or a dict {'accuracy': float, ...}"
        )
    accuracy = float(value)
    if not math.isfinite(accuracy):
        raise ValueError(where.format(accuracy) + "; accuracy must be a finite number in [0, 1]")
    if not 0.0 <= accuracy <= 1.0:
        hint = " (a percentage? divide by 100)" if 1.0 < accuracy <= 100.0 else ""
        raise ValueError(where.format(accuracy) + f"; accuracy must be in [0, 1]{hint}")
    return accuracy
