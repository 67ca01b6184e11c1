"""Executors: where the real evaluations of a batch run, behind the `EvaluationLedger`.

The ledger decides *what* to evaluate (cache, budget) and writes the journal; an executor
only runs `evaluate(plan)` for a batch of plans and hands back each result as it arrives:

- `SerialExecutor(fn)`: in the driver process, one after the other (today's behaviour).
- `ProcessExecutor(factory, workers)`: a local pool of processes, one evaluation in
  flight per worker. Each worker calls `factory()` once to build its evaluation function
  (model, data, fidelity), sets its torch threads so workers do not oversubscribe the
  cores, and returns metrics only.
- `RayExecutor` (`hirelc.methods.ray_executor`): the same on a Ray cluster.

A worker that dies (killed, out of memory, segfault) loses only the candidate it held:
that candidate is retried once on a fresh worker, then reported as `EvaluationFailed`
naming the plan. An exception raised by the evaluation function itself is not retried
(it would recur); it is re-raised in the driver once the rest of the batch is in.

The pool is written here rather than taken from `concurrent.futures`: a dead worker breaks
a whole `ProcessPoolExecutor` and it cannot say which task killed it.

>>> from hirelc.plan import Plan
>>> ex = SerialExecutor(lambda plan: 0.5 + plan["fc"].bits / 100)
>>> [(o.position, o.result) for o in ex.run([Plan.from_bits(["fc"], [4]), Plan.from_bits(["fc"], [8])])]
[(0, 0.54), (1, 0.58)]
"""

from __future__ import annotations

import multiprocessing as mp
import os
import time
import traceback
from abc import ABC, abstractmethod
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from multiprocessing.connection import Connection, wait
from typing import Any

from hirelc.plan import Plan

EXECUTORS = ("serial", "process", "ray")
Factory = Callable[[], Callable[[Plan], Any]]  # picklable; builds a worker's evaluate function
Tick = Callable[[Any], None]  # told every successful result in the driver (progress display)
WORKER_START_TIMEOUT = 600.0  # seconds for a worker to build its evaluator before it is declared dead


class EvaluationFailed(RuntimeError):
    """A candidate whose worker died on every attempt (retried once)."""


@dataclass(frozen=True)
class Outcome:
    """One finished evaluation: `position` in the submitted batch, the function's `result`
    (or `error`, an exception to re-raise in the driver) and its wall `seconds` in the worker."""

    position: int
    result: Any = None
    seconds: float = 0.0
    error: BaseException | None = None


class Executor(ABC):
    """Runs `evaluate(plan)` for batches of plans; `workers` = evaluations in flight."""

    kind = "executor"
    workers = 1

    @abstractmethod
    def run(self, plans: Sequence[Plan]) -> Iterator[Outcome]:
        """Yield one `Outcome` per plan, in completion order (not submission order)."""

    def close(self) -> None:
        """Stop the workers (idempotent)."""

    def describe(self) -> dict[str, Any]:
        """What result.json records about where the evaluations ran."""
        return {"executor": self.kind, "workers": self.workers}

    def __enter__(self) -> "Executor":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


class SerialExecutor(Executor):
    """Evaluate in the driver process, in order. `workers` only sets the batch size, so a
    serial run can reproduce the batches of a parallel one exactly (see `ledger`)."""

    kind = "serial"

    def __init__(self, evaluate: Callable[[Plan], Any], workers: int = 1):
        self.evaluate = evaluate
        self.workers = check_workers(workers)

    def run(self, plans: Sequence[Plan]) -> Iterator[Outcome]:
        for position, plan in enumerate(plans):
            start = time.perf_counter()
            try:
                result = self.evaluate(plan)
            except Exception as e:  # noqa: BLE001 -- re-raised by the ledger after the batch
                yield Outcome(position, error=e)
                continue
            yield Outcome(position, result, time.perf_counter() - start)


def check_workers(workers: Any) -> int:
    if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
        raise ValueError(f"workers must be a positive integer, got {workers!r}")
    return workers


