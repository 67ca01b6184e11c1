"""`Evaluator`: plan -> metrics at a fidelity, cached in memory and on disk (DESIGN.md step 6).

One evaluation = compress a deep copy of the fp32 model with the plan (`apply_plan`),
optionally fine-tune it through the straight-through estimator on the train split, and
measure accuracy, loss and logit-MSE to the fp32 model on one split (the search sees "val",
final numbers use "test"). Results depend only on (fp32 weights, data, evaluator settings,
plan, fidelity, seed, split), so they are cached under exactly that key.

>>> import tempfile
>>> from hirelc.data import load_dataset
>>> from hirelc.train import TrainRecipe, train_baseline
>>> data = load_dataset("digits", seed=0)  # sklearn's 8x8 digits: train 1,078 / val 360 / test 359
>>> _ = torch.manual_seed(0)
>>> mlp = nn.Sequential(nn.Flatten(), nn.Linear(64, 32), nn.ReLU(), nn.Linear(32, 10))
>>> recipe = TrainRecipe(epochs=3, batch_size=256, lr=3e-2)  # 12 training steps
>>> model, info = train_baseline(mlp, data, recipe, progress=False, cache=False)
>>> ev = Evaluator(model, data, cache_dir=tempfile.mkdtemp())
>>> plan = Plan.from_bits(["1", "3"], [4, 2])         # kernel name -> bits
>>> r = ev.evaluate(plan, Fidelity.short(20))
>>> r.status, r.cached, r.finetune_steps, r.split, r.n_examples
('ok', False, 20, 'val', 360)
>>> r.accuracy > ev.evaluate(plan).accuracy            # fine-tuning recovers accuracy
True
>>> ev.evaluate(plan, Fidelity.short(20)).cached       # from memory
True
>>> again = Evaluator(model, data, cache_dir=ev.cache_dir)   # a new evaluator, same cache
>>> again.evaluate(plan, Fidelity.short(20)).cached, again.disk_hits, again.real_evaluations
(True, 1, 0)
"""

from __future__ import annotations

import hashlib
import json
import math
import time
import warnings
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from hirelc.compress.quantize import WeightRangeError
from hirelc.evaluate._data import qualname, split_loader
from hirelc.evaluate.compressor import PlanCompressor
from hirelc.evaluate.fidelity import Fidelity
from hirelc.evaluate.fingerprint import data_fingerprint, model_fingerprint
from hirelc.evaluate.validation import check_cache_entry, check_finite_model, entry_digest
from hirelc.plan import Plan
from hirelc.rundir import atomic_write_text

# Bump when the meaning of a cached result changes (fine-tune loop, metrics), so stale
# entries on disk are never served.
CACHE_VERSION = 2
SPLITS = ("train", "val", "test")
STATUSES = ("ok", "diverged")
OPTIMIZERS = ("adam", "sgd")
DEFAULT_FINETUNE_LR = 3e-4  # see Evaluator: why not the zoo's training lr of 1e-3

CompressFn = Callable[[nn.Module, Plan], nn.Module]
LossFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
StepFn = Callable[[int, int], None]  # (steps done, total steps)


# -- results ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Metrics:
    """What one pass over a split measures. Non-finite model outputs give accuracy 0."""

    accuracy: float
    loss: float
    logit_mse: float
    n_examples: int
    finite: bool


