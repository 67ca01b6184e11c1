"""The model-based search job: data -> fp32 baseline -> inventory -> search on validation
data -> final fine-tune -> test accuracy -> packed export -> result.json -> report.

This module only orchestrates; every step is a call into the module that owns it
(DESIGN.md pipeline). A run directory makes the job resumable: every real evaluation is
journaled (fsynced) before the next starts, and `resume` replays the journal so nothing
already evaluated is recomputed.

>>> from hirelc.pipeline import JobConfig, run_job
>>> result = run_job(JobConfig(model="releq_lenet", data="mnist5k"), "runs/demo")  # doctest: +SKIP
>>> result["test/accuracy"], result["size/compression"]  # doctest: +SKIP
"""

from __future__ import annotations

import contextlib
import dataclasses
import io
import math
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from hirelc import cost
from hirelc.data import DataSplits, load_dataset
from hirelc.evaluate.evaluator import DEFAULT_FINETUNE_LR, EvalResult, Evaluator
from hirelc.evaluate.fidelity import Fidelity
from hirelc.inventory import Inventory, inspect
from hirelc.paths import cache_dir
from hirelc.plan import Plan
from hirelc.progress import Progress
from hirelc.threads import thread_settings
from hirelc.result_file import COMPRESSION_DEFINITION, RESULT_VERSION, Result, search_keys
from hirelc.rundir import RunDir
from hirelc.finalists import keep_among_finalists, kept_finalist_note
from hirelc.guidance import Guidance, measure_guidance
from hirelc.methods.api import method_config, method_spec, search
from hirelc.methods.ledger import SERVED_FROM_CACHE
from hirelc.methods.problem import validate_bits
from hirelc.methods.space import SpaceConfig
from hirelc.methods.target import Target
from hirelc.train import TrainInfo, resolve_device, train_baseline
from hirelc.workers import check_batched, job_executor, resolve_workers
from hirelc.zoo import default_recipe

Log = Callable[[str], None]


