"""The imaging modes behind one small interface, :class:`ImagingModel`, which the movie
(:class:`~emtcs.simulate.movie.MovieSimulator`) calls.

A mode draws everything about a movie from ``config`` (its own random stream, salted by the
seed) in its constructor, and then renders the noise-free intensity of any frame ``t`` on
its own.  The movie scales that intensity to the dose (mean of frame 0) and hands it to the
shared :class:`~emtcs.simulate.detector.Detector` (gain, offset, shot and read noise, dtype).

To add a mode: write a module with a class that has the members of :class:`ImagingModel`
and takes a :class:`~emtcs.simulate.config.SimulationConfig`, add its name to
:data:`emtcs.simulate.config.MODES` and the class to :data:`MODELS` below.
"""

from __future__ import annotations

from typing import Any, Protocol

import numpy as np

from .brightfield import BrightFieldModel
from .config import SimulationConfig
from .detector import Detector
from .hrtem import HrtemModel
from .liquid import LiquidCellModel
from .stem import StemModel

__all__ = ["ImagingModel", "MODELS", "build_model"]


class ImagingModel(Protocol):
    """What the movie needs from an imaging mode."""

    full_well: float | None
    """Intensity (in the units of :meth:`intensity`) at which the camera saturates, or None.

    Frames are already clipped there; the detector then clips the noisy readings too, so
    saturated regions come out flat."""

    # Optional: ``headroom``, the brightest expected value of a frame over its mean (default
    # 2.5, for HRTEM), which the uint8 gain rule of the detector leaves room for.

    @property
    def pixel_size_nm(self) -> float:
        """Pixel size in nm."""
        ...

    def intensity(self, t: int) -> np.ndarray:
        """Noise-free, un-normalised intensity of frame ``t`` (float32, frame shape, >= 0)."""
        ...

    def describe(self, detector: Detector) -> dict[str, Any]:
        """The drawn parameters (for logs and file metadata), with the detector's gain and offset."""
        ...


MODELS: dict[str, type] = {
    "hrtem": HrtemModel,
    "bright-field": BrightFieldModel,
    "liquid-cell": LiquidCellModel,
    "stem": StemModel,
}
"""The class of each mode of :data:`emtcs.simulate.config.MODES`."""


def build_model(config: SimulationConfig) -> ImagingModel:
    """The imaging model of ``config.mode``, drawn from ``config``."""
    return MODELS[config.mode](config)
