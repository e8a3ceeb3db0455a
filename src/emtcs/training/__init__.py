"""Training the learned decoders (``emtcs train``): a run's definition (:mod:`.config`),
samples made on the fly (:mod:`.data`), the loss (:mod:`.losses`), weights to start from
(:mod:`.grow`) and the loop that validates and checkpoints (:mod:`.loop`).

Only :mod:`.config` is imported with the package: it needs no torch, so the CLI takes its
defaults from it; the other names load their module (and torch) when first used.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

from .config import TrainConfig

if TYPE_CHECKING:
    from .data import ClipPool, make_batch, validation_set
    from .loop import evaluate, train

_LAZY = {"ClipPool": ".data", "make_batch": ".data", "validation_set": ".data", "evaluate": ".loop", "train": ".loop"}

__all__ = ["TrainConfig", "ClipPool", "make_batch", "validation_set", "evaluate", "train"]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(import_module(_LAZY[name], __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
