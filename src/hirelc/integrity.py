"""Content hashes for the caches hirelc writes and reads back (fp32 checkpoints, decoded
datasets): a digest is recorded next to the file when it is written and compared when the
file is read, so a damaged, truncated or edited cache entry is recomputed, never served.

The digest lives in its own small file (`<name>.sha256`) rather than inside the cached
file or its JSON sidecar, so that older hirelc versions sharing the cache directory still
read the entries they wrote.

>>> import numpy as np, os, tempfile
>>> arrays = {"images": np.zeros((2, 3), np.uint8), "labels": np.arange(2)}
>>> path = os.path.join(tempfile.mkdtemp(), "data.npz")
>>> record_digest(path, arrays_digest(arrays))
>>> verify_digest(path, arrays_digest(arrays))
True
>>> arrays["labels"][0] = 7
>>> verify_digest(path, arrays_digest(arrays))
False
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import torch

__all__ = ["arrays_digest", "digest_path", "record_digest", "state_digest", "verify_digest"]


def state_digest(state: Mapping[str, torch.Tensor]) -> str:
    """sha256 over every (key, dtype, shape, bytes) of a state_dict, in key order."""
    h = hashlib.sha256()
    for key in sorted(state):
        t = state[key].detach().cpu().contiguous()
        h.update(f"{key}|{t.dtype}|{tuple(t.shape)}|".encode())
        # reshape first: a 0-dim tensor (BatchNorm's num_batches_tracked) cannot be viewed as bytes
        h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return h.hexdigest()


def arrays_digest(arrays: Mapping[str, np.ndarray]) -> str:
    """sha256 over every (name, dtype, shape, bytes) of named numpy arrays, in name order."""
    h = hashlib.sha256()
    for name in sorted(arrays):
        a = np.ascontiguousarray(arrays[name])
        h.update(f"{name}|{a.dtype.str}|{a.shape}|".encode())
        h.update(a.tobytes())
    return h.hexdigest()


def digest_path(path: str | os.PathLike[str]) -> Path:
    """Where the digest of the cache file `path` is kept."""
    path = Path(path)
    return path.with_name(path.name + ".sha256")


def record_digest(path: str | os.PathLike[str], digest: str) -> None:
    """Write `digest` for the cache file `path` (atomically: temporary file + rename)."""
    target = digest_path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    tmp.write_text(digest + "\n", encoding="ascii")
    os.replace(tmp, target)


def verify_digest(path: str | os.PathLike[str], digest: str) -> bool | None:
    """True if `digest` is the one recorded for `path`, False if another one is, None when
    none is recorded (an entry written before digests existed)."""
    try:
        recorded = digest_path(path).read_text(encoding="ascii").strip()
    except FileNotFoundError:
        return None
    except (OSError, UnicodeDecodeError):
        return False
    return recorded == digest
