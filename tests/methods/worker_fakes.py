"""Picklable evaluator factories for the executor tests (module-level, so spawned workers
and Ray actors can import them)."""

import os
import signal
import time
from dataclasses import dataclass
from pathlib import Path


def table_accuracy(plan):
    """A deterministic lookup-like accuracy of a plan (its bits)."""
    bits = plan.bits()
    return {"accuracy": round(0.5 + 0.05 * sum(bits) / len(bits), 10), "bits_sum": sum(bits)}


@dataclass
class Table:
    """Factory of `table_accuracy`, optionally slowed down and leaving a file per call."""

    sleep: float = 0.0
    trace_dir: str | None = None

    def __call__(self):
        if self.trace_dir:
            Path(self.trace_dir, f"built-{os.getpid()}").touch()

        def evaluate(plan):
            if self.trace_dir:
                Path(self.trace_dir, f"eval-{os.getpid()}-{plan.content_hash()}").touch()
            time.sleep(self.sleep)
            return table_accuracy(plan)

        return evaluate


@dataclass
class DieOn:
    """Factory whose evaluation of the plan with `bits` kills its own process, the first
    `times` attempts (counted with marker files in `marker_dir`, shared by all workers)."""

    bits: list
    marker_dir: str
    times: int = 1

    def __call__(self):
        def evaluate(plan):
            if plan.bits() == self.bits:
                markers = Path(self.marker_dir)
                if len(list(markers.iterdir())) < self.times:
                    (markers / f"attempt-{os.getpid()}").touch()
                    os.kill(os.getpid(), signal.SIGKILL)
            return table_accuracy(plan)

        return evaluate


@dataclass
class RaiseOn:
    """Factory whose evaluation of the plan with `bits` raises ValueError."""

    bits: list

    def __call__(self):
        def evaluate(plan):
            if plan.bits() == self.bits:
                raise ValueError(f"cannot evaluate {plan.bits()}")
            return table_accuracy(plan)

        return evaluate


class BrokenFactory:
    def __call__(self):
        raise OSError("no such dataset on this worker")


def cached_below_4(plan):
    """`table_accuracy`, saying it was served from a cache for plans whose first layer has < 4 bits."""
    return {**table_accuracy(plan), "served_from_cache": plan.bits()[0] < 4}


@dataclass
class CachedBelow4:
    """Factory of `cached_below_4` (for a process pool)."""

    def __call__(self):
        return cached_below_4
