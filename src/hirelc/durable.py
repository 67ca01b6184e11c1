"""Durable, safe file writes: an atomic replace, an append-only journal that survives
`kill -9`, and a check that an output path can be written without overwriting a user's file.

>>> import os, tempfile
>>> j = Journal(os.path.join(tempfile.mkdtemp(), "run", "journal.jsonl"))
>>> j.append({"step": 1})
>>> j.numbered_records()
[(1, {'step': 1})]
"""

from __future__ import annotations

import json
import math
import os
import tempfile
import warnings
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any


class JournalCorruptError(ValueError):
    """A journal line other than the last one is not a JSON object."""


def atomic_write_text(path: str | os.PathLike[str], text: str) -> None:
    """Write `text` to `path` so that readers see the old file or the new one, never a mix.

    Writes a temporary file in the same directory (so `os.replace` is a rename on one
    filesystem), fsyncs it, renames it over `path`, then fsyncs the directory so the rename
    itself survives a power cut.

    >>> import os, tempfile
    >>> path = os.path.join(tempfile.mkdtemp(), "out", "result.json")
    >>> atomic_write_text(path, '{"accuracy": 0.9}')
    >>> Path(path).read_text()
    '{"accuracy": 0.9}'
    >>> os.listdir(os.path.dirname(path))  # no temporary file left behind
    ['result.json']
    """
    atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_bytes(path: str | os.PathLike[str], data: bytes) -> None:
    """`atomic_write_text` for bytes (the packed and ONNX files). The temporary file is
    created with the umask's mode (not tempfile.mkstemp's 0600), so the result is readable
    like any file the user writes."""
    import uuid

    path = Path(path)
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
    _fsync_dir(path.parent)


def check_output_file(path: str | os.PathLike[str], is_ours: Callable[[Path], bool], what: str) -> Path:
    """Fail now, before any expensive work, unless `path` can be written: its folder exists
    (or can be made) and takes a new file, and a file already there is one of ours
    (`is_ours`): a file the user owns is never overwritten.

    >>> import os, tempfile
    >>> folder = tempfile.mkdtemp()
    >>> check_output_file(os.path.join(folder, "m.hirelc"), lambda p: False, "packed file").name
    'm.hirelc'
    >>> Path(folder, "notes.txt").write_text("mine")
    4
    >>> check_output_file(os.path.join(folder, "notes.txt"), lambda p: False, "packed file")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    FileExistsError: ...notes.txt exists and is not a packed file written by hirelc; ...
    """
    path = Path(path)
    if path.is_dir():
        raise IsADirectoryError(f"{path} is a directory; give the {what} a file name")
    if path.exists() and not is_ours(path):
        raise FileExistsError(f"{path} exists and is not a {what} written by hirelc; choose another "
                              "file name or remove it yourself")
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, probe = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".probe")
    os.close(fd)
    os.unlink(probe)
    return path


def _fsync_dir(directory: Path) -> None:
    # Directory fsync makes a rename durable on POSIX; Windows cannot open directories.
    if os.name != "posix":
        return
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _strict_json(record: Any, what: str) -> str:
    """One-line JSON; refuses NaN/inf, which JSON cannot represent portably."""
    try:
        return json.dumps(record, allow_nan=False, separators=(",", ":"), sort_keys=False)
    except ValueError as e:
        bad = _first_non_finite(record)
        where = f" at {bad}" if bad else ""
        raise ValueError(
            f"{what} contains a NaN or infinity{where}, which JSON cannot store; "
            "store None or a string instead"
        ) from e
    except TypeError as e:
        raise TypeError(f"{what} is not JSON-serialisable: {e}") from e


def _first_non_finite(obj: Any, path: str = "") -> str | None:
    if isinstance(obj, float) and not math.isfinite(obj):
        return path or "<root>"
    if isinstance(obj, Mapping):
        items: Any = ((f"{path}.{k}" if path else str(k), v) for k, v in obj.items())
    elif isinstance(obj, (list, tuple)):
        items = ((f"{path}[{i}]", v) for i, v in enumerate(obj))
    else:
        return None
    for sub, value in items:
        found = _first_non_finite(value, sub)
        if found:
            return found
    return None


