"""GAP-TV: generalized alternating projection with a total-variation prior.

The classical, training-free decoder of video snapshot compressive imaging
(X. Yuan, "Generalized alternating projection based total variation minimization for
compressive sensing", ICIP 2016).  Each iteration projects the estimate onto the
measurement constraint ``sum_b C_b X_b = Y`` (accelerated GAP) and then denoises every
frame with Chambolle's total-variation algorithm.

The defaults and conventions follow the public PnP-SCI reference implementation
(``gap_denoise`` with the TV denoiser and its grayscale benchmark settings), so that its
published benchmark figures are reproduced: 40 iterations, TV weight 0.3, 5 inner TV
iterations with scikit-image's stopping rule, start point ``A^T y``, mask-sum zeros
replaced by 1.  The TV step runs in float32, vectorised over cache-sized batches of
frames.

One departure, for noisy measurements (the reference's benchmark is noise-free): told
the noise, the acceleration stops once the residual has fallen to it (Morozov's
discrepancy principle).  Accelerated GAP adds each residual back into the measurement
it projects onto; below the noise level those residuals are noise, and fitting them
made GAP-TV 2-8 dB worse than plain GAP on noisy EM movies (docs/decoders.md).  With the
noise unknown (:attr:`GapTV.discrepancy` off, or no noise level given) it accelerates
throughout, as the reference does.
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np

from ..errors import DecoderError
from .base import Decoder, per_tile, register

__all__ = ["GapTV", "gap_tv", "tv_denoise"]

#: Relative energy change below which the inner TV loop of a frame stops early
#: (scikit-image's ``denoise_tv_chambolle`` default, which the reference relies on).
TV_EPS = 2.0e-4


#: Pixels per batch of frames the TV step works on: about 256 KiB per float32 buffer,
#: so that its half-dozen buffers stay in a core's L2 cache.
_TV_CHUNK_PIXELS = 1 << 16


def tv_denoise(x: np.ndarray, weight: float, iterations: int, *, eps: float = TV_EPS) -> np.ndarray:
    """Isotropic 2-D TV denoising of each frame of a (B, h, w) stack (Chambolle 2004).

    Gives the numbers of ``skimage.restoration.denoise_tv_chambolle(x, weight,
    max_num_iter=iterations, eps=eps, channel_axis=0)`` (same dual iteration, Neumann
    boundaries, step 1/4, per-frame early stop; the stopping test sums in float64),
    but vectorised over batches of frames
    sized for the cache: faster on large frames, and much faster on small tiles where
    a per-frame Python loop dominates.  Returns float32.
    """
    x = np.asarray(x, dtype=np.float32)
    if x.ndim != 3:
        raise ValueError(f"expected a (B, h, w) stack, got shape {x.shape}")
    if weight <= 0 or iterations < 1 or x.size == 0:
        return x.copy()
    B, h, w = x.shape
    per_chunk = max(1, _TV_CHUNK_PIXELS // (h * w))
    if per_chunk >= B:
        return _tv_frames(x, weight, iterations, eps)
    out = np.empty_like(x)
    for s in range(0, B, per_chunk):
        out[s : s + per_chunk] = _tv_frames(x[s : s + per_chunk], weight, iterations, eps)
    return out


def _tv_frames(x: np.ndarray, weight: float, iterations: int, eps: float) -> np.ndarray:
    """Chambolle's TV iteration on all frames of a float32 (B, h, w) stack at once."""
    B, h, w = x.shape
    tau = np.float32(0.25)  # 1 / (2 * ndim) for 2-D frames
    ratio = np.float32(tau / weight)
    size = float(h * w)

    # Dual variable along rows (p0) and columns (p1); it stays 0 on the last row/column.
    p0 = np.zeros_like(x)
    p1 = np.zeros_like(x)
    g0 = np.zeros_like(x)
    g1 = np.zeros_like(x)
    d = np.empty_like(x)
    norm = np.empty_like(x)
    out = x
    active = np.ones(B, dtype=bool)
    e_init = e_prev = np.zeros(B)

    for i in range(iterations):
        if i > 0:
            # d = -div(p), with the backward differences of the Chambolle iteration.
            np.add(p0, p1, out=d)
            np.negative(d, out=d)
            d[:, 1:, :] += p0[:, :-1, :]
            d[:, :, 1:] += p1[:, :, :-1]
            out = x + d
        if i == iterations - 1:
            break  # the last update of p would never be used

        np.subtract(out[:, 1:, :], out[:, :-1, :], out=g0[:, :-1, :])
        np.subtract(out[:, :, 1:], out[:, :, :-1], out=g1[:, :, :-1])
        np.multiply(g0, g0, out=norm)
        norm += g1 * g1
        np.sqrt(norm, out=norm)

        energy = weight * norm.sum(axis=(1, 2), dtype=np.float64)
        if i > 0:
            energy += np.einsum("bhw,bhw->b", d, d, dtype=np.float64)
        energy /= size

        norm *= ratio
        norm += 1.0
        if i == 0:
            e_init = e_prev = energy
        else:
            active &= ~(np.abs(e_prev - energy) < eps * e_init)
            e_prev = energy
            if not active.any():
                break
        if active.all():
            p0 -= tau * g0
            p0 /= norm
            p1 -= tau * g1
            p1 /= norm
        else:
            # Frames that met the stopping rule keep p, hence keep this iteration's output.
            a = active
            p0[a] = (p0[a] - tau * g0[a]) / norm[a]
            p1[a] = (p1[a] - tau * g1[a]) / norm[a]
    return out if out is not x else x.copy()


