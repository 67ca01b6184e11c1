"""Small helpers shared by the evaluator and the sensitivity code (not public API)."""

from __future__ import annotations

from typing import Any

import torch


def split_loader(
    data: Any, split: str, batch_size: int, shuffle: bool, seed: int, drop_last: bool = False
) -> Any:
    """`data.loader(...)` (hirelc.data.DataSplits), or a seeded DataLoader over `data.<split>`.

    The fallback lets any object with .train/.val/.test datasets stand in for DataSplits.
    """
    if hasattr(data, "loader"):
        return data.loader(split, batch_size=batch_size, shuffle=shuffle, seed=seed, drop_last=drop_last)
    generator = torch.Generator().manual_seed(seed)
    return torch.utils.data.DataLoader(
        getattr(data, split), batch_size=batch_size, shuffle=shuffle, generator=generator,
        drop_last=drop_last,
    )


def qualname(fn: Any) -> str:
    """'module.Name' of a function or callable object, for cache keys."""
    module = getattr(fn, "__module__", None) or type(fn).__module__
    name = getattr(fn, "__qualname__", None) or type(fn).__qualname__
    return f"{module}.{name}"
