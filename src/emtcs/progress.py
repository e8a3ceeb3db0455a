"""Progress on stderr: a live bar (rich) on a terminal, a line now and then in a log.

A decode of a long movie runs for hours, often as a batch job whose stderr is a file:
there a bar would write control codes, so the job's log gets one plain line per
``log_every`` seconds instead (none for work shorter than that).
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskProgressColumn,
    TextColumn,
    TimeRemainingColumn,
)

__all__ = ["progress_bar", "stderr_console"]


def stderr_console() -> Console:
    """Messages on stderr; in a log (not a terminal) each message stays one line, unwrapped."""
    return Console(stderr=True, highlight=False, soft_wrap=not sys.stderr.isatty())


@contextmanager
def progress_bar(
    description: str, total: float, *, quiet: bool = False, unit: str = "frames", log_every: float = 60.0
) -> Iterator[Callable[..., None]]:
    """Yield ``advance(n, status=None)``: a live bar with rate and ETA on a terminal; where
    stderr is not one, a line of the same every ``log_every`` seconds; nothing if quiet."""
    if quiet:
        yield lambda n=1, status=None: None
        return
    if not sys.stderr.isatty():
        yield _LogLines(description, total, unit, log_every)
        return
    columns = (
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TaskProgressColumn(),
        TextColumn("{task.fields[rate]}"),
        TimeRemainingColumn(),
        TextColumn("{task.fields[status]}"),
    )
    with Progress(*columns, console=stderr_console(), transient=False) as bar:
        task = bar.add_task(description, total=total, rate="", status="")

        def advance(n: float = 1, status: str | None = None) -> None:
            bar.advance(task, n)
            speed = bar.tasks[task].speed
            fields = {"rate": f"{speed:.1f} {unit}/s" if speed else ""}
            if status is not None:
                fields["status"] = status
            bar.update(task, **fields)

        yield advance


class _LogLines:
    """``advance`` for a log: after each ``every`` seconds, the first tick before the end
    writes "DESCRIPTION: done/total unit (pct), rate, about T left[, status]"."""

    def __init__(self, description: str, total: float, unit: str, every: float) -> None:
        self.description, self.total, self.unit, self.every = description, total, unit, every
        self.start = time.monotonic()
        self.next = self.start + every
        self.done = 0.0
        self.status = ""

    def __call__(self, n: float = 1, status: str | None = None) -> None:
        self.done += n
        if status is not None:
            self.status = status
        now = time.monotonic()
        if now < self.next or (self.total and self.done >= self.total):  # the command's summary follows
            return
        self.next = now + self.every
        rate = self.done / (now - self.start) if now > self.start else 0.0
        total, unit = self.total, self.unit
        parts = [
            f"{self.description}: {self.done:.0f}/{total:.0f} {unit} ({100 * self.done / total:.0f} %)"
            if total
            else f"{self.description}: {self.done:.0f} {unit}"
        ]
        if rate > 0:
            parts.append(f"{rate:.2f} {unit}/s" if rate < 10 else f"{rate:.0f} {unit}/s")
            if total:
                parts.append(f"about {_duration(max(total - self.done, 0) / rate)} left")
        if self.status:
            parts.append(self.status)
        print(", ".join(parts), file=sys.stderr, flush=True)


def _duration(seconds: float) -> str:
    """1 h 05 min, 4 min 10 s, 12 s."""
    s = round(seconds)
    if s >= 3600:
        return f"{s // 3600} h {s % 3600 // 60:02d} min"
    if s >= 60:
        return f"{s // 60} min {s % 60:02d} s"
    return f"{s} s"
