"""The packed file: a compressed model that is really smaller on disk, and its loader.

Format version 2. Container: a valid safetensors file (an 8-byte little-endian length N, an
N-byte JSON header, then the raw little-endian tensor bytes) holding a few large tensors,
"blobs", instead of one tensor per state_dict entry, so that the header does not grow by a
JSON record per tensor:

    codes         uint8    every quantized kernel's b-bit codes, bit-packed per kernel to
                           whole bytes (`hirelc.export.bitpack`), concatenated
    scales        float16  every quantized kernel's scales (per tensor / row / group)
    zero_points   uint8    every int_asym (bits >= 2) kernel's zero points
    data.<dtype>  <dtype>  every other state_dict tensor of that torch dtype, flattened and
                           concatenated: data.float32 for biases, BatchNorm parameters and
                           statistics, fp32 kernels, embeddings; data.int64 for BatchNorm's
                           num_batches_tracked; ...

(a blob with nothing to hold is left out). Kernels are quantized from the *compacted* latent
weight (kept rows x kept columns); every other tensor is stored at its pruned shape; a tensor
shared by several state_dict keys (tied weights) is stored once.

The safetensors `__metadata__` has a single key, "hirelc" (one key: safetensors writes its
metadata map in hash order), whose value is the JSON object
{"format": "hirelc.packed", "format_version": 2, "meta": M, "sha256": H}. M is
base64(zlib(JSON)) of the index:

    {"plan":    {kernel: {"b": bits, plus only the fields that differ from LayerConfig's
                          defaults: "k" keep_ratio, "f" number_format, "g" granularity,
                          "s" group_size}},
     "groups":  [each pruned channel group: its ChannelGroup fields that differ from the
                 defaults, plus "kept", its kept count (enough to rebuild the pruned shapes)],
     "kernels": [[state_dict key, kernel name, compact weight shape, offset in codes,
                  offset in scales, offset in zero_points or null], ...],
     "tensors": [[state_dict key, blob, offset, shape], ...],
     "shared":  {state_dict key: the stored key whose tensor it shares}}

Offsets count elements of the blob; byte counts follow from the shape and the kernel's
LayerConfig (`packed_nbytes`, `n_scales`). Entries are in state_dict order and tile every
blob exactly (checked on load). H is a sha256 over the format, version and M and over every
blob's name, dtype, shape and bytes, verified before anything is decoded, so a truncated or
altered file raises `PackedFileError` naming the file instead of loading wrong weights. The
same model and plan give the same bytes in any process (deterministic order, one metadata
key, zlib level 9 -- byte-identical for a given zlib build).

Size: the data section is exactly `storage_bytes_model(model, plan)`, the storage contract
of docs/ARCHITECTURE.md; the rest is the 8-byte length and the JSON header: a blob index of
about 60 bytes per blob plus the compressed metadata (`read_layout` breaks a file down).

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
>>> sorted(read_layout(path).blobs)
['codes', 'data.float32', 'scales']
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import hashlib
import json
import math
import os
import struct
import zlib
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import safetensors.torch
import torch
from torch import Tensor, nn
from torch.nn.utils import parametrize

from hirelc.durable import atomic_write_bytes
from hirelc.compress.apply import (
    STATE_ATTR,
    CompressionState,
    apply_plan,
    compact_latent_weights,
    compression_state,
    to_physical,
)
from hirelc.compress.prune import prune_physically
from hirelc.compress.quantize import SCALE_DTYPE, QuantizedTensor, dequantize, quantize, scale_shape
from hirelc.cost import has_zero_point, n_scales, quantized_weight_bits
from hirelc.export.bitpack import pack_bits, packed_nbytes, unpack_bits
from hirelc.export.bounds import check_groups_fit, check_shapes_fit
from hirelc.inventory import ChannelGroup, Inventory
from hirelc.plan import LayerConfig, Plan

__all__ = [
    "FORMAT",
    "FORMAT_VERSION",
    "PackedFileError",
    "PackedLayout",
    "export_packed",
    "is_packed_file",
    "load_packed",
    "read_layout",
    "storage_bytes_model",
]

FORMAT = "hirelc.packed"
FORMAT_VERSION = 2
HEADER_KEY = "hirelc"  # the one safetensors metadata key, holding the JSON envelope
CODES, SCALES, ZERO_POINTS, DATA = "codes", "scales", "zero_points", "data."  # blob names
BLOB_DTYPES = {CODES: torch.uint8, SCALES: SCALE_DTYPE, ZERO_POINTS: torch.uint8}
ZLIB_LEVEL = 9
MAX_METADATA_BYTES = 1 << 28  # never inflate more than this from one file (a zip bomb)
# LayerConfig field -> key in the compact plan encoding
PLAN_KEYS = {"bits": "b", "keep_ratio": "k", "number_format": "f", "granularity": "g", "group_size": "s"}


class PackedFileError(ValueError):
    """A packed file that is not one, is truncated, altered, or of an unknown version."""


@dataclass(frozen=True)
class PackedLayout:
    """Where the bytes of a packed file go (`read_layout`).

    file_bytes = header_bytes + sum(blobs.values()); the data section, sum(blobs.values()),
    is `storage_bytes_model` of the model and plan.
    """

    file_bytes: int
    header_bytes: int  # 8-byte length + JSON header (blob index, hirelc metadata, padding)
    index_bytes: int  # of which the safetensors blob index (the JSON minus __metadata__)
    blobs: dict[str, int]  # blob name -> bytes in the data section
    entries: dict[str, dict[str, int]]  # stored state_dict key -> {blob name: bytes}
    kernels: dict[str, str]  # state_dict key of each quantized kernel -> kernel name
    shared: dict[str, str]  # state_dict key -> the stored key it shares a tensor with

    @property
    def data_bytes(self) -> int:
        return sum(self.blobs.values())


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
    The file is written atomically (temporary file + rename). Raises ValueError naming the
    kernel when a weight cannot be stored (a scale beyond float16's range,
    `hirelc.compress.quantize`).

    >>> import os, tempfile
    >>> from hirelc.plan import LayerConfig, Plan
    >>> net = nn.Sequential(nn.Linear(16, 8), nn.ReLU(), nn.Linear(8, 4))
    >>> plan = Plan({"0": LayerConfig(bits=4), "2": LayerConfig(bits=2)})
    >>> path = os.path.join(tempfile.mkdtemp(), "net.hlc")
    >>> export_packed(net, plan, path) == os.path.getsize(path)
    True
    """
    compressed = compressed_for_export(model, plan, example_input, inventory, importance)
    state = compression_state(compressed)
    blobs, index = _pack(compressed, state)
    meta = {"plan": _encode_plan(state.plan), "groups": _encode_groups(state), **index}
    payload = base64.b64encode(zlib.compress(_canonical(meta).encode(), ZLIB_LEVEL)).decode("ascii")
    envelope = {"format": FORMAT, "format_version": FORMAT_VERSION, "meta": payload}
    envelope["sha256"] = _digest(envelope, blobs)
    data = safetensors.torch.save(blobs, metadata={HEADER_KEY: _canonical(envelope)})
    atomic_write_bytes(Path(path), data)
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
    if hasattr(like, STATE_ATTR) or any(parametrize.is_parametrized(m) for m in like.modules()):
        raise ValueError(f"{path}: pass the original, uncompressed model as `like`, "
                         "not a model from apply_plan / to_physical")
    _, meta, blobs = _read_verified(path)
    with _inconsistent(path):
        plan = _decode_plan(meta["plan"])
        entries = _entries(meta, blobs, plan)
    _check_fits(path, like, meta, entries)
    with _inconsistent(path):
        groups, kept = _decode_groups(meta["groups"])
        state = _state_dict(entries, blobs, plan, meta["shared"])
    try:
        model = prune_physically(like, kept, groups)
    except (ValueError, KeyError, AttributeError, IndexError) as e:
        raise ValueError(f"{path}: its pruning groups do not fit the model passed as `like`: {e}") from None
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as e:
        raise ValueError(f"{path}: the model passed as `like` does not match the packed file: {e}") from None
    return model