@dataclass(frozen=True)
class EvalResult:
    """Metrics of one plan at one fidelity on one split.

    accuracy in [0, 1]; loss = mean loss (cross-entropy by default); logit_mse = mean
    squared difference to the fp32 model's logits on the same examples; seconds = wall time
    of the real evaluation (kept when later served from the cache); status "ok" or
    "diverged" (then `message` says why, and the metrics are those *before* fine-tuning);
    cached = served from the memory or disk cache instead of recomputed.
    """

    accuracy: float
    loss: float
    logit_mse: float
    seconds: float
    fidelity: Fidelity
    split: str
    plan_hash: str
    seed: int = 0
    n_examples: int = 0
    finetune_steps: int = 0
    status: str = "ok"
    message: str = ""
    cached: bool = False

    def __post_init__(self) -> None:
        if self.status not in STATUSES:
            raise ValueError(f"unknown status {self.status!r}; expected one of {STATUSES}")
        _check_split(self.split)

    @property
    def ok(self) -> bool:
        return self.status == "ok"

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe dict: the fidelity as its key string, NaN/inf floats as None."""
        d = {k: getattr(self, k) for k in self.__dataclass_fields__}
        d["fidelity"] = self.fidelity.key()
        for k in ("accuracy", "loss", "logit_mse", "seconds"):
            d[k] = d[k] if math.isfinite(d[k]) else None
        return d

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "EvalResult":
        d = dict(d)
        d["fidelity"] = Fidelity.parse(d["fidelity"])
        for k in ("accuracy", "loss", "logit_mse", "seconds"):
            d[k] = math.nan if d.get(k) is None else float(d[k])
        return cls(**d)


# -- the evaluator ---------------------------------------------------------------------------


class Evaluator:
    """Evaluate compression plans on a model and DataSplits-like data, with caching.

    Fine-tuning trains every `requires_grad` parameter of the compressed copy on the train
    split (Adam by default, constant lr for "short", cosine decay for "final"), with data
    order and torch RNG seeded from `seed`, so (plan, fidelity, seed) -> the same result.
    The caller's global RNG state is left untouched.

    A NaN/inf loss or output during fine-tuning is not an exception: the result has status
    "diverged", the accuracy/loss/logit-MSE of the compressed model *before* fine-tuning
    (a real measurement of the plan; 0 accuracy if even that is non-finite) and a message.

    The fp32 `model` is moved to `device` and must not change while the evaluator is used:
    with a `cache_dir`, its weights are fingerprinted once, at construction, and results on
    disk are namespaced by that fingerprint.

    Defaults: Adam, lr 3e-4 (DEFAULT_FINETUNE_LR), batch 128. The zoo models are trained
    with AdamW at lr 1e-3 and a decayed schedule; restarting a short fine-tune at 1e-3 kicks
    them out of their minimum and makes a 20-step result depend on the seed (measured on
    releq_lenet / mnist5k, 5 fine-tune seeds, 20 steps, batch 64: sd 0.5-2.0 points at lr
    1e-3, 0.1-0.4 at 3e-4, and [4,4,4,4] at 97.0 % vs 98.0 %; benchmarks/RESULTS.md).
    A large pretrained model usually wants a smaller `finetune_lr` still.

    Example, on sklearn's 8x8 digits with a small MLP (also the example of every method):

    >>> import os, tempfile
    >>> from hirelc.data import load_dataset
    >>> from hirelc.export.packed import export_packed, load_packed
    >>> from hirelc.train import TrainRecipe, train_baseline
    >>> data = load_dataset("digits", seed=0)  # train 1,078 / val 360 / test 359
    >>> _ = torch.manual_seed(0)
    >>> mlp = nn.Sequential(nn.Flatten(), nn.Linear(64, 32), nn.ReLU(), nn.Linear(32, 10))
    >>> recipe = TrainRecipe(epochs=3, batch_size=256, lr=3e-2)  # 12 training steps
    >>> model, info = train_baseline(mlp, data, recipe, progress=False, cache=False)
    >>> ev = Evaluator(model, data, seed=0)
    >>> ref = ev.reference("val")                              # fp32 metrics
    >>> ref.accuracy == info.val_accuracy, ref.logit_mse, ref.n_examples
    (True, 0.0, 360)
    >>> r8, r2 = (ev.evaluate(Plan.from_bits(["1", "3"], [b, b])) for b in (8, 2))
    >>> abs(r8.accuracy - ref.accuracy) < 0.02, r8.logit_mse < 0.001, r2.logit_mse > 0.1
    (True, True, True)
    >>> tuned = ev.evaluate(Plan.from_bits(["1", "3"], [2, 2]), Fidelity.short(20))
    >>> tuned.finetune_steps, tuned.accuracy > r2.accuracy   # fine-tuning recovers accuracy
    (20, True)
    >>> ev.real_evaluations, ev.evaluate(Plan.from_bits(["1", "3"], [8, 8])).cached, ev.cache_hits
    (3, True, 1)
    >>> plan = Plan.from_bits(["1", "3"], [4, 4])
    >>> small, result = ev.final_finetune(plan, epochs=1)
    >>> result.split, result.fidelity.key(), result.finetune_steps   # 1,078 // 128 batches
    ('test', 'final-1', 8)
    >>> ev.measure(small, "test").accuracy == result.accuracy, ev.evaluate(plan, Fidelity.final(1), "test").cached
    (True, True)
    >>> path = os.path.join(tempfile.mkdtemp(), "model.hirelc")
    >>> _ = export_packed(model, plan, path)                   # the measured model on disk
    >>> ev.measure(load_packed(path, like=model), "test").accuracy == ev.evaluate(plan, split="test").accuracy
    True
    """

    def __init__(
        self,
        model: nn.Module,
        data: Any,
        *,
        seed: int = 0,
        device: str | torch.device = "cpu",
        batch_size: int = 128,
        finetune_lr: float = DEFAULT_FINETUNE_LR,
        optimizer: str = "adam",
        loss_fn: LossFn = F.cross_entropy,
        cache_dir: str | Path | None = None,
        compress: CompressFn | None = None,
        importance: str | Mapping[str, torch.Tensor] | None = None,
    ) -> None:
        # Imported here: hirelc.train pulls in the dataset stack (scikit-learn), which a
        # plain `import hirelc.evaluate` should not pay for.
        from hirelc.train import resolve_device

        _check_settings(batch_size, finetune_lr, optimizer)
        check_finite_model(model)
        self.device = resolve_device(device)
        self.model = model.to(self.device)
        self.data = data
        self.seed = int(seed)
        self.batch_size = batch_size
        self.finetune_lr = float(finetune_lr)
        self.optimizer = optimizer
        self.loss_fn = loss_fn
        if compress is not None and importance is not None:
            raise ValueError(
                "importance configures the default compressor (apply_plan); a custom "
                "compress function ranks channels itself"
            )
        if compress is None:
            compress = PlanCompressor(_example_input(data, self.device), importance)
        self.compress = compress
        self.real_evaluations = 0
        self.finetune_steps = 0
        self.cache_hits = 0
        self.disk_hits = 0
        self._memory: dict[str, EvalResult] = {}
        self._reference: dict[str, tuple[torch.Tensor, torch.Tensor]] = {}  # split -> (logits, labels)
        self._fingerprint: str | None = None
        self.cache_dir = None if cache_dir is None else Path(cache_dir).expanduser()
        if self.cache_dir is not None:
            _ = self.fingerprint  # snapshot the fp32 weights now, before anyone can change them

    # -- public API ----------------------------------------------------------------------

    def evaluate(
        self, plan: Plan, fidelity: Fidelity | None = None, split: str = "val"
    ) -> EvalResult:
        """Metrics of `plan` at `fidelity` (default: no fine-tune) on `split`; cached.

        Example: see the class docstring.
        """
        return self._evaluate(plan, fidelity or Fidelity.none(), split, count_hit=True)

    def final_finetune(
        self, plan: Plan, epochs: int, split: str = "test", on_step: StepFn | None = None
    ) -> tuple[nn.Module, EvalResult]:
        """Fine-tune the compressed model for `epochs` and return it with its metrics.

        on_step: called with (steps done, total steps) after every step (progress display).

        Always recomputes (the model itself is not cached) and stores the result, so a
        later `evaluate(plan, Fidelity.final(epochs), split)` is a cache hit. On divergence
        the returned model is the compressed model before fine-tuning.

        Example: see the class docstring.
        """
        fidelity = Fidelity.final(epochs)
        _check_split(split)
        model, result = self._compute(plan, fidelity, split, on_step)
        self._store(self._key(plan, fidelity, split), plan, result)
        if not result.ok:  # hand back a usable model, not the NaN-poisoned one
            with _seeded(self.seed, self.device):
                model = self.compress(self.model, plan).to(self.device)
        return model, result

    def reference(self, split: str = "val") -> Metrics:
        """Metrics of the fp32 model on `split` (computed once, then reused).

        Example: see the class docstring.
        """
        logits, labels = self._reference_outputs(split)
        return self._metrics(logits, labels, split)

    def fp32_accuracy(self, split: str = "val") -> float:
        """Accuracy of the uncompressed model; the denominator of ReLeQ's StateAcc."""
        return self.reference(split).accuracy

    def measure(self, model: nn.Module, split: str = "val") -> Metrics:
        """Accuracy, loss and logit-MSE to fp32 of any model (e.g. a loaded export).

        Example: see the class docstring.
        """
        _check_split(split)
        logits, labels = _predict(model, self._batches(split), self.device)
        return self._metrics(logits, labels, split)

    @property
    def fingerprint(self) -> str:
        """Hash of (fp32 weights, data, evaluator settings): the disk-cache namespace."""
        if self._fingerprint is None:
            parts = {
                "version": CACHE_VERSION,
                "model": model_fingerprint(self.model),
                "data": data_fingerprint(self.data),
                "settings": self.settings(),
            }
            text = json.dumps(parts, sort_keys=True)
            self._fingerprint = hashlib.sha256(text.encode()).hexdigest()[:20]
        return self._fingerprint

    def settings(self) -> dict[str, Any]:
        """Everything besides model, data and seed that changes a result (JSON-safe)."""
        return {
            "batch_size": self.batch_size,
            "finetune_lr": self.finetune_lr,
            "optimizer": self.optimizer,
            "loss_fn": qualname(self.loss_fn),
            "compress": self._compress_identity(),
        }

    def _compress_identity(self) -> str:
        # A user's compress function is known by its qualified name only: give different
        # functions different names, or use different cache directories.
        identity = getattr(self.compress, "identity", None)
        return identity() if callable(identity) else qualname(self.compress)

    def counters(self) -> dict[str, int]:
        """{'real_evaluations', 'finetune_steps', 'cache_hits', 'disk_hits'}."""
        return {
            "real_evaluations": self.real_evaluations,
            "finetune_steps": self.finetune_steps,
            "cache_hits": self.cache_hits,
            "disk_hits": self.disk_hits,
        }

    # -- one real evaluation -------------------------------------------------------------

    def _evaluate(self, plan: Plan, fidelity: Fidelity, split: str, count_hit: bool) -> EvalResult:
        _check_split(split)
        key = self._key(plan, fidelity, split)
        hit = self._lookup(key, plan, count_hit)
        if hit is not None:
            return hit
        _, result = self._compute(plan, fidelity, split)
        self._store(key, plan, result)
        return result

    def _compute(
        self, plan: Plan, fidelity: Fidelity, split: str, on_step: StepFn | None = None
    ) -> tuple[nn.Module, EvalResult]:
        start = time.perf_counter()
        steps_before = self.finetune_steps
        with _seeded(self.seed, self.device):
            model = self.compress(self.model, plan).to(self.device)
            failure = self._finetune(model, fidelity, on_step) if fidelity.finetunes else None
            metrics, failure = self._measure_tuned(model, split, failure, fidelity.finetunes)
        self.real_evaluations += 1
        if failure is None and not metrics.finite:
            failure = "the compressed model outputs NaN/inf" + (
                " after fine-tuning" if fidelity.finetunes else " (no fine-tuning involved)"
            )
        result = EvalResult(
            accuracy=metrics.accuracy,
            loss=metrics.loss,
            logit_mse=metrics.logit_mse,
            seconds=time.perf_counter() - start,
            fidelity=fidelity,
            split=split,
            plan_hash=plan.content_hash(),
            seed=self.seed,
            n_examples=metrics.n_examples,
            finetune_steps=self.finetune_steps - steps_before,
        )
        if failure is None:
            return model, result
        if not fidelity.finetunes:  # nothing to fall back to: accuracy is already 0
            return model, replace(result, status="diverged", message=failure)
        return model, self._diverged(plan, split, result, failure)

    def _measure_tuned(self, model: nn.Module, split: str, failure: str | None,
                       tuned: bool) -> tuple[Metrics, str | None]:
        """`measure`, except that a fine-tuned model whose weights went non-finite (the
        quantizer refuses them, naming the kernel) measures as non-finite with that cause."""
        try:
            return self.measure(model, split), failure
        except WeightRangeError as e:
            if not tuned:
                raise  # the fp32 weights themselves cannot take this plan: a user error
            n = len(self._reference_outputs(split)[1])
            return Metrics(0.0, math.nan, math.nan, n, False), failure or \
                f"fine-tune diverged in its last step: {_blown_up(e)}; {self._lr_hint()}"

    def _lr_hint(self) -> str:
        return f"lower the fine-tune learning rate ({self.optimizer}, lr {self.finetune_lr:g})"

    def _diverged(self, plan: Plan, split: str, result: EvalResult, failure: str) -> EvalResult:
        """A diverged fine-tune reports the plan's metrics before fine-tuning."""
        before = self._evaluate(plan, Fidelity.none(), split, count_hit=False)
        message = f"{failure}; reporting the metrics before fine-tuning"
        if not before.ok:
            message += " (also non-finite, so accuracy 0)"
        return replace(
            result,
            accuracy=before.accuracy,
            loss=before.loss,
            logit_mse=before.logit_mse,
            status="diverged",
            message=message,
        )

    def _finetune(self, model: nn.Module, fidelity: Fidelity, on_step: StepFn | None = None) -> str | None:
        """Train `model` in place; returns a message if the loss went non-finite."""
        params = [p for p in model.parameters() if p.requires_grad]
        if not params:
            return None  # nothing trainable: a fine-tune is a no-op, not an error
        total = fidelity.steps or fidelity.epochs * len(self._train_loader(0))
        optimizer = self._make_optimizer(params)
        schedule = (
            torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=total)
            if fidelity.kind == "final"
            else None
        )
        model.train()
        for step, (x, y) in enumerate(self._train_batches(total), start=1):
            try:
                loss = self.loss_fn(model(x), y)
            except WeightRangeError as e:  # the last update made a kernel unquantizable
                model.eval()
                return f"fine-tune diverged at step {step} of {total}: {_blown_up(e)}; {self._lr_hint()}"
            if not torch.isfinite(loss):
                model.eval()
                return (
                    f"fine-tune loss became {loss.item()} at step {step} of {total} "
                    f"({self.optimizer}, lr {self.finetune_lr:g})"
                )
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            if schedule is not None:
                schedule.step()
            self.finetune_steps += 1
            if on_step is not None:
                on_step(step, total)
        model.eval()
        return None

    def _make_optimizer(self, params: list[nn.Parameter]) -> torch.optim.Optimizer:
        if self.optimizer == "sgd":
            return torch.optim.SGD(params, lr=self.finetune_lr, momentum=0.9)
        return torch.optim.Adam(params, lr=self.finetune_lr)

    # -- data ----------------------------------------------------------------------------

    def _train_loader(self, epoch: int) -> Any:
        n_train = len(self.data.train)
        # drop_last avoids a 1-example last batch, which BatchNorm cannot train on.
        return split_loader(
            self.data, "train", self.batch_size, True, self.seed + epoch, n_train > self.batch_size
        )

    def _train_batches(self, total: int) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """`total` training batches, a fresh seeded shuffle every epoch."""
        produced, epoch = 0, 0
        while produced < total:
            for x, y in self._train_loader(epoch):
                yield x.to(self.device), y.to(self.device)
                produced += 1
                if produced == total:
                    return
            epoch += 1

    def _batches(self, split: str) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        yield from split_loader(self.data, split, self.batch_size, False, 0, False)

    # -- metrics -------------------------------------------------------------------------

    def _reference_outputs(self, split: str) -> tuple[torch.Tensor, torch.Tensor]:
        _check_split(split)
        if split not in self._reference:
            self._reference[split] = _predict(self.model, self._batches(split), self.device)
        return self._reference[split]

    def _metrics(self, logits: torch.Tensor, labels: torch.Tensor, split: str) -> Metrics:
        ref, ref_labels = self._reference_outputs(split)
        if logits.shape != ref.shape or not torch.equal(labels, ref_labels):
            raise ValueError(
                f"model outputs {tuple(logits.shape)} on split {split!r}, but the fp32 model "
                f"outputs {tuple(ref.shape)}; the compressed model must keep the output shape"
            )
        finite = bool(torch.isfinite(logits).all())
        with torch.no_grad():
            loss = float(self.loss_fn(logits, labels)) if len(labels) else math.nan
            mse = float(F.mse_loss(logits, ref)) if len(labels) else math.nan
            correct = int((logits.argmax(dim=1) == labels).sum()) if finite else 0
        return Metrics(
            accuracy=correct / max(1, len(labels)),
            loss=loss,
            logit_mse=mse,
            n_examples=len(labels),
            finite=finite,
        )

    # -- cache ---------------------------------------------------------------------------

    def _key(self, plan: Plan, fidelity: Fidelity, split: str) -> str:
        return f"{plan.content_hash()}_{fidelity.key()}_s{self.seed}_{split}"

    def _lookup(self, key: str, plan: Plan, count_hit: bool) -> EvalResult | None:
        result = self._memory.get(key)
        if result is None and self.cache_dir is not None:
            result = self._read_disk(key, plan)
            if result is not None:
                self._memory[key] = result
                self.disk_hits += count_hit
        if result is None:
            return None
        self.cache_hits += count_hit
        return replace(result, cached=True)

    def _store(self, key: str, plan: Plan, result: EvalResult) -> None:
        self._memory[key] = result
        if self.cache_dir is None:
            return
        entry = {
            "key": key,
            "fingerprint": self.fingerprint,
            "settings": self.settings(),
            "plan": plan.to_dict(),
            "result": result.to_dict(),
        }
        entry["sha256"] = entry_digest(entry)
        atomic_write_text(self._disk_path(key), json.dumps(entry, indent=1, allow_nan=False))

    def _disk_path(self, key: str) -> Path:
        assert self.cache_dir is not None
        return self.cache_dir / "evaluations" / self.fingerprint / f"{key}.json"

    def _read_disk(self, key: str, plan: Plan) -> EvalResult | None:
        path = self._disk_path(key)
        if not path.exists():
            return None
        try:
            entry = json.loads(path.read_text(encoding="utf-8"))
            if Plan.from_dict(entry["plan"]) != plan:  # a 16-hex hash collision: ignore
                return None
            checked = check_cache_entry(entry, key=key, fingerprint=self.fingerprint, plan_hash=plan.content_hash())
            result = replace(EvalResult.from_dict(checked), cached=False)
            if result.split != key.rsplit("_", 1)[1] or result.fidelity.key() not in key:
                raise ValueError(f"entry is for {result.fidelity.key()} on {result.split}, not {key}")
            return result
        except (OSError, ValueError, KeyError, TypeError) as e:
            warnings.warn(f"evaluation cache entry {path} is invalid ({e}); recomputing it", stacklevel=4)
            return None