@dataclass
class JobConfig:
    """Everything that determines a search job's result (written to config.json).

    seed drives the search and every fine-tune; split_seed drives the data split and the
    fp32 baseline, so several search seeds share one baseline and one split.
    search_steps: fine-tune steps per real evaluation during the search (seed 000 fine-tunes
    each candidate briefly; 0 = no fine-tune), with batches of finetune_batch_size.
    final_epochs: the final fine-tune.
    finalists: how many of the search's best plans get a final-length fine-tune on validation
        data before one is kept (`hirelc.finalists`); 1 = the search's choice, as before.
    finetune_lr: Adam learning rate of both fine-tunes (see `Evaluator` for why 3e-4).
    """

    method: str = "releq"
    model: str = "releq_lenet"
    data: str = "mnist5k"
    data_root: str | None = None
    bits: tuple[int, ...] = (2, 3, 4, 5, 8)
    max_evaluations: int = 120
    seed: int = 0
    split_seed: int = 0
    search_steps: int = 20
    finetune_batch_size: int = 64
    final_epochs: int = 4
    finalists: int = 1
    finetune_lr: float = DEFAULT_FINETUNE_LR
    train_epochs: int | None = None  # None: the model's registered recipe
    device: str = "cpu"
    options: dict[str, Any] = field(default_factory=dict)  # method options (e.g. agent="mlp")
    space: dict[str, Any] | None = None  # SpaceConfig.to_dict(); None: see `space_config`
    target_compression: float | None = None  # x vs fp32, whole-model storage
    target_size: int | str | None = None  # bytes, or e.g. "64KB"
    max_accuracy_drop: float | None = None  # points of validation accuracy
    executor: str = "serial"  # where real evaluations run: serial | process | ray (hirelc.workers)
    workers: int | None = None  # evaluations in flight = batch size; None: 1 serial, one per core process
    ray_address: str | None = None  # None: a local Ray cluster; "auto" or "HOST:PORT"

    def __post_init__(self) -> None:
        self.bits = validate_bits(self.bits)
        method_config(self.method, **self.options)  # unknown method / bad option: fails before any work
        self.target  # noqa: B018 -- validates the target fields
        self.workers = resolve_workers(self.method, self.executor, self.workers, self.ray_address)
        method_spec(self.method).check(self.space_config, self.target)
        for name in ("max_evaluations", "final_epochs", "finalists"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.search_steps < 0:
            raise ValueError(f"search_steps must be >= 0, got {self.search_steps}")
        if not (isinstance(self.finetune_lr, (int, float)) and 0 < self.finetune_lr < 1):
            raise ValueError(f"finetune_lr must be a learning rate in (0, 1), got {self.finetune_lr!r}")

    @property
    def target(self) -> Target:
        return Target.parse(compression=self.target_compression, size=self.target_size,
                            max_accuracy_drop=self.max_accuracy_drop)

    @property
    def space_config(self) -> SpaceConfig:
        """`space` if given; else bits only (from `bits`) for releq, and for uniform/random
        without a size target (the seed-000 baselines); the joint HiReLC space otherwise."""
        if self.space is not None:
            return SpaceConfig.from_dict(self.space)
        sized = self.target.bounds_size
        if method_spec(self.method).bits_only or (self.method in ("uniform", "random") and not sized):
            return SpaceConfig.bits_only(self.bits)
        return SpaceConfig()

    @property
    def search_fidelity(self) -> Fidelity:
        return Fidelity.short(self.search_steps) if self.search_steps else Fidelity.none()

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self) | {"bits": list(self.bits)}
        for key, default in (("executor", "serial"), ("workers", 1), ("ray_address", None), ("finalists", 1)):
            if d[key] == default:  # a default run's config.json stays as before (older runs resume)
                del d[key]
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "JobConfig":
        unknown = sorted(set(d) - {f.name for f in dataclasses.fields(cls)})
        if unknown:  # a user-edited or foreign config.json: a clear error, not a TypeError
            raise ValueError(f"not a hirelc search config: unknown keys {unknown}")
        return cls(**d)


@dataclass
class Prepared:
    """What every job needs before it searches: data, baseline, inventory, evaluator."""

    data: DataSplits
    model: nn.Module
    train_info: TrainInfo | None  # None for a user's own, already trained model
    inventory: Inventory
    evaluator: Evaluator
    guidance: Guidance


def prepare(
    config: JobConfig, progress: bool = True, log: Log = print, *,
    model: nn.Module | None = None, data: DataSplits | None = None, run_dir: RunDir | None = None,
) -> Prepared:
    """Load the data, train (or load the cached) fp32 baseline, inspect it, and build the
    cached evaluator. The disk cache of evaluations is shared by all jobs on this machine.

    model / data: a user's own trained `nn.Module` and `DataSplits`, used as they are
    instead of `config.model` / `config.data` (the model is not retrained)."""
    if data is None:
        data = load_dataset(config.data, seed=config.split_seed, root=config.data_root)
    log(f"data: {data}")
    info = None
    if model is None:
        model, info = load_baseline(config, data, progress)
        log(f"fp32 baseline: {info.summary()}")
    model = model.to(resolve_device(config.device)).eval()
    inventory = inspect(model, data.example_input().to(next(model.parameters()).device))
    guidance = measure_guidance(model, data, inventory, config.space_config, config.target, config.method,
                                seed=config.split_seed, run_dir=run_dir)
    evaluator = job_evaluator(config, model, data, guidance.importance)
    return Prepared(data, model, info, inventory, evaluator, guidance)


