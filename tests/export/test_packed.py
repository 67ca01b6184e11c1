"""The packed file: round trips on CNN / ResNet / ViT / MHA models, size = storage model,
and damaged files refused."""

from __future__ import annotations

import math
import struct

import pytest
import safetensors.torch
import torch
from torch import nn
from torch.nn.utils import parametrize

from hirelc.compress.apply import apply_plan, to_physical
from hirelc.cost import kept_shapes, total_storage_bits
from hirelc.export.packed import PackedFileError, export_packed, load_packed, storage_bytes_model
from hirelc.inventory import inspect
from hirelc.plan import LayerConfig, Plan
from inventory.toy_models import LeNet, MHAModel, ResNetish, TinyViT, randomize_batchnorm_

MODELS = {
    "lenet": (LeNet, (1, 28, 28)),
    "resnetish": (lambda: randomize_batchnorm_(ResNetish()), (3, 8, 8)),
    "vit": (TinyViT, (3, 8, 8)),
}


@pytest.fixture(scope="module")
def zoo():
    """name -> (eval-mode model, example input, inventory), built once per module."""
    out = {}
    for name, (factory, shape) in MODELS.items():
        torch.manual_seed(0)
        model = factory().eval()
        x = torch.randn(4, *shape)
        out[name] = (model, x, inspect(model, x))
    return out


def mixed_plan(inventory, keep_ratio: float = 0.5) -> Plan:
    """Every format and granularity somewhere, pruning every prunable kernel."""
    configs = [
        dict(bits=4),
        dict(bits=3, number_format="int_asym", granularity="per_group", group_size=5),
        dict(bits=5, number_format="pow2", granularity="per_tensor"),
        dict(bits=6, number_format="float", granularity="per_group", group_size=8),
        dict(bits=1, granularity="per_channel"),
        dict(bits=8, number_format="int_asym"),
    ]
    layers = {}
    for i, spec in enumerate(inventory):
        kr = keep_ratio if spec.prunable else 1.0
        layers[spec.name] = LayerConfig(keep_ratio=kr, **configs[i % len(configs)])
    return Plan(layers)


def header_bytes(path) -> int:
    with open(path, "rb") as f:
        (n,) = struct.unpack("<Q", f.read(8))
    return 8 + n


