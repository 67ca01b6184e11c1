"""One writer per run directory: an exclusive lock file holding the writer's pid.

The lock is `fcntl.flock` on `<run>/.hirelc.lock` (POSIX): the kernel releases it when the
holder exits for any reason, kill -9 included, so a lock file left behind by a dead process
is stale by construction and is taken over without guessing from pids. The pid and host
written into the file only serve the error message. Where `fcntl` is missing (Windows) an
`O_EXCL` file with a pid liveness check stands in.

Within one process the lock is re-entrant (a counted handle per directory): the library
may open the same run twice (resume after create, a report after a search) without
locking itself out; two processes can never both hold it.

>>> import os, tempfile
>>> folder = tempfile.mkdtemp()
>>> lock = RunLock(folder).acquire()
>>> RunLock.holder(folder)["pid"] == os.getpid()
True
>>> lock.release(); os.path.exists(os.path.join(folder, LOCK_FILE))
False
"""

from __future__ import annotations

import json
import os
import socket
import threading
from pathlib import Path
from typing import Any

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None  # type: ignore[assignment]

LOCK_FILE = ".hirelc.lock"
_HELD: dict[str, tuple[int, int]] = {}  # real path -> (fd, count) held by this process
_GUARD = threading.Lock()


class RunLockedError(RuntimeError):
    """Another live process writes to this run directory."""


class RunLock:
    """Exclusive, re-entrant (per process) lock on a run directory."""

    def __init__(self, folder: str | os.PathLike[str]) -> None:
        self.folder = Path(folder)
        self.path = self.folder / LOCK_FILE
        self._held = False

    def acquire(self) -> "RunLock":
        """Take the lock or raise `RunLockedError` naming the holder's pid."""
        key = os.path.realpath(self.path)
        with _GUARD:
            if key in _HELD:
                fd, count = _HELD[key]
                _HELD[key] = (fd, count + 1)
            else:
                _HELD[key] = (self._open_locked(), 1)
        self._held = True
        return self

    def release(self) -> None:
        """Give the lock back; the last release in this process removes the lock file."""
        if not self._held:
            return
        self._held = False
        key = os.path.realpath(self.path)
        with _GUARD:
            fd, count = _HELD.pop(key)
            if count > 1:
                _HELD[key] = (fd, count - 1)
                return
            # Unlink while still locked: a waiter that opened the old inode re-checks it.
            Path(key).unlink(missing_ok=True)
            os.close(fd)

    @staticmethod
    def holder(folder: str | os.PathLike[str]) -> dict[str, Any] | None:
        """{'pid', 'host'} written by the lock's holder, or None (no or unreadable file)."""
        try:
            data = json.loads((Path(folder) / LOCK_FILE).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None
        return data if isinstance(data, dict) else None

    def _open_locked(self) -> int:
        self.folder.mkdir(parents=True, exist_ok=True)
        if fcntl is None:  # pragma: no cover - Windows
            return self._open_exclusive()
        for _ in range(100):  # retried only when a releasing holder unlinked the file under us
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(fd)
                raise RunLockedError(self._busy_message()) from None
            if _same_file(fd, self.path):
                _write_owner(fd)
                return fd
            os.close(fd)
        raise RunLockedError(f"{self.path}: could not take the lock (it keeps being replaced)")

    def _open_exclusive(self) -> int:  # pragma: no cover - Windows
        for _ in range(2):
            try:
                fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o644)
            except FileExistsError:
                owner = self.holder(self.folder) or {}
                if _alive(owner.get("pid")):
                    raise RunLockedError(self._busy_message()) from None
                self.path.unlink(missing_ok=True)  # stale: its writer is gone
                continue
            _write_owner(fd)
            return fd
        raise RunLockedError(self._busy_message())

    def _busy_message(self) -> str:
        owner = self.holder(self.folder) or {}
        who = f"process {owner.get('pid', '?')} on {owner.get('host', '?')}"
        return (
            f"{self.folder} is in use by {who} (lock file {self.path}); wait for it to finish "
            "or stop it, then run again. Only one search or resume may write a run at a time"
        )


def _same_file(fd: int, path: Path) -> bool:
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return False
    own = os.fstat(fd)
    return (own.st_dev, own.st_ino) == (st.st_dev, st.st_ino)


def _write_owner(fd: int) -> None:
    data = json.dumps({"pid": os.getpid(), "host": socket.gethostname()}).encode()
    os.ftruncate(fd, 0)
    os.pwrite(fd, data, 0)
    os.fsync(fd)


def _alive(pid: Any) -> bool:  # pragma: no cover - Windows fallback only
    if not isinstance(pid, int) or pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
