"""Every registered zoo model survives the compression core end to end: inspect, a uniform
4-bit plan pruning half of every prunable kernel, export_packed, load_packed. The loaded model
computes what apply_plan's model computes and is physically smaller."""

from __future__ import annotations

import struct

import pytest
import torch
from torch import nn

from hirelc.compress.apply import apply_plan
from hirelc.export.packed import export_packed, load_packed, storage_bytes_model
from hirelc.inventory import inspect
from hirelc.plan import Plan
from hirelc.zoo import create_model, list_models

# Models slower than ~2 s on one thread would be marked here: pytest.param(name, marks=pytest.mark.slow).
# On the reference machine every zoo model takes 0.1-1 s (1x28x28 inputs, default widths).
SLOW: set[str] = set()


def _randomize_batchnorms_(model: nn.Module) -> nn.Module:
    """Non-trivial BatchNorm statistics and affine parameters, so that a pruned channel's
    BatchNorm output would not be zero unless its affine parameters are removed with it."""
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.modules.batchnorm._BatchNorm):
                m.running_mean.uniform_(-0.5, 0.5)
                m.running_var.uniform_(0.5, 2.0)
                m.weight.uniform_(0.5, 1.5)
                m.bias.uniform_(-0.5, 0.5)
    return model


@pytest.mark.parametrize(
    "name", [pytest.param(n, marks=pytest.mark.slow) if n in SLOW else n for n in list_models()]
)
def test_zoo_model_packed_round_trip(name: str, tmp_path) -> None:
    torch.manual_seed(0)
    model = _randomize_batchnorms_(create_model(name, in_channels=1, num_classes=10, image_size=28)).eval()
    x = torch.randn(4, 1, 28, 28)
    inv = inspect(model, x[:1])
    plan = Plan.uniform(inv, bits=4, keep_ratio=0.5)

    path = tmp_path / f"{name}.hlc"
    size = export_packed(model, plan, path, inventory=inv)
    assert size == path.stat().st_size
    (header_len,) = struct.unpack("<Q", path.read_bytes()[:8])
    assert size == 8 + header_len + storage_bytes_model(model, plan, inventory=inv)

    torch.manual_seed(1)  # another initialisation: every weight must come from the file
    like = create_model(name, in_channels=1, num_classes=10, image_size=28)
    loaded = load_packed(path, like=like).eval()
    reference = apply_plan(model, plan, inventory=inv).eval()
    with torch.no_grad():
        expected = reference(x)
        got = loaded(x)
    assert got.shape == (4, 10)
    torch.testing.assert_close(got, expected, rtol=0, atol=1e-5)

    n_before = sum(p.numel() for p in model.parameters())
    n_after = sum(p.numel() for p in loaded.parameters())
    if inv.prunable_names():
        assert n_after < n_before, f"{name}: nothing was removed ({n_after} of {n_before} parameters)"
    else:
        assert n_after == n_before


def test_cnn1d_packed_round_trip_on_signals(tmp_path) -> None:
    """The Conv1d model pruned and quantised on (B, 1, 40) signals: the loaded file computes the same."""
    torch.manual_seed(0)
    model = _randomize_batchnorms_(create_model("cnn1d", in_channels=1, num_classes=10, image_size=40)).eval()
    x = torch.randn(4, 1, 40)
    inv = inspect(model, x[:1])
    plan = Plan.uniform(inv, bits=3, keep_ratio=0.5)
    path = tmp_path / "cnn1d.hlc"
    export_packed(model, plan, path, inventory=inv)
    loaded = load_packed(path, like=create_model("cnn1d", 1, 10, 40)).eval()
    reference = apply_plan(model, plan, inventory=inv).eval()
    with torch.no_grad():
        torch.testing.assert_close(loaded(x), reference(x), rtol=0, atol=1e-5)
    convs = [m for m in loaded.modules() if isinstance(m, nn.Conv1d)]
    assert [c.out_channels for c in convs] == [16, 16, 32, 32]  # half of every prunable kernel's channels
    assert [c.in_channels for c in convs] == [1, 16, 16, 32] and loaded.classifier[1].in_features == 32
