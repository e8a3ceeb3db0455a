"""Progress bars on stderr (rich), silent when asked or when stderr is not a terminal."""

from __future__ import annotations

import sys
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
    return Console(stderr=True, highlight=False)


@contextmanager
def progress_bar(
    description: str, total: float, *, quiet: bool = False, unit: str = "frames"
) -> Iterator[Callable[..., None]]:
    """Yield ``advance(n, status=None)``; a live bar with rate and ETA unless quiet or not a TTY."""
    if quiet or not sys.stderr.isatty():
        yield lambda n=1, status=None: None
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
