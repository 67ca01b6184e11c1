"""Every zoo model exports to ONNX and computes what hirelc's compressed model computes
(tolerance: tests/export/test_onnx.py). Random-init weights: equivalence needs no training."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from hirelc.compress.apply import apply_plan
from hirelc.export.onnx import export_onnx
from hirelc.inventory import inspect
from hirelc.plan import Plan
from hirelc.zoo import create_model, list_models

from .test_onnx import assert_matches, run_onnx

# one pruned plan per model by default (0.2-1.2 s each on an idle machine); every format and
# both conv weight forms in the slow sweep
FORMATS = {
    "int_sym": dict(bits=3, granularity="per_channel"),
    "int_asym": dict(bits=4, number_format="int_asym", granularity="per_group", group_size=32),
    "pow2": dict(bits=4, number_format="pow2", granularity="per_tensor"),
    "float": dict(bits=4, number_format="float", granularity="per_group", group_size=16),
}


def _zoo(name: str) -> tuple[nn.Module, torch.Tensor]:
    torch.manual_seed(0)
    model = create_model(name, in_channels=3, num_classes=10, image_size=32).eval()
    with torch.no_grad():  # non-trivial BatchNorms, so a dropped channel would show
        for m in model.modules():
            if isinstance(m, nn.modules.batchnorm._BatchNorm):
                m.running_mean.uniform_(-0.5, 0.5)
                m.running_var.uniform_(0.5, 2.0)
                m.weight.uniform_(0.5, 1.5)
                m.bias.uniform_(-0.5, 0.5)
    return model, torch.randn(2, 3, 32, 32)


def _check(name: str, plan_of, tmp_path, decode: str = "runtime") -> None:
    model, x = _zoo(name)
    inv = inspect(model, x[:1])
    plan = plan_of(inv)
    result = export_onnx(model, plan, tmp_path / f"{name}.onnx", x[:1], inventory=inv, decode=decode)
    with torch.no_grad():
        assert_matches(run_onnx(result.path, x), apply_plan(model, plan, inventory=inv).eval()(x))
    assert [k.name for k in result.kernels] == list(plan)


@pytest.mark.parametrize("name", list_models())
def test_zoo_model_pruned_4bit_onnx_matches(name: str, tmp_path) -> None:
    _check(name, lambda inv: Plan.uniform(inv, bits=4, keep_ratio=0.5, granularity="per_group", group_size=32),
           tmp_path)


@pytest.mark.slow
@pytest.mark.parametrize("decode", ["runtime", "load"])
@pytest.mark.parametrize("fmt", sorted(FORMATS))
@pytest.mark.parametrize("name", list_models())
def test_zoo_model_onnx_matches_in_every_format(name: str, fmt: str, decode: str, tmp_path) -> None:
    _check(name, lambda inv: Plan.uniform(inv, keep_ratio=0.75, **FORMATS[fmt]), tmp_path, decode)
