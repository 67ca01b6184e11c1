"""Check a packed file's index against the model that will receive it, before any tensor
is built from it.

The checksum of a packed file proves it is intact, not that it was written by hirelc: a
crafted file can carry a valid checksum over any index. Every number in the index that
sizes an allocation (a group's channel count and kept count, a tensor's shape) is therefore
bounded by the architecture passed as `like`: a count or a dimension larger than the
model's is refused here, so the loader allocates at most what the uncompressed model holds.

>>> from torch import nn
>>> net = nn.Sequential(nn.Linear(4, 6), nn.ReLU(), nn.Linear(6, 2))
>>> check_groups_fit(net, [{"id": "0", "kind": "channels", "size": 6, "producers": ["0"], "kept": 3}])
>>> check_groups_fit(net, [{"id": "0", "kind": "channels", "size": 6, "producers": ["0"], "kept": 10**12}])
Traceback (most recent call last):
...
ValueError: group '0' keeps 1000000000000 of 6 channels; it must keep 1..6
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from torch import nn

__all__ = ["check_groups_fit", "check_shapes_fit"]


def check_groups_fit(model: nn.Module, groups: Sequence[Mapping[str, Any]]) -> None:
    """Each pruned group names kernels of `model` whose row count matches the group's size,
    and keeps between 1 and `size` units. Raises ValueError naming the group otherwise."""
    if not isinstance(groups, list):
        raise ValueError(f"the pruning groups must be a list, got {type(groups).__name__}")
    for g in groups:
        gid = g.get("id") if isinstance(g, Mapping) else None
        if gid is None:
            raise ValueError(f"a pruning group without an id: {str(g)[:80]}")
        size, kept = _int(g.get("size"), f"group {gid!r} size"), _int(g.get("kept"), f"group {gid!r} kept")
        rows = size * _int(g.get("unit", 1), "unit") * _int(g.get("row_chunks", 1), "row_chunks")
        producers = list(g.get("producers") or ()) + list(g.get("depthwise") or ())
        if not producers:  # e.g. an embedding dimension: no kernel's rows, but no tensor is larger
            largest = max((d for p in model.state_dict().values() for d in p.shape), default=0)
            if size > largest:
                raise ValueError(f"group {gid!r} has {size} units, more than any dimension of the model ({largest})")
        for name in producers:
            have = _weight_shape(model, name, gid)[0]
            if have != rows:
                raise ValueError(f"group {gid!r}: kernel {name!r} has {have} rows, the file says {rows}")
        for path in g.get("padded_inputs") or ():
            _check_attention(model, path, gid)
        if not 1 <= kept <= size:
            unit = "heads" if g.get("kind") == "heads" else "channels"
            raise ValueError(f"group {gid!r} keeps {kept} of {size} {unit}; it must keep 1..{size}")


def check_shapes_fit(model: nn.Module, shapes: Iterable[tuple[str, tuple[int, ...]]],
                     shared: Mapping[str, str]) -> None:
    """Every stored (state_dict key, shape) is a key of `model` with as many dimensions and
    no dimension larger (pruning only shrinks); shared keys are keys of `model`."""
    full = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    for key, shape in shapes:
        if key not in full:
            raise ValueError(f"{key!r} is not in the model passed as `like`")
        have = full[key]
        if len(shape) != len(have) or any(d > h for d, h in zip(shape, have)):
            raise ValueError(f"{key!r} has shape {list(shape)} in the file, larger than or unlike "
                             f"the model's {list(have)}")
    if not isinstance(shared, Mapping):
        raise ValueError("the shared-tensor index must be a mapping")
    for dup, key in shared.items():
        if dup not in full or key not in full:
            raise ValueError(f"shared tensor {dup!r} -> {key!r} is not in the model passed as `like`")


def _weight_shape(model: nn.Module, name: Any, gid: Any) -> tuple[int, ...]:
    """Shape of kernel `name`'s weight, found as the inventory names kernels (a fused MHA
    projection is `<mha>.in_proj`, held in `in_proj_weight`)."""
    from hirelc.inventory.kernels import find_kernels  # late: the inventory imports torch.fx

    refs = {r.name: r for r in find_kernels(model)}
    if name not in refs:
        raise ValueError(f"group {gid!r}: the model has no kernel {name!r}")
    ref = refs[name]
    module = model.get_submodule(ref.module) if ref.module else model
    return tuple(getattr(module, ref.param).shape)


def _check_attention(model: nn.Module, path: Any, gid: Any) -> None:
    """`path` names an attention module of `model` (a group's zero-filled attention input)."""
    from hirelc.inventory.kernels import is_attention  # late, as in _weight_shape

    try:
        ok = isinstance(path, str) and is_attention(model.get_submodule(path))
    except AttributeError:
        ok = False
    if not ok:
        raise ValueError(f"group {gid!r}: {path!r} is not an attention module of the model passed as `like`")


def _int(value: Any, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError(f"{what} must be a non-negative integer, got {value!r}")
    return value