def _check_fits(path: Path, like: nn.Module, meta: Mapping[str, Any], entries: list["_Entry"]) -> None:
    """A valid checksum does not make an index honest (a crafted file can carry one): every
    count and shape is bounded by `like` before anything is allocated from it."""
    try:
        check_groups_fit(like, meta["groups"])
        check_shapes_fit(like, [(e.key, e.shape) for e in entries], meta["shared"])
    except ValueError as e:
        raise PackedFileError(f"{path}: the model passed as `like` does not match the packed file ({e}); "
                              "pass the model it was exported from") from None


def is_packed_file(path: str | os.PathLike) -> bool:
    """True if `path` starts like a hirelc packed file (its header names our format); only
    the header is read. Used to tell our own output, safe to replace, from a user's file.

    >>> import os, tempfile
    >>> path = os.path.join(tempfile.mkdtemp(), "net.hlc")
    >>> _ = export_packed(nn.Linear(4, 2), Plan({}), path)
    >>> is_packed_file(path), is_packed_file(__file__)
    (True, False)
    """
    try:
        with open(path, "rb") as f:
            head = f.read(8)
            (n,) = struct.unpack("<Q", head) if len(head) == 8 else (0,)
            if not 0 < n <= MAX_METADATA_BYTES:
                return False
            _, envelope = _read_envelope(head + f.read(n), Path(path))
    except (OSError, PackedFileError):
        return False
    return envelope.get("format") == FORMAT


