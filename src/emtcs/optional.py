"""Optional dependencies: import them when a feature needs them, or say which extra to install."""

from __future__ import annotations

import importlib
from types import ModuleType

from .errors import MissingDependencyError

__all__ = ["require"]


def require(module: str, *, purpose: str, extra: str | None = None, package: str | None = None) -> ModuleType:
    """Import ``module``, or raise a one-line :class:`MissingDependencyError` saying what to install:
    the extra of emtcs that brings it, or (``extra=None``, a dependency of emtcs itself that is
    missing or broken here) the package.

    ``purpose`` completes "... needs <package>", e.g. "reading MRC files".
    """
    try:
        return importlib.import_module(module)
    except ImportError:
        pkg = package or module.split(".")[0]
        what = f"'emtcs[{extra}]'" if extra else pkg
        raise MissingDependencyError(f"{purpose} needs {pkg}: pip install {what}") from None