def job_evaluator(config: JobConfig, model: nn.Module, data: Any, importance: Any,
                  evaluations_cache: Path | None = None) -> Evaluator:
    """The job's evaluator (also rebuilt by each parallel worker, `hirelc.workers`, which
    passes the job's `evaluations_cache`: a Ray worker's environment is the cluster's, not
    the job's, so its own HIRELC_CACHE_DIR may name another cache)."""
    return Evaluator(model, data, seed=config.seed, device=config.device, batch_size=config.finetune_batch_size,
                     finetune_lr=config.finetune_lr, cache_dir=evaluations_cache or cache_dir() / "evaluations",
                     importance=importance)


def _prepare_or_discard(run: RunDir, config: JobConfig, progress: bool, log: Log, **objects: Any) -> Prepared:
    """`prepare`, but a failure (a wrong data path, an unknown layer) leaves no half-made run
    behind: a directory holding only config.json is removed so the corrected command can
    reuse it. A run with journaled evaluations is kept as it is."""
    try:
        return prepare(config, progress=progress, log=log, run_dir=run, **objects)
    except Exception:  # not KeyboardInterrupt: the CLI then says the run can be resumed
        run.discard_if_unused()
        raise


def load_baseline(config: JobConfig, data: DataSplits, progress: bool = True) -> tuple[nn.Module, TrainInfo]:
    """The cached fp32 baseline of `config.model` on `data` (trained first if missing)."""
    recipe = default_recipe(config.model)
    if config.train_epochs is not None:
        recipe = dataclasses.replace(recipe, epochs=config.train_epochs)
    return train_baseline(config.model, data, recipe, seed=config.split_seed, device=config.device,
                          progress=progress)


def run_job(
    config: JobConfig, out: str | Path, *, resume: bool = False, force: bool = False,
    progress: bool = True, log: Log = print, model: nn.Module | None = None, data: DataSplits | None = None,
) -> Result:
    """Run a whole search job into the run directory `out`; return result.json's content
    (keys: `hirelc.result_file`).

    model / data: optional user objects (see `prepare`); resuming such a run needs the same
    objects again."""
    start = time.perf_counter()
    check_batched(config.method, config.executor, config.workers)
    run = RunDir(out).create(config.to_dict(), resume=resume, force=force)
    if run.resumed and not force and run.result_path.exists():
        # Nothing left to do: redoing the final fine-tune would overwrite the recorded wall time.
        log(f"{out} is finished (its result.json is complete): nothing to resume; showing the recorded result. "
            "To search again, use another --out or --force.")
        return run.read_result()
    prep = _prepare_or_discard(run, config, progress, log, model=model, data=data)
    reference = prep.evaluator.fp32_accuracy("val")
    replayed = len(run.journal)
    if replayed:
        log(f"resuming: {replayed} journaled evaluations will be replayed, not recomputed")
    space, target = config.space_config, config.target
    log(f"searching: {config.method}, space {_describe_space(space)}, target {target.describe()}, "
        f"budget {config.max_evaluations} real evaluations (--max-evaluations), each: compress, fine-tune "
        f"{config.search_steps} steps (--search-steps), validate on {prep.data.sizes()['val']:,} images")
    with _evaluation_progress(progress, config.max_evaluations, replayed) as tick, \
            job_executor(config, prep, tick, data) as evaluate:
        found = search(evaluate=evaluate, method=config.method, max_evaluations=config.max_evaluations,
                       seed=config.seed, journal=run.journal, **problem_inputs(config, prep), **config.options)
    plan, val_accuracy, finalists = keep_among_finalists(prep.evaluator, found, config, progress, log)
    result = finalize(prep, plan, config, run, progress=progress)
    result.update(search_keys(found, config.method, config.options, config.bits, reference) | finalists)
    result["val/accuracy"] = val_accuracy
    if plan != found.plan:
        result["search/notes"].append(kept_finalist_note(finalists, config.final_epochs))
    result["run/wall_seconds"] = round(time.perf_counter() - start, 2)
    # Fine-tune results depend on float reduction order, hence on the thread count: record it
    # (and the OpenMP wait policy, which decides the CPU cost on a busy machine).
    result.update({f"run/{k}": v for k, v in thread_settings().items()})
    result["run/executor"] = evaluate.describe()
    run.write_result(result)
    return Result(result)