def read_layout(path: str | os.PathLike) -> PackedLayout:
    """Byte breakdown of a packed file, from its own index (verified like `load_packed`;
    the weights are not decoded).

    >>> import os, tempfile
    >>> from hirelc.plan import LayerConfig, Plan
    >>> net = nn.Sequential(nn.Linear(16, 8), nn.ReLU(), nn.Linear(8, 4))
    >>> path = os.path.join(tempfile.mkdtemp(), "net.hlc")
    >>> _ = export_packed(net, Plan({"0": LayerConfig(bits=4)}), path)
    >>> layout = read_layout(path)
    >>> layout.entries["0.weight"], layout.entries["2.weight"]  # 64 codes + 8 float16 scales
    ({'codes': 64, 'scales': 16}, {'data.float32': 128})
    >>> layout.file_bytes == layout.header_bytes + layout.data_bytes
    True
    """
    path = Path(path)
    header_bytes, meta, blobs = _read_verified(path)
    with _inconsistent(path):
        entries = _entries(meta, blobs, _decode_plan(meta["plan"]))
    with open(path, "rb") as f:
        f.seek(8)
        index = json.loads(f.read(header_bytes - 8))
    index.pop("__metadata__", None)
    sizes = {name: t.numel() * t.element_size() for name, t in blobs.items()}
    return PackedLayout(
        file_bytes=path.stat().st_size,
        header_bytes=header_bytes,
        index_bytes=len(json.dumps(index, separators=(",", ":")).encode()),
        blobs=dict(sorted(sizes.items())),
        entries={e.key: {b: n * blobs[b].element_size() for b, (_, n) in e.parts.items()} for e in entries},
        kernels={e.key: e.kernel for e in entries if e.kernel is not None},
        shared=dict(meta["shared"]),
    )


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
    bytes + 16-bit float scales + 8-bit zero points), everything else at numel x dtype size.
    Arguments as for `export_packed`. The file is this plus its header.

    >>> from hirelc.plan import LayerConfig, Plan
    >>> net = nn.Sequential(nn.Linear(16, 8), nn.ReLU(), nn.Linear(8, 4))
    >>> plan = Plan({"0": LayerConfig(bits=4), "2": LayerConfig(bits=2)})
    >>> storage_bytes_model(net, plan)  # 0: 64 codes + 8 scales*2 + 8 biases*4; 2: 8 + 8 + 16
    144
    """
    compressed = compressed_for_export(model, plan, example_input, inventory, importance)
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


def compressed_for_export(model: nn.Module, plan: Plan | None, example_input: Any,
                inventory: Inventory | None, importance: Any) -> nn.Module:
    """The apply_plan model to export: `model` itself when it already is one (shared by the
    packed and the ONNX export)."""
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


class _Blobs:
    """Blobs under construction: flat pieces appended in order, offsets in elements."""

    def __init__(self) -> None:
        self.pieces: dict[str, list[Tensor]] = {}
        self.sizes: dict[str, int] = {}

    def put(self, blob: str, t: Tensor) -> int:
        offset = self.sizes.get(blob, 0)
        self.pieces.setdefault(blob, []).append(t.detach().cpu().reshape(-1))
        self.sizes[blob] = offset + t.numel()
        return offset

    def tensors(self) -> dict[str, Tensor]:
        return {b: torch.cat(ps).contiguous() for b, ps in self.pieces.items()}


def _pack(compressed: nn.Module, state: CompressionState) -> tuple[dict[str, Tensor], dict[str, Any]]:
    """(blobs to write, {"kernels", "tensors", "shared"} index entries)."""
    physical = to_physical(compressed)
    latent = compact_latent_weights(compressed)
    kernel_keys = _kernel_keys(state)
    unique, shared = _unique_state(physical.state_dict(), kernel_keys)
    blobs = _Blobs()
    kernels: list[list] = []
    tensors: list[list] = []
    for key, t in unique.items():
        if key not in kernel_keys:
            tensors.append([key, DATA + _dtype_name(t.dtype), blobs.put(DATA + _dtype_name(t.dtype), t),
                            list(t.shape)])
            continue
        name = kernel_keys[key]
        try:
            q = quantize(latent[name], state.plan[name])
        except ValueError as e:
            raise ValueError(f"kernel {name!r}: {e}") from None
        # The physical model holds fake_quantize's value, which is dequantize(q) exactly;
        # a mismatch would mean the file decodes to another model than the one evaluated.
        if not torch.equal(dequantize(q).to(t.dtype).to(t.device).reshape(t.shape), t):
            raise RuntimeError(f"kernel {name!r}: packed codes do not reproduce the compressed weight")
        codes = blobs.put(CODES, pack_bits(q.codes.cpu(), q.bits))
        scales = blobs.put(SCALES, q.scale)
        zero_points = None if q.zero_point is None else blobs.put(ZERO_POINTS, q.zero_point)
        kernels.append([key, name, list(q.shape), codes, scales, zero_points])
    return blobs.tensors(), {"kernels": kernels, "tensors": tensors, "shared": shared}


def _dtype_name(dtype: torch.dtype) -> str:
    return str(dtype).removeprefix("torch.")


def _encode_plan(plan: Plan) -> dict[str, dict[str, Any]]:
    """Kernel -> {"b": bits} plus the short keys of the fields that differ from the
    defaults LayerConfig fills in (the default group size included)."""
    out = {}
    for name, cfg in plan.items():
        defaults = LayerConfig(cfg.bits, granularity=cfg.granularity).to_dict()
        defaults["granularity"] = LayerConfig(cfg.bits).granularity
        out[name] = {short: getattr(cfg, field) for field, short in PLAN_KEYS.items()
                     if field == "bits" or getattr(cfg, field) != defaults[field]}
    return out


def _encode_groups(state: CompressionState) -> list[dict[str, Any]]:
    """Each pruned group's ChannelGroup fields that differ from the defaults, + its kept count."""
    defaults = {f.name: f.default for f in dataclasses.fields(ChannelGroup)
                if f.default is not dataclasses.MISSING}
    out = []
    for gid, idx in state.kept.items():
        d = state.groups[gid].to_dict()
        d = {k: v for k, v in d.items() if k not in defaults or v != _jsonable(defaults[k])}
        out.append(dict(d, kept=len(idx)))
    return out


