"""fp32 baseline training with a checkpoint cache, and an accuracy helper.

`train_baseline` trains a zoo model (or a user's model) on a dataset's training split with
the model's registered `TrainRecipe`, reports validation and test accuracy, and caches the
weights under `cache_dir()/checkpoints/` so the second call returns at once.

Cache key: model name, a hash of the model's architecture (`repr`) and *initial* weights,
the dataset's name, split seed and content fingerprint, the recipe hash and the training
seed. Registered models and import strings are built under `torch.manual_seed(seed)`, so
their initial weights depend on the seed only; an `nn.Module` instance is keyed by its
own initial weights, so the same instance state always maps to the same checkpoint.

>>> from hirelc.data import load_dataset
>>> data = load_dataset("digits")
>>> model, info = train_baseline("lenet5", data, TrainRecipe(epochs=1), progress=False, cache=False)
>>> 0.0 <= info.test_accuracy <= 1.0
True
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import re
import time
import warnings
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, Dataset, TensorDataset

from hirelc.data.splits import DataSplits, batch_loader
from hirelc.integrity import record_digest, state_digest, verify_digest
from hirelc.paths import cache_dir
from hirelc.zoo.recipe import TrainRecipe
from hirelc.zoo.registry import create_model, default_recipe

__all__ = ["TrainInfo", "TrainRecipe", "evaluate_accuracy", "resolve_device", "train_baseline"]

CACHE_FORMAT = 1  # bump when the checkpoint layout or the key recipe changes


def resolve_device(device: str | torch.device = "auto") -> torch.device:
    """"auto" -> the first CUDA GPU if one is usable, else the CPU; "cpu"/"cuda"/"cuda:N" as given.

    >>> resolve_device("cpu")
    device(type='cpu')
    """
    if isinstance(device, torch.device):
        device = str(device)
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if not isinstance(device, str) or not re.fullmatch(r"cpu|cuda(:\d+)?", device):
        raise ValueError(f"device must be 'auto', 'cpu', 'cuda' or 'cuda:N', got {device!r}")
    if device.startswith("cuda"):
        if not torch.cuda.is_available():
            raise ValueError(f"device {device!r} requested but CUDA is not available; use 'cpu' or 'auto'")
        index = int(device.split(":")[1]) if ":" in device else 0
        if index >= torch.cuda.device_count():
            raise ValueError(f"device {device!r}: only {torch.cuda.device_count()} CUDA device(s) present")
    return torch.device(device)


@dataclass
class TrainInfo:
    """What a baseline training run produced; stored as the checkpoint's JSON sidecar.

    Accuracies are fractions in [0, 1]; `train_time_s` is the measured wall time of the
    training loop (incl. per-epoch validation) when the checkpoint was made, and
    `load_average` the 1-minute load average of the machine at its start and end.
    """

    model_name: str
    dataset: str
    split_sizes: dict[str, int]
    split_seed: int
    seed: int
    recipe: TrainRecipe
    val_accuracy: float
    val_loss: float
    test_accuracy: float
    test_loss: float
    train_time_s: float
    device: str
    num_threads: int
    load_average: tuple[float, float] = (math.nan, math.nan)
    history: list[dict[str, float]] = field(default_factory=list)
    key: str = ""
    created: str = ""
    cached: bool = False  # True when this call loaded the checkpoint instead of training
    checkpoint: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict (the recipe as a dict)."""
        data = asdict(self)
        data["recipe"] = self.recipe.to_dict()
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TrainInfo:
        """Inverse of `to_dict`."""
        data = dict(data)
        data["recipe"] = TrainRecipe.from_dict(data["recipe"])
        data["load_average"] = tuple(data.get("load_average", (math.nan, math.nan)))
        return cls(**data)

    def summary(self) -> str:
        """One line with accuracies, split sizes, seeds and wall time.

        e.g. 'lenet5 on mnist5k (train 3,000 / val 1,000 / test 1,000; split seed 0, seed 0):
        test acc 98.60% (loss 0.047), val acc 98.20%; trained in 6.1 s on cpu (1 thread)'
        """
        sizes = " / ".join(f"{k} {v:,}" for k, v in self.split_sizes.items())
        threads = f"{self.num_threads} thread{'s' if self.num_threads != 1 else ''}"
        source = ", loaded from cache" if self.cached else ""
        return (
            f"{self.model_name} on {self.dataset} ({sizes}; split seed {self.split_seed}, seed {self.seed}): "
            f"test acc {100 * self.test_accuracy:.2f}% (loss {self.test_loss:.3f}), "
            f"val acc {100 * self.val_accuracy:.2f}%; trained in {self.train_time_s:.1f} s on {self.device} "
            f"({threads}){source}"
        )


