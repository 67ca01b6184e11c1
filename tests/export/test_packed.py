"""The packed file: round trips on CNN / ResNet / ViT / MHA models, size = storage model,
the blob layout (format version 2), and damaged or crafted files refused."""

from __future__ import annotations

import base64
import json
import math
import os
import struct
import subprocess
import sys
import textwrap
import zlib

import pytest
import safetensors.torch
import torch
from torch import nn
from torch.nn.utils import parametrize

from hirelc.compress.apply import apply_plan, compact_latent_weights, to_physical
from hirelc.compress.quantize import quantize
from hirelc.cost import kept_shapes, total_storage_bits
from hirelc.export import packed as packed_module
from hirelc.export.packed import (
    PackedFileError,
    export_packed,
    load_packed,
    read_layout,
    storage_bytes_model,
)
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
    layout = read_layout(tmp_path / "f.hlc")
    assert sorted(layout.kernels.values()) == sorted(plan)
    kernel_bytes = sum(sum(layout.entries[key].values()) for key in layout.kernels)
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
    layout = read_layout(tmp_path / "mha.hlc")
    assert layout.kernels["attn.in_proj_weight"] == "attn.in_proj"
    assert set(layout.entries["attn.in_proj_weight"]) == {"codes", "scales", "zero_points"}
    assert set(layout.entries["attn.out_proj.weight"]) == {"codes", "scales"}
    loaded = load_packed(tmp_path / "mha.hlc", like=model).eval()
    with torch.no_grad():
        assert torch.allclose(loaded(x), apply_plan(model, plan).eval()(x), atol=1e-5, rtol=0)
    assert size - header_bytes(tmp_path / "mha.hlc") == storage_bytes_model(model, plan)


def test_tied_weights_are_stored_once_and_stay_tied(tmp_path):
    model = nn.Sequential(nn.Linear(6, 6), nn.ReLU(), nn.Linear(6, 6), nn.Linear(6, 2)).eval()
    model[2].weight = model[0].weight
    plan = Plan({"0": LayerConfig(4), "3": LayerConfig(2)})
    export_packed(model, plan, tmp_path / "tied.hlc")
    layout = read_layout(tmp_path / "tied.hlc")
    assert layout.kernels["0.weight"] == "0" and layout.shared == {"2.weight": "0.weight"}
    assert "2.weight" not in layout.entries
    assert layout.entries["0.weight"] == {"codes": 18, "scales": 12}  # 36 x 4 bits, 6 float16
    loaded = load_packed(tmp_path / "tied.hlc", like=model)
    assert torch.equal(loaded[0].weight, loaded[2].weight)
    x = torch.randn(3, 6)
    with torch.no_grad():
        assert torch.allclose(loaded(x), apply_plan(model, plan).eval()(x), atol=1e-5, rtol=0)


# --------------------------------------------------------------------------- damaged files


@pytest.fixture
def packed_file(zoo, tmp_path):
    """A ResNet-ish file: it has every blob (codes, scales, zero_points, data.float32 and
    data.int64 for BatchNorm's num_batches_tracked)."""
    model, x, inv = zoo["resnetish"]
    path = tmp_path / "resnetish.hlc"
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


def file_regions(path) -> dict[str, tuple[int, int]]:
    """[start, end) byte ranges of a packed file: the 8-byte length, the JSON header, the
    compressed metadata string inside it, and every blob in the data section."""
    data = path.read_bytes()
    (n,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8 : 8 + n])
    envelope = json.loads(header.pop("__metadata__")["hirelc"])
    meta_at = data.index(envelope["meta"].encode(), 8)
    regions = {"length": (0, 8), "header": (8, 8 + n),
               "metadata": (meta_at, meta_at + len(envelope["meta"]))}
    for name, info in header.items():
        a, b = info["data_offsets"]
        regions[f"blob {name}"] = (8 + n + a, 8 + n + b)
    return regions