def _jsonable(v: Any) -> Any:
    return [_jsonable(x) for x in v] if isinstance(v, (tuple, list)) else v


def _canonical(obj: Any) -> str:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), allow_nan=False)


def _tensor_bytes(t: Tensor) -> bytes:
    return t.detach().cpu().contiguous().reshape(-1).view(torch.uint8).numpy().tobytes()


def _digest(envelope: Mapping[str, Any], blobs: Mapping[str, Tensor]) -> str:
    """sha256 over the envelope without its digest (format, version, compressed metadata)
    and every blob's name, dtype, shape and bytes, in name order."""
    h = hashlib.sha256()
    h.update(_canonical({k: v for k, v in envelope.items() if k != "sha256"}).encode())
    for name in sorted(blobs):
        t = blobs[name]
        h.update(json.dumps([name, str(t.dtype), list(t.shape)]).encode())
        h.update(_tensor_bytes(t))
    return h.hexdigest()


# --------------------------------------------------------------------------- load


def _read_verified(path: Path) -> tuple[int, dict[str, Any], dict[str, Tensor]]:
    """(header bytes, decoded metadata, blobs) of a packed file whose format, version and
    checksum are verified; the metadata is only decompressed after the checksum matched."""
    data = path.read_bytes()
    header_bytes, envelope = _read_envelope(data, path)
    if envelope.get("format") != FORMAT:
        raise PackedFileError(f"{path}: not a hirelc packed file (format {envelope.get('format')!r})")
    if envelope.get("format_version") != FORMAT_VERSION:
        raise PackedFileError(f"{path}: packed format version {envelope.get('format_version')!r} "
                              f"is not supported (this hirelc reads version {FORMAT_VERSION})")
    try:
        blobs = safetensors.torch.load(data)
    except Exception as e:  # safetensors raises its own SafetensorError for a bad layout
        raise PackedFileError(f"{path}: damaged packed file ({e})") from None
    if _digest(envelope, blobs) != envelope.get("sha256"):
        raise PackedFileError(f"{path}: checksum mismatch: the file was altered or damaged")
    return header_bytes, _decode_meta(envelope.get("meta"), path), blobs