class Journal:
    """Append-only JSON-lines log that survives `kill -9`.

    Every `append` writes one line, flushes and fsyncs before returning, so a record the
    caller saw written is on disk. A process killed mid-write leaves at most one torn last
    line: `records()` skips it with a warning, and the next `append` cuts it off first so
    the new record does not get glued onto it. One writer at a time.

    >>> import os, tempfile
    >>> j = Journal(os.path.join(tempfile.mkdtemp(), "run", "journal.jsonl"))
    >>> j.append({"step": 1, "accuracy": 0.97})
    >>> j.records()
    [{'step': 1, 'accuracy': 0.97}]
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self._tail_checked = False

    def append(self, record: Mapping[str, Any]) -> None:
        """Write `record` as one line; durable (fsynced) when this returns."""
        if not isinstance(record, Mapping):
            raise TypeError(f"a journal record must be a dict, got {type(record).__name__}")
        line = (_strict_json(dict(record), "journal record") + "\n").encode("utf-8")
        self.path.parent.mkdir(parents=True, exist_ok=True)
        if not self._tail_checked:
            self._cut_torn_tail()
            self._tail_checked = True
        with open(self.path, "ab") as f:
            f.write(line)  # one write call: a kill leaves a prefix of this line, never a mix
            f.flush()
            os.fsync(f.fileno())

    def records(self) -> list[dict[str, Any]]:
        """All complete records in order; a torn last line is skipped with a warning.

        Raises `JournalCorruptError` naming the line when a line before the last is broken.
        """
        return [record for _, record in self._iter_records()]

    def numbered_records(self) -> list[tuple[int, dict[str, Any]]]:
        """(1-based line number, record) pairs: for errors that point at a line."""
        return list(self._iter_records())

    def __len__(self) -> int:
        return len(self.records())

    def _iter_records(self) -> Iterator[tuple[int, dict[str, Any]]]:
        if not self.path.exists():
            return
        lines = self.path.read_bytes().split(b"\n")
        numbered = [(n, raw) for n, raw in enumerate(lines, start=1) if raw.strip()]
        for i, (number, raw) in enumerate(numbered):
            record = _parse_line(raw)
            if record is not None:
                yield number, record
            elif i == len(numbered) - 1:
                warnings.warn(
                    f"{self.path}: line {number} is incomplete or corrupt (an interrupted "
                    "write, e.g. the run was killed); skipping it",
                    stacklevel=3,
                )
            else:
                raise JournalCorruptError(
                    f"{self.path}: line {number} is not a valid JSON object, and it is not "
                    "the last line, so this is damage rather than an interrupted write; "
                    "repair or delete that line to continue"
                )

    def _cut_torn_tail(self) -> None:
        """Make the file end in a complete line before appending.

        An unparsable last line (a killed writer's prefix) is truncated away, matching what
        `records()` skips; a complete record that only lacks its newline keeps it.
        """
        if not self.path.exists():
            return
        data = self.path.read_bytes()
        body = data.rstrip(b"\n")
        start = body.rfind(b"\n") + 1  # start of the last non-empty line
        last = body[start:]
        if not last.strip() or _parse_line(last) is not None:
            if data and not data.endswith(b"\n"):
                with open(self.path, "ab") as f:
                    f.write(b"\n")
            return
        warnings.warn(
            f"{self.path}: removing an incomplete last line (an interrupted write) before "
            "appending",
            stacklevel=3,
        )
        with open(self.path, "r+b") as f:
            f.truncate(start)
            f.flush()
            os.fsync(f.fileno())


def _parse_line(raw: bytes) -> dict[str, Any] | None:
    try:
        record = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError):
        return None
    return record if isinstance(record, dict) else None
