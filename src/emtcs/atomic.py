"""Atomic creation of output files: write to a hidden temporary name, rename at the end.

A failure, Ctrl-C or SIGTERM (the CLI turns it into an exception) removes the
temporary file, so no partial output ever carries the final name.  A process killed
outright (SIGKILL, power loss) cannot clean up; its temporary name records host and
process id, and the next write of the same output on that host removes it once that
process is gone.
"""

from __future__ import annotations

import errno
import os
import re
import socket
import uuid
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path

from .errors import OutputError, OutputExistsError

__all__ = ["atomic_output", "check_output", "recording", "same_file"]


def check_output(
    path: str | os.PathLike[str], *, force: bool = False, inputs: Iterable[str | os.PathLike[str]] = ()
) -> Path:
    """Refuse an output that is a folder or one of ``inputs`` (even with ``force``), an
    existing output unless ``force``, and a parent folder that is missing or where no file
    can be created (tried: permissions alone do not say, e.g. for root or on read-only mounts),
    so that a command fails before its work, not after it."""
    path = Path(path)
    if path.is_dir():
        raise OutputError(f"{path} is a directory")
    for src in inputs:
        if same_file(path, src):
            raise OutputError(f"{path} is also the input: choose another output")
    if (path.exists() or path.is_symlink()) and not force:
        raise OutputExistsError(f"{path} exists (use --force to overwrite)")
    if not path.parent.is_dir():
        raise OutputError(f"output folder {path.parent} does not exist")
    probe = path.with_name(f".{path.name}.{_HOST}-{os.getpid()}-{uuid.uuid4().hex[:8]}{_SUFFIX}")
    try:
        probe.touch(exist_ok=False)
    except OSError as exc:
        raise OutputError(f"cannot write {path}: {exc.strerror or exc}") from None
    finally:  # also when Ctrl-C lands between the two
        _remove(probe)
    return path


def same_file(a: str | os.PathLike[str], b: str | os.PathLike[str]) -> bool:
    """Whether two paths name one file (existing or not)."""
    try:
        return os.path.samefile(a, b)
    except OSError:  # one of them does not exist (yet)
        return Path(a).resolve() == Path(b).resolve()


@contextmanager
def atomic_output(path: str | os.PathLike[str], *, force: bool = False) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on success rename it to ``path``."""
    path = check_output(path, force=force)
    _remove_stale_parts(path)
    tmp = path.with_name(f".{path.name}.{_HOST}-{os.getpid()}-{uuid.uuid4().hex[:8]}{_SUFFIX}")
    try:
        yield tmp
        os.replace(tmp, path)
        for kept in _recorders:
            kept.append(path)
    except OutputError:  # already says what went wrong, and with which file
        _remove(tmp)
        raise
    except OSError as exc:
        created = tmp.exists()
        _remove(tmp)
        if exc.errno == errno.ENOSPC or "errno = 28" in str(exc) or "No space left" in str(exc):
            raise OutputError(f"disk full while writing {path}") from None
        if exc.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
            raise OutputError(f"cannot write {path}: {exc.strerror}") from None
        if not created and exc.filename in (None, str(tmp)):  # the output could not be created
            # (HDF5's own message names the temporary file, with its flags: cut to the cause)
            raise OutputError(f"cannot write {path}: {(exc.strerror or str(exc)).split(' (')[0]}") from None
        raise
    except BaseException:
        _remove(tmp)
        raise


_recorders: list[list[Path]] = []


@contextmanager
def recording() -> Iterator[list[Path]]:
    """Collect the outputs :func:`atomic_output` completes inside the block, in order (the
    CLI names them when an interrupt stops a command that had written some)."""
    kept: list[Path] = []
    _recorders.append(kept)
    try:
        yield kept
    finally:
        _recorders.remove(kept)


_SUFFIX = ".emtcs-part"
_HOST = re.sub(r"[^A-Za-z0-9]", "_", socket.gethostname()) or "host"


def _remove_stale_parts(path: Path) -> None:
    """Delete temporary files of ``path`` left by dead processes of this host."""
    pattern = re.compile(rf"^\.{re.escape(path.name)}\.{re.escape(_HOST)}-(\d+)-[0-9a-f]{{8}}{re.escape(_SUFFIX)}$")
    try:
        candidates = [p for p in path.parent.iterdir() if pattern.match(p.name)]
    except OSError:
        return
    for part in candidates:
        pid = int(pattern.match(part.name).group(1))  # type: ignore[union-attr]
        if pid != os.getpid() and not _alive(pid):
            _remove(part)


def _alive(pid: int) -> bool:
    if os.name == "nt":  # os.kill would terminate the process there; keep the file
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # e.g. EPERM: exists, owned by someone else
        return True
    return True


def _remove(tmp: Path) -> None:
    try:
        tmp.unlink()
    except FileNotFoundError:
        pass
