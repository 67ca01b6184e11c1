"""Where a job's real evaluations run: the executor settings of `JobConfig` and the
recipe from which every worker rebuilds the job's evaluator.

- `serial` (default): in the job's process, today's behaviour.
- `process`: a local pool, one worker per core, `cores // workers` torch threads each.
- `ray`: Ray actors (`pip install 'hirelc[ray]'`); `ray_address` None starts a local
  cluster, "auto" or "HOST:PORT" joins one.

Rule for identical results: `workers` is also the batch size (plans a method proposes
per round, evaluated together). A run depends on (seed, workers) and on the torch threads
per evaluation, never on the executor or on the order results arrive in: `--executor
serial --workers 4` evaluates the same batches as `--executor ray --workers 4`. For
random, uniform, greedy and the pareto enumeration the proposals ignore the results, so
any batch size gives the same plans; tpe's depend on it. ReLeQ's PPO episodes are
sequential (each episode's plan depends on the previous one's reward): serial only.

A worker gets the fp32 model's weights shipped once (so remote nodes need no shared
checkpoint cache), rebuilds the data from the config (or gets a user's data object
shipped once), builds its `Evaluator` once, and returns metrics only.

>>> resolve_workers("random", "serial", None, None), resolve_workers("tpe", "process", 3, None)
(1, 3)
"""

from __future__ import annotations

import contextlib
import io
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hirelc.methods.executors import EXECUTORS, Executor, SerialExecutor, make_executor
from hirelc.methods.ledger import SERVED_FROM_CACHE
from hirelc.plan import Plan

SEQUENTIAL_METHODS = ("releq",)  # methods whose next proposal needs the last result


def check_batched(method: str, executor: str, workers: int) -> None:
    """Refuse parallel workers for a method that proposes one plan at a time (a search job;
    the pareto enumeration batches whatever its config's method field says).

    >>> check_batched("releq", "process", 2)
    Traceback (most recent call last):
    ...
    ValueError: method 'releq' runs its episodes one at a time (each needs the previous reward), so it cannot use parallel workers; drop --executor/--workers or use random, tpe, ...
    """
    if method in SEQUENTIAL_METHODS and (executor != "serial" or workers > 1):
        raise ValueError(f"method {method!r} runs its episodes one at a time (each needs the previous reward), "
                         "so it cannot use parallel workers; drop --executor/--workers or use random, tpe, ...")


def resolve_workers(method: str, executor: str, workers: int | None, ray_address: str | None) -> int:
    """The number of workers (= batch size) of a job, checked before any work."""
    import importlib.util

    if executor not in EXECUTORS:
        raise ValueError(f"unknown executor {executor!r}; choose one of {list(EXECUTORS)}")
    if workers is not None and (isinstance(workers, bool) or not isinstance(workers, int) or workers < 1):
        raise ValueError(f"workers must be a positive integer, got {workers!r}")
    if ray_address is not None and executor != "ray":
        raise ValueError(f"--ray-address is for --executor ray (got --executor {executor})")
    if executor == "ray" and ray_address is not None and workers is None:  # the arguments first, then Ray
        raise ValueError("--executor ray with --ray-address needs --workers N (evaluations in flight, "
                         "which is also the batch size, so it must be known before the run starts)")
    if executor == "ray" and importlib.util.find_spec("ray") is None:
        raise ImportError("--executor ray needs Ray: pip install 'hirelc[ray]'")
    if workers is not None:
        return workers
    return 1 if executor == "serial" else os.cpu_count() or 1


@dataclass
class JobEvaluatorRecipe:
    """A picklable recipe for the job's evaluation function; each worker calls it once.

    config: `JobConfig.to_dict()`; model: the fp32 module as `torch.save` bytes;
    importance: the Fisher pruning importance the job measured (or None); data: a user's
    data object (None: `load_dataset` from the config on the worker); evaluations_cache:
    the job's evaluation cache folder (None: the worker's own `cache_dir()`)."""

    config: dict[str, Any]
    model: bytes
    importance: dict[str, Any] | None = None
    data: Any = None
    evaluations_cache: str | None = None

    def __call__(self) -> Callable[[Plan], dict[str, Any]]:
        import torch

        from hirelc.data import load_dataset
        from hirelc.pipeline import JobConfig, _val_evaluate_fn, job_evaluator

        config = JobConfig.from_dict(self.config)
        data = self.data
        if data is None:
            data = load_dataset(config.data, seed=config.split_seed, root=config.data_root)
        model = torch.load(io.BytesIO(self.model), weights_only=False).eval()
        cache = Path(self.evaluations_cache) if self.evaluations_cache else None
        return _val_evaluate_fn(job_evaluator(config, model, data, self.importance, cache), config.search_fidelity)


def module_bytes(model: Any) -> bytes:
    """The fp32 module, serialised once to ship to the workers."""
    import torch

    buffer = io.BytesIO()
    torch.save(model, buffer)
    return buffer.getvalue()


@contextlib.contextmanager
def job_executor(config: Any, prep: Any, tick: Callable[[float, bool], None],
                 user_data: Any = None) -> Iterator[Executor]:
    """The executor of a job (closed, its workers stopped, on exit).

    prep: the job's `Prepared` (its evaluator serves the serial executor; its model,
    guidance and data feed the workers' recipe). tick: told each result's accuracy and
    whether the evaluator's cache served it."""
    from hirelc.pipeline import _val_evaluate_fn

    if config.executor == "serial":
        yield SerialExecutor(_val_evaluate_fn(prep.evaluator, config.search_fidelity, tick), config.workers)
        return
    recipe = JobEvaluatorRecipe(config.to_dict(), module_bytes(prep.model), prep.guidance.importance, user_data,
                                str(prep.evaluator.cache_dir) if prep.evaluator.cache_dir else None)
    with make_executor(config.executor, factory=recipe, workers=config.workers, ray_address=config.ray_address,
                       tick=lambda result: tick(result["accuracy"], result.get(SERVED_FROM_CACHE, False))) as executor:
        yield executor
