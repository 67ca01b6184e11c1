"""Run directory: the unit a user keeps, shares and resumes (DESIGN.md step 8).

Layout of one run::

    config.json        the search configuration; a resume must match it
    journal.jsonl      append-only, one JSON object per line, fsynced per record
    result.json        written once at the end, atomically
    sensitivity.json   Fisher sensitivity cache (hirelc.evaluate.sensitivity)
    checkpoints/       agent / surrogate checkpoints
    plan.json, model.hirelc, report.html   artifacts

>>> import os, tempfile
>>> path = os.path.join(tempfile.mkdtemp(), "lenet-4bit")
>>> run = RunDir(path).create({"model": "lenet5", "method": "releq"}, resume=True)
>>> run.journal.append({"plan_hash": "ab12", "accuracy": 0.98})
>>> [r["accuracy"] for r in run.journal.records()]
[0.98]
>>> sorted(os.listdir(path))  # the lock file marks the one process writing this run
['.hirelc.lock', 'config.json', 'journal.jsonl']
>>> run.close(); sorted(os.listdir(path))
['config.json', 'journal.jsonl']
"""

from __future__ import annotations

import json
import math
import os
import shutil
import tempfile
import warnings
import weakref
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hirelc.runlock import LOCK_FILE, RunLock

CONFIG_FILE = "config.json"
JOURNAL_FILE = "journal.jsonl"
RESULT_FILE = "result.json"
SENSITIVITY_FILE = "sensitivity.json"
CHECKPOINT_DIR = "checkpoints"


class RunDirError(ValueError):
    """A run directory cannot be used as asked (existing run, config mismatch)."""


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
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
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


@dataclass(frozen=True)
class RunArtifacts:
    """Where a run's user-facing outputs go."""

    plan: Path
    model: Path
    report: Path


