"""Hand-built models of what model libraries build (tests/inventory/arch_models.py) export to
ONNX pruned at keep 0.5 and 4 bits, and compute what hirelc's compressed model computes
(tolerance: tests/export/test_onnx.py). Random-init weights: equivalence needs no training."""

from __future__ import annotations

import pytest
import torch

from hirelc.compress.apply import apply_plan
from hirelc.export.onnx import export_onnx
from hirelc.inventory import inspect
from hirelc.plan import Plan
from inventory.arch_models import ARCH_MODELS, randomize_norms_

from .test_onnx import assert_matches, run_onnx


# the EmbeddingBag model fails onnx.checker (its weight initializer placed after the node
# reading it): known, left to the export owner; strict, so a fix shows up here
BAG = pytest.param("bag_classifier", marks=pytest.mark.xfail(strict=True, reason="EmbeddingBag export"))


@pytest.mark.parametrize("name", [BAG if n == "bag_classifier" else n for n in sorted(ARCH_MODELS)])
def test_arch_model_pruned_4bit_onnx_matches(name: str, tmp_path) -> None:
    factory, example = ARCH_MODELS[name]
    torch.manual_seed(0)
    model = randomize_norms_(factory()).eval()
    torch.manual_seed(123)
    x = example()
    inv = inspect(model, x)
    plan = Plan.uniform(inv, bits=4, keep_ratio=0.5)
    result = export_onnx(model, plan, tmp_path / f"{name}.onnx", x, inventory=inv)
    with torch.no_grad():
        assert_matches(run_onnx(result.path, x), apply_plan(model, plan, inventory=inv).eval()(x))
