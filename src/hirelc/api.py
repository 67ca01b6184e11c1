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
    """Model-free search (layers + evaluate) -> SearchResult, or a search job (model + data +
    out) -> result dict. Options go to `hirelc.methods.api.search` or `JobConfig`."""
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
        objects["data"], data = data, getattr(data, "name", type(data).__name__)
    config = JobConfig(method=method, model=model, data=data, **options)
    return run_job(config, out, **run_flags, **objects)