@torch.no_grad()
def evaluate_accuracy(
    model: nn.Module, dataset: Dataset, batch_size: int = 512, device: str | torch.device | None = None
) -> tuple[float, float]:
    """(top-1 accuracy in [0, 1], mean cross-entropy loss) of `model` on `dataset`.

    Runs in eval mode and restores the model's previous mode. `device` defaults to the
    device of the model's parameters.

    >>> from hirelc.data import load_dataset
    >>> from hirelc.zoo import create_model
    >>> data = load_dataset("digits")
    >>> acc, loss = evaluate_accuracy(create_model("lenet5", 1, 10, 8), data.test)
    >>> 0.0 <= acc <= 1.0 and loss > 0
    True
    """
    if len(dataset) == 0:  # type: ignore[arg-type]
        raise ValueError("evaluate_accuracy: the dataset is empty")
    target = _model_device(model) if device is None else resolve_device(device)
    was_training = model.training
    model.eval()
    correct, loss_sum, count = 0, 0.0, 0
    try:
        for images, labels in _eval_batches(dataset, batch_size):
            images, labels = images.to(target), labels.to(target)
            logits = model(images)  # (B, classes)
            loss_sum += F.cross_entropy(logits, labels, reduction="sum").item()
            correct += int((logits.argmax(dim=1) == labels).sum())
            count += len(labels)
    finally:
        model.train(was_training)
    return correct / count, loss_sum / count


def _eval_batches(dataset: Dataset, batch_size: int) -> DataLoader:
    if isinstance(dataset, TensorDataset):
        return batch_loader(dataset, batch_size, shuffle=False)
    return DataLoader(dataset, batch_size=batch_size, shuffle=False)


def _model_device(model: nn.Module) -> torch.device:
    param = next(model.parameters(), None)
    return param.device if param is not None else torch.device("cpu")


def train_baseline(
    model: str | nn.Module,
    data: DataSplits,
    recipe: TrainRecipe | None = None,
    seed: int = 0,
    device: str | torch.device = "cpu",
    progress: bool = True,
    cache: bool = True,
) -> tuple[nn.Module, TrainInfo]:
    """Train (or load from the cache) an fp32 baseline; returns (model in eval mode, info).

    model: a registered name (`"resnet20"`), a `"package.module:factory"` string, or an
    `nn.Module` instance (trained in place). recipe: defaults to the model's registered
    recipe (a generic AdamW recipe for modules and import strings). seed: model
    initialisation, batch order and augmentation (torch's global RNG is seeded with it).
    progress: a rich progress bar and one line per epoch on stderr. cache: read/write
    `cache_dir()/checkpoints/` (see the module docstring for the key).

    >>> from hirelc.data import load_dataset
    >>> model, info = train_baseline("releq_lenet", load_dataset("mnist5k"), progress=False)  # doctest: +SKIP
    >>> print(info.summary())  # doctest: +SKIP
    """
    target = resolve_device(device)
    name, net = _build_model(model, data, seed)
    if recipe is None:
        recipe = default_recipe(name) if isinstance(model, str) else TrainRecipe()
    key = _cache_key(name, net, data, recipe, seed)
    paths = _checkpoint_paths(name, data, seed, key) if cache else None
    if paths is not None:
        info = _load_cached(net, paths, key)
        if info is not None:
            return net.to(target).eval(), info
    info = _fit_or_explain(net, name, data, recipe, seed, target, progress)
    info.key = key
    if paths is not None:
        _save_checkpoint(net, info, paths)
    return net.eval(), info


def _build_model(model: str | nn.Module, data: DataSplits, seed: int) -> tuple[str, nn.Module]:
    if isinstance(model, nn.Module):
        return type(model).__name__, model
    if not isinstance(model, str):
        raise TypeError(
            f"model must be a registered name, 'package.module:factory' or an nn.Module, got {model!r}"
        )
    torch.manual_seed(seed)  # the initial weights depend on the seed only
    return model, create_model(model, data.in_channels, data.num_classes, data.image_size)


