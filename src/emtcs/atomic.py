"""Atomic creation of output files: write to a hidden temporary name, rename at the end.

A failure, Ctrl-C or SIGTERM (the CLI turns it into an exception) removes the
temporary file, so no partial output ever carries the final name.
"""

from __future__ import annotations

import errno
import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from .errors import OutputError, OutputExistsError

__all__ = ["atomic_output", "check_output"]


def check_output(path: str | os.PathLike[str], *, force: bool = False) -> Path:
    """Refuse an existing output unless ``force``; refuse a missing parent folder."""
    path = Path(path)
    if path.exists() and not force:
        raise OutputExistsError(f"{path} exists (use --force to overwrite)")
    if path.is_dir():
        raise OutputError(f"{path} is a directory")
    if not path.parent.is_dir():
        raise OutputError(f"output folder {path.parent} does not exist")
    return path


@contextmanager
def atomic_output(path: str | os.PathLike[str], *, force: bool = False) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on success rename it to ``path``."""
    path = check_output(path, force=force)
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}.emtcs-part")
    try:
        yield tmp
        os.replace(tmp, path)
    except OSError as exc:
        _remove(tmp)
        if exc.errno == errno.ENOSPC or "errno = 28" in str(exc) or "No space left" in str(exc):
            raise OutputError(f"disk full while writing {path}") from None
        if exc.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
            raise OutputError(f"cannot write {path}: {exc.strerror}") from None
        raise
    except BaseException:
        _remove(tmp)
        raise


def _remove(tmp: Path) -> None:
    try:
        tmp.unlink()
    except FileNotFoundError:
        pass
