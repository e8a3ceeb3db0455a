"""Exception classes of emtcs.

Every error a user can cause by what they pass in derives from :class:`EmtcsError`;
the CLI turns these into a one-line message and a non-zero exit status, anything
else is a bug and keeps its traceback.
"""

from __future__ import annotations


class EmtcsError(Exception):
    """Base class of the errors emtcs raises for bad input, files or options."""


class InputError(EmtcsError, ValueError):
    """An input movie cannot be used (missing, unreadable, wrong layout or dtype)."""


class FormatError(EmtcsError, ValueError):
    """A ``.tcs`` file is not valid: wrong format, unknown version, corrupted or truncated."""


class OutputExistsError(EmtcsError, FileExistsError):
    """The output file exists and overwriting was not asked for."""


class OutputError(EmtcsError, OSError):
    """The output cannot be written (disk full, permission denied, ...)."""


class DecoderError(EmtcsError, ValueError):
    """Unknown decoder name, missing weights or an unusable decoder option."""


class MissingDependencyError(EmtcsError, ImportError):
    """An optional dependency (an ``emtcs[...]`` extra) is needed and not installed."""


class Interrupted(KeyboardInterrupt):
    """Ctrl-C or SIGTERM after some outputs of a command on several files were complete:
    those are kept (``kept``, of ``total``); a partial output is never kept."""

    def __init__(self, kept: list[str], total: int) -> None:
        super().__init__(f"{len(kept)} of {total} outputs were complete and are kept: {', '.join(kept)}")
        self.kept, self.total = kept, total


def for_file(exc: EmtcsError, path: object) -> EmtcsError:
    """``exc`` with its message led by the file it concerns, for commands on several files
    (unchanged where the message already names it)."""
    return exc if str(exc).startswith(str(path)) else type(exc)(f"{path}: {exc}")