def _cache_key(name: str, model: nn.Module, data: DataSplits, recipe: TrainRecipe, seed: int) -> str:
    digest = hashlib.sha256(repr(model).encode())
    for param_name, tensor in model.state_dict().items():
        digest.update(f"{param_name}:{tuple(tensor.shape)}:{tensor.dtype}".encode())
        digest.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    parts = {
        "format": CACHE_FORMAT, "model": name, "arch_init": digest.hexdigest(), "dataset": data.name,
        "data": data.fingerprint(), "split_seed": data.seed, "recipe": recipe.hash(), "seed": seed,
    }
    return hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()[:20]


def _checkpoint_paths(name: str, data: DataSplits, seed: int, key: str) -> tuple[Path, Path]:
    slug = re.sub(r"[^A-Za-z0-9_.-]+", "_", f"{name}-{data.name}")[-80:].strip("_")
    stem = cache_dir("checkpoints") / f"{slug}-split{data.seed}-seed{seed}-{key[:12]}"
    return stem.with_suffix(".pt"), stem.with_suffix(".json")


def _load_cached(model: nn.Module, paths: tuple[Path, Path], key: str) -> TrainInfo | None:
    weights, sidecar = paths
    if not (weights.is_file() and sidecar.is_file()):
        return None
    try:
        info = TrainInfo.from_dict(json.loads(sidecar.read_text()))
        if info.key != key:
            raise ValueError(f"key {info.key!r} != {key!r}")
        state = torch.load(weights, map_location="cpu", weights_only=True)
        _check_state(weights, state)
        model.load_state_dict(state)
    except Exception as err:  # noqa: BLE001 - torch.load of a damaged file raises many kinds
        # A corrupt or stale cache entry must not stop the user: retrain and overwrite it.
        warnings.warn(f"checkpoint {weights} is invalid ({err}); retraining it", stacklevel=3)
        return None
    info.cached, info.checkpoint = True, str(weights)
    return info


def _check_state(weights: Path, state: Any) -> None:
    """The loaded weights are the ones written (content hash, `hirelc.integrity`) and
    finite; an entry from before hashes were recorded gets its hash recorded now."""
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise ValueError("not a state_dict of tensors")
    digest = state_digest(state)
    known = verify_digest(weights, digest)
    if known is False:
        raise ValueError("its content hash differs from the one recorded when it was written")
    bad = [k for k, v in state.items() if torch.is_floating_point(v) and not bool(torch.isfinite(v).all())]
    if bad:
        raise ValueError(f"NaN/inf values in {bad[:3]}")
    if known is None:
        record_digest(weights, digest)


def _save_checkpoint(model: nn.Module, info: TrainInfo, paths: tuple[Path, Path]) -> None:
    weights, sidecar = paths
    info.checkpoint = str(weights)
    state = {k: v.detach().cpu() for k, v in model.state_dict().items()}
    tmp = weights.with_suffix(f".{os.getpid()}.tmp")
    torch.save(state, tmp)
    os.replace(tmp, weights)  # atomic, so a concurrent reader never sees half a file
    record_digest(weights, state_digest(state))  # before the sidecar that marks it complete
    tmp = sidecar.with_suffix(f".{os.getpid()}.tmp")
    tmp.write_text(json.dumps(info.to_dict(), indent=2))
    os.replace(tmp, sidecar)  # written last: its presence marks a complete entry


def _fit_or_explain(model: nn.Module, name: str, data: DataSplits, recipe: TrainRecipe, seed: int,
                    device: torch.device, progress: bool) -> TrainInfo:
    """`_fit`; torch's RuntimeError (most often a model whose input or output does not fit
    the data) becomes a ValueError naming the model, the dataset and the shapes expected."""
    try:
        return _fit(model, name, data, recipe, seed, device, progress)
    except RuntimeError as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise ValueError(
            f"training model {name!r} on {data.name!r} failed: {first}; the model must take "
            f"{data.in_channels}x{data.image_size}x{data.image_size} inputs and output {data.num_classes} classes"
        ) from e


