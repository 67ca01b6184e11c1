"""Content hashes of a model and a dataset, for cache keys that outlive one process.

Two CLI invocations share cached evaluations only when they compress the same fp32 weights
and see the same data; hashing the content (not a file name or a seed) makes that exact.

>>> import torch
>>> model_fingerprint(torch.nn.Linear(2, 2)) == model_fingerprint(torch.nn.Linear(2, 2))
False
"""

from __future__ import annotations

import hashlib
from typing import Any

import torch
from torch import nn

SPLITS = ("train", "val", "test")


def tensor_bytes(t: torch.Tensor) -> bytes:
    """Raw bytes of a tensor in any dtype (bfloat16 has no numpy dtype, so view as uint8)."""
    flat = t.detach().to("cpu").contiguous().reshape(-1)
    return flat.view(torch.uint8).numpy().tobytes() if flat.numel() else b""


def model_fingerprint(model: nn.Module) -> str:
    """Hash of the architecture (class and printed structure) and every parameter and buffer.

    >>> m = torch.nn.Linear(2, 2)
    >>> model_fingerprint(m) == model_fingerprint(m)
    True
    """
    digest = hashlib.blake2b(digest_size=16)
    cls = type(model)
    digest.update(f"{cls.__module__}.{cls.__qualname__}\n{model}\n".encode())
    for name, tensor in model.state_dict().items():
        digest.update(f"{name}:{tuple(tensor.shape)}:{tensor.dtype};".encode())
        digest.update(tensor_bytes(tensor))
    return digest.hexdigest()


def data_fingerprint(data: Any) -> str:
    """Hash of a DataSplits-like object's train/val/test content.

    Uses `data.fingerprint()` when the object has one (`hirelc.data.DataSplits` does), else
    hashes the tensors of each split's TensorDataset, else iterates each split in order.
    """
    own = getattr(data, "fingerprint", None)
    if callable(own):
        return str(own())
    digest = hashlib.blake2b(digest_size=16)
    for split in SPLITS:
        dataset = getattr(data, split, None)
        if dataset is None:
            raise TypeError(
                f"data must have .train, .val and .test datasets (like hirelc.data.DataSplits); "
                f"{type(data).__name__} has no {split!r}"
            )
        for i, tensor in enumerate(_split_tensors(dataset)):
            digest.update(f"{split}.{i}:{tuple(tensor.shape)}:{tensor.dtype};".encode())
            digest.update(tensor_bytes(tensor))
    return digest.hexdigest()


def _split_tensors(dataset: Any) -> list[torch.Tensor]:
    tensors = getattr(dataset, "tensors", None)
    if tensors is not None:
        return list(tensors)
    # A generic map-style dataset: stack its examples field by field, in order.
    examples = [dataset[i] for i in range(len(dataset))]
    if not examples:
        return []
    return [torch.stack([torch.as_tensor(ex[j]) for ex in examples]) for j in range(len(examples[0]))]
