"""`RayExecutor`: the process pool's contract on a Ray cluster (`pip install hirelc[ray]`).

One Ray actor per worker, each asking for `threads` CPUs and building its evaluation
function once (the factory is put in the object store once and shared by every actor).
Plans go out as small dicts and metrics come back; the journal stays with the driver.

address: None starts a local cluster (`ray.init()`), "auto" joins the cluster this machine
belongs to, "HOST:PORT" joins that cluster's GCS. An actor that dies loses only its
candidate, which is retried once on a new actor, then reported as `EvaluationFailed`.
"""

from __future__ import annotations

import os
import time
from collections import deque
from collections.abc import Iterator, Sequence
from typing import Any

from hirelc.methods.executors import (EvaluationFailed, Executor, Factory, Outcome, Tick, check_workers,
                                      describe_plan)
from hirelc.plan import Plan

POLL_SECONDS = 5.0  # ray.wait timeout: the loop wakes at least this often


def import_ray() -> Any:
    try:
        import ray
    except ImportError:
        raise ImportError("the ray executor needs Ray: pip install 'hirelc[ray]'") from None
    return ray


class _Evaluator:
    """The actor's body: build once, then evaluate plan dicts."""

    def __init__(self, factory: Factory, threads: int):
        os.environ["OMP_NUM_THREADS"] = str(threads)
        self.evaluate = factory()
        import sys

        if "torch" in sys.modules:
            sys.modules["torch"].set_num_threads(threads)

    def evaluate_plan(self, plan_dict: dict) -> tuple[Any, float]:
        start = time.perf_counter()
        result = self.evaluate(Plan.from_dict(plan_dict))
        return result, time.perf_counter() - start

    def pid(self) -> int:
        return os.getpid()


class RayExecutor(Executor):
    """Evaluate on Ray actors; see the module docstring."""

    kind = "ray"

    def __init__(self, factory: Factory, workers: int, *, address: str | None = None, threads: int | None = None,
                 retries: int = 1, tick: Tick | None = None, init_kwargs: dict[str, Any] | None = None):
        self.ray = import_ray()
        self.workers = check_workers(workers)
        self.threads = check_workers(threads if threads is not None else 1)
        self.retries, self.tick, self.address = retries, tick, address
        self._owns_ray = not self.ray.is_initialized()  # a cluster we start, we stop
        if self._owns_ray:
            self.ray.init(address=address, include_dashboard=False, log_to_driver=False,
                          **(init_kwargs or {}))
        self._factory_ref = self.ray.put(factory)
        self._actor_cls = self.ray.remote(num_cpus=self.threads, max_restarts=0)(_Evaluator)
        self._actors: list[Any] = []
        self.deaths = 0

    def describe(self) -> dict[str, Any]:
        return super().describe() | {"threads_per_worker": self.threads, "worker_deaths": self.deaths,
                                     "ray_address": self.address}

    def run(self, plans: Sequence[Plan]) -> Iterator[Outcome]:
        while len(self._actors) < min(self.workers, len(plans)):
            self._actors.append(self._actor_cls.remote(self._factory_ref, self.threads))
        pending, attempts = deque(range(len(plans))), [0] * len(plans)
        idle = deque(self._actors)
        running: dict[Any, tuple[Any, int]] = {}  # object ref -> (actor, position)
        finished = 0
        while finished < len(plans):  # bounded: each position finishes or fails after retries + 1 deaths
            while pending and idle:
                actor, position = idle.popleft(), pending.popleft()
                attempts[position] += 1
                running[actor.evaluate_plan.remote(plans[position].to_dict())] = (actor, position)
            done, _ = self.ray.wait(list(running), num_returns=1, timeout=POLL_SECONDS)
            for ref in done:
                actor, position = running.pop(ref)
                outcome = self._outcome(ref, position, plans, attempts, pending)
                if outcome is None:  # the actor died: replace it
                    idle.append(self._replace(actor))
                    continue
                idle.append(actor)
                finished += 1
                if outcome.error is None and self.tick is not None:
                    self.tick(outcome.result)
                yield outcome

    def _outcome(self, ref: Any, position: int, plans: Sequence[Plan], attempts: list[int],
                 pending: deque) -> Outcome | None:
        exceptions = self.ray.exceptions
        try:
            result, seconds = self.ray.get(ref)
            return Outcome(position, result, seconds)
        except exceptions.RayActorError as e:
            if e.actor_init_failed:  # the factory raised: it would again on any actor
                self.close()
                last = str(e).strip().splitlines()[-1]  # the factory's exception, e.g. "OSError: ..."
                raise RuntimeError(f"a Ray worker could not build its evaluator: {last}") from e
            self.deaths += 1
            if attempts[position] <= self.retries:
                pending.appendleft(position)
                return None
            return Outcome(position, error=EvaluationFailed(
                f"evaluation of {describe_plan(plans[position])} failed: its Ray worker died "
                f"{attempts[position]} times ({type(e).__name__}); the other results are journaled, "
                "resume the run to continue"))
        except exceptions.RayTaskError as e:  # the evaluation function raised: not retried
            cause = e.as_instanceof_cause() if hasattr(e, "as_instanceof_cause") else e
            return Outcome(position, error=cause)

    def _replace(self, actor: Any) -> Any:
        self._actors.remove(actor)
        self.ray.kill(actor, no_restart=True)
        fresh = self._actor_cls.remote(self._factory_ref, self.threads)
        self._actors.append(fresh)
        return fresh

    def close(self) -> None:
        for actor in self._actors:
            self.ray.kill(actor, no_restart=True)
        self._actors = []
        if self._owns_ray and self.ray.is_initialized():
            self.ray.shutdown()
            self._owns_ray = False