def _fit(
    model: nn.Module, name: str, data: DataSplits, recipe: TrainRecipe, seed: int,
    device: torch.device, progress: bool,
) -> TrainInfo:
    torch.manual_seed(seed)
    model.to(device)
    # drop_last: a final batch of one example would break BatchNorm in training mode.
    drop_last = len(data.train) > recipe.batch_size
    loader = data.loader("train", recipe.batch_size, shuffle=True, seed=seed, drop_last=drop_last)
    optimizer = _make_optimizer(model, recipe)
    scheduler = _make_scheduler(optimizer, recipe, recipe.epochs * len(loader))
    augment_rng = torch.Generator().manual_seed(seed + 1)
    history: list[dict[str, float]] = []
    load_start, start = _load_average(), time.perf_counter()
    with _Reporter(name, data.name, recipe.epochs, len(loader), progress) as reporter:
        for epoch in range(recipe.epochs):
            train_loss, train_acc = _train_epoch(
                model, loader, optimizer, scheduler, recipe, augment_rng, device, reporter
            )
            val_acc, val_loss = evaluate_accuracy(model, data.val, device=device)
            history.append({
                "epoch": epoch + 1, "train_loss": train_loss, "train_accuracy": train_acc,
                "val_accuracy": val_acc, "val_loss": val_loss, "time_s": time.perf_counter() - start,
            })
            reporter.epoch_done(history[-1], optimizer.param_groups[0]["lr"])
    elapsed = time.perf_counter() - start
    test_acc, test_loss = evaluate_accuracy(model, data.test, device=device)
    return TrainInfo(
        model_name=name, dataset=data.name, split_sizes=data.sizes(), split_seed=data.seed, seed=seed,
        recipe=recipe, val_accuracy=history[-1]["val_accuracy"], val_loss=history[-1]["val_loss"],
        test_accuracy=test_acc, test_loss=test_loss, train_time_s=elapsed, device=str(device),
        num_threads=torch.get_num_threads(), load_average=(load_start, _load_average()), history=history,
        created=datetime.now(timezone.utc).isoformat(timespec="seconds"),
    )


def _train_epoch(
    model: nn.Module, loader: DataLoader, optimizer: torch.optim.Optimizer,
    scheduler: torch.optim.lr_scheduler.LRScheduler, recipe: TrainRecipe, rng: torch.Generator,
    device: torch.device, reporter: _Reporter,
) -> tuple[float, float]:
    """One pass over the training split; returns (mean loss, accuracy) on the augmented batches."""
    model.train()
    loss_sum, correct, count = 0.0, 0, 0
    for images, labels in loader:
        images = augment(images, recipe, rng).to(device)
        labels = labels.to(device)
        logits = model(images)  # (B, classes)
        loss = F.cross_entropy(logits, labels, label_smoothing=recipe.label_smoothing)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if recipe.grad_clip is not None:
            nn.utils.clip_grad_norm_(model.parameters(), recipe.grad_clip)
        optimizer.step()
        scheduler.step()
        loss_sum += loss.item() * len(labels)
        correct += int((logits.detach().argmax(dim=1) == labels).sum())
        count += len(labels)
        reporter.step()
    if not math.isfinite(loss_sum):
        raise FloatingPointError(
            f"training diverged (loss {loss_sum}); lower the learning rate in the recipe"
        )
    return loss_sum / count, correct / count


def augment(images: torch.Tensor, recipe: TrainRecipe, rng: torch.Generator) -> torch.Tensor:
    """The recipe's random rotation/zoom, translation and horizontal flip of a batch (B, C, H, W).

    Borders are filled by replicating edge pixels (the background, for digits).

    >>> x = torch.arange(16.0).view(1, 1, 4, 4)
    >>> augment(x, TrainRecipe(), torch.Generator()).equal(x)
    True
    """
    wanted = recipe.rotate > 0 or recipe.scale > 0 or recipe.shift > 0 or recipe.hflip
    if wanted and images.dim() != 4:
        raise ValueError(
            f"the recipe's augmentation (shift/rotate/scale/hflip) needs images (B, C, H, W), got "
            f"{tuple(images.shape)}; set them to 0/False in the recipe for 1-D signals"
        )
    if recipe.rotate > 0 or recipe.scale > 0:
        images = _rotate_zoom(images, recipe.rotate, recipe.scale, rng)
    if recipe.shift > 0:
        images = _shift(images, recipe.shift, rng)
    if recipe.hflip:
        flip = torch.rand(len(images), generator=rng) < 0.5
        images = torch.where(flip[:, None, None, None], images.flip(-1), images)
    return images


def _shift(images: torch.Tensor, shift: int, rng: torch.Generator) -> torch.Tensor:
    """Translate each image by a random whole number of pixels in [-shift, shift] per axis."""
    B, C, H, W = images.shape
    padded = F.pad(images, (shift, shift, shift, shift), mode="replicate")  # (B, C, H+2s, W+2s)
    dy = torch.randint(0, 2 * shift + 1, (B, 1), generator=rng)
    dx = torch.randint(0, 2 * shift + 1, (B, 1), generator=rng)
    rows = (dy + torch.arange(H))[:, None, :, None]  # (B, 1, H, 1)
    cols = (dx + torch.arange(W))[:, None, None, :]  # (B, 1, 1, W)
    batch, channel = torch.arange(B)[:, None, None, None], torch.arange(C)[None, :, None, None]
    return padded[batch, channel, rows, cols]  # (B, C, H, W)


