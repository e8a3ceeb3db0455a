"""The decoder interface and the registry of decoders.

A decoder turns one measurement tile and its masks into frames.  Tiling, stitching,
intensity normalisation, devices and file I/O are not its business: the tiling module
calls :meth:`Decoder.decode` on batches of tiles of any size, already normalised so
that frame intensities lie roughly in [0, 1].
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any, ClassVar

import numpy as np

from ..errors import DecoderError

__all__ = ["Decoder", "Unmasked", "register", "get_decoder", "decoder_class", "available_decoders", "per_tile"]

_REGISTRY: dict[str, type[Decoder]] = {}


class Decoder(ABC):
    """Reconstructs (n, B, h, w) frames from (n, h, w) measurements and (n, B, h, w) masks.

    Subclasses set :attr:`name` (a stable id used on the command line and in reports)
    and implement :meth:`decode`.  Options are keyword-only constructor arguments and
    are reported by :meth:`get_config`, so a decoder can be rebuilt from its config.
    """

    name: ClassVar[str]
    #: Whether decode() benefits from a batch of several tiles at once.
    batched: ClassVar[bool] = False
    #: Whether decode() sees across groups: given runs of consecutive groups (``run``), it
    #: decodes each run's groups together, so that a group's first and last frames see the
    #: frames beside them in the groups before and after.  Others are never given runs.
    sees_runs: ClassVar[bool] = False

    @abstractmethod
    def decode(
        self, y: np.ndarray, masks: np.ndarray, electrons_per_unit: float | np.ndarray | None = None
    ) -> np.ndarray:
        """Frames for a batch of measurement tiles.

        ``y``: (n, h, w) float32 measurements, ``masks``: (n, B, h, w) float32 of 0/1,
        both normalised so frames are roughly in [0, 1].  ``electrons_per_unit`` is the
        noise model: electrons per unit of ``y`` (shot noise variance of ``y`` is
        ``y / electrons_per_unit``), one for all tiles or one per tile (:func:`per_tile`),
        None where unknown; decoders that do not use it ignore it.  Returns (n, B, h, w)
        float32.  A decoder that :attr:`sees_runs` takes a keyword ``run`` too: the n tiles
        are n / run runs of ``run`` consecutive groups, each run at one tile position.
        """

    def get_config(self) -> dict[str, Any]:
        """JSON-serialisable options; ``{"name": ...}`` plus the constructor keywords."""
        return {"name": self.name}

    def __repr__(self) -> str:
        opts = ", ".join(f"{k}={v!r}" for k, v in self.get_config().items() if k != "name")
        return f"{type(self).__name__}({opts})"


class Unmasked(Decoder):
    """The frame of a group of one stored without a mask: the measurement itself.

    Not registered (it serves no group of several frames); :func:`emtcs.decoders.decoder_for_group`
    hands it the frames that a ``.tcs`` stores alone.
    """

    name = "copy"

    def decode(
        self, y: np.ndarray, masks: np.ndarray, electrons_per_unit: float | np.ndarray | None = None
    ) -> np.ndarray:
        if masks.shape[1] != 1 or not masks.all():
            raise DecoderError("only a frame stored without a mask can be copied")
        return np.asarray(y, dtype=np.float32)[:, None].copy()


def per_tile(electrons_per_unit: float | np.ndarray | None, n: int) -> np.ndarray | None:
    """The noise level :meth:`Decoder.decode` is told, one for each of ``n`` tiles (float64),
    or None where unknown."""
    if electrons_per_unit is None:
        return None
    return np.broadcast_to(np.asarray(electrons_per_unit, dtype=np.float64), (n,))


def register(cls: type[Decoder]) -> type[Decoder]:
    """Class decorator adding a decoder to the registry under ``cls.name``."""
    if cls.name in _REGISTRY and _REGISTRY[cls.name] is not cls:
        raise ValueError(f"decoder name {cls.name!r} registered twice")
    _REGISTRY[cls.name] = cls
    return cls


def available_decoders() -> list[str]:
    """Names of the registered decoders."""
    return sorted(_REGISTRY)


def decoder_class(name: str) -> type[Decoder]:
    """The decoder class registered as ``name``."""
    try:
        return _REGISTRY[name]
    except KeyError:
        raise DecoderError(f"unknown decoder {name!r}; available: auto, {', '.join(available_decoders())}") from None


def get_decoder(name: str, **options: Any) -> Decoder:
    """Instantiate the decoder registered as ``name`` with its options."""
    cls = decoder_class(name)
    try:
        return cls(**options)
    except TypeError as exc:
        raise DecoderError(f"bad option for decoder {name!r}: {exc}") from None