def _describe_space(space: SpaceConfig) -> str:
    if space.is_bits_only:
        return f"bits {list(space.bits)}"
    return (f"bits {list(space.bits)} x keep {list(space.keep_ratios)} x formats {list(space.formats)} "
            f"x granularity {list(space.granularities)}")


def _val_evaluate_fn(
    evaluator: Evaluator, fidelity: Fidelity, tick: Callable[[float, bool], None] = lambda _acc, _cached: None,
) -> Callable[[Plan], dict[str, Any]]:
    """plan -> metrics on validation data, the only split the search may see, and whether
    the evaluator's disk cache served it (counted by the ledger, for every executor); `tick`
    is told the accuracy of every real evaluation and that flag (progress display)."""

    def evaluate(plan: Plan) -> dict[str, Any]:
        r = evaluator.evaluate(plan, fidelity, split="val")
        tick(r.accuracy, r.cached)
        return {"accuracy": r.accuracy, "loss": _finite(r.loss), "logit_mse": _finite(r.logit_mse),
                "status": r.status, SERVED_FROM_CACHE: r.cached}

    return evaluate


@contextlib.contextmanager
def _evaluation_progress(show: bool, budget: int, done: int, label: str = "search",
                         announce: bool = False) -> Iterator[Callable[[float, bool], None]]:
    """Progress over the budget of real evaluations (journaled ones count as done): a bar
    on a terminal, periodic plain lines in logs (hirelc.progress)."""
    with Progress(label, total=budget, unit="evaluations", done=done, enabled=show, announce=announce) as bar:
        best = [0.0]

        def tick(accuracy: float, cached: bool = False) -> None:
            best[0] = max(best[0], accuracy)
            bar.advance(status=f"best val acc {100 * best[0]:.1f}%", computed=not cached)

        yield tick


def finalize(prep: Prepared, plan: Plan, config: JobConfig, run: RunDir, progress: bool = False) -> dict[str, Any]:
    """Final fine-tune of the chosen plan, test accuracy, packed export, measured sizes and
    modelled costs."""
    from hirelc.export.packed import export_packed, read_layout  # the file format is only needed here

    epochs = f"{config.final_epochs} epoch{'s' if config.final_epochs != 1 else ''}"
    with Progress(f"final fine-tune ({epochs})", unit="steps", enabled=progress) as bar:
        compressed, final = prep.evaluator.final_finetune(plan, config.final_epochs, split="test",
                                                          on_step=lambda done, total: bar.update(done, total))
    artifacts = run.artifacts
    artifacts.plan.write_text(plan.to_json())
    export_packed(compressed, plan, artifacts.model)
    fp32_bytes = state_dict_bytes(prep.model)
    packed = artifacts.model.stat().st_size
    data_bytes = read_layout(artifacts.model).data_bytes
    sizes = prep.guidance.sizes
    test_fp32, test = prep.evaluator.reference("test").accuracy, final.accuracy
    return {
        "result_version": RESULT_VERSION,
        "model": config.model, "data": config.data, "method": config.method, "seed": config.seed,
        "split_seed": config.split_seed, "split_sizes": prep.data.sizes(),
        "layers": [s.name for s in prep.inventory], "layer_params": [s.n_params for s in prep.inventory],
        "bit_choices": list(config.bits), "plan": plan.to_dict(), "bits": plan.bits(),
        "test/fp32_accuracy": test_fp32, "test/accuracy": test,
        "test/accuracy_drop_points": round(100 * (test_fp32 - test), 3), "test/status": final.status,
        "size/packed_file": artifacts.model.name, "size/packed_file_bytes": packed,
        "size/fp32_state_dict_bytes": fp32_bytes, "size/file_compression": fp32_bytes / packed,
        "size/compression": sizes.fp32_bytes / data_bytes, "size/compression_definition": COMPRESSION_DEFINITION,
        "size/packed_data_bytes": data_bytes, "size/fp32_tensor_bytes": sizes.fp32_bytes,
        "size/storage_model_bytes": sizes.nbytes(plan), "size/storage_model_matches_file": sizes.nbytes(plan) == data_bytes,
        **_target_summary(config, sizes, data_bytes),
        **plan_costs(prep.inventory, plan),
    }