def _rotate_zoom(images: torch.Tensor, degrees: float, scale: float, rng: torch.Generator) -> torch.Tensor:
    """Rotate by U(-degrees, degrees) and zoom by U(1 - scale, 1 + scale) about the centre."""
    B = len(images)
    angle = (torch.rand(B, generator=rng) * 2 - 1) * math.radians(degrees)  # (B,)
    zoom = 1 + (torch.rand(B, generator=rng) * 2 - 1) * scale  # (B,)
    cos, sin = torch.cos(angle) / zoom, torch.sin(angle) / zoom  # output -> input sampling grid
    theta = torch.zeros(B, 2, 3)
    theta[:, 0, 0], theta[:, 0, 1], theta[:, 1, 0], theta[:, 1, 1] = cos, -sin, sin, cos
    grid = F.affine_grid(theta, list(images.shape), align_corners=False)  # (B, H, W, 2)
    return F.grid_sample(images, grid, mode="bilinear", padding_mode="border", align_corners=False)


def _make_optimizer(model: nn.Module, recipe: TrainRecipe) -> torch.optim.Optimizer:
    # No weight decay on biases, norm parameters and the ViT's cls/position embeddings:
    # the usual practice for BatchNorm nets and ViTs alike.
    decay, no_decay = [], []
    for param_name, param in model.named_parameters():
        if param.requires_grad:
            skip = param.dim() <= 1 or param_name.endswith(("cls_token", "pos_embed"))
            (no_decay if skip else decay).append(param)
    groups = [
        {"params": decay, "weight_decay": recipe.weight_decay},
        {"params": no_decay, "weight_decay": 0.0},
    ]
    if recipe.optimizer == "sgd":
        nesterov = recipe.nesterov and recipe.momentum > 0  # torch rejects Nesterov without momentum
        return torch.optim.SGD(groups, lr=recipe.lr, momentum=recipe.momentum, nesterov=nesterov)
    optimizer_class = torch.optim.AdamW if recipe.optimizer == "adamw" else torch.optim.Adam
    return optimizer_class(groups, lr=recipe.lr)


def _make_scheduler(
    optimizer: torch.optim.Optimizer, recipe: TrainRecipe, total_steps: int
) -> torch.optim.lr_scheduler.LRScheduler:
    """Per-step learning-rate schedule over `total_steps`."""
    if recipe.schedule == "onecycle":
        return torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=recipe.lr, total_steps=total_steps)
    warmup = int(recipe.warmup_epochs / recipe.epochs * total_steps)

    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        if recipe.schedule == "constant":
            return 1.0
        progress = (step - warmup) / max(1, total_steps - warmup)
        return 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress)))

    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)


def _load_average() -> float:
    try:
        return os.getloadavg()[0]
    except (OSError, AttributeError):  # not available on Windows
        return math.nan


class _Reporter:
    """Progress over all training steps (bar on a terminal, plain lines with ETA in logs;
    hirelc.progress) and one line per epoch; silent when disabled."""

    def __init__(self, model: str, dataset: str, epochs: int, steps: int, enabled: bool) -> None:
        from hirelc.progress import Progress

        self.epochs, self.steps = epochs, steps
        self.title = f"{model} on {dataset}"
        self._epoch = 1
        self._progress = Progress(self._description(), total=epochs * steps, unit="steps", enabled=enabled)

    def __enter__(self) -> _Reporter:
        self._progress.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        self._progress.__exit__(*exc)

    def _description(self) -> str:
        return f"training {self.title}, epoch {self._epoch}/{self.epochs}"

    def step(self) -> None:
        self._progress.advance()

    def epoch_done(self, row: dict[str, float], lr: float) -> None:
        epoch = int(row["epoch"])
        self._progress.print(
            f"{self.title}: epoch {epoch}/{self.epochs}  loss {row['train_loss']:.4f}  "
            f"train acc {100 * row['train_accuracy']:.2f}%  val acc {100 * row['val_accuracy']:.2f}%  "
            f"lr {lr:.2e}  {row['time_s']:.1f} s"
        )
        self._epoch = min(epoch + 1, self.epochs)
        self._progress.label = self._description()
