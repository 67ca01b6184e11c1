"""Fisher sensitivity of each kernel, block and output channel (DESIGN.md step 5).

The empirical Fisher information of a weight is approximated by the mean squared gradient of
the training loss over N calibration batches of the train split:

    F_i = (1/N) * sum_b (dL_b / dw_i)^2          (diagonal empirical Fisher, batch gradients)

A kernel's sensitivity is sum_i F_i over its weight (the trace of its diagonal Fisher
block), normalised to sum to 1 over all kernels; a block's is the sum over its kernels.
Per output channel (row of the weight) two numbers are kept for pruning importance:
`per_channel` = sum of F_i over the row, and `per_channel_saliency` = 1/2 * sum F_i * w_i^2,
the Optimal-Brain-Damage estimate of the loss increase from zeroing the row with the Fisher
standing in for the Hessian (LeCun et al. 1990; Theis et al., "Faster gaze prediction with
dense networks and Fisher pruning", 2018).

The model is measured in eval mode (BatchNorm running statistics, no dropout): the function
that will be compressed. Gradients are taken with `torch.autograd.grad`, so the model's
`.grad` fields are left untouched.

>>> from hirelc.data import load_dataset
>>> data = load_dataset("digits", seed=0)
>>> _ = torch.manual_seed(0)
>>> model = nn.Sequential(nn.Conv2d(1, 4, 3), nn.ReLU(), nn.Flatten(), nn.Linear(4 * 6 * 6, 10))
>>> kernels = {"conv1": ("0", "weight"), "fc": ("3", "weight")}  # name -> (module, parameter)
>>> s = fisher_sensitivity(model, data, kernels, n_batches=8, batch_size=64, seed=0)
>>> round(sum(s.per_kernel.values()), 6)
1.0
>>> s.ranked(), [len(s.per_channel[k]) for k in kernels]   # one score per output channel
(['fc', 'conv1'], [4, 10])
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import warnings
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
import torch.nn.functional as F
from torch import nn

from hirelc.evaluate._data import qualname, split_loader
from hirelc.evaluate.fingerprint import data_fingerprint, model_fingerprint
from hirelc.rundir import SENSITIVITY_FILE, RunDir, atomic_write_text

if TYPE_CHECKING:
    from hirelc.inventory.spec import LayerSpec

KernelMap = Mapping[str, tuple[str, str]]  # kernel name -> (module path, parameter attribute)
LossFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


@dataclass
class Sensitivity:
    """Fisher sensitivity scores; see the module docstring for the definitions.

    per_kernel: kernel -> share of the total Fisher trace (sums to 1).
    per_block: block -> sum of its kernels' shares (sums to 1), in first-seen order.
    per_channel: kernel -> Fisher trace of each output row (unnormalised).
    per_channel_saliency: kernel -> 1/2 sum F w^2 of each output row (unnormalised, in
        loss units, so comparable across kernels).
    raw_per_kernel: kernel -> unnormalised Fisher trace.
    blocks: kernel -> block name.
    """

    per_kernel: dict[str, float]
    per_block: dict[str, float]
    per_channel: dict[str, list[float]]
    per_channel_saliency: dict[str, list[float]]
    raw_per_kernel: dict[str, float]
    blocks: dict[str, str]
    n_batches: int
    batch_size: int
    seed: int
    fingerprint: str = ""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "Sensitivity":
        unknown = set(d) - set(cls.__dataclass_fields__)
        if unknown:
            raise ValueError(f"unknown Sensitivity fields {sorted(unknown)}")
        return cls(**dict(d))

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=1)

    @classmethod
    def from_json(cls, text: str) -> "Sensitivity":
        try:
            return cls.from_dict(json.loads(text))
        except json.JSONDecodeError as e:
            raise ValueError(f"sensitivity is not valid JSON: {e}") from None

    def ranked(self) -> list[str]:
        """Kernel names, most sensitive first."""
        return sorted(self.per_kernel, key=lambda k: -self.per_kernel[k])


def kernels_from_specs(specs: Iterable["LayerSpec"]) -> tuple[dict[str, tuple[str, str]], dict[str, str]]:
    """({kernel: (module path, param)}, {kernel: block}) from `hirelc.inspect` specs.

    >>> import hirelc
    >>> from hirelc.data import load_dataset
    >>> data = load_dataset("digits", seed=0)
    >>> model = nn.Sequential(nn.Conv2d(1, 4, 3), nn.ReLU(), nn.Flatten(), nn.Linear(4 * 6 * 6, 10))
    >>> kernels, blocks = kernels_from_specs(hirelc.inspect(model, data.example_input(2)))
    >>> kernels, blocks
    ({'0': ('0', 'weight'), '3': ('3', 'weight')}, {'0': '0', '3': '3'})
    >>> s = fisher_sensitivity(model, data, kernels, blocks=blocks)
    >>> list(s.per_block)
    ['0', '3']
    """
    specs = list(specs)
    return {s.name: (s.module, s.param) for s in specs}, {s.name: s.block for s in specs}


def fisher_sensitivity(
    model: nn.Module,
    data: Any,
    kernels: KernelMap,
    n_batches: int = 16,
    batch_size: int = 64,
    seed: int = 0,
    *,
    blocks: Mapping[str, str] | None = None,
    loss_fn: LossFn = F.cross_entropy,
    run_dir: RunDir | str | os.PathLike[str] | None = None,
) -> Sensitivity:
    """Empirical Fisher sensitivity of `kernels` over `n_batches` train batches.

    `kernels` maps each kernel name to (module path, parameter attribute), e.g.
    {"features.0": ("features.0", "weight"), "attn.in_proj": ("attn", "in_proj_weight")};
    `blocks` maps kernel -> block (default: each kernel is its own block). With `run_dir`,
    the result is cached in its `sensitivity.json` and reused while model weights, data and
    arguments are unchanged.

    >>> import os, tempfile
    >>> from hirelc.data import load_dataset
    >>> data = load_dataset("digits", seed=0)
    >>> model = nn.Sequential(nn.Flatten(), nn.Linear(64, 10))
    >>> run = tempfile.mkdtemp()
    >>> s = fisher_sensitivity(model, data, {"fc": ("1", "weight")}, n_batches=4, run_dir=run)
    >>> s.per_kernel, len(s.per_channel["fc"]), os.listdir(run)
    ({'fc': 1.0}, 10, ['sensitivity.json'])
    >>> fisher_sensitivity(model, data, {"fc": ("1", "weight")}, n_batches=4, run_dir=run) == s
    True
    """
    _check_args(kernels, n_batches, batch_size)
    blocks = {name: (blocks or {}).get(name, name) for name in kernels}
    key = _cache_key(model, data, kernels, blocks, n_batches, batch_size, seed, loss_fn)
    path = _cache_path(run_dir)
    cached = _read_cache(path, key)
    if cached is not None:
        return cached
    params = _resolve_params(model, kernels)
    fisher, used = _mean_squared_grads(model, data, params, n_batches, batch_size, seed, loss_fn)
    result = _summarise(fisher, params, blocks, used, batch_size, seed, key)
    if path is not None:
        atomic_write_text(path, result.to_json() + "\n")
    return result


# -- computation -----------------------------------------------------------------------------


def _resolve_params(model: nn.Module, kernels: KernelMap) -> dict[str, torch.Tensor]:
    params = {}
    for name, (module_path, attr) in kernels.items():
        try:
            module = model.get_submodule(module_path)
        except AttributeError:
            raise ValueError(f"kernel {name!r}: the model has no module {module_path!r}") from None
        param = getattr(module, attr, None)
        if not isinstance(param, nn.Parameter) or not param.is_floating_point():
            raise ValueError(
                f"kernel {name!r}: {module_path or '<root>'}.{attr} is not a floating-point "
                f"parameter of the model (got {type(param).__name__})"
            )
        params[name] = param
    return params


@contextmanager
def _grads_enabled(params: Iterable[nn.Parameter]) -> Iterator[None]:
    """Frozen kernels (requires_grad=False) still get a Fisher score; flags are restored."""
    params = list(params)
    flags = [p.requires_grad for p in params]
    try:
        for p in params:
            p.requires_grad_(True)
        yield
    finally:
        for p, flag in zip(params, flags):
            p.requires_grad_(flag)


def _mean_squared_grads(
    model: nn.Module,
    data: Any,
    params: dict[str, torch.Tensor],
    n_batches: int,
    batch_size: int,
    seed: int,
    loss_fn: LossFn,
) -> tuple[dict[str, torch.Tensor], int]:
    """{kernel: mean over batches of grad^2} (same shape as the weight), batches used."""
    names, tensors = list(params), list(params.values())
    squares = [torch.zeros_like(p, dtype=torch.float32) for p in tensors]
    device = tensors[0].device
    was_training, used = model.training, 0
    model.eval()  # the function being compressed: BN running stats, no dropout
    try:
        with _grads_enabled(tensors):
            for x, y in _calibration_batches(data, batch_size, seed, n_batches):
                loss = loss_fn(model(x.to(device)), y.to(device))
                grads = torch.autograd.grad(loss, tensors, allow_unused=True)
                for sq, g in zip(squares, grads):
                    if g is not None:
                        sq += g.detach().float() ** 2
                used += 1
    finally:
        model.train(was_training)
    if used == 0:
        raise ValueError("fisher_sensitivity: the train split yielded no batches")
    _warn_unused(names, squares)
    return {n: sq / used for n, sq in zip(names, squares)}, used


def _calibration_batches(data: Any, batch_size: int, seed: int, n_batches: int) -> Iterable[Any]:
    for i, batch in enumerate(split_loader(data, "train", batch_size, shuffle=True, seed=seed)):
        if i == n_batches:
            return
        yield batch


def _warn_unused(names: list[str], squares: list[torch.Tensor]) -> None:
    dead = [n for n, sq in zip(names, squares) if not bool(sq.any())]
    if dead:
        warnings.warn(
            f"fisher_sensitivity: kernels {dead} got zero gradient on every calibration batch "
            "(unused in forward, or their outputs do not reach the loss); their sensitivity is 0",
            stacklevel=4,
        )


def _summarise(
    fisher: dict[str, torch.Tensor],
    params: dict[str, torch.Tensor],
    blocks: dict[str, str],
    used: int,
    batch_size: int,
    seed: int,
    key: str,
) -> Sensitivity:
    raw = {n: float(f.sum()) for n, f in fisher.items()}
    total = sum(raw.values())
    if total > 0 and math.isfinite(total):
        shares = {n: v / total for n, v in raw.items()}
    else:  # a perfectly fit model (or a broken loss): no evidence, so no preference
        warnings.warn(f"fisher_sensitivity: total Fisher is {total}; using uniform scores", stacklevel=3)
        shares = {n: 1.0 / len(raw) for n in raw}
    per_block: dict[str, float] = {}
    for name, share in shares.items():
        per_block[blocks[name]] = per_block.get(blocks[name], 0.0) + share
    return Sensitivity(
        per_kernel=shares,
        per_block=per_block,
        per_channel={n: _rows(f).sum(dim=1).tolist() for n, f in fisher.items()},  # (rows,)
        per_channel_saliency={
            n: (0.5 * _rows(f) * _rows(params[n].detach().float()) ** 2).sum(dim=1).tolist()
            for n, f in fisher.items()
        },
        raw_per_kernel=raw,
        blocks=dict(blocks),
        n_batches=used,
        batch_size=batch_size,
        seed=seed,
        fingerprint=key,
    )


def _rows(t: torch.Tensor) -> torch.Tensor:
    return t.reshape(t.shape[0], -1) if t.dim() > 1 else t.reshape(-1, 1)  # (rows, cols)


# -- run-directory cache ---------------------------------------------------------------------


def _cache_key(
    model: nn.Module,
    data: Any,
    kernels: KernelMap,
    blocks: dict[str, str],
    n_batches: int,
    batch_size: int,
    seed: int,
    loss_fn: LossFn,
) -> str:
    parts = {
        "model": model_fingerprint(model),
        "data": data_fingerprint(data),
        "kernels": {k: list(v) for k, v in kernels.items()},
        "blocks": blocks,
        "n_batches": n_batches,
        "batch_size": batch_size,
        "seed": seed,
        "loss_fn": qualname(loss_fn),
    }
    return hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()[:20]


def _cache_path(run_dir: RunDir | str | os.PathLike[str] | None) -> Path | None:
    if run_dir is None:
        return None
    return run_dir.sensitivity_path if isinstance(run_dir, RunDir) else Path(run_dir) / SENSITIVITY_FILE


def _read_cache(path: Path | None, key: str) -> Sensitivity | None:
    if path is None or not path.exists():
        return None
    try:
        cached = Sensitivity.from_json(path.read_text(encoding="utf-8"))
    except (OSError, ValueError, TypeError) as e:
        warnings.warn(f"ignoring unreadable {path} ({e}); recomputing", stacklevel=3)
        return None
    return cached if cached.fingerprint == key else None


def _check_args(kernels: KernelMap, n_batches: int, batch_size: int) -> None:
    if not kernels:
        raise ValueError("fisher_sensitivity needs at least one kernel")
    for name, value in kernels.items():
        if not (isinstance(value, (tuple, list)) and len(value) == 2):
            raise ValueError(
                f"kernel {name!r}: expected (module path, parameter name), got {value!r}"
            )
    for what, v in (("n_batches", n_batches), ("batch_size", batch_size)):
        if isinstance(v, bool) or not isinstance(v, int) or v < 1:
            raise ValueError(f"{what} must be a positive integer, got {v!r}")
