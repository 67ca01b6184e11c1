"""`hirelc.search(...)`: one entry point for both ways of searching.

- Model-free: `search(layers=[LayerSpec...], evaluate=callable, ...)` — any `plan -> accuracy`
  function (your own accuracy table, hardware measurement, evaluator); see
  `hirelc.methods.api.search` for the options.
- A search job: `search(model=..., data=..., out="runs/x", ...)` — model and data by registry
  name / import string, or your own trained `nn.Module` and `DataSplits`; runs the whole
  pipeline (baseline, search on validation data, final fine-tune, test accuracy, packed export)
  into the run directory `out` and returns result.json's content.

>>> import hirelc
>>> result = hirelc.search(layers=specs, evaluate=my_accuracy, method="releq", bits=(2, 3, 4, 5, 8),
...                        reference_accuracy=0.99, max_evaluations=100, seed=0)  # doctest: +SKIP
>>> result.plan, result.history  # doctest: +SKIP
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any


def search(
    layers: Sequence[Any] | None = None,
    evaluate: Callable[..., Any] | None = None,
    *,
    model: Any = None,
    data: Any = None,
    out: str | Path | None = None,
    method: str = "releq",
    **options: Any,
) -> Any:
    """Search a per-layer compression plan, in one of two ways.

    **Model-free** — ``search(layers=..., evaluate=..., reference_accuracy=..., max_evaluations=...)``
    returns a `SearchResult` (``.plan``, ``.best_accuracy``, ``.history``, ``.episodes``,
    ``.converged_at``, ``.stop_reason``, ``.to_dict()``).

    layers: the `LayerSpec` list from ``hirelc.inspect(model, example_input)`` (or built by hand).
    evaluate: called once per *real* evaluation with a `hirelc.Plan` — a mapping
        ``layer name -> LayerConfig`` (``plan["conv1"].bits``, ``.keep_ratio``, ``.number_format``,
        ``.granularity``; ``plan.bits()`` lists the bits in layer order). It returns the
        accuracy in [0, 1], or a dict with ``"accuracy"`` plus any extra metrics to record.
        A plan already evaluated is served from the cache and ``evaluate`` is not called again.
    reference_accuracy: accuracy of the uncompressed model (ReLeQ's StateAcc denominator). Required.
    max_evaluations: the budget of real ``evaluate`` calls (CLI ``--max-evaluations``). Required.
    method: "releq" (default), "uniform", "random", "greedy" or "tpe" (``hirelc.methods.list_methods()``).
    bits: bitwidth choices, default (2, 3, 4, 5, 8).
    seed: search seed, default 0 (same seed, same plan).
    journal: an object with ``append(record)`` / ``records()``; journaled evaluations are replayed.
    reward_params: ReLeQ reward shaping constants (a, b, th), default (0.2, 0.4, 0.4).
    space: a `SpaceConfig` (default: bits only, from ``bits``; ``SpaceConfig()`` is the joint
        bits x keep ratio x format x granularity space). ReLeQ searches bits only.
    target: ``Target(compression=16)``, ``Target(size_bytes=...)`` or
        ``Target(max_accuracy_drop=1.0)``; default none (ReLeQ's shaped reward decides).
    sizes / damage: storage and damage models (``hirelc.evaluate.calibrate``).
    other keywords: method options, e.g. for "releq" agent="lstm"|"mlp",
        reward="shaped"|"ratio"|"difference", action_space="flexible"|"restricted"
        (``ReLeQConfig``); for "tpe" n_startup_trials, multivariate (``TPEConfig``).
    Full reference: ``help(hirelc.methods.api.search)``.

    **A search job** — ``search(model=..., data=..., out="runs/x", ...)`` runs the whole
    pipeline (fp32 baseline, search on validation data, final fine-tune, test accuracy, packed
    export, report files) into the run directory ``out`` and returns result.json's content.

    model: a trained ``nn.Module`` (used as it is, not retrained), a zoo name ("releq_lenet")
        or an import string "package.module:factory".
    data: a ``hirelc.DataSplits``, a ``(train, val, test)`` tuple of torch datasets yielding
        ``(image (C, H, W), label)`` (used as-is, no normalisation), a registry name
        ("mnist5k") or an import string. The search sees ``val`` only; ``test`` is for the
        final accuracy.
    out: the run directory (required).
    job options (`hirelc.pipeline.JobConfig`, with defaults): bits=(2, 3, 4, 5, 8),
        max_evaluations=120, seed=0, split_seed=0, search_steps=20 (fine-tune steps per
        search evaluation; 0 = none), finetune_batch_size=64, final_epochs=4,
        finalists=1 (fine-tune the search's K best plans for final_epochs on validation data
        and keep the best; ``hirelc.finalists``), finetune_lr=3e-4, train_epochs=None (the
        model's recipe), device="cpu",
        options={} (method options as above), space=None (a ``SpaceConfig.to_dict()``;
        None: bits only for releq and for uniform/random without a target, joint otherwise),
        and at most one target: target_compression=None (x below fp32, whole-model storage),
        target_size=None (bytes or "64KB"), max_accuracy_drop=None (points of validation
        accuracy below fp32); where evaluations run: executor="serial" ("process": a local
        process pool; "ray": a Ray cluster), workers=None (evaluations in flight, also the
        batch a method proposes; default 1 serial, one per core otherwise), ray_address=None
        ("auto" or "HOST:PORT"; default: a local Ray instance).
    run flags: resume=False (continue the run in ``out``), force=False (overwrite it),
        progress=True (progress on stderr: a bar on a terminal, periodic lines otherwise).

    >>> import hirelc, torch
    >>> from torch.utils.data import TensorDataset
    >>> ds = TensorDataset(torch.randn(32, 1, 8, 8), torch.arange(32) % 4)
    >>> _coerce_data((ds, ds, ds)).describe()
    'datasets (split seed 0): train 32 / val 32 / test 32; 4 classes; 1x8x8'
    """
    if model is None and data is None:
        if layers is None or evaluate is None:
            raise ValueError("hirelc.search needs layers= and evaluate= (model-free search), "
                             "or model=, data= and out= (a search job)")
        from hirelc.methods.api import search as search_layers

        return search_layers(layers, evaluate, method=method, **options)
    if layers is not None or evaluate is not None:
        raise ValueError("give either layers=/evaluate= or model=/data=, not both")
    if model is None or data is None or out is None:
        raise ValueError("a search job needs model=, data= and out= (the run directory)")
    return _search_job(model, data, out, method, options)


def _search_job(model: Any, data: Any, out: str | Path, method: str, options: dict[str, Any]) -> dict[str, Any]:
    from hirelc.pipeline import JobConfig, run_job

    run_flags = {k: options.pop(k) for k in ("resume", "force", "progress") if k in options}
    objects: dict[str, Any] = {}
    if not isinstance(model, str):
        objects["model"], model = model, type(model).__name__
    if not isinstance(data, str):
        data = _coerce_data(data, options.get("split_seed", 0))
        objects["data"], data = data, data.name
    config = JobConfig(method=method, model=model, data=data, **options)
    return run_job(config, out, **run_flags, **objects)


def _coerce_data(data: Any, seed: int = 0) -> Any:
    """A `DataSplits` from what users have: `DataSplits` itself or (train, val, test) datasets."""
    from hirelc.data import DataSplits, splits_from_datasets

    if isinstance(data, DataSplits):
        return data
    if isinstance(data, (tuple, list)) and len(data) == 3:
        return splits_from_datasets(*data, name="datasets", seed=seed)
    raise TypeError(
        f"data= must be a hirelc.DataSplits, a (train, val, test) tuple of torch datasets, a dataset name "
        f"or 'package.module:factory'; got {type(data).__name__}"
        + (f" of length {len(data)}" if isinstance(data, (tuple, list)) else "")
    )
