"""The ``"bright-field"`` imaging mode: low-magnification in-situ TEM of metals, where the
contrast is mass-thickness (absorption) contrast, ``exp(-thickness)``, with no lattice
fringes.

Each movie draws one kind of specimen:

* ``"particles"``: dark, blobby particles (round, faceted-looking or rod-like, some flat
  platelets, some strongly diffracting and nearly black) on a thin support film, some
  touching in aggregates; they wander, turn and sinter pairwise (the coalescence of
  :mod:`.motion`, with a growing neck).
* ``"network"``: a nanoporous ligament network (thresholded smooth noise, rounded in
  projection) that coarsens over the movie, sometimes with cracks.
* ``"film"``: a continuous polycrystalline film (Voronoi grains of different darkness,
  grooved boundaries) with cracks that propagate and open over the movie.

The support may have holes (vacuum).  The image is blurred by a small point-spread
function with a defocus halo (Fresnel fringe at edges), multiplied by the illumination and
then put through a contrast window like an exported movie: the brightest few per cent
(vacuum, holes, cracks, thin regions) saturate flat at the camera's full well and, in
half the movies, the darkest pixels are clipped to black.  A burned-in scale bar with its
label (and sometimes a running timestamp) stays put in the frame while the specimen drifts
(``config.overlay_probability``).

Config fields used: the stage drift, ``n_particles`` (any kind) or ``coverage`` (the
``"particles"`` kind), ``particle_speed``, ``rotation_speed``, ``coalescence`` and
``coalescence_speed``, ``background`` (support film thickness), ``illumination_gradient``,
``overlay_probability`` and ``frame_interval`` (the timestamp).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from scipy.spatial import cKDTree

from .config import SimulationConfig
from .detector import Detector
from .field import Blob, FrameGrid, Tile, add_blob, blur, crack_path, gaussian_kernel, path_distance, smooth_noise
from .motion import Motion
from .optics import Illumination
from .scene import Pair, Particle, Scene

__all__ = ["BrightFieldModel"]

_SALT = 0xB41F1E1D
_KINDS = ("particles", "network", "film")

# A 3 x 5 pixel font for the burned-in labels.
_FONT = {
    "0": "111101101101111",
    "1": "010110010010111",
    "2": "111001111100111",
    "3": "111001111001111",
    "4": "101101111001001",
    "5": "111100111001111",
    "6": "111100111101111",
    "7": "111001001001001",
    "8": "111101111101111",
    "9": "111101111001111",
    "n": "000110101101101",
    "m": "000111111101101",
    "u": "000101101101111",
    "s": "000011110011110",
    ".": "000000000000010",
    ":": "000010000010000",
    " ": "000000000000000",
}


def _text_mask(text: str, scale: int) -> np.ndarray:
    """The pixels of ``text`` in the 3 x 5 font, each font pixel ``scale`` px wide (bool)."""
    glyphs = []
    for ch in text:
        g = np.array([int(b) for b in _FONT[ch]], bool).reshape(5, 3)
        glyphs += [g, np.zeros((5, 1), bool)]
    mask = np.concatenate(glyphs[:-1], axis=1) if glyphs else np.zeros((5, 0), bool)
    return np.kron(mask, np.ones((scale, scale), bool))


def _nice_length(nm: float) -> float:
    """The largest of 1, 2, 5 x 10^k not above ``nm``."""
    k = math.floor(math.log10(nm))
    for f in (5, 2, 1):
        if f * 10**k <= nm:
            return float(f * 10**k)
    return float(10**k)


def _label(nm: float) -> str:
    return f"{nm / 1000:g} um" if nm >= 1000 else f"{nm:g} nm"


class _Overlay:
    """A burned-in scale bar with its label, maybe on a box, and maybe a running timestamp."""

    def __init__(self, rng: np.random.Generator, shape: tuple[int, int], px_nm: float, interval: float) -> None:
        h, w = shape
        s = max(1, round(min(h, w) / 220))
        nm = _nice_length(float(rng.uniform(0.12, 0.28)) * w * px_nm)
        bar_len = max(4, int(round(nm / px_nm)))
        bar_th = max(2, int(round(float(rng.uniform(0.008, 0.02)) * h)))
        text = _text_mask(_label(nm), s)
        gap = 2 * s
        bw = max(bar_len, text.shape[1])
        bh = text.shape[0] + gap + bar_th
        block = np.zeros((bh, bw), bool)
        tx = (bw - text.shape[1]) // 2 if rng.random() < 0.7 else 0
        block[: text.shape[0], tx : tx + text.shape[1]] = text
        block[bh - bar_th :, :bar_len] = True
        pad = int(round(float(rng.uniform(0.03, 0.07)) * min(h, w)))
        corner = str(rng.choice(["bl", "br", "tl", "tr"], p=[0.45, 0.35, 0.1, 0.1]))
        y0 = h - pad - bh if corner[0] == "b" else pad
        x0 = w - pad - bw if corner[1] == "r" else pad
        self.white = bool(rng.random() < 0.7)  # white marks (else black)
        self.fg = np.zeros(shape, bool)
        self.bg = np.zeros(shape, bool)
        if rng.random() < 0.5:  # a box of the other colour behind the marks
            m = 2 * s
            self.bg[max(0, y0 - m) : y0 + bh + m, max(0, x0 - m) : x0 + bw + m] = True
        self._paste(self.fg, block, y0, x0)
        self.clock = None
        if rng.random() < 0.3:  # a running timestamp in the opposite corner
            ty = pad if corner[0] == "b" else h - pad - 5 * s
            tx0 = pad if corner[1] == "r" else w - pad - 11 * 4 * s
            self.clock = (max(0, ty), max(0, tx0), s, float(interval), float(rng.uniform(0.0, 600.0)))

    @staticmethod
    def _paste(out: np.ndarray, mask: np.ndarray, y0: int, x0: int) -> None:
        h, w = out.shape
        ys, xs = slice(max(0, y0), min(h, y0 + mask.shape[0])), slice(max(0, x0), min(w, x0 + mask.shape[1]))
        sub = mask[ys.start - y0 : ys.stop - y0, xs.start - x0 : xs.stop - x0]
        out[ys, xs] |= sub

    def apply(self, img: np.ndarray, t: int, white: float) -> None:
        """Burn the overlay of frame t into ``img`` (in place; white marks at ``white``)."""
        hi, lo = (np.float32(white), np.float32(0.0)) if self.white else (np.float32(0.0), np.float32(white))
        img[self.bg] = lo
        fg = self.fg
        if self.clock is not None:
            ty, tx, s, interval, start = self.clock
            sec = start + t * interval
            txt = f"{int(sec // 3600):02d}:{int(sec // 60) % 60:02d}:{sec % 60:06.3f}"
            fg = fg.copy()
            self._paste(fg, _text_mask(txt, s), ty, tx)
        img[fg] = hi


class BrightFieldModel:
    """A bright-field (mass-thickness contrast) movie drawn from its config's seed."""

    def __init__(self, config: SimulationConfig) -> None:
        c = config
        h, w = self.shape = (int(c.shape[0]), int(c.shape[1]))
        n_frames = int(c.n_frames)
        # Durations of slow changes (coarsening, crack growth) in frames: short movies show a part of them.
        span = self.span = max(n_frames, 50)
        rng = np.random.default_rng(np.random.SeedSequence([int(c.seed), _SALT]))
        self.pixel_size_nm = float(math.exp(rng.uniform(math.log(0.3), math.log(3.0))))
        self.kind = str(rng.choice(_KINDS, p=[0.45, 0.3, 0.25]))
        # Point-spread function: a small blur plus a defocus halo (difference of Gaussians).
        self.psf_sigma = float(rng.uniform(0.5, 1.3))
        self.halo = float(rng.uniform(-0.25, 0.45))
        halo_sigma = float(rng.uniform(2.0, 4.5))
        m = self.margin = int(math.ceil(3.0 * halo_sigma)) + 2
        self.canvas = Tile.size((h, w), m)
        self.kernel = (1.0 + self.halo) * gaussian_kernel(self.canvas, self.psf_sigma) - self.halo * gaussian_kernel(
            self.canvas, halo_sigma
        )
        # Static maps in specimen coordinates (they drift with the stage).
        pad = int(math.ceil(0.25 * max(h, w))) + 4  # the stage drift stays below this
        tsize = Tile.size(self.canvas, pad)
        lo = min(h, w)
        support = np.float32(c.background * rng.uniform(0.1, 0.3)) * np.clip(
            1.0 + 0.3 * smooth_noise(rng, tsize, float(rng.uniform(6.0, 25.0))), 0.0, None
        )
        holes = np.zeros(tsize, np.float32)
        for _ in range(int(rng.choice([0, 0, 1, 1, 2]))):
            r = float(rng.uniform(0.15, 0.45)) * lo
            blob = Blob.draw(rng, r, aspect=float(rng.uniform(1.0, 1.6)), wobble=0.15)
            blob.flatness = 0.08  # flat inside, steep edge
            centre = np.array([rng.uniform(pad, tsize[1] - pad), rng.uniform(pad, tsize[0] - pad)])
            add_blob(holes, blob, centre, float(rng.uniform(0, math.pi)), 1.0)
        maps = [support, 1.0 - np.clip(holes, 0.0, 1.0)]
        self.net: tuple[float, float, float, float] | None = None
        self.cracks: list[tuple[float, float, float, float]] = []  # (length, width, start, duration)
        if self.kind == "network":
            sig = float(rng.uniform(2.5, 6.0))
            maps += [smooth_noise(rng, tsize, sig), smooth_noise(rng, tsize, sig * float(rng.uniform(1.5, 2.5)))]
            w0 = float(rng.uniform(0.0, 0.3))
            self.net = (float(rng.uniform(-0.3, 0.3)), float(rng.uniform(0.8, 2.5)), w0, float(rng.uniform(0.05, 0.35)))
        elif self.kind == "film":
            size = float(rng.uniform(6.0, 25.0))
            n_grains = max(4, int(tsize[0] * tsize[1] / size**2))
            seeds = rng.uniform(0.0, 1.0, (n_grains, 2)) * np.array(tsize)
            tree = cKDTree(seeds, boxsize=np.array(tsize, float))
            yy, xx = np.mgrid[0 : tsize[0], 0 : tsize[1]]
            dist, idx = tree.query(np.stack([yy.ravel() + 0.5, xx.ravel() + 0.5], axis=1), k=2)
            grain = rng.uniform(0.7, 1.0, n_grains) * np.where(
                rng.random(n_grains) < 0.15, rng.uniform(1.5, 2.5, n_grains), 1.0
            )
            groove = 1.0 - 0.2 * np.exp(-0.5 * ((dist[:, 1] - dist[:, 0]) / 1.2) ** 2)
            film = float(rng.uniform(0.8, 1.8)) * grain[idx[:, 0]] * groove
            maps.append(film.reshape(tsize).astype(np.float32))
        n_cracks = {"film": int(rng.integers(1, 3)), "network": int(rng.random() < 0.5), "particles": 0}[self.kind]
        for _ in range(n_cracks):
            length = float(rng.uniform(0.6, 1.5)) * max(h, w)
            start = np.array([rng.uniform(pad, tsize[1] - pad), rng.uniform(pad, tsize[0] - pad)])
            path = crack_path(rng, start, float(rng.uniform(0, 2 * math.pi)), length, 3.0)
            width = float(rng.uniform(3.0, 12.0))
            dist, arc = path_distance(tsize, path, width / 2 + 4.0)
            dist += float(rng.uniform(0.3, 1.5)) * smooth_noise(rng, tsize, 1.5)  # jagged edges
            maps += [np.minimum(dist, 1e4).astype(np.float32), arc]
            t0 = n_frames * float(rng.uniform(-0.5, 0.6))
            self.cracks.append((float(arc.max()), width, t0, span * float(rng.uniform(0.3, 1.2))))
        self.tile = Tile(np.stack(maps), self.canvas, pad)
        # Particles (bodies of the motion model, without atomic columns).
        if c.n_particles is not None:
            n = int(c.n_particles)
        elif self.kind == "particles":
            n = -1  # fill the coverage
        else:
            n = int(rng.choice([0, 0, 0, 2, 4]))
        r_lo = max(2.0, 0.015 * lo)
        r_hi = max(1.5 * r_lo, 0.1 * lo)
        radii: list[float] = []
        target = c.coverage * h * w * float(rng.uniform(0.75, 1.25))
        area = 0.0
        while len(radii) < n if n >= 0 else (area < target and len(radii) < 400):
            radii.append(float(math.exp(rng.uniform(math.log(r_lo), math.log(r_hi)))))
            area += math.pi * radii[-1] ** 2
        parts: list[Particle] = []
        self.blobs: list[Blob] = []
        self.depths: list[float] = []
        for r in radii:
            rod = rng.random() < 0.15
            blob = Blob.draw(rng, r, aspect=float(rng.uniform(1.5, 3.0) if rod else 1.0 + rng.exponential(0.12)))
            if parts and rng.random() < 0.35:  # aggregate: touch an earlier particle
                other = parts[int(rng.integers(len(parts)))]
                ang = float(rng.uniform(0, 2 * math.pi))
                c0 = other.c0 + (other.radius + r) * float(rng.uniform(0.85, 1.0)) * np.array(
                    [math.cos(ang), math.sin(ang)]
                )
            else:
                c0 = np.array([rng.uniform(-0.05, 1.05) * w, rng.uniform(-0.05, 1.05) * h])
            empty = np.zeros(0)
            parts.append(
                Particle(
                    kind="blob",
                    structure="single",
                    radius=r,
                    pts=np.zeros((0, 2)),
                    occ=empty,
                    flick_f=empty,
                    flick_p=empty,
                    facet_n=np.zeros((0, 2)),
                    facet_d=empty,
                    phase=0.0,
                    c0=c0,
                    theta0=float(rng.uniform(0, 2 * math.pi)),
                )
            )
            self.blobs.append(blob)
            dark = rng.random() < 0.2  # strongly diffracting grain: nearly black
            self.depths.append(float(rng.uniform(0.8, 2.5)) * (float(rng.uniform(1.5, 3.0)) if dark else 1.0))
        pairs: list[Pair] = []
        if c.coalescence and len(parts) >= 2:
            order = rng.permutation(len(parts))
            for q in range(min(max(1, int(round(len(parts) / 8))), len(parts) // 2)):
                a, b = int(order[2 * q]), int(order[2 * q + 1])
                i, j = (a, b) if parts[a].radius >= parts[b].radius else (b, a)
                ri, rj = parts[i].radius, parts[j].radius
                d0 = (ri + rj) * float(rng.uniform(1.0, 1.12))
                d1 = (ri + rj) * float(rng.uniform(0.5, 0.68))
                width = max(2.0, n_frames * float(rng.uniform(0.08, 0.15)), (d0 - d1) / (4.0 * c.coalescence_speed))
                pairs.append(
                    Pair(
                        i=i,
                        j=j,
                        direction=float(rng.uniform(0, 2 * math.pi)),
                        d0=d0,
                        d1=d1,
                        t_c=n_frames * float(rng.uniform(0.3, 0.6)),
                        width=width,
                        misorientation=0.0,
                        residual=0.0,
                        rot_width=width,
                        absorb=float(rng.uniform(0.2, 0.7)),
                        neck=float(rng.uniform(0.15, 0.35)),
                    )
                )
        self.scene = Scene(parts, pairs)
        self.motion = Motion.draw(rng, c, self.scene)
        self.illumination = Illumination.draw(rng, c)
        self.grid = FrameGrid.build(self.shape)
        self.overlay = (
            _Overlay(rng, self.shape, self.pixel_size_nm, c.frame_interval)
            if min(h, w) >= 48 and rng.random() < c.overlay_probability
            else None
        )
        # The contrast window of the export, set on frame 0: the brightest few per cent
        # saturate, and in half the movies the darkest pixels are clipped to black.
        q_white = float(rng.uniform(0.93, 0.995))
        q_black = float(rng.uniform(0.002, 0.03)) if rng.random() < 0.5 else 0.0
        i0 = self._raw(0)
        self.white = float(np.quantile(i0, q_white))
        self.black = float(np.quantile(i0, q_black)) if q_black > 0 else 0.0
        if self.white <= self.black:
            self.white = self.black + 1e-6
        self.full_well: float | None = self.white - self.black
        shown = np.clip(i0 - np.float32(self.black), 0.0, np.float32(self.full_well))
        self.headroom = max(2.5, self.full_well / max(float(shown.mean(dtype=np.float64)), 1e-12))

    def _raw(self, t: int) -> np.ndarray:
        """The blurred, illuminated transmission of frame t before the contrast window."""
        h, w = self.shape
        m = self.margin
        shift = self.motion.stage(float(t))
        maps = self.tile.at(shift)
        tau = maps[0]
        k = 2
        if self.net is not None:
            level, depth, w0, dw = self.net
            wt = min(1.0, w0 + dw * t / self.span)
            f = ((1.0 - wt) * maps[2] + wt * maps[3]) / math.sqrt((1.0 - wt) ** 2 + wt**2)
            tau = tau + np.float32(depth) * np.sqrt(np.clip((f - np.float32(level)) / 0.35, 0.0, 1.0))
            k = 4
        elif self.kind == "film":
            tau = tau + maps[2]
            k = 3
        for length, width, t0, t_prop in self.cracks:
            dist, arc = maps[k], maps[k + 1]
            k += 2
            tip = length * min(1.0, max(0.0, (t - t0) / t_prop))
            if tip <= 0:
                continue
            open_w = np.float32(width) * np.clip((tip - arc) / (0.35 * length), 0.0, 1.0) ** 0.6
            crack = np.clip((0.5 * open_w - dist) / 0.8 + 0.5, 0.0, 1.0) * np.minimum(open_w, 1.0)
            tau = tau * (1.0 - crack)
        tau = tau * maps[1]  # holes in the support: vacuum
        if self.blobs:
            pose = self.motion.pose(float(t))
            for b, blob in enumerate(self.blobs):
                add_blob(
                    tau,
                    blob,
                    pose.centres[b] + m,
                    pose.thetas[b],
                    self.depths[b],
                    radius=pose.radii[b],
                    neck=pose.necks[b],
                )
        img = blur(np.exp(-tau), self.kernel)[m : m + h, m : m + w]
        return np.maximum(img, 0.0) * self.illumination.at(t, self.grid)

    def intensity(self, t: int) -> np.ndarray:
        img = np.clip(self._raw(t) - np.float32(self.black), 0.0, np.float32(self.full_well))
        if self.overlay is not None:
            self.overlay.apply(img, t, float(self.full_well))
        return img.astype(np.float32, copy=False)

    def describe(self, detector: Detector) -> dict[str, Any]:
        return {
            "mode": "bright-field",
            "pixel_size_nm": round(self.pixel_size_nm, 6),
            "specimen": self.kind,
            "particles": len(self.blobs),
            "sintering_pairs": [[pr.i, pr.j] for pr in self.scene.pairs],
            "cracks": len(self.cracks),
            "psf_sigma_px": round(self.psf_sigma, 3),
            "defocus_halo": round(self.halo, 3),
            "black_level": round(self.black, 5),
            "white_level": round(self.white, 5),
            "overlay": self.overlay is not None,
            "gain_adu_per_e": detector.gain,
            "offset_adu": detector.offset,
        }