def test_an_altered_plan_in_the_metadata_is_detected(packed_file):
    # re-encode the metadata with a changed plan (a valid payload, old checksum)
    path, model = packed_file
    data = path.read_bytes()
    (n,) = struct.unpack("<Q", data[:8])
    envelope = json.loads(json.loads(data[8 : 8 + n])["__metadata__"]["hirelc"])
    meta = json.loads(zlib.decompress(base64.b64decode(envelope["meta"])))
    name = next(k for k, cfg in meta["plan"].items() if cfg["b"] == 4)
    meta["plan"][name]["b"] = 5
    forged = base64.b64encode(zlib.compress(json.dumps(meta).encode(), 9)).decode()
    rewrite_envelope(path, dict(envelope, meta=forged))
    with pytest.raises(PackedFileError, match="checksum mismatch"):
        load_packed(path, like=model)


@pytest.mark.parametrize("where", ["length", "header", "metadata", "blob codes", "blob scales",
                                   "blob zero_points", "blob data.float32", "blob data.int64"])
@pytest.mark.parametrize("at", [0.0, 0.5, 1.0])
def test_a_flipped_byte_anywhere_is_detected(packed_file, where, at):
    path, model = packed_file
    start, end = file_regions(path)[where]
    pos = min(start + int(at * (end - start)), end - 1)
    data = bytearray(path.read_bytes())
    data[pos] ^= 0x01
    path.write_bytes(bytes(data))
    with pytest.raises(PackedFileError) as e:
        load_packed(path, like=model)
    assert str(path) in str(e.value)
    if where.startswith("blob") or where == "metadata":
        assert "checksum mismatch" in str(e.value)


def test_every_single_bit_flip_and_truncation_of_a_small_file_is_refused(tmp_path):
    # exhaustive on a small model that has every kind of blob
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(5, 4), nn.BatchNorm1d(4), nn.ReLU(), nn.Linear(4, 3)).eval()
    plan = Plan({"0": LayerConfig(3, number_format="int_asym"), "3": LayerConfig(2, granularity="per_tensor")})
    path = tmp_path / "small.hlc"
    export_packed(model, plan, path)
    good = path.read_bytes()
    assert set(read_layout(path).blobs) == {"codes", "scales", "zero_points", "data.float32", "data.int64"}
    accepted = []
    with open(path, "r+b") as f:  # one handle, edited in place: reopening per case is slow
        for pos in range(len(good)):
            f.seek(pos)
            f.write(bytes([good[pos] ^ (1 << (pos % 8))]))  # every bit position, across bytes
            f.flush()
            try:
                load_packed(path, like=model)
                accepted.append(pos)
            except PackedFileError as e:
                assert str(path) in str(e)
            f.seek(pos)
            f.write(good[pos : pos + 1])
        assert accepted == []
        for keep in range(len(good)):
            f.truncate(keep)
            f.flush()
            with pytest.raises(PackedFileError):
                load_packed(path, like=model)
            f.seek(0)
            f.write(good)
            f.flush()
    load_packed(path, like=model)  # restored: the cases above were the only damage
    path.write_bytes(good + b"\0")  # and a trailing byte
    with pytest.raises(PackedFileError):
        load_packed(path, like=model)


@pytest.mark.parametrize("where", ["length", "header", "metadata", "blob codes", "blob scales",
                                   "blob data.float32", "blob data.int64"])
@pytest.mark.parametrize("at", [0.0, 0.5, 1.0])
def test_a_truncated_file_is_refused(packed_file, where, at):
    path, model = packed_file
    start, end = file_regions(path)[where]
    data = path.read_bytes()
    path.write_bytes(data[: start + int(at * (end - start - 1))])
    with pytest.raises(PackedFileError) as e:
        load_packed(path, like=model)
    assert str(path) in str(e.value)