def _read_envelope(data: bytes, path: Path) -> tuple[int, dict[str, Any]]:
    """(8 + header length, our JSON envelope) from the safetensors `__metadata__` (parsed
    here: safetensors only exposes metadata through a file handle)."""
    try:
        (n,) = struct.unpack("<Q", data[:8])
        if 8 + n > len(data):
            raise ValueError(f"header of {n} bytes, file of {len(data)}")
        metadata = json.loads(data[8 : 8 + n]).get("__metadata__") or {}
        envelope = json.loads(metadata[HEADER_KEY]) if HEADER_KEY in metadata else None
    except (struct.error, ValueError, AttributeError, TypeError, UnicodeDecodeError) as e:
        raise PackedFileError(f"{path}: not a packed file or truncated ({e})") from None
    if not isinstance(envelope, dict):
        raise PackedFileError(f"{path}: not a hirelc packed file (no {HEADER_KEY!r} metadata)")
    return 8 + n, envelope


def _decode_meta(payload: Any, path: Path) -> dict[str, Any]:
    try:
        packed = base64.b64decode(payload, validate=True)
        inflater = zlib.decompressobj()
        text = inflater.decompress(packed, MAX_METADATA_BYTES)
        if inflater.unconsumed_tail or not inflater.eof:
            raise ValueError("metadata larger than the limit or cut short")
        meta = json.loads(text)
    except (TypeError, ValueError, binascii.Error, zlib.error, UnicodeDecodeError) as e:
        raise PackedFileError(f"{path}: damaged packed-file metadata ({e})") from None
    if not isinstance(meta, dict) or not {"plan", "groups", "kernels", "tensors", "shared"} <= set(meta):
        raise PackedFileError(f"{path}: packed-file metadata lacks its index")
    return meta


@contextmanager
def _inconsistent(path: Path) -> Iterator[None]:
    """An index that contradicts the blobs (a buggy writer or a crafted file: the checksum
    matched) -> PackedFileError naming the file."""
    try:
        yield
    except PackedFileError:
        raise
    except (KeyError, TypeError, ValueError, IndexError, RuntimeError) as e:
        raise PackedFileError(f"{path}: inconsistent packed file: {e}") from None


def _decode_plan(d: Mapping[str, Any]) -> Plan:
    longs = {short: field for field, short in PLAN_KEYS.items()}
    layers = {}
    for name, cfg in d.items():
        unknown = set(cfg) - set(longs)
        if unknown:
            raise ValueError(f"layer {name!r}: unknown plan fields {sorted(unknown)}")
        layers[name] = LayerConfig.from_dict({longs[k]: v for k, v in cfg.items()}, layer=name)
    return Plan(layers)


def _decode_groups(entries: list[dict]) -> tuple[dict[str, ChannelGroup], dict[str, Tensor]]:
    """Pruned groups and kept indices 0..k-1: only the counts matter for the shapes, the
    values are all overwritten by the file's tensors."""
    groups, kept = {}, {}
    for d in entries:
        d = dict(d)
        count = int(d.pop("kept"))
        g = ChannelGroup.from_dict(d)
        groups[g.id], kept[g.id] = g, torch.arange(count)
    return groups, kept


@dataclass
class _Entry:
    key: str  # state_dict key
    kernel: str | None  # kernel name for a quantized kernel
    shape: tuple[int, ...]  # the tensor's shape (a kernel's compact weight shape)
    parts: dict[str, tuple[int, int]]  # blob -> (offset, elements)