def gap_tv(
    y: np.ndarray,
    masks: np.ndarray,
    *,
    iterations: int = 40,
    tv_weight: float = 0.3,
    tv_iterations: int = 5,
    accelerate: bool = True,
    step: float = 1.0,
    noise: float | None = None,
) -> np.ndarray:
    """GAP-TV reconstruction of B frames from one (h, w) measurement and (B, h, w) masks.

    ``accelerate`` adds the residual of each projection back into the measurement it
    projects onto (the "GAP_acc" variant), which converges much faster for noise-free
    data; ``noise`` (the measurement's noise variance, mean over its pixels) ends the
    acceleration once the mean squared residual has fallen to it.  ``step`` scales the
    projection (the reference's lambda).  Returns (B, h, w) float32.
    """
    y = np.asarray(y, dtype=np.float32)
    masks = np.asarray(masks, dtype=np.float32)
    if masks.ndim != 3 or y.shape != masks.shape[1:]:
        raise ValueError(f"measurement {y.shape} and masks {masks.shape} are not (h, w) and (B, h, w)")
    msum = masks.sum(axis=0, dtype=np.float32)
    msum[msum == 0] = 1.0  # pixels no mask sees: the projection leaves them alone
    inv_msum = np.float32(step) / msum

    x = masks * y  # start point A^T y, as in the reference
    y_acc = np.zeros_like(y)
    for _ in range(iterations):
        yb = np.einsum("bhw,bhw->hw", masks, x)
        if accelerate and noise is not None and np.mean(np.square(y - yb), dtype=np.float64) <= noise:
            accelerate = False
        if accelerate:
            y_acc += y - yb
            r = (y_acc - yb) * inv_msum
        else:
            r = (y - yb) * inv_msum
        x += masks * r
        x = tv_denoise(x, tv_weight, tv_iterations)
    return x


def _check_int(name: str, value: Any, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise DecoderError(f"gaptv: {name} must be an integer >= {minimum}, not {value!r}")
    return int(value)


def _check_float(name: str, value: Any, *, positive: bool) -> float:
    try:
        v = float(value)
    except (TypeError, ValueError):
        v = float("nan")
    if not np.isfinite(v) or v < 0 or (positive and v == 0):
        need = "a positive number" if positive else "a number >= 0"
        raise DecoderError(f"gaptv: {name} must be {need}, not {value!r}")
    return v


@register
class GapTV(Decoder):
    """GAP-TV decoder: no training, no weights; about 0.5 s per 256x256x8 group on one core."""

    name: ClassVar[str] = "gaptv"

    def __init__(
        self,
        *,
        iterations: int = 40,
        tv_weight: float = 0.3,
        tv_iterations: int = 5,
        accelerate: bool = True,
        step: float = 1.0,
        discrepancy: bool = True,
    ) -> None:
        self.iterations = _check_int("iterations", iterations, 0)
        self.tv_iterations = _check_int("tv_iterations", tv_iterations, 1)
        self.tv_weight = _check_float("tv_weight", tv_weight, positive=False)
        self.step = _check_float("step", step, positive=True)
        self.accelerate = bool(accelerate)
        #: Stop accelerating at the noise level when told the noise (module docstring).
        self.discrepancy = bool(discrepancy)

    def get_config(self) -> dict[str, Any]:
        """Name plus the constructor options."""
        return {
            "name": self.name,
            "iterations": self.iterations,
            "tv_weight": self.tv_weight,
            "tv_iterations": self.tv_iterations,
            "accelerate": self.accelerate,
            "step": self.step,
            "discrepancy": self.discrepancy,
        }

    def decode(
        self, y: np.ndarray, masks: np.ndarray, electrons_per_unit: float | np.ndarray | None = None
    ) -> np.ndarray:
        """Run :func:`gap_tv` on each tile of the batch; with :attr:`discrepancy`, the
        acceleration of each ends at its shot noise, ``y / electrons_per_unit``."""
        y = np.asarray(y)
        masks = np.asarray(masks)
        if y.ndim != 3 or masks.ndim != 4 or masks.shape[:1] + masks.shape[2:] != y.shape:
            raise DecoderError(
                f"gaptv: measurements {y.shape} and masks {masks.shape} are not (n, h, w) and (n, B, h, w)"
            )
        out = np.empty(masks.shape, dtype=np.float32)
        epu = per_tile(electrons_per_unit, len(y))
        for k in range(y.shape[0]):
            noise = None
            if self.discrepancy and epu is not None and epu[k]:
                noise = float(np.mean(np.maximum(y[k], 0), dtype=np.float64)) / epu[k]
            out[k] = gap_tv(
                y[k],
                masks[k],
                iterations=self.iterations,
                tv_weight=self.tv_weight,
                tv_iterations=self.tv_iterations,
                accelerate=self.accelerate,
                step=self.step,
                noise=noise,
            )
        return out