@pytest.mark.parametrize("keep", [0, 4, 8, 100, -1])
def test_a_truncated_file_is_refused_at_fixed_sizes(packed_file, keep):
    path, model = packed_file
    data = path.read_bytes()
    path.write_bytes(data[: keep if keep >= 0 else len(data) - 1])
    with pytest.raises(PackedFileError) as e:
        load_packed(path, like=model)
    assert str(path) in str(e.value)


def rewrite_envelope(path, envelope: dict) -> None:
    """Rewrite the file with another hirelc envelope and the same blobs (safetensors layout)."""
    blobs = safetensors.torch.load(path.read_bytes())
    text = json.dumps(envelope, sort_keys=True, separators=(",", ":"))
    path.write_bytes(safetensors.torch.save(blobs, metadata={"hirelc": text}))


def reseal(path, edit) -> None:
    """Apply `edit` to the decoded metadata and write it back WITH a valid checksum: what a
    buggy writer or a crafted file would look like."""
    data = path.read_bytes()
    (n,) = struct.unpack("<Q", data[:8])
    envelope = json.loads(json.loads(data[8 : 8 + n])["__metadata__"]["hirelc"])
    meta = json.loads(zlib.decompress(base64.b64decode(envelope["meta"])))
    edit(meta)
    envelope["meta"] = base64.b64encode(zlib.compress(json.dumps(meta).encode(), 9)).decode()
    blobs = safetensors.torch.load(data)
    envelope["sha256"] = packed_module._digest(envelope, blobs)
    rewrite_envelope(path, envelope)


def _swap_first_two_offsets(meta):
    t = meta["tensors"]
    t[0][2], t[1][2] = t[1][2] + 1, t[0][2]


@pytest.mark.parametrize("edit, match", [
    (lambda m: m["tensors"].pop(), "cover"),                       # a blob not fully indexed
    (_swap_first_two_offsets, "gap or overlap"),                   # overlapping entries
    (lambda m: m["tensors"][0].__setitem__(1, "codes"), "data"),   # a tensor in the codes blob
    (lambda m: m["tensors"][0].__setitem__(3, [10**6]), "cover|gap"),  # out of bounds
    (lambda m: m["kernels"][0].__setitem__(1, "nope"), "nope"),    # kernel not in the plan
    (lambda m: m["plan"][next(iter(m["plan"]))].__setitem__("b", 9), "bits"),
    (lambda m: m["tensors"].append(m["tensors"][0]), "twice|overlap"),
    (lambda m: m.pop("shared"), "lacks its index"),
])
def test_a_sealed_but_inconsistent_index_is_refused(packed_file, edit, match):
    path, model = packed_file
    reseal(path, edit)
    with pytest.raises(PackedFileError, match=match) as e:
        load_packed(path, like=model)
    assert str(path) in str(e.value)


def test_an_older_format_version_is_refused(packed_file):
    path, model = packed_file
    data = path.read_bytes()
    (n,) = struct.unpack("<Q", data[:8])
    envelope = json.loads(json.loads(data[8 : 8 + n])["__metadata__"]["hirelc"])
    rewrite_envelope(path, dict(envelope, format_version=1))
    with pytest.raises(PackedFileError, match="version 1 is not supported"):
        load_packed(path, like=model)


def test_a_foreign_safetensors_file_is_refused(tmp_path):
    path = tmp_path / "other.safetensors"
    safetensors.torch.save_file({"w": torch.zeros(3)}, path, metadata={"format": "pt"})
    with pytest.raises(PackedFileError, match="not a hirelc packed file"):
        load_packed(path, like=nn.Linear(3, 1))


def test_a_model_that_does_not_match_is_refused(packed_file):
    path, _ = packed_file
    with pytest.raises(ValueError, match="does not match|do not fit"):
        load_packed(path, like=TinyViT())


# --------------------------------------------------------------------------- format v2 layout


