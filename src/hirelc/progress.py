"""One progress API for every long loop (search evaluations, fine-tunes, baseline training,
Pareto enumeration): a rich bar on a terminal, plain periodic lines everywhere else (logs,
CI, nohup), so a job never runs silent for minutes.

A plain line is printed when another ~10 % is done or `interval` seconds have passed since
the last line, and once at the end::

    search: 12/120 evaluations (10%), best val acc 98.1%, elapsed 1m05s, ETA 9m45s

The ETA is measured: the time spent so far per item computed in this process, times the
items left (items already done before, e.g. replayed from a journal, and items reported as
not computed, e.g. cache hits, do not count towards the rate).

>>> import io
>>> log = io.StringIO()
>>> with Progress("search", total=4, unit="evaluations", stream=log, clock=iter(range(0, 100, 5)).__next__) as p:
...     for acc in (0.5, 0.9, 0.7, 0.8):
...         p.advance(status=f"best {acc}")
>>> print(log.getvalue().strip().splitlines()[-1])
search: 4/4 evaluations (100%), best 0.8, elapsed 25s, done
"""

from __future__ import annotations

import math
import sys
import time
from collections.abc import Callable
from typing import Any, TextIO

DEFAULT_INTERVAL = 30.0  # seconds between plain lines at most, when 10 % takes longer
STEP_FRACTION = 0.1  # a plain line per ~10 % of the total


def format_duration(seconds: float) -> str:
    """'45s', '3m05s', '1h02m': short, unambiguous durations for progress lines.

    >>> format_duration(45.2), format_duration(185), format_duration(3725)
    ('45s', '3m05s', '1h02m')
    """
    if not math.isfinite(seconds):
        return "?"
    s = int(round(max(0.0, seconds)))
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m{s % 60:02d}s"
    return f"{s // 3600}h{(s % 3600) // 60:02d}m"


def eta_seconds(done_here: int, elapsed: float, remaining: int) -> float:
    """Measured rate x items left; nan before the first item of this process.

    >>> eta_seconds(4, 20.0, 6)
    30.0
    """
    if done_here <= 0:
        return math.nan
    return elapsed / done_here * remaining


class Progress:
    """Progress over `total` items (`unit`), shown on stderr unless `enabled` is False.

    done: items already complete at the start (e.g. journaled evaluations).
    announce: after the first item done here, print the expected total duration (measured
      on that item) — for long jobs such as a Pareto enumeration.
    stream / clock: where plain lines go and the time source (tests inject both); a stream
      that is a terminal gets a rich bar instead of lines.
    """

    def __init__(
        self, label: str, total: int | None = None, *, unit: str = "steps", done: int = 0,
        enabled: bool = True, announce: bool = False, interval: float = DEFAULT_INTERVAL,
        stream: TextIO | None = None, clock: Callable[[], float] = time.perf_counter,
    ) -> None:
        self.label, self.total, self.unit = label, total, unit
        self.done, self.start_done = done, done
        self.computed = 0  # items done here that cost real work (the ETA's denominator)
        self.enabled, self.announce, self.interval = enabled, announce, interval
        self.stream = stream if stream is not None else sys.stderr
        self.clock = clock
        self.status = ""
        self._bar: Any = None
        self._task: Any = None
        self._t0 = self._last_time = 0.0
        self._last_fraction = -1.0
        self._announced = False

    # -- context ------------------------------------------------------------------------

    def __enter__(self) -> Progress:
        self._t0 = self._last_time = self.clock()
        if self.enabled and _is_terminal(self.stream):
            self._start_bar()
        return self

    def __exit__(self, *exc: object) -> None:
        if self._bar is not None:
            self._bar.__exit__(*exc)
            self._bar = None
        elif self.enabled and self.done > self.start_done and exc[0] is None:
            self._line(final=True)

    # -- updates ------------------------------------------------------------------------

    def advance(self, n: int = 1, status: str | None = None, computed: bool = True) -> None:
        """n more items done; `status` (e.g. 'best val acc 98.1%') is shown beside the count;
        computed=False for items that cost nothing (cache hits): they do not shape the ETA."""
        self.update(self.done + n, status=status, computed=computed)

    def update(self, done: int, total: int | None = None, status: str | None = None, computed: bool = True) -> None:
        """Set the count (and the total, when only known once work starts)."""
        if computed:
            self.computed += done - self.done
        self.done = done
        if total is not None:
            self.total = total
        if status is not None:
            self.status = status
        if not self.enabled:
            return
        if self._bar is not None:
            self._bar.update(self._task, completed=self.done, total=self.total, description=self._describe())
        else:
            self._maybe_line()
        if self.announce and not self._announced and self.computed > 0:
            self._announced = True
            self.print(self._estimate_text())

    def print(self, text: str) -> None:
        """A message line that does not break the bar (epoch summaries, warnings)."""
        if not self.enabled:
            return
        if self._bar is not None:
            self._bar.console.print(text, soft_wrap=True)
        else:
            print(text, file=self.stream, flush=True)

    # -- plain lines --------------------------------------------------------------------

    def _maybe_line(self) -> None:
        now = self.clock()
        fraction = self.done / self.total if self.total else 0.0
        if now - self._last_time >= self.interval or fraction - self._last_fraction >= STEP_FRACTION - 1e-9:
            if self.done < (self.total or math.inf):  # the last line comes from __exit__
                self._line(final=False, now=now)

    def _line(self, final: bool, now: float | None = None) -> None:
        now = self.clock() if now is None else now
        elapsed = now - self._t0
        parts = [f"{self.label}: {self.done:,}" + (f"/{self.total:,}" if self.total else "") + f" {self.unit}"]
        if self.total:
            parts[0] += f" ({100 * self.done / self.total:.0f}%)"
        if self.status:
            parts.append(self.status)
        parts.append(f"elapsed {format_duration(elapsed)}")
        if final:
            parts.append("done")
        elif self.total:
            parts.append(f"ETA {format_duration(eta_seconds(self.computed, elapsed, self.total - self.done))}")
        print(", ".join(parts), file=self.stream, flush=True)
        self._last_time = now
        self._last_fraction = self.done / self.total if self.total else 0.0

    def _estimate_text(self) -> str:
        elapsed = self.clock() - self._t0
        left = (self.total or self.done) - self.done
        each, rest = format_duration(elapsed / self.computed), format_duration(eta_seconds(self.computed, elapsed, left))
        return (f"{self.label}: {left:,} {self.unit} to go; measured {each} per computed one so far, so expect "
                f"up to {rest} more (less where results are cached)")

    # -- rich bar -----------------------------------------------------------------------

    def _describe(self) -> str:
        return f"{self.label}" + (f"  {self.status}" if self.status else "")

    def _start_bar(self) -> None:
        from rich.console import Console
        from rich.progress import (BarColumn, MofNCompleteColumn, Progress as RichProgress, TextColumn,
                                   TimeElapsedColumn, TimeRemainingColumn)

        columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TextColumn(self.unit),
                   TimeElapsedColumn(), TextColumn("ETA"), TimeRemainingColumn())
        self._bar = RichProgress(*columns, console=Console(file=self.stream), transient=True)
        self._bar.__enter__()
        self._task = self._bar.add_task(self._describe(), total=self.total, completed=self.done)


def _is_terminal(stream: TextIO) -> bool:
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):  # closed or file-like without isatty
        return False
