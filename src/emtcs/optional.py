"""Optional dependencies: import them when a feature needs them, or say which extra to install."""

from __future__ import annotations

import importlib
from types import ModuleType

from .errors import MissingDependencyError

__all__ = ["require"]


def require(module: str, *, purpose: str, extra: str, package: str | None = None) -> ModuleType:
    """Import ``module``, or raise a one-line :class:`MissingDependencyError` naming the extra.

    ``purpose`` completes "... needs <package>", e.g. "reading MRC files".
    """
    try:
        return importlib.import_module(module)
    except ImportError:
        pkg = package or module.split(".")[0]
        raise MissingDependencyError(f"{purpose} needs {pkg}: pip install 'emtcs[{extra}]'") from None