def test_the_file_is_plain_safetensors_with_a_few_typed_blobs(zoo, tmp_path):
    model, x, inv = zoo["resnetish"]
    plan = mixed_plan(inv)
    small = apply_plan(model, plan, inventory=inv)
    path = tmp_path / "r.hlc"
    export_packed(small, plan, path)
    stored = safetensors.torch.load_file(path)  # any safetensors reader opens it
    dtypes = {name: t.dtype for name, t in stored.items()}
    assert dtypes == {"codes": torch.uint8, "scales": torch.float16, "zero_points": torch.uint8,
                      "data.float32": torch.float32, "data.int64": torch.int64}
    assert all(t.dim() == 1 for t in stored.values())
    layout = read_layout(path)
    assert layout.blobs == {k: t.numel() * t.element_size() for k, t in stored.items()}
    assert layout.file_bytes == path.stat().st_size == layout.header_bytes + layout.data_bytes
    assert layout.data_bytes == storage_bytes_model(small, plan)
    # every state_dict entry of the pruned model is indexed once (stored or shared)
    physical_keys = set(to_physical(small).state_dict())
    assert set(layout.entries) | set(layout.shared) == physical_keys
    # the scales blob holds exactly the quantizer's float16 scales, in state_dict order
    latent = compact_latent_weights(small)
    expected = torch.cat([quantize(latent[name], plan[name]).scale.reshape(-1)
                          for name in layout.kernels.values()])
    assert torch.equal(stored["scales"], expected)


