"""Building blocks of the imaging modes other than HRTEM: Gaussian kernels and blurs on FFT
grids, smooth random fields that drift with the stage (sampled from a periodic tile), soft
blob-shaped particles with wobbly outlines and sintering necks, crack paths, and the frame
coordinates that :class:`~emtcs.simulate.optics.Illumination` needs."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import scipy.fft as sfft

__all__ = [
    "FrameGrid",
    "gaussian_kernel",
    "blur",
    "smooth_noise",
    "Tile",
    "Blob",
    "add_blob",
    "crack_path",
    "path_distance",
]


@dataclass(frozen=True)
class FrameGrid:
    """Centred coordinates of the output rows and columns in frame sizes (what
    :meth:`Illumination.at <emtcs.simulate.optics.Illumination.at>` reads)."""

    yy: np.ndarray
    xx: np.ndarray

    @classmethod
    def build(cls, shape: tuple[int, int]) -> FrameGrid:
        h, w = shape
        yy = (np.arange(h, dtype=np.float32) - (h - 1) / 2) / max(h, w)
        xx = (np.arange(w, dtype=np.float32) - (w - 1) / 2) / max(h, w)
        return cls(yy, xx)


def gaussian_kernel(shape: tuple[int, int], sigma: float) -> np.ndarray:
    """The transfer function of a Gaussian blur of ``sigma`` px on the real-FFT grid of ``shape``."""
    ky = sfft.fftfreq(shape[0]).astype(np.float32)
    kx = sfft.rfftfreq(shape[1]).astype(np.float32)
    k2 = ky[:, None] ** 2 + kx[None, :] ** 2
    return np.exp(-2.0 * math.pi**2 * float(sigma) ** 2 * k2).astype(np.float32)


def blur(img: np.ndarray, kernel: np.ndarray) -> np.ndarray:
    """Periodic convolution of ``img`` with a real-FFT-grid transfer function (float32)."""
    return sfft.irfft2(sfft.rfft2(img) * kernel, s=img.shape).astype(np.float32, copy=False)


def smooth_noise(rng: np.random.Generator, shape: tuple[int, int], sigma: float) -> np.ndarray:
    """Periodic Gaussian-correlated noise (correlation length ``sigma`` px), mean 0, std 1."""
    field = blur(rng.standard_normal(shape, dtype=np.float32), gaussian_kernel(shape, sigma))
    field -= field.mean()
    field /= max(float(field.std()), 1e-12)
    return field


class Tile:
    """A stack of static periodic maps in specimen coordinates, read through a window that
    moves with the stage: ``window(shift)`` is ``maps[:, y + pad - dy, x + pad - dx]`` for
    the window's pixels (bilinear for fractional shifts, wrapping at the tile's edges).

    A tile ``window + 2 * pad`` wide never wraps while the shift stays under ``pad``."""

    def __init__(self, maps: np.ndarray, window: tuple[int, int], pad: int) -> None:
        self.maps = np.ascontiguousarray(maps, dtype=np.float32)
        self.window = window
        self.pad = pad

    @staticmethod
    def size(window: tuple[int, int], pad: int) -> tuple[int, int]:
        """The tile size for a window and a pad (a fast FFT length, as the maps are often blurred)."""
        return sfft.next_fast_len(window[0] + 2 * pad, True), sfft.next_fast_len(window[1] + 2 * pad, True)

    def at(self, shift: np.ndarray) -> np.ndarray:
        """The maps (k, h, w) seen through the window when the specimen has moved by ``shift`` (x, y)."""
        _, th, tw = self.maps.shape
        h, w = self.window
        oy = self.pad - float(shift[1])
        ox = self.pad - float(shift[0])
        iy, ix = math.floor(oy), math.floor(ox)
        fy, fx = np.float32(oy - iy), np.float32(ox - ix)
        if 0 <= iy and iy + h + 1 <= th and 0 <= ix and ix + w + 1 <= tw:
            a = self.maps[:, iy : iy + h + 1, ix : ix + w + 1]  # a view: no wrap needed
        else:
            rows = (np.arange(h + 1) + iy) % th
            cols = (np.arange(w + 1) + ix) % tw
            a = self.maps[:, rows][:, :, cols]
        r = a[:, :, :w] * (1 - fx)
        r += fx * a[:, :, 1:]
        out = r[:, :h] * (1 - fy)
        out += fy * r[:, 1:]
        return out


@dataclass
class Blob:
    """The outline of a soft, roughly round or elongated particle (local frame, px)."""

    radius: float
    aspect: float  # length / width (1 = round)
    harmonics: np.ndarray  # (k, 2): relative amplitude and phase of the outline's k = 2, 3, ... wobble
    flatness: float  # profile exponent: 1 = sphere, smaller = flat-topped platelet

    @classmethod
    def draw(cls, rng: np.random.Generator, radius: float, *, aspect: float = 1.0, wobble: float = 0.08) -> Blob:
        k = 3
        amps = wobble * rng.uniform(0.0, 1.0, k) / np.arange(1, k + 1)
        harm = np.stack([amps, rng.uniform(0.0, 2.0 * math.pi, k)], axis=1)
        return cls(float(radius), float(aspect), harm, float(rng.uniform(0.4, 1.0)))


def add_blob(
    out: np.ndarray,
    blob: Blob,
    centre: np.ndarray,
    theta: float,
    depth: float,
    *,
    radius: float | None = None,
    neck: tuple[float, float] = (0.0, 0.0),
) -> None:
    """Add ``depth * profile`` of ``blob`` (at ``centre`` (x, y), turned by ``theta``, with
    ``radius`` overriding the blob's) to ``out`` in place; the profile is the projected
    thickness of a (flattened) sphere, 1 at the centre and 0 at the outline.  ``neck`` (bump,
    image angle) swells the outline towards a sintering partner, as in the HRTEM scene."""
    r = blob.radius if radius is None else radius
    if r <= 0.05 or depth == 0:
        return
    h, w = out.shape
    a = math.sqrt(max(blob.aspect, 1e-3))
    bump = neck[0]
    ext = r * a * (1.0 + float(np.abs(blob.harmonics[:, 0]).sum())) * (1.0 + bump) + 2.0
    cx, cy = float(centre[0]), float(centre[1])
    x0, x1 = max(0, int(math.floor(cx - ext))), min(w, int(math.ceil(cx + ext)) + 1)
    y0, y1 = max(0, int(math.floor(cy - ext))), min(h, int(math.ceil(cy + ext)) + 1)
    if x0 >= x1 or y0 >= y1:
        return
    X = (np.arange(x0, x1, dtype=np.float32) - np.float32(cx))[None, :]
    Y = (np.arange(y0, y1, dtype=np.float32) - np.float32(cy))[:, None]
    c, s = np.float32(math.cos(theta)), np.float32(math.sin(theta))
    u = (c * X + s * Y) / np.float32(a)
    v = (c * Y - s * X) * np.float32(a)
    phi = np.arctan2(v, u)
    edge = np.ones_like(phi)
    for k, (amp, ph) in enumerate(blob.harmonics, start=2):
        edge += np.float32(amp) * np.cos(k * phi + np.float32(ph))
    rho = np.hypot(u, v) / (np.float32(r) * edge)
    if bump > 0:
        diff = np.angle(np.exp(1j * (np.arctan2(Y, X) - neck[1]))).astype(np.float32)
        rho /= 1.0 + np.float32(bump) * np.exp(-0.5 * (diff / 0.5) ** 2)
    prof = np.clip(1.0 - rho * rho, 0.0, 1.0) ** np.float32(0.5 * blob.flatness)
    out[y0:y1, x0:x1] += np.float32(depth) * prof


def crack_path(rng: np.random.Generator, start: np.ndarray, heading: float, length: float, step: float) -> np.ndarray:
    """A crack as a polyline (m, 2) of (x, y) points: a random walk that keeps its heading on average."""
    n = max(2, int(math.ceil(length / step)))
    turns = np.cumsum(rng.normal(0.0, 0.18, n))
    turns -= np.linspace(0.0, turns[-1], n)  # end where it was heading
    ang = heading + 0.6 * turns
    pts = np.cumsum(np.stack([np.cos(ang), np.sin(ang)], axis=1) * step, axis=0)
    return np.concatenate([np.zeros((1, 2)), pts]) + np.asarray(start, dtype=float)


def path_distance(shape: tuple[int, int], path: np.ndarray, reach: float) -> tuple[np.ndarray, np.ndarray]:
    """For every pixel of ``shape`` within ``reach`` px of the polyline ``path``: the distance
    to it and the arc length (from the path's start) of the nearest point on it (float32
    maps; the distance is ``inf`` farther away)."""
    h, w = shape
    best = np.full(shape, np.inf, np.float32)
    arc = np.zeros(shape, np.float32)
    s0 = 0.0
    for p, q in zip(path[:-1], path[1:]):
        d = q - p
        seg = float(np.hypot(*d))
        if seg < 1e-9:
            continue
        x0 = max(0, int(math.floor(min(p[0], q[0]) - reach)))
        x1 = min(w, int(math.ceil(max(p[0], q[0]) + reach)) + 1)
        y0 = max(0, int(math.floor(min(p[1], q[1]) - reach)))
        y1 = min(h, int(math.ceil(max(p[1], q[1]) + reach)) + 1)
        if x0 < x1 and y0 < y1:
            xx = np.arange(x0, x1, dtype=np.float32)[None, :]
            yy = np.arange(y0, y1, dtype=np.float32)[:, None]
            u = np.clip(((xx - p[0]) * d[0] + (yy - p[1]) * d[1]) / (seg * seg), 0.0, 1.0)
            dist = np.hypot(xx - (p[0] + u * d[0]), yy - (p[1] + u * d[1]))
            win_b, win_a = best[y0:y1, x0:x1], arc[y0:y1, x0:x1]
            closer = dist < win_b
            win_b[closer] = dist[closer]
            win_a[closer] = (s0 + u * seg)[closer]
        s0 += seg
    return best, arc
