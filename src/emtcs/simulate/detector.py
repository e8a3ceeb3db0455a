"""The detector of a simulated movie: electrons to ADU (gain and offset), Poisson shot noise
plus Gaussian read noise, and rounding and clipping to the output dtype."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from .config import SimulationConfig

__all__ = ["Detector"]

# Salt of the noise's random streams.
_NOISE_SALT = 0x401CE


@dataclass(frozen=True)
class Detector:
    """Gain (ADU per electron), offset (ADU), read noise (electrons) and output dtype.

    Gain rule, unless ``config.gain`` is set:

    * ``uint16``: 1 ADU per electron (counting-camera style); values above 65535
      are clipped, which does not happen for doses up to about 10000 e/px.
    * ``uint8``: ``gain = 255 / (2.5 * dose + 6 * sqrt(dose) + 6 * read_noise)``,
      which puts the mean signal at about 30-40 % of the range for doses of 100
      and more (lower for very low doses) and leaves room for the offset, the
      brightest lattice contrast (up to about 2.1x the mean) and the shot-noise
      tail, so clipping is rare.  Example: dose 100, read noise 1.5 gives
      0.80 ADU/e and an offset of 4 ADU.  Imaging modes with brighter highlights
      (STEM columns, bright-field saturation) replace the 2.5 by their
      ``headroom``: the peak-to-mean ratio of their frame 0 (see :mod:`.modes`).

    The offset is ``config.offset`` or, by default, ``ceil(3 * read_noise * gain)``.
    The same gain and offset apply to clean and noisy frames, so the clean frame is
    the expected value of the noisy one up to rounding and clipping.
    """

    gain: float
    offset: float
    read_noise: float
    dtype: np.dtype
    seed: int  # the noise of frame t is drawn from (seed, t)

    @classmethod
    def for_config(cls, config: SimulationConfig, headroom: float = 2.5) -> Detector:
        """The detector of ``config``, with the gain and offset rules applied (``headroom``:
        the brightest expected value over the mean that a uint8 frame must hold)."""
        if config.gain is not None:
            gain = float(config.gain)
        elif config.dtype == "uint16":
            gain = 1.0
        else:
            d = float(config.dose)
            gain = 255.0 / (headroom * d + 6.0 * math.sqrt(d) + 6.0 * float(config.read_noise))
        if config.offset is not None:
            offset = float(config.offset)
        else:
            offset = float(math.ceil(3.0 * float(config.read_noise) * gain - 1e-9))
        return cls(gain, offset, float(config.read_noise), np.dtype(config.dtype), int(config.seed))

    def clean(self, electrons: np.ndarray) -> np.ndarray:
        """The expected detector value (float32 ADU) of a frame of ``electrons`` per pixel."""
        return electrons * np.float32(self.gain) + np.float32(self.offset)

    def noisy(self, electrons: np.ndarray, t: int, *, full_well: float | None = None) -> np.ndarray:
        """A noisy reading of frame ``t`` in :attr:`dtype`; deterministic given (seed, t).

        ``full_well`` (electrons), if given, is where the camera saturates: readings
        above it are clipped to it, and pixels whose expected value has reached it (they
        were clipped there) read exactly it, so saturated regions are flat, as in real
        movies."""
        rng = np.random.default_rng(np.random.SeedSequence([self.seed, int(t), _NOISE_SALT]))
        counts = rng.poisson(np.maximum(electrons, 0.0).astype(np.float64)).astype(np.float32)
        if self.read_noise > 0:
            counts += np.float32(self.read_noise) * rng.standard_normal(electrons.shape, dtype=np.float32)
        if full_well is not None:
            fw = np.float32(full_well)
            np.minimum(counts, fw, out=counts)
            counts[electrons >= fw * np.float32(1.0 - 1e-5)] = fw
        adu = counts * np.float32(self.gain) + np.float32(self.offset)
        info = np.iinfo(self.dtype)
        return np.clip(np.rint(adu), info.min, info.max).astype(self.dtype)