def test_scale_bytes_are_two_per_scale(tmp_path):
    model = nn.Sequential(nn.Linear(96, 30)).eval()  # rows of 96 columns, as in the ViT
    path = tmp_path / "lin.hlc"
    export_packed(model, Plan({"0": LayerConfig(4)}), path)
    entry = read_layout(path).entries["0.weight"]
    assert entry == {"codes": 30 * 96 // 2, "scales": 30 * 2}
    assert 8 * sum(entry.values()) / (30 * 96) == 4 + 16 / 96


def chain(n: int) -> nn.Module:
    """n blocks of Linear + BatchNorm1d: 7 state_dict entries per block."""
    layers = []
    for _ in range(n):
        layers += [nn.Linear(8, 8), nn.BatchNorm1d(8), nn.ReLU()]
    return nn.Sequential(*layers).eval()


def test_header_grows_by_a_few_bytes_per_tensor_not_a_json_record(tmp_path):
    sizes = {}
    for n in (4, 64):
        model = chain(n)
        plan = Plan({str(3 * i): LayerConfig(4) for i in range(n)})
        export_packed(model, plan, tmp_path / f"{n}.hlc")
        sizes[n] = (read_layout(tmp_path / f"{n}.hlc"), len(model.state_dict()))
    (small, n_small), (big, n_big) = sizes[4], sizes[64]
    assert n_big - n_small == 420
    # the safetensors index lists the same 4 blobs (only the digits of their sizes grow)
    assert set(small.blobs) == set(big.blobs) == {"codes", "scales", "data.float32", "data.int64"}
    assert big.index_bytes - small.index_bytes <= 24
    # the compressed metadata: ~9 B per extra state_dict entry (format v1: ~80 B of JSON
    # per tensor + the plan as escaped JSON)
    per_entry = (big.header_bytes - small.header_bytes) / (n_big - n_small)
    assert per_entry <= 12, per_entry
    assert small.header_bytes <= 1024


DETERMINISM_SCRIPT = textwrap.dedent("""
    import sys
    import torch
    from torch import nn
    from hirelc.export.packed import export_packed
    from hirelc.plan import LayerConfig, Plan

    torch.manual_seed(3)
    model = nn.Sequential(nn.Conv2d(2, 6, 3), nn.BatchNorm2d(6), nn.ReLU(), nn.Flatten(),
                          nn.Linear(6 * 4 * 4, 5)).eval()
    plan = Plan({"0": LayerConfig(3, keep_ratio=0.5, number_format="int_asym", granularity="per_group",
                                  group_size=4),
                 "4": LayerConfig(5, number_format="float")})
    export_packed(model, plan, sys.argv[1], example_input=torch.randn(1, 2, 6, 6))
""")


def test_files_are_byte_identical_across_processes(tmp_path, monkeypatch):
    here, there = tmp_path / "here.hlc", tmp_path / "there.hlc"
    monkeypatch.setattr(sys, "argv", ["determinism", str(here)])
    exec(compile(DETERMINISM_SCRIPT, "determinism", "exec"), {"__name__": "determinism"})
    # another process with another string-hash seed (set / dict orders of str keys differ)
    hashseed = "1" if os.environ.get("PYTHONHASHSEED") != "1" else "2"
    subprocess.run([sys.executable, "-c", DETERMINISM_SCRIPT, str(there)], check=True, timeout=300,
                   env=dict(os.environ, PYTHONHASHSEED=hashseed))
    assert here.read_bytes() == there.read_bytes()


def test_a_weight_beyond_float16_scale_range_is_refused_naming_the_kernel(tmp_path):
    model = nn.Sequential(nn.Linear(4, 3), nn.ReLU(), nn.Linear(3, 2)).eval()
    with torch.no_grad():
        model[2].weight[0, 0] = 1e7  # int_sym 4 bits: scale 1e7 / 7 > 65504
    with pytest.raises(ValueError, match="kernel '2'.*float16"):
        export_packed(model, Plan({"0": LayerConfig(4), "2": LayerConfig(4)}), tmp_path / "x.hlc")
    assert not (tmp_path / "x.hlc").exists()
    with pytest.raises(ValueError, match="kernel '2'"):  # 8 bits: 1e7 / 127 = 78740, too
        export_packed(model, Plan({"2": LayerConfig(8)}), tmp_path / "x.hlc")
    # leaving that kernel uncompressed works
    export_packed(model, Plan({"0": LayerConfig(4)}), tmp_path / "ok.hlc")
    assert read_layout(tmp_path / "ok.hlc").entries["2.weight"] == {"data.float32": 24}


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


# --------------------------------------------------------------------------- crafted, sealed files


def _first_group(meta):
    return meta["groups"][0]


@pytest.mark.parametrize("edit, match", [
    (lambda m: _first_group(m).__setitem__("kept", 10**12), r"keeps 1000000000000 of \d+ channels"),
    (lambda m: _first_group(m).update(size=10**12, kept=10**12), "rows, the file says 1000000000000"),
    (lambda m: _first_group(m).__setitem__("producers", ["no.such"]), "no kernel 'no.such'"),
    (lambda m: m["tensors"][0].__setitem__(0, "injected.key"), "'injected.key' is not in the model"),
    (lambda m: m["shared"].__setitem__("x.weight", m["tensors"][0][0]), "shared tensor 'x.weight'"),
])
def test_a_crafted_index_is_refused_before_anything_is_allocated(packed_file, monkeypatch, edit, match):
    path, model = packed_file
    reseal(path, edit)  # valid checksum: a crafted file, not a damaged one

    def allocate(*args, **kwargs):
        raise AssertionError("the loader allocated from a crafted index before checking it")

    monkeypatch.setattr(packed_module, "_decode_groups", allocate)
    monkeypatch.setattr(packed_module, "_state_dict", allocate)
    with pytest.raises(PackedFileError, match=match) as e:
        load_packed(path, like=model)
    assert str(path) in str(e.value)


def test_a_tensor_shape_larger_than_the_model_is_refused(tmp_path):
    model = nn.Sequential(nn.Linear(8, 4), nn.ReLU(), nn.Linear(4, 2)).eval()
    path = tmp_path / "m.hlc"
    export_packed(model, Plan({"0": LayerConfig(bits=4)}), path)

    def grow(meta):  # 2.weight (2, 4) stored as (1, 8): same element count, wider than the model
        entry = next(t for t in meta["tensors"] if t[0] == "2.weight")
        entry[3] = [1, 8]

    reseal(path, grow)
    with pytest.raises(PackedFileError, match=r"'2.weight' has shape \[1, 8\] in the file, larger"):
        load_packed(path, like=model)
