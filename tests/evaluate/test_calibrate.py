"""The size model agrees with the packed file's data section to the byte; Fisher importance."""

import numpy as np
import pytest
import torch

from hirelc.compress.quantize import dequantize, quantize
from hirelc.evaluate.calibrate import fisher_importance, kernel_weights, measure_damage_model, measure_size_model
from hirelc.evaluate.sensitivity import fisher_sensitivity, kernels_from_specs
from hirelc.export.packed import export_packed, read_layout, storage_bytes_model
from hirelc.inventory import inspect
from hirelc.methods.space import SearchSpace, SpaceConfig
from hirelc.plan import LayerConfig, Plan
from hirelc.zoo import create_model


@pytest.mark.parametrize("name", ["lenet5", *(pytest.param(n, marks=pytest.mark.slow)
                                              for n in ("resnet20", "vit_tiny", "mobilenetv2"))])
def test_size_model_equals_the_storage_model_on_random_joint_plans(name):
    model = create_model(name, in_channels=1, num_classes=10, image_size=28).eval()
    inv = inspect(model, torch.randn(2, 1, 28, 28))
    sizes = measure_size_model(model, inv)
    space = SearchSpace(tuple(inv), SpaceConfig())
    rng = np.random.default_rng(0)
    for _ in range(3):
        plan = space.sample(rng)
        assert sizes.nbytes(plan) == storage_bytes_model(model, plan, inventory=inv)
    assert sizes.fp32_bytes == storage_bytes_model(model, Plan({}), inventory=inv)


def test_size_model_matches_the_written_file(tmp_path):
    model = create_model("lenet5", in_channels=1, num_classes=10, image_size=28).eval()
    inv = inspect(model, torch.randn(2, 1, 28, 28))
    plan = SearchSpace(tuple(inv), SpaceConfig()).sample(np.random.default_rng(1))
    export_packed(model, plan, tmp_path / "m.hirelc", inventory=inv)
    assert read_layout(tmp_path / "m.hirelc").data_bytes == measure_size_model(model, inv).nbytes(plan)


def test_damage_grows_as_bits_fall_and_pruning_costs_the_least_salient_rows():
    model = create_model("lenet5", in_channels=1, num_classes=10, image_size=28).eval()
    specs = list(inspect(model, torch.randn(2, 1, 28, 28)))
    space = SearchSpace(tuple(specs), SpaceConfig())
    damage = measure_damage_model(space, kernel_weights(model, specs))
    name = next(s.name for s in specs if s.prunable)
    d = [damage.of(name, LayerConfig(b)) for b in (8, 4, 2)]
    assert d[0] < d[1] < d[2]
    assert damage.of(name, LayerConfig(8, keep_ratio=0.25)) > damage.of(name, LayerConfig(8, keep_ratio=0.75)) > 0


def test_fisher_importance_has_one_score_per_unit_of_every_prunable_group():
    from hirelc.data import load_dataset

    data = load_dataset("digits", seed=0)
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(64, 32), torch.nn.ReLU(), torch.nn.Linear(32, 10))
    inv = inspect(model, data.example_input(2))
    kernels, blocks = kernels_from_specs(list(inv))
    sens = fisher_sensitivity(model, data, kernels, n_batches=2, blocks=blocks)
    importance = fisher_importance(sens, inv.groups)
    prunable = {gid: g for gid, g in inv.groups.items() if g.prunable}
    assert set(importance) == set(prunable)
    for gid, scores in importance.items():
        assert scores.shape == (prunable[gid].size,) and bool((scores >= 0).all())
    expected = torch.as_tensor(sens.per_channel_saliency["1"], dtype=torch.float32)
    assert torch.allclose(importance["1"], expected)


def test_a_diagonal_fisher_weights_each_weights_quantization_error():
    model = torch.nn.Sequential(torch.nn.Linear(8, 4))
    specs = list(inspect(model, torch.randn(2, 8)))
    space = SearchSpace(tuple(specs), SpaceConfig(bits=(2,), formats=("int_sym",), granularities=("per_tensor",)))
    w = kernel_weights(model, specs)["0"]
    f = torch.zeros_like(w)
    f[1] = 3.0  # all the Fisher on row 1
    key = (2, "int_sym", "per_tensor", None)
    diag = measure_damage_model(space, {"0": w}, fisher_diag={"0": f}).quant["0"][key]
    err2 = (dequantize(quantize(w, LayerConfig(2, granularity="per_tensor"))) - w).pow(2)
    assert diag == pytest.approx(float(0.5 * 3.0 * err2[1].sum()), rel=1e-5)
    trace = measure_damage_model(space, {"0": w}, fisher_trace={"0": float(f.sum())}).quant["0"][key]
    assert trace == pytest.approx(float(0.5 * f.sum() * err2.mean()), rel=1e-5)  # the trace route spreads it
