"""Checks on what the evaluator takes from outside: the fp32 model it is given and the
evaluation-cache entries it reads back from disk. Pure functions: they raise ValueError
naming the problem; the evaluator decides what to do (refuse, or recompute and warn).

>>> import torch
>>> from torch import nn
>>> net = nn.Linear(2, 2)
>>> check_finite_model(net)
>>> with torch.no_grad():
...     net.bias[1] = float("nan")
>>> check_finite_model(net)
Traceback (most recent call last):
...
ValueError: the fp32 model has 1 NaN/inf value(s) in 'bias'; hirelc needs a finite trained model: retrain it or fix its checkpoint
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Mapping
from typing import Any

import torch
from torch import nn

__all__ = ["check_cache_entry", "check_finite_model", "entry_digest"]


def entry_digest(entry: Mapping[str, Any]) -> str:
    """sha256 of a cache entry's canonical JSON, its own "sha256" field left out: recorded
    when the entry is written, so an edit that keeps the numbers plausible is still caught."""
    body = {k: v for k, v in entry.items() if k != "sha256"}
    return hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()  # NaN hashes too


def check_finite_model(model: nn.Module) -> None:
    """Refuse a model with a NaN/inf parameter or floating buffer, naming the first one:
    every plan evaluated on it would measure 0 accuracy for a reason no search can fix."""
    tensors = [*model.named_parameters(), *model.named_buffers()]
    for name, t in tensors:
        if torch.is_floating_point(t):
            bad = int((~torch.isfinite(t.detach())).sum())
            if bad:
                raise ValueError(
                    f"the fp32 model has {bad} NaN/inf value(s) in {name!r}; hirelc needs a finite "
                    "trained model: retrain it or fix its checkpoint"
                )


def check_cache_entry(entry: Any, *, key: str, fingerprint: str, plan_hash: str) -> Mapping[str, Any]:
    """The "result" of a disk-cache entry after checking that the entry is the one asked
    for (key, fingerprint, plan hash) and that its numbers are possible ones: accuracy a
    finite fraction that is a whole number of correct examples, finite non-negative loss,
    logit-MSE and seconds (loss and logit-MSE may be null only for a diverged result),
    non-negative integer counts.

    >>> r = {"accuracy": 0.5, "loss": 0.7, "logit_mse": 0.1, "seconds": 1.0, "n_examples": 4,
    ...      "finetune_steps": 0, "seed": 0, "plan_hash": "ab", "status": "ok"}
    >>> e = {"key": "k", "fingerprint": "f", "result": r}
    >>> check_cache_entry(e, key="k", fingerprint="f", plan_hash="ab")["accuracy"]
    0.5
    >>> check_cache_entry(e | {"result": r | {"accuracy": 0.3}}, key="k", fingerprint="f", plan_hash="ab")
    Traceback (most recent call last):
    ...
    ValueError: accuracy 0.3 is not a whole number of correct answers out of 4 examples
    """
    if not isinstance(entry, Mapping):
        raise ValueError(f"expected a JSON object, got {type(entry).__name__}")
    # Entries written before digests existed have none; their numbers are still checked below.
    if "sha256" in entry and entry["sha256"] != entry_digest(entry):
        raise ValueError("its content hash differs from the one recorded when it was written")
    for field, want in (("key", key), ("fingerprint", fingerprint)):
        if entry.get(field) != want:
            raise ValueError(f"{field} is {entry.get(field)!r}, expected {want!r}")
    result = entry.get("result")
    if not isinstance(result, Mapping):
        raise ValueError("no 'result' object")
    if result.get("plan_hash") != plan_hash:
        raise ValueError(f"plan_hash is {result.get('plan_hash')!r}, expected {plan_hash!r}")
    n = _count(result, "n_examples", minimum=1)
    _count(result, "finetune_steps")
    _count(result, "seed", minimum=None)
    accuracy = _number(result, "accuracy", nullable=False)
    if not 0.0 <= accuracy <= 1.0:
        raise ValueError(f"accuracy {accuracy} is outside [0, 1]")
    if abs(accuracy * n - round(accuracy * n)) > 1e-6 * n:
        raise ValueError(f"accuracy {accuracy} is not a whole number of correct answers out of {n} examples")
    diverged = result.get("status") == "diverged"
    for name in ("loss", "logit_mse"):
        _number(result, name, nullable=diverged)
    _number(result, "seconds", nullable=False)
    return result


def _number(result: Mapping[str, Any], name: str, nullable: bool) -> float:
    value = result.get(name)
    if value is None and nullable:
        return math.nan
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value < 0:
        raise ValueError(f"{name} is {value!r}, expected a finite number >= 0")
    return float(value)


def _count(result: Mapping[str, Any], name: str, minimum: int | None = 0) -> int:
    value = result.get(name)
    if isinstance(value, bool) or not isinstance(value, int) or (minimum is not None and value < minimum):
        raise ValueError(f"{name} is {value!r}, expected an integer" + (f" >= {minimum}" if minimum is not None else ""))
    return value