def default_threads(workers: int) -> int:
    """Torch threads per worker so that `workers` processes fill the cores, never more.

    >>> default_threads(os.cpu_count() or 1)
    1
    """
    return max(1, (os.cpu_count() or 1) // workers)


def describe_plan(plan: Plan) -> str:
    """How an error names a candidate: its hash and its bits."""
    return f"plan {plan.content_hash()} (bits {plan.bits()})"


# -- the local process pool ------------------------------------------------------------------


def _worker_main(conn: Connection, factory: Factory, threads: int) -> None:
    """A worker: build the evaluator once, then evaluate plans until told to stop.

    The driver's death closes the pipe: `recv` raises EOFError and the worker exits, so a
    kill -9 of the driver leaves no orphan evaluating for nobody."""
    os.environ["OMP_NUM_THREADS"] = str(threads)  # before torch is imported by the factory
    try:
        evaluate = factory()
        _set_torch_threads(threads)
        conn.send(("ready", os.getpid()))
    except Exception as e:  # noqa: BLE001 -- reported to the driver, which raises it
        conn.send(("start_failed", _portable(e)))
        return
    while True:
        try:
            task = conn.recv()
        except (EOFError, OSError):
            return
        if task is None:
            return
        position, plan_dict = task
        start = time.perf_counter()
        try:
            result = evaluate(Plan.from_dict(plan_dict))
            conn.send(("done", position, result, time.perf_counter() - start))
        except Exception as e:  # noqa: BLE001 -- re-raised in the driver
            conn.send(("error", position, _portable(e), 0.0))


def _set_torch_threads(threads: int) -> None:
    import sys

    if "torch" in sys.modules:  # a factory without torch (a lookup table) does not pay for it
        sys.modules["torch"].set_num_threads(threads)


def _portable(e: BaseException) -> BaseException:
    """The exception itself if it survives pickling (with the worker's traceback noted),
    else a RuntimeError carrying its text."""
    import pickle

    text = "".join(traceback.format_exception(type(e), e, e.__traceback__))
    try:
        pickle.loads(pickle.dumps(e))
    except Exception:  # noqa: BLE001
        return RuntimeError(f"{type(e).__name__} in a worker: {e}\n{text}")
    if hasattr(e, "add_note"):  # Python >= 3.11: the driver's traceback shows the worker's
        e.add_note(f"in the worker:\n{text}")
    return e


@dataclass
class _Worker:
    process: Any
    conn: Connection
    ready: bool = False
    task: int | None = None  # position of the plan it holds
    started: float = 0.0


class ProcessExecutor(Executor):
    """A local process pool; see the module docstring.

    factory: a picklable zero-argument callable returning `plan -> result` (called once
        per worker; use a module-level function or a dataclass with `__call__`).
    workers: processes (default: one per core). threads: torch threads per worker
        (default: cores // workers, at least 1). retries: attempts after a worker death.
    start_method: "spawn" (default; safe with torch's threads) or "forkserver".
    """

    kind = "process"

    def __init__(self, factory: Factory, workers: int | None = None, *, threads: int | None = None,
                 retries: int = 1, start_method: str = "spawn", tick: Tick | None = None,
                 start_timeout: float = WORKER_START_TIMEOUT):
        self.factory = factory
        self.workers = check_workers(workers if workers is not None else os.cpu_count() or 1)
        self.threads = check_workers(threads if threads is not None else default_threads(self.workers))
        self.retries, self.tick, self.start_timeout = retries, tick, start_timeout
        self._ctx = mp.get_context(start_method)
        self._pool: list[_Worker] = []
        self.deaths = 0  # worker deaths seen (each one cost a retry or a failure)

    def describe(self) -> dict[str, Any]:
        return super().describe() | {"threads_per_worker": self.threads, "worker_deaths": self.deaths}

    def run(self, plans: Sequence[Plan]) -> Iterator[Outcome]:
        pending = deque(range(len(plans)))
        attempts = [0] * len(plans)
        finished = 0
        while finished < len(plans):  # bounded: each position finishes or fails after retries + 1 deaths
            self._assign(pending, plans, attempts)
            for outcome in self._collect(plans, attempts, pending):
                finished += 1
                if outcome.error is None and self.tick is not None:
                    self.tick(outcome.result)
                yield outcome

    def _assign(self, pending: deque, plans: Sequence[Plan], attempts: list[int]) -> None:
        while len(self._pool) < min(self.workers, len(pending) + self._busy()):
            self._pool.append(self._spawn())
        for w in self._pool:
            if pending and w.task is None and w.ready:
                w.task = pending.popleft()
                attempts[w.task] += 1
                w.conn.send((w.task, plans[w.task].to_dict()))

    def _busy(self) -> int:
        return sum(w.task is not None for w in self._pool)

    def _spawn(self) -> _Worker:
        ours, theirs = self._ctx.Pipe()
        process = self._ctx.Process(target=_worker_main, args=(theirs, self.factory, self.threads), daemon=True)
        process.start()
        theirs.close()
        return _Worker(process, ours, started=time.monotonic())

    def _collect(self, plans: Sequence[Plan], attempts: list[int], pending: deque) -> Iterator[Outcome]:
        """Wait for the next messages or deaths (at most 1 s at a time, so start timeouts are seen)."""
        ready = set(wait([w.conn for w in self._pool] + [w.process.sentinel for w in self._pool], timeout=1.0))
        for w in list(self._pool):
            message = self._receive(w) if w.conn in ready or w.process.sentinel in ready else None
            if message == "dead" or (message is None and not w.ready
                                     and time.monotonic() - w.started > self.start_timeout):
                outcome = self._bury(w, plans, attempts, pending)
                if outcome is not None:
                    yield outcome
            elif isinstance(message, Outcome):
                yield message

    def _receive(self, w: _Worker) -> Outcome | str | None:
        try:
            if not w.conn.poll():
                return None if w.process.is_alive() else "dead"
            message = w.conn.recv()
        except (EOFError, OSError):
            return "dead"
        if message[0] == "ready":
            w.ready = True
            return None
        if message[0] == "start_failed":
            self.close()
            raise RuntimeError(f"a worker could not build its evaluator: {message[1]}") from message[1]
        _, position, payload, seconds = message
        w.task = None
        return Outcome(position, error=payload) if message[0] == "error" else Outcome(position, payload, seconds)

    def _bury(self, w: _Worker, plans: Sequence[Plan], attempts: list[int], pending: deque) -> Outcome | None:
        """Remove a dead worker; requeue its candidate once, else report it failed by name."""
        self.deaths += 1
        self._stop(w)
        self._pool.remove(w)
        if w.task is None:
            if not w.ready and self.deaths > 2 * self.workers + 2:  # workers die while starting: give up
                self.close()
                raise RuntimeError(f"{self.deaths} worker processes died before they were ready; "
                                   "check that the evaluator can be built in a fresh process")
            return None
        if attempts[w.task] <= self.retries:
            pending.appendleft(w.task)
            return None
        code = w.process.exitcode
        return Outcome(w.task, error=EvaluationFailed(
            f"evaluation of {describe_plan(plans[w.task])} failed: its worker process died "
            f"{attempts[w.task]} times (last exit code {code}); the other results are journaled, "
            "resume the run to continue"))

    def _stop(self, w: _Worker) -> None:
        if w.process.is_alive():
            w.process.kill()
        w.process.join(timeout=10)
        w.conn.close()

    def close(self) -> None:
        for w in self._pool:
            try:
                w.conn.send(None)
            except (OSError, ValueError):
                pass
        deadline = time.monotonic() + 10
        for w in self._pool:
            w.process.join(timeout=max(0.0, deadline - time.monotonic()))
            self._stop(w)
        self._pool = []


def make_executor(kind: str, *, factory: Factory, evaluate: Callable[[Plan], Any] | None = None,
                  workers: int = 1, threads: int | None = None, ray_address: str | None = None,
                  tick: Tick | None = None) -> Executor:
    """The executor named `kind`; `evaluate` is the in-process function for "serial"."""
    if kind == "serial":
        return SerialExecutor(evaluate if evaluate is not None else factory(), workers)
    if kind == "process":
        return ProcessExecutor(factory, workers, threads=threads, tick=tick)
    if kind == "ray":
        from hirelc.methods.ray_executor import RayExecutor

        return RayExecutor(factory, workers, address=ray_address, threads=threads, tick=tick)
    raise ValueError(f"unknown executor {kind!r}; choose one of {list(EXECUTORS)}")
