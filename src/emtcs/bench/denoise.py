"""The bench's denoisers, both scikit-image, frame by frame.

* :class:`NLMeans` (non-local means) makes the "+ nlm" row of every competing codec:
  what a user could do instead of TCS, whose decoders denoise as they reconstruct.
  Its strength follows the noise of the recorded movie, estimated once from the raw
  frames, as a user who knows the detector would set it: estimated on a decoded frame
  instead, it would miss the noise a codec has already smoothed into blocks and rings,
  and leave those frames untouched.
* :class:`Wavelet` (BayesShrink wavelet thresholding) makes the "denoised raw"
  reference.  It is deliberately another method than the rows' denoiser, so that
  "codec + nlm" is not scored against nlm's own output, and another prior than
  GAP-TV's total variation.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import asdict, dataclass, replace
from typing import Any, ClassVar

import numpy as np

__all__ = ["Denoiser", "NLMeans", "Wavelet"]


class Denoiser(ABC):
    """Denoises (n, H, W) frames one by one; ``describe`` names the function and its settings."""

    name: ClassVar[str]
    function: ClassVar[str]

    def for_noise_of(self, frames: np.ndarray) -> Denoiser:
        """This denoiser set up for the noise of ``frames`` (by default: as it is)."""
        return self

    @abstractmethod
    def frame(self, frame: np.ndarray) -> np.ndarray:
        """One denoised float32 frame."""

    def __call__(self, frames: np.ndarray) -> np.ndarray:
        """Denoised (n, H, W) float32 frames."""
        out = frames.astype(np.float32)
        for k, f in enumerate(out):
            out[k] = self.frame(f)
        return out

    def describe(self) -> dict[str, Any]:
        from skimage import __version__ as skimage_version

        return {"name": self.name, "function": self.function, "scikit-image": skimage_version, **asdict(self)}


@dataclass(frozen=True)
class NLMeans(Denoiser):
    """``skimage.restoration.denoise_nl_means``, fast mode, ``h = h_sigma * sigma``.

    ``sigma`` is the noise standard deviation in source units; :meth:`for_noise_of`
    sets it to the median over a movie's frames of ``skimage.restoration.estimate_sigma``
    (wavelet median absolute deviation).  With ``sigma`` 0 frames pass unchanged.
    """

    patch_size: int = 5
    patch_distance: int = 4
    h_sigma: float = 0.6
    sigma: float | None = None

    name = "nlm"
    function = "skimage.restoration.denoise_nl_means (fast_mode=True), per frame"
    sigma_from = "median over the raw frames of skimage.restoration.estimate_sigma"

    def for_noise_of(self, frames: np.ndarray) -> NLMeans:
        from skimage.restoration import estimate_sigma

        if min(frames.shape[1:]) < 2:
            return replace(self, sigma=0.0)
        return replace(self, sigma=float(np.median([estimate_sigma(f.astype(np.float32)) for f in frames])))

    def frame(self, frame: np.ndarray) -> np.ndarray:
        from skimage.restoration import denoise_nl_means

        if self.sigma is None:
            raise ValueError("NLMeans needs sigma: use for_noise_of(frames)")
        if not self.sigma:
            return frame
        return denoise_nl_means(
            frame,
            h=self.h_sigma * self.sigma,
            sigma=self.sigma,
            patch_size=self.patch_size,
            patch_distance=self.patch_distance,
            fast_mode=True,
        )

    def describe(self) -> dict[str, Any]:
        return {**super().describe(), "sigma_from": self.sigma_from}


@dataclass(frozen=True)
class Wavelet(Denoiser):
    """``skimage.restoration.denoise_wavelet``: BayesShrink soft thresholding, noise estimated per frame."""

    method: str = "BayesShrink"
    mode: str = "soft"

    name = "wavelet"
    function = "skimage.restoration.denoise_wavelet (rescale_sigma=True), per frame"

    def frame(self, frame: np.ndarray) -> np.ndarray:
        from skimage.restoration import denoise_wavelet

        if min(frame.shape) < 2 or float(frame.max()) == float(frame.min()):
            return frame
        return denoise_wavelet(frame, method=self.method, mode=self.mode, rescale_sigma=True)