def _target_summary(config: JobConfig, sizes: Any, data_bytes: int) -> dict[str, Any]:
    """The target and whether the exported file meets it (size targets: measured on the
    packed file's data section, the quantity the search budgeted)."""
    target = config.target
    budget = target.max_bytes(sizes.fp32_bytes)
    return {"target": target.to_dict() | {"max_bytes": budget},
            "size/target_met": None if budget is None else data_bytes <= budget,
            "space": config.space_config.to_dict()}


def plan_costs(specs: Inventory | list, plan: Plan) -> dict[str, float]:
    """Bit statistics (plan/) and modelled accelerator and storage figures (modelled/) of a
    plan, no model needed; the keys of result.json (`hirelc.result_file`)."""
    bits_max = 8
    return {
        "plan/avg_bits": cost.avg_bits(specs, plan),
        "plan/param_weighted_avg_bits": cost.param_weighted_avg_bits(specs, plan),
        "plan/state_of_quantization": cost.state_of_quantization(specs, {n: c.bits for n, c in plan.items()}, bits_max),
        "modelled/speedup_vs_8bit": cost.stripes_speedup(specs, plan),
        "modelled/energy_reduction_vs_8bit": cost.stripes_energy_reduction(specs, plan),
        "modelled/kernel_storage_compression": cost.compression_ratio(
            sum(cost.fp32_bits(s) for s in specs), cost.total_storage_bits(specs, plan)),
    }


def state_dict_bytes(model: nn.Module) -> int:
    """Measured size of `torch.save(model.state_dict())`: the fp32 file users compare to."""
    buffer = io.BytesIO()
    torch.save(model.state_dict(), buffer)
    return buffer.getbuffer().nbytes


def _finite(x: float) -> float | None:
    """JSON has no NaN/inf: such a metric is recorded as null."""
    return x if math.isfinite(x) else None


def eval_plan(prep: Prepared, plan: Plan, fidelity: Fidelity, split: str = "val") -> tuple[EvalResult, EvalResult]:
    """(before fine-tune, after fine-tune) metrics of `plan` — what `hirelc eval` prints."""
    before = prep.evaluator.evaluate(plan, Fidelity.none(), split=split)
    after = prep.evaluator.evaluate(plan, fidelity, split=split) if fidelity.finetunes else before
    return before, after


def problem_inputs(config: JobConfig, prep: Prepared) -> dict[str, Any]:
    """The keyword arguments from which a job's search builds its problem
    (`hirelc.methods.api.build_problem`, which `search` calls): kernels, bits, space, target,
    the fp32 validation accuracy, measured size and damage models, the logit-MSE proxy."""
    return {"layers": list(prep.inventory), "bits": config.bits, "reference_accuracy": prep.evaluator.fp32_accuracy("val"),
            "space": config.space_config, "target": config.target, "sizes": prep.guidance.sizes,
            "damage": prep.guidance.damage, "proxy": logit_mse_proxy(prep.evaluator)}


def logit_mse_proxy(evaluator: Evaluator) -> Callable[[Plan], float]:
    """plan -> logit-MSE of the compressed model before fine-tuning vs the fp32 logits on
    validation data (one forward pass): the cold-start proxy of seeds 001/002. Steers a
    search only; it is never journaled and never a reported number (the evaluator's disk
    cache may keep it, under fidelity "none")."""

    def proxy(plan: Plan) -> float:
        return evaluator.evaluate(plan, Fidelity.none(), split="val").logit_mse

    return proxy