# -- helpers ---------------------------------------------------------------------------------


def _blown_up(e: WeightRangeError) -> str:
    """The cause of a fine-tune divergence the quantizer caught, in the fine-tune's terms."""
    where = f"kernel {e.kernel!r}" if e.kernel else "a kernel"
    if math.isfinite(e.max_abs):
        return (f"the weights of {where} grew to max|w| = {e.max_abs:.3g}, beyond what a float16 "
                "quantization scale can hold")
    return f"the weights of {where} became NaN/inf"


class _seeded:
    """Seed torch for one evaluation without disturbing the caller's RNG streams."""

    def __init__(self, seed: int, device: torch.device) -> None:
        devices = [device.index or 0] if device.type == "cuda" else []
        self._fork = torch.random.fork_rng(devices=devices)
        self._seed = seed

    def __enter__(self) -> None:
        self._fork.__enter__()
        torch.manual_seed(self._seed)

    def __exit__(self, *exc: Any) -> None:
        self._fork.__exit__(*exc)


def _predict(
    model: nn.Module, batches: Iterator[tuple[torch.Tensor, torch.Tensor]], device: torch.device
) -> tuple[torch.Tensor, torch.Tensor]:
    """(logits (N, classes), labels (N,)) of `model` in eval mode; its mode is restored."""
    was_training = model.training
    model.eval()
    outs, labels = [], []
    try:
        with torch.no_grad():
            for x, y in batches:
                outs.append(model(x.to(device)).float())  # (B, classes)
                labels.append(y.to(device))
    finally:
        model.train(was_training)
    if not outs:
        raise ValueError("cannot evaluate on an empty split")
    return torch.cat(outs), torch.cat(labels)


def _example_input(data: Any, device: torch.device) -> torch.Tensor:
    """Two validation images: enough for `hirelc.inspect` to trace shapes and MACs."""
    if hasattr(data, "example_input"):
        return data.example_input(2).to(device)
    x, _ = next(iter(split_loader(data, "val", 2, shuffle=False, seed=0)))
    return x.to(device)


def _check_split(split: str) -> None:
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r}; expected one of {SPLITS}")


def _check_settings(batch_size: int, lr: float, optimizer: str) -> None:
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}")
    if not isinstance(lr, (int, float)) or not math.isfinite(lr) or lr <= 0:
        raise ValueError(f"finetune_lr must be a positive number, got {lr!r}")
    if optimizer not in OPTIMIZERS:
        raise ValueError(f"unknown optimizer {optimizer!r}; expected one of {OPTIMIZERS}")
