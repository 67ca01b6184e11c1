"""The packed file: a compressed model that is really smaller on disk, and its loader.

Container: safetensors (a JSON header, then raw little-endian tensor bytes). For every kernel
the plan quantizes, the file holds

    <kernel>.codes       uint8, the b-bit codes bit-packed (`hirelc.export.bitpack`)
    <kernel>.scale       float32, one per tensor / row / group
    <kernel>.zero_point  uint8, int_asym (bits >= 2) only

computed from the *compacted* latent weight (kept rows x kept columns). Every other
state_dict tensor is stored as-is at its pruned shape (biases, BatchNorm statistics, fp32
kernels, embeddings). A tensor shared by several state_dict keys is stored once.

The header metadata holds the format version, the plan, the pruned channel groups with
their kept counts (enough to rebuild the smaller shapes from the original architecture)
and a sha256 over the metadata and every tensor's name, dtype, shape and bytes, so a
truncated or altered file raises `PackedFileError` instead of loading wrong weights.

Size: the tensor bytes are exactly `storage_bytes_model(model, plan)`, the storage contract
of docs/ARCHITECTURE.md; the file adds the safetensors header (8 bytes + JSON).

>>> import os, tempfile
>>> from hirelc.compress.apply import apply_plan
>>> from hirelc.plan import LayerConfig, Plan
>>> net = nn.Sequential(nn.Linear(16, 8), nn.ReLU(), nn.Linear(8, 4))
>>> x = torch.randn(5, 16)
>>> plan = Plan({"0": LayerConfig(bits=4, keep_ratio=0.5), "2": LayerConfig(bits=2)})
>>> small = apply_plan(net, plan, example_input=x)             # fine-tune it, then:
>>> path = os.path.join(tempfile.mkdtemp(), "net.hlc")
>>> nbytes = export_packed(small, plan, path)
>>> again = load_packed(path, like=net)                        # physically smaller module
>>> again[0].out_features, again[2].in_features
(4, 4)
>>> torch.allclose(again(x), small(x), atol=1e-5)
True
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import struct
import uuid
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import safetensors.torch
import torch
from torch import Tensor, nn
from torch.nn.utils import parametrize

from hirelc.compress.apply import (
    STATE_ATTR,
    CompressionState,
    apply_plan,
    compact_latent_weights,
    compression_state,
    to_physical,
)
from hirelc.compress.prune import prune_physically
from hirelc.compress.quantize import QuantizedTensor, dequantize, quantize
from hirelc.cost import quantized_weight_bits
from hirelc.export.bitpack import pack_bits, unpack_bits
from hirelc.inventory import ChannelGroup, Inventory
from hirelc.plan import Plan

__all__ = [
    "FORMAT",
    "FORMAT_VERSION",
    "PackedFileError",
    "export_packed",
    "load_packed",
    "storage_bytes_model",
]

FORMAT = "hirelc.packed"
FORMAT_VERSION = 1
HEADER_KEY = "hirelc"  # the safetensors metadata key holding our JSON header
SUFFIXES = ("codes", "scale", "zero_point")


class PackedFileError(ValueError):
    """A packed file that is not one, is truncated, altered, or of an unknown version."""


# --------------------------------------------------------------------------- public API


def export_packed(
    model: nn.Module,
    plan: Plan | None,
    path: str | os.PathLike,
    example_input: Any = None,
    *,
    inventory: Inventory | None = None,
    importance: str | Mapping[str, Tensor] | None = None,
) -> int:
    """Write the packed file of `model` compressed with `plan`; returns its size in bytes.

    model: the original fp32 model (it is compressed here with `apply_plan`, which needs
        `example_input` or `inventory` when the plan prunes), or a model returned by
        `apply_plan` (e.g. after fine-tuning: its latent weights and kept channels are
        used; `plan` must then be None or that model's plan).
    The file is written atomically (temporary file + rename).

    >>> import os, tempfile
    >>> from hirelc.plan import LayerConfig, Plan
    >>> net = nn.Sequential(nn.Linear(16, 8), nn.ReLU(), nn.Linear(8, 4))
    >>> plan = Plan({"0": LayerConfig(bits=4), "2": LayerConfig(bits=2)})
    >>> path = os.path.join(tempfile.mkdtemp(), "net.hlc")
    >>> export_packed(net, plan, path) == os.path.getsize(path)
    True
    """
    compressed = _compressed(model, plan, example_input, inventory, importance)
    state = compression_state(compressed)
    tensors, layers, shared = _packed_tensors(compressed, state)
    header = _header(state, layers, shared)
    header["sha256"] = _digest(header, tensors)
    # One metadata key holding canonical JSON: safetensors writes its metadata map in
    # hash order, so several keys would make the same model give different files.
    data = safetensors.torch.save(tensors, metadata={HEADER_KEY: _canonical(header)})
    _write_atomically(Path(path), data)
    return len(data)


def load_packed(path: str | os.PathLike, like: nn.Module) -> nn.Module:
    """Rebuild the compressed model stored at `path`: a plain, physically pruned copy of
    `like` (the original, uncompressed model: it supplies the architecture) holding the
    dequantized weights. Its outputs equal those of `apply_plan(model, plan)` (to float
    summation order). Raises `PackedFileError` for a damaged or foreign file and ValueError
    when `like` does not match the file.

    >>> import os, tempfile
    >>> from hirelc.plan import LayerConfig, Plan
    >>> net = nn.Sequential(nn.Linear(16, 8), nn.ReLU(), nn.Linear(8, 4))
    >>> path = os.path.join(tempfile.mkdtemp(), "net.hlc")
    >>> _ = export_packed(net, Plan({"0": LayerConfig(bits=3)}), path)
    >>> load_packed(path, like=net)[0].weight.unique().numel() <= 8 * 7  # 7 levels per row
    True
    """
    path = Path(path)
    header, tensors = _read_verified(path)
    plan = Plan.from_dict(header["plan"])
    layers, shared = header["layers"], header["shared"]
    groups, kept = _groups_from_header(header["groups"])
    if hasattr(like, STATE_ATTR) or any(parametrize.is_parametrized(m) for m in like.modules()):
        raise ValueError(f"{path}: pass the original, uncompressed model as `like`, "
                         "not a model from apply_plan / to_physical")
    try:
        model = prune_physically(like, kept, groups)
    except (ValueError, KeyError, AttributeError, IndexError) as e:
        raise ValueError(f"{path}: its pruning groups do not fit the model passed as `like`: {e}") from None
    state = _state_dict(tensors, plan, layers, shared)
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as e:
        raise ValueError(f"{path}: the model passed as `like` does not match the packed file: {e}") from None
    return model


def storage_bytes_model(
    model: nn.Module,
    plan: Plan | None,
    example_input: Any = None,
    *,
    inventory: Inventory | None = None,
    importance: str | Mapping[str, Tensor] | None = None,
) -> int:
    """Bytes of tensor data the packed file of (`model`, `plan`) holds, from the storage
    cost model rather than by packing: every unique state_dict tensor of the pruned model,
    compressed kernels at `hirelc.cost.quantized_weight_bits` (b-bit codes packed to whole
    bytes + 32-bit scales + 8-bit zero points), everything else at numel x dtype size.
    Arguments as for `export_packed`. The file is this plus its header.

    >>> from hirelc.plan import LayerConfig, Plan
    >>> net = nn.Sequential(nn.Linear(16, 8), nn.ReLU(), nn.Linear(8, 4))
    >>> plan = Plan({"0": LayerConfig(bits=4), "2": LayerConfig(bits=2)})
    >>> storage_bytes_model(net, plan)  # 0: 64 codes + 8 scales*4 + 8 biases*4; 2: 8 + 16 + 16
    168
    """
    compressed = _compressed(model, plan, example_input, inventory, importance)
    state = compression_state(compressed)
    physical = to_physical(compressed)
    kernel_keys = _kernel_keys(state)
    bits = 0
    for key, t in _unique_state(physical.state_dict(), kernel_keys)[0].items():
        if key in kernel_keys:
            name = kernel_keys[key]
            bits += quantized_weight_bits(t.shape[0], math.prod(t.shape[1:]), state.plan[name])
        else:
            bits += 8 * t.numel() * t.element_size()
    return bits // 8


# --------------------------------------------------------------------------- export


def _compressed(model: nn.Module, plan: Plan | None, example_input: Any,
                inventory: Inventory | None, importance: Any) -> nn.Module:
    """The apply_plan model to export: `model` itself when it already is one."""
    state = getattr(model, STATE_ATTR, None)
    if state is None:
        if plan is None:
            raise ValueError("export needs a plan for a model that apply_plan has not compressed")
        return apply_plan(model, plan, example_input, importance, inventory=inventory)
    if state.physical:
        raise ValueError("export needs the model returned by apply_plan (its latent weights), "
                         "not the output of to_physical")
    if plan is not None and plan != state.plan:
        raise ValueError("the plan passed differs from the plan the model was compressed with")
    return model


def _kernel_keys(state: CompressionState) -> dict[str, str]:
    """state_dict key of each quantized kernel's weight -> kernel name."""
    keys = {}
    for name in state.plan:
        ref = state.kernels[name]
        keys[f"{ref.module}.{ref.param}" if ref.module else ref.param] = name
    return keys


def _storage_id(t: Tensor) -> tuple:
    return (t.device, t.untyped_storage().data_ptr(), t.storage_offset(), tuple(t.shape), t.stride(), t.dtype)


def _unique_state(
    state: Mapping[str, Tensor], preferred: Mapping[str, str]
) -> tuple[dict[str, Tensor], dict[str, str]]:
    """(unique key -> tensor, duplicate key -> the key it shares storage with). A tied
    weight is stored once; a compressed kernel's own key wins over its aliases."""
    owner: dict[tuple, str] = {}
    for key, t in state.items():
        sid = _storage_id(t)
        if sid not in owner or (key in preferred and owner[sid] not in preferred):
            owner[sid] = key
    unique = {key: t for key, t in state.items() if owner[_storage_id(t)] == key}
    shared = {key: owner[_storage_id(t)] for key, t in state.items() if owner[_storage_id(t)] != key}
    return unique, shared


def _packed_tensors(compressed: nn.Module, state: CompressionState) -> tuple[dict[str, Tensor], dict, dict]:
    """(tensors to write, kernel name -> {key, shape}, duplicate key -> stored key)."""
    physical = to_physical(compressed)
    latent = compact_latent_weights(compressed)
    kernel_keys = _kernel_keys(state)
    unique, shared = _unique_state(physical.state_dict(), kernel_keys)
    tensors: dict[str, Tensor] = {}
    layers: dict[str, dict] = {}
    for key, t in unique.items():
        if key not in kernel_keys:
            tensors[key] = t.detach().cpu().contiguous().clone()
            continue
        name = kernel_keys[key]
        q = quantize(latent[name], state.plan[name])
        # The physical model holds fake_quantize's value, which is dequantize(q) exactly;
        # a mismatch would mean the file decodes to another model than the one evaluated.
        if not torch.equal(dequantize(q).to(t.dtype).to(t.device).reshape(t.shape), t):
            raise RuntimeError(f"kernel {name!r}: packed codes do not reproduce the compressed weight")
        for suffix, value in _encode(q).items():
            _add(tensors, f"{name}.{suffix}", value, unique)
        layers[name] = {"key": key, "shape": list(q.shape)}
    return tensors, layers, shared


def _encode(q: QuantizedTensor) -> dict[str, Tensor]:
    out = {"codes": pack_bits(q.codes.cpu(), q.bits), "scale": q.scale.cpu().clone()}
    if q.zero_point is not None:
        out["zero_point"] = q.zero_point.cpu().clone()
    return out


def _add(tensors: dict[str, Tensor], key: str, value: Tensor, state: Mapping[str, Tensor]) -> None:
    if key in state or key in tensors:
        raise ValueError(f"cannot pack: the model already has a tensor named {key!r}")
    tensors[key] = value


def _header(state: CompressionState, layers: dict, shared: dict) -> dict[str, Any]:
    groups = [dict(state.groups[gid].to_dict(), kept=len(idx)) for gid, idx in state.kept.items()]
    return {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "plan": state.plan.to_dict(),
        "layers": layers,  # kernel name -> {"key": state_dict key, "shape": compact shape}
        "groups": groups,  # pruned channel groups, each with its kept count
        "shared": shared,  # state_dict key -> the key whose tensor it shares
    }


def _canonical(obj: Any) -> str:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"))


def _tensor_bytes(t: Tensor) -> bytes:
    return t.detach().cpu().contiguous().reshape(-1).view(torch.uint8).numpy().tobytes()


def _digest(header: Mapping[str, Any], tensors: Mapping[str, Tensor]) -> str:
    """sha256 over the header (without the digest) and every tensor's name, dtype, shape
    and bytes, in name order."""
    h = hashlib.sha256()
    h.update(_canonical({k: v for k, v in header.items() if k != "sha256"}).encode())
    for name in sorted(tensors):
        t = tensors[name]
        h.update(json.dumps([name, str(t.dtype), list(t.shape)]).encode())
        h.update(_tensor_bytes(t))
    return h.hexdigest()


def _write_atomically(path: Path, data: bytes) -> None:
    """Write to a temporary name in the same directory, fsync, rename: a reader never sees
    a half-written file. (Not tempfile.mkstemp: its 0600 mode would ignore the umask.)"""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{uuid.uuid4().hex[:8]}.tmp")
    try:
        with open(tmp, "xb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


# --------------------------------------------------------------------------- load


def _read_verified(path: Path) -> tuple[dict[str, Any], dict[str, Tensor]]:
    """Header and tensors of a packed file whose format and checksum are verified."""
    data = path.read_bytes()
    header = _read_header(data, path)
    try:
        tensors = safetensors.torch.load(data)
    except Exception as e:  # safetensors raises its own SafetensorError for a bad layout
        raise PackedFileError(f"{path}: damaged packed file ({e})") from None
    if header.get("format") != FORMAT:
        raise PackedFileError(f"{path}: not a hirelc packed file (format {header.get('format')!r})")
    if header.get("format_version") != FORMAT_VERSION:
        raise PackedFileError(f"{path}: packed format version {header.get('format_version')!r} "
                              f"is not supported (this hirelc reads version {FORMAT_VERSION})")
    if _digest(header, tensors) != header.get("sha256"):
        raise PackedFileError(f"{path}: checksum mismatch: the file was altered or damaged")
    return header, tensors


def _read_header(data: bytes, path: Path) -> dict[str, Any]:
    """Our JSON header from the safetensors `__metadata__` (parsed here: safetensors only
    exposes metadata through a file handle)."""
    try:
        (n,) = struct.unpack("<Q", data[:8])
        if 8 + n > len(data):
            raise ValueError(f"header of {n} bytes, file of {len(data)}")
        metadata = json.loads(data[8 : 8 + n]).get("__metadata__") or {}
        header = json.loads(metadata[HEADER_KEY]) if HEADER_KEY in metadata else None
    except (struct.error, ValueError, AttributeError, TypeError, UnicodeDecodeError) as e:
        raise PackedFileError(f"{path}: not a packed file or truncated ({e})") from None
    if not isinstance(header, dict):
        raise PackedFileError(f"{path}: not a hirelc packed file (no {HEADER_KEY!r} metadata)")
    return header


def _groups_from_header(entries: list[dict]) -> tuple[dict[str, ChannelGroup], dict[str, Tensor]]:
    """Pruned groups and kept indices 0..k-1: only the counts matter for the shapes, the
    values are all overwritten by the file's tensors."""
    groups, kept = {}, {}
    for d in entries:
        d = dict(d)
        count = int(d.pop("kept"))
        g = ChannelGroup.from_dict(d)
        groups[g.id], kept[g.id] = g, torch.arange(count)
    return groups, kept


def _state_dict(tensors: Mapping[str, Tensor], plan: Plan, layers: Mapping[str, dict],
                shared: Mapping[str, str]) -> dict[str, Tensor]:
    state = {k: t for k, t in tensors.items() if not _is_packed_key(k, layers)}
    for name, info in layers.items():
        state[info["key"]] = dequantize(_decode(tensors, name, plan[name], tuple(info["shape"])))
    for dup, key in shared.items():
        state[dup] = state[key]
    return state


def _is_packed_key(key: str, layers: Mapping[str, dict]) -> bool:
    name, _, suffix = key.rpartition(".")
    return suffix in SUFFIXES and name in layers


def _decode(tensors: Mapping[str, Tensor], name: str, cfg: Any, shape: tuple[int, ...]) -> QuantizedTensor:
    rows, cols = shape[0], math.prod(shape[1:])
    codes = unpack_bits(tensors[f"{name}.codes"], cfg.bits, rows * cols).reshape(rows, cols)
    return QuantizedTensor(
        codes=codes, scale=tensors[f"{name}.scale"], zero_point=tensors.get(f"{name}.zero_point"),
        bits=cfg.bits, number_format=cfg.number_format, granularity=cfg.granularity,
        group_size=cfg.group_size, shape=shape,
    )