def _entries(meta: Mapping[str, Any], blobs: Mapping[str, Tensor], plan: Plan) -> list[_Entry]:
    """The index, checked against the blobs: known blobs of the right dtype, every entry in
    bounds, and the entries of each blob tiling it exactly (no gap, no overlap)."""
    for name, t in blobs.items():
        want = BLOB_DTYPES.get(name)
        if want is None and not name.startswith(DATA):
            raise ValueError(f"unknown blob {name!r}")
        if t.dim() != 1 or (want is not None and t.dtype != want) or \
                (want is None and _dtype_name(t.dtype) != name[len(DATA):]):
            raise ValueError(f"blob {name!r} is {t.dtype} {tuple(t.shape)}")
    entries = []
    for key, blob, offset, shape in meta["tensors"]:
        if not blob.startswith(DATA):
            raise ValueError(f"{key!r}: tensors live in data.* blobs, not {blob!r}")
        shape = _shape(shape)
        entries.append(_Entry(key, None, shape, {blob: (offset, math.prod(shape))}))
    for key, name, shape, codes, scales, zero_points in meta["kernels"]:
        cfg, shape = plan[name], _shape(shape)
        if len(shape) < 1:
            raise ValueError(f"kernel {name!r}: a weight needs at least one dimension")
        parts = {CODES: (codes, packed_nbytes(math.prod(shape), cfg.bits)),
                 SCALES: (scales, n_scales(shape, cfg))}
        if has_zero_point(cfg):
            parts[ZERO_POINTS] = (zero_points, n_scales(shape, cfg))
        elif zero_points is not None:
            raise ValueError(f"kernel {name!r}: zero points for a format without them")
        entries.append(_Entry(key, name, shape, parts))
    keys = [e.key for e in entries]
    if len(set(keys)) != len(keys):
        raise ValueError("a state_dict key is stored twice")
    tiles: dict[str, list[tuple[int, int]]] = {name: [] for name in blobs}
    for e in entries:
        for blob, (offset, n) in e.parts.items():
            if blob not in blobs:
                raise ValueError(f"{e.key!r}: no blob {blob!r}")
            if isinstance(offset, bool) or not isinstance(offset, int) or offset < 0:
                raise ValueError(f"{e.key!r}: bad offset {offset!r} in {blob!r}")
            tiles[blob].append((offset, n))
    for blob, spans in tiles.items():
        end = 0
        for offset, n in sorted(spans):
            if offset != end:
                raise ValueError(f"blob {blob!r}: entries leave a gap or overlap at element {end}")
            end += n
        if end != blobs[blob].numel():
            raise ValueError(f"blob {blob!r}: entries cover {end} of its {blobs[blob].numel()} elements")
    return entries


def _shape(shape: Any) -> tuple[int, ...]:
    if not isinstance(shape, list) or not all(isinstance(d, int) and not isinstance(d, bool) and d >= 0
                                              for d in shape):
        raise ValueError(f"bad shape {shape!r}")
    return tuple(shape)


def _state_dict(entries: list[_Entry], blobs: Mapping[str, Tensor], plan: Plan,
                shared: Mapping[str, str]) -> dict[str, Tensor]:
    def take(blob: str, part: tuple[int, int]) -> Tensor:
        offset, n = part
        return blobs[blob][offset : offset + n]

    state: dict[str, Tensor] = {}
    for e in entries:
        if e.kernel is None:
            (blob, part), = e.parts.items()
            state[e.key] = take(blob, part).reshape(e.shape)
            continue
        cfg = plan[e.kernel]
        rows, cols = e.shape[0], math.prod(e.shape[1:])
        codes = unpack_bits(take(CODES, e.parts[CODES]), cfg.bits, rows * cols).reshape(rows, cols)
        sshape = scale_shape(e.shape, cfg)
        zero_point = take(ZERO_POINTS, e.parts[ZERO_POINTS]).reshape(sshape) if ZERO_POINTS in e.parts else None
        state[e.key] = dequantize(QuantizedTensor(
            codes=codes, scale=take(SCALES, e.parts[SCALES]).reshape(sshape), zero_point=zero_point,
            bits=cfg.bits, number_format=cfg.number_format, granularity=cfg.granularity,
            group_size=cfg.group_size, shape=e.shape,
        ))
    for dup, key in shared.items():
        if dup in state:
            raise ValueError(f"{dup!r} is both stored and shared")
        state[dup] = state[key]
    return state
