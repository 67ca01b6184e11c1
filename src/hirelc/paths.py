"""Where hirelc keeps its caches (trained checkpoints, decoded datasets).

One directory for everything, so a user can find, move or delete it in one place:
`$HIRELC_CACHE_DIR` when set, else the platform's user cache directory
(`~/.cache/hirelc` on Linux, `~/Library/Caches/hirelc` on macOS).

>>> from hirelc.paths import cache_dir
>>> (cache_dir() / "checkpoints").name
'checkpoints'
"""

from __future__ import annotations

import os
from pathlib import Path

import platformdirs

CACHE_ENV_VAR = "HIRELC_CACHE_DIR"


def cache_dir(subdir: str | None = None) -> Path:
    """Return the hirelc cache directory (or `subdir` inside it), creating it on demand.

    The environment variable is read on every call, so tests and users can redirect the
    cache at run time.

    >>> cache_dir("checkpoints").is_dir()
    True
    """
    override = os.environ.get(CACHE_ENV_VAR, "").strip()
    root = Path(override).expanduser() if override else Path(platformdirs.user_cache_dir("hirelc"))
    path = root / subdir if subdir else root
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        hint = f" (set by ${CACHE_ENV_VAR})" if override else f"; set ${CACHE_ENV_VAR} to choose another"
        raise OSError(f"cannot create the hirelc cache directory {path}{hint}: {err}") from err
    return path