class RunDir:
    """One search's directory: config, journal, result, checkpoints and artifacts.

    >>> import os, tempfile
    >>> path = os.path.join(tempfile.mkdtemp(), "a")
    >>> run = RunDir(path).create({"bits": [2, 4, 8]})  # new run
    >>> run.resumed, run.exists()
    (False, True)
    >>> RunDir(path).create({"bits": [2, 4, 8]}, resume=True).resumed
    True
    >>> RunDir(path).create({"bits": [2, 4, 8]})  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    hirelc.rundir.RunDirError: ... already holds a run (config.json exists); pass resume=True ...
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self.resumed = False
        self._journal: Journal | None = None
        self._lock: RunLock | None = None
        self._made_dir = False  # this object created the folder (so it may remove it again)

    # -- lifecycle -------------------------------------------------------------------------

    def create(
        self, config: Mapping[str, Any], resume: bool = False, force: bool = False
    ) -> "RunDir":
        """Start a run, or resume the one already here.

        - a directory holding files but no run (no `config.json`): refused, whatever the
          flags: those files are the user's.
        - empty or missing directory: writes `config.json` (also when `resume=True`).
        - existing run, `resume=False`: refused, unless `force=True`, which deletes this
          run's own files (config, journal, result, sensitivity, checkpoints, artifacts)
          and starts afresh.
        - existing run, `resume=True`: the stored config must equal `config`; a mismatch is
          refused naming the differing keys, unless `force=True`, which keeps the journal
          and overwrites `config.json`.

        The run is locked for this process until `close()` (`hirelc.runlock`): a second
        process asking for it gets `RunLockedError` naming the holder's pid.
        """
        config = json.loads(_strict_json(dict(config), "config"))  # tuples -> lists, like on disk
        self._made_dir = not self.path.exists()
        self._check_is_run_or_empty()
        self.lock()
        try:
            self._open(config, resume, force)
        except BaseException:
            self.close()
            if self._made_dir and not any(self.path.iterdir()):
                self.path.rmdir()
            raise
        return self

    def _open(self, config: dict[str, Any], resume: bool, force: bool) -> None:
        if self.config_path.exists() and not resume:
            if not force:
                raise RunDirError(
                    f"{self.path} already holds a run ({CONFIG_FILE} exists); pass "
                    "resume=True (--resume) to continue it, force=True (--force) to delete "
                    "it and start over, or choose another directory"
                )
            self._clear()
        elif self.config_path.exists():
            self._check_resume(config, force)
            self.resumed = True
        atomic_write_text(self.config_path, json.dumps(config, indent=2, sort_keys=True) + "\n")

    def _check_is_run_or_empty(self) -> None:
        """Refuse a folder that holds files but no hirelc run: they are the user's, and a
        run would overwrite them (result.json, plan.json) or replay them (journal.jsonl)."""
        if self.path.exists() and not self.path.is_dir():
            raise RunDirError(f"{self.path} is a file, not a run directory; choose another --out")
        if self.config_path.exists():
            try:
                self.read_config()
            except (OSError, ValueError) as e:
                raise RunDirError(f"{self.path} is not a hirelc run ({e}); choose another directory") from None
            return
        names = sorted(p.name for p in self.path.iterdir() if not _ours_in_passing(p.name)) \
            if self.path.is_dir() else []
        if names:
            shown = ", ".join(names[:5]) + (f" and {len(names) - 5} more" if len(names) > 5 else "")
            raise RunDirError(
                f"{self.path} is not empty ({shown}) and holds no hirelc run ({CONFIG_FILE} is "
                "missing); hirelc will not write into it: choose a new or empty directory"
            )

    # -- the writer lock -------------------------------------------------------------------

    def lock(self) -> "RunDir":
        """Become the one writer of this run (`hirelc.runlock`); RunLockedError otherwise.
        Held until `close()` or until this object is garbage-collected or the process ends."""
        if self._lock is None:
            self.path.mkdir(parents=True, exist_ok=True)
            self._lock = RunLock(self.path).acquire()
            self._finalizer = weakref.finalize(self, self._lock.release)
        return self

    def close(self) -> None:
        """Release the writer lock (the files stay)."""
        if self._lock is not None:
            self._finalizer()
            self._lock = None

    def __enter__(self) -> "RunDir":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def _check_resume(self, config: dict[str, Any], force: bool) -> None:
        stored = self.read_config()
        diffs = config_diff(stored, config)
        if diffs and not force:
            shown = "\n".join(f"  {k}: {old!r} -> {new!r}" for k, old, new in diffs[:20])
            more = f"\n  ... and {len(diffs) - 20} more" if len(diffs) > 20 else ""
            raise RunDirError(
                f"cannot resume {self.path}: its config differs from the one given "
                f"(key: stored -> new):\n{shown}{more}\n"
                "Resume with the original settings, or pass force=True (--force) to accept "
                "the new config and keep the journal."
            )

    def _clear(self) -> None:
        for name in (CONFIG_FILE, JOURNAL_FILE, RESULT_FILE, SENSITIVITY_FILE):
            (self.path / name).unlink(missing_ok=True)
        for p in (self.artifacts.plan, self.artifacts.model, self.artifacts.report):
            p.unlink(missing_ok=True)
        shutil.rmtree(self.path / CHECKPOINT_DIR, ignore_errors=True)
        self._journal = None

    def discard_if_unused(self) -> bool:
        """Remove a run this object has just started that recorded nothing yet (only its
        config.json), e.g. after a job failed while loading its data, so a corrected command
        can use the same directory. Returns True if it was removed. A resumed run, or one
        with a journal or a result, is never touched; a folder the user made stays.
        """
        names = {p.name for p in self.path.iterdir()} - {LOCK_FILE} if self.path.is_dir() else set()
        if self.resumed or self._lock is None or names != {CONFIG_FILE}:
            return False
        self.config_path.unlink()
        self.close()
        if self._made_dir and not any(self.path.iterdir()):
            self.path.rmdir()
        return True

    # -- files -----------------------------------------------------------------------------

    @property
    def config_path(self) -> Path:
        return self.path / CONFIG_FILE

    @property
    def result_path(self) -> Path:
        return self.path / RESULT_FILE

    @property
    def sensitivity_path(self) -> Path:
        return self.path / SENSITIVITY_FILE

    @property
    def artifacts(self) -> RunArtifacts:
        return RunArtifacts(
            plan=self.path / "plan.json",
            model=self.path / "model.hirelc",
            report=self.path / "report.html",
        )

    @property
    def journal(self) -> Journal:
        if self._journal is None:
            self._journal = Journal(self.path / JOURNAL_FILE)
        return self._journal

    def exists(self) -> bool:
        """True when a run (its config.json) is stored here."""
        return self.config_path.exists()

    def read_config(self) -> dict[str, Any]:
        if not self.config_path.exists():
            raise FileNotFoundError(f"{self.path} holds no run: {CONFIG_FILE} is missing")
        return _read_json_object(self.config_path)

    def write_result(self, result: Mapping[str, Any]) -> Path:
        """Write `result.json` atomically (readers never see a half-written file)."""
        text = json.dumps(json.loads(_strict_json(dict(result), "result")), indent=2) + "\n"
        atomic_write_text(self.result_path, text)
        return self.result_path

    def read_result(self) -> dict[str, Any]:
        if not self.path.is_dir():
            raise FileNotFoundError(f"run directory {self.path} does not exist")
        if not self.result_path.exists():
            n = len(self.journal.records()) if self.journal.path.exists() else 0
            raise FileNotFoundError(
                f"{self.path} has no {RESULT_FILE}: the search has not finished "
                f"({n} journaled evaluations); resume it to produce a result"
            )
        return _read_json_object(self.result_path)

    def checkpoint_path(self, name: str) -> Path:
        """Path for checkpoint `name` under `checkpoints/` (the folder is created)."""
        if not name or Path(name).name != name or name in (".", ".."):
            raise ValueError(f"checkpoint name must be a plain file name, got {name!r}")
        folder = self.path / CHECKPOINT_DIR
        folder.mkdir(parents=True, exist_ok=True)
        return folder / name


def _ours_in_passing(name: str) -> bool:
    """The lock file, or a temporary file of `atomic_write_text` left by a killed writer
    (".config.json.<random>.tmp"): a folder holding only these is still an empty one."""
    return name == LOCK_FILE or (name.startswith(f".{CONFIG_FILE}.") and name.endswith(".tmp"))


def _read_json_object(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as e:
        raise ValueError(f"{path} is not valid JSON: {e}") from None
    if not isinstance(data, dict):
        raise ValueError(f"{path} must hold a JSON object, got {type(data).__name__}")
    return data


def config_diff(old: Any, new: Any, prefix: str = "") -> list[tuple[str, Any, Any]]:
    """Differences between two JSON configs as (dotted key, old, new); missing = `<absent>`.

    >>> config_diff({"a": 1, "b": {"c": 2}}, {"a": 1, "b": {"c": 3}})
    [('b.c', 2, 3)]
    """
    if isinstance(old, dict) and isinstance(new, dict):
        out: list[tuple[str, Any, Any]] = []
        for key in sorted(set(old) | set(new), key=str):
            sub = f"{prefix}.{key}" if prefix else str(key)
            if key not in old or key not in new:
                out.append((sub, old.get(key, "<absent>"), new.get(key, "<absent>")))
            else:
                out.extend(config_diff(old[key], new[key], sub))
        return out
    return [] if old == new else [(prefix or "<root>", old, new)]