def n_weights(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


@pytest.mark.parametrize("name", list(MODELS))
def test_round_trip_equals_apply_plan_and_is_physically_smaller(zoo, name, tmp_path):
    model, x, inv = zoo[name]
    plan = mixed_plan(inv)
    small = apply_plan(model, plan, inventory=inv).eval()
    path = tmp_path / f"{name}.hlc"
    size = export_packed(small, plan, path)
    loaded = load_packed(path, like=model).eval()
    with torch.no_grad():
        assert torch.allclose(loaded(x), small(x), atol=1e-5, rtol=0)
    assert not any(parametrize.is_parametrized(m) for m in loaded.modules())
    assert n_weights(loaded) < n_weights(model)
    # the file is the storage model plus the safetensors header, to the byte
    assert size == path.stat().st_size
    assert size - header_bytes(path) == storage_bytes_model(small, plan)


@pytest.mark.parametrize("granularity", ["per_tensor", "per_channel", "per_group"])
@pytest.mark.parametrize("fmt", ["int_sym", "int_asym", "pow2", "float"])
def test_every_format_and_granularity_round_trips(zoo, fmt, granularity, tmp_path):
    model, x, inv = zoo["lenet"]
    plan = Plan.uniform(
        inv, bits=5, keep_ratio=0.75, number_format=fmt, granularity=granularity, group_size=7
    )
    small = apply_plan(model, plan, inventory=inv).eval()
    size = export_packed(small, plan, tmp_path / "f.hlc")
    loaded = load_packed(tmp_path / "f.hlc", like=model).eval()
    with torch.no_grad():
        assert torch.allclose(loaded(x), small(x), atol=1e-5, rtol=0)
    assert size - header_bytes(tmp_path / "f.hlc") == storage_bytes_model(small, plan)


@pytest.mark.parametrize("name", list(MODELS))
def test_cost_model_shapes_and_bits_agree_with_the_pruned_model(zoo, name, tmp_path):
    # hirelc.cost predicts pruned shapes and storage from LayerSpecs alone; the physically
    # pruned model and the written file must agree with it.
    model, x, inv = zoo[name]
    plan = mixed_plan(inv)
    small = apply_plan(model, plan, inventory=inv)
    physical = to_physical(small)
    predicted = kept_shapes(inv, plan)
    for spec in inv:
        w = physical.get_submodule(spec.module).get_parameter(spec.param)
        assert predicted[spec.name] == (w.shape[0], math.prod(w.shape[1:])), spec.name
    export_packed(small, plan, tmp_path / "f.hlc")
    stored = safetensors.torch.load_file(tmp_path / "f.hlc")
    kernel_bytes = sum(
        t.numel() * t.element_size()
        for k, t in stored.items()
        if k.rpartition(".")[0] in plan and k.rpartition(".")[2] in ("codes", "scale", "zero_point")
    )
    assert 8 * kernel_bytes == total_storage_bits(inv, plan)


def test_export_from_original_model_is_identical_to_export_of_apply_plan(zoo, tmp_path):
    model, x, inv = zoo["resnetish"]
    plan = mixed_plan(inv)
    export_packed(model, plan, tmp_path / "a.hlc", example_input=x)
    export_packed(apply_plan(model, plan, x), plan, tmp_path / "b.hlc")
    assert (tmp_path / "a.hlc").read_bytes() == (tmp_path / "b.hlc").read_bytes()


def test_fine_tuned_latent_weights_are_what_is_exported(zoo, tmp_path):
    model, x, inv = zoo["lenet"]
    plan = Plan.uniform(inv, bits=3, keep_ratio=0.5)
    small = apply_plan(model, plan, inventory=inv)
    opt = torch.optim.SGD(small.parameters(), lr=0.5)
    for _ in range(3):
        opt.zero_grad()
        small(x).pow(2).mean().backward()
        opt.step()
    small.eval()
    export_packed(small, None, tmp_path / "ft.hlc")  # plan None: the model's own plan
    loaded = load_packed(tmp_path / "ft.hlc", like=model).eval()
    with torch.no_grad():
        assert torch.allclose(loaded(x), small(x), atol=1e-5, rtol=0)
        assert not torch.allclose(loaded(x), apply_plan(model, plan, inventory=inv).eval()(x), atol=1e-3)


def test_multihead_attention_in_proj_round_trip(tmp_path):
    model = MHAModel().eval()
    x = torch.randn(2, 5, 6)
    plan = Plan({"attn.in_proj": LayerConfig(4, number_format="int_asym"), "attn.out_proj": LayerConfig(2)})
    size = export_packed(model, plan, tmp_path / "mha.hlc")
    stored = safetensors.torch.load_file(tmp_path / "mha.hlc")
    assert {"attn.in_proj.codes", "attn.in_proj.zero_point"} <= set(stored)
    assert "attn.in_proj_weight" not in stored
    loaded = load_packed(tmp_path / "mha.hlc", like=model).eval()
    with torch.no_grad():
        assert torch.allclose(loaded(x), apply_plan(model, plan).eval()(x), atol=1e-5, rtol=0)
    assert size - header_bytes(tmp_path / "mha.hlc") == storage_bytes_model(model, plan)


def test_tied_weights_are_stored_once_and_stay_tied(tmp_path):
    model = nn.Sequential(nn.Linear(6, 6), nn.ReLU(), nn.Linear(6, 6), nn.Linear(6, 2)).eval()
    model[2].weight = model[0].weight
    plan = Plan({"0": LayerConfig(4), "3": LayerConfig(2)})
    export_packed(model, plan, tmp_path / "tied.hlc")
    stored = safetensors.torch.load_file(tmp_path / "tied.hlc")
    assert "0.codes" in stored and "2.weight" not in stored and "0.weight" not in stored
    loaded = load_packed(tmp_path / "tied.hlc", like=model)
    assert torch.equal(loaded[0].weight, loaded[2].weight)
    x = torch.randn(3, 6)
    with torch.no_grad():
        assert torch.allclose(loaded(x), apply_plan(model, plan).eval()(x), atol=1e-5, rtol=0)


# --------------------------------------------------------------------------- damaged files


@pytest.fixture
def packed_file(zoo, tmp_path):
    model, x, inv = zoo["lenet"]
    path = tmp_path / "lenet.hlc"
    export_packed(model, mixed_plan(inv), path, example_input=x)
    return path, model


def test_a_flipped_data_byte_is_detected(packed_file):
    path, model = packed_file
    data = bytearray(path.read_bytes())
    data[-10] ^= 0x01  # inside the last tensor's bytes
    path.write_bytes(bytes(data))
    with pytest.raises(PackedFileError, match="checksum mismatch") as e:
        load_packed(path, like=model)
    assert str(path) in str(e.value)


def test_an_altered_header_is_detected(packed_file):
    path, model = packed_file
    data = path.read_bytes()
    # change the plan inside the metadata without changing the header length
    assert b'\\"bits\\":4' in data
    path.write_bytes(data.replace(b'\\"bits\\":4', b'\\"bits\\":5', 1))
    with pytest.raises(PackedFileError, match="checksum mismatch"):
        load_packed(path, like=model)


@pytest.mark.parametrize("keep", [0, 4, 8, 100, -1])
def test_a_truncated_file_is_refused(packed_file, keep):
    path, model = packed_file
    data = path.read_bytes()
    path.write_bytes(data[: keep if keep >= 0 else len(data) - 1])
    with pytest.raises(PackedFileError) as e:
        load_packed(path, like=model)
    assert str(path) in str(e.value)


def test_a_foreign_safetensors_file_is_refused(tmp_path):
    path = tmp_path / "other.safetensors"
    safetensors.torch.save_file({"w": torch.zeros(3)}, path, metadata={"format": "pt"})
    with pytest.raises(PackedFileError, match="not a hirelc packed file"):
        load_packed(path, like=nn.Linear(3, 1))


def test_a_model_that_does_not_match_is_refused(packed_file):
    path, _ = packed_file
    with pytest.raises(ValueError, match="does not match|do not fit"):
        load_packed(path, like=TinyViT())


# --------------------------------------------------------------------------- arguments


def test_export_argument_errors(zoo, tmp_path):
    model, x, inv = zoo["lenet"]
    plan = Plan.uniform(inv, bits=4, keep_ratio=0.5)
    small = apply_plan(model, plan, inventory=inv)
    with pytest.raises(ValueError, match="differs from the plan"):
        export_packed(small, Plan.uniform(inv, bits=2), tmp_path / "x.hlc")
    with pytest.raises(ValueError, match="not the output of to_physical"):
        export_packed(to_physical(small), None, tmp_path / "x.hlc")
    with pytest.raises(ValueError, match="example_input"):
        export_packed(model, plan, tmp_path / "x.hlc")  # pruning needs the channel groups
    with pytest.raises(ValueError, match="original, uncompressed model"):
        export_packed(small, None, tmp_path / "ok.hlc")
        load_packed(tmp_path / "ok.hlc", like=small)
    assert not (tmp_path / "x.hlc").exists()
