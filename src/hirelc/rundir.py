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
import os
import shutil
import weakref
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hirelc.durable import (  # re-exported: they were defined here first
    Journal,
    JournalCorruptError,
    _strict_json,
    atomic_write_text,
    check_output_file,
)
from hirelc.result_file import Result, upgrade
from hirelc.runlock import LOCK_FILE, RunLock

__all__ = ["Journal", "JournalCorruptError", "RunArtifacts", "RunDir", "RunDirError", "atomic_write_text",
           "check_output_file", "config_diff"]

CONFIG_FILE = "config.json"
JOURNAL_FILE = "journal.jsonl"
RESULT_FILE = "result.json"
SENSITIVITY_FILE = "sensitivity.json"
CHECKPOINT_DIR = "checkpoints"


class RunDirError(ValueError):
    """A run directory cannot be used as asked (existing run, config mismatch)."""


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
    hirelc.rundir.RunDirError: ... already holds a run (config.json exists); pass --resume ...
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
                    "--resume to continue it, --force to delete "
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
                "Resume with the original settings, or pass --force to accept "
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

    def read_result(self) -> Result:
        """result.json, upgraded to the current keys whatever version wrote it."""
        if not self.path.is_dir():
            raise FileNotFoundError(f"run directory {self.path} does not exist")
        if not self.result_path.exists():
            n = len(self.journal.records()) if self.journal.path.exists() else 0
            raise FileNotFoundError(
                f"{self.path} has no {RESULT_FILE}: the search has not finished "
                f"({n} journaled evaluations); resume it to produce a result"
            )
        return upgrade(_read_json_object(self.result_path))

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
