"""The ``"liquid-cell"`` imaging mode: nanoparticles in a liquid layer between two windows,
imaged through it at low resolution and low contrast.

* **Liquid.**  A thick layer whose thickness varies smoothly (large-scale undulation plus
  a finer mottle) and slowly changes; it drifts with the stage.  Bubbles may nucleate,
  grow and sometimes collapse again: bright (less liquid) with a dark meniscus rim.  The
  windows bulge, so the field is brighter in its middle (a fixed vignette).
* **Particles.**  Round or rod-like blobs, dark (metal) in most movies and bright in the
  rest, that move by Brownian motion (smaller ones faster; :class:`~.motion.Brownian`)
  in a periodic box larger than the field, so they enter and leave the field of view.
  Some start as chains; particles that touch may stick and aggregate, and some pairs are
  drawn to meet during the movie.  Some particles nucleate during the movie and grow.
* **Imaging.**  Absorption ``exp(-thickness)``, a strong blur (a Gaussian core plus a wide
  halo from scattering in the liquid) and the illumination.  Use a low dose (1 to 20
  e/px) for realistic noise.

Config fields used: the stage drift, ``n_particles`` or ``coverage`` (a quarter of it: a
dilute suspension), ``particle_speed`` (the RMS Brownian step is 4 to 12 times it),
``rotation_speed`` (rotational diffusion, 30 times it), ``coalescence`` (pairs drawn to
meet), ``background`` (strength of the liquid's thickness variation) and
``illumination_gradient``.  The particle trajectories of the whole movie are drawn up
front (a few floats per particle and frame).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from .config import SimulationConfig
from .detector import Detector
from .field import Blob, FrameGrid, Tile, add_blob, blur, gaussian_kernel, smooth_noise
from .motion import Brownian, Motion
from .optics import Illumination
from .scene import Scene

__all__ = ["LiquidCellModel"]

_SALT = 0x11C0E11


class LiquidCellModel:
    """A liquid-cell movie drawn from its config's seed."""

    full_well: float | None = None

    def __init__(self, config: SimulationConfig) -> None:
        c = config
        h, w = self.shape = (int(c.shape[0]), int(c.shape[1]))
        n_frames = int(c.n_frames)
        span = max(n_frames, 50)  # durations of growth and collapse: short movies show a part of them
        rng = np.random.default_rng(np.random.SeedSequence([int(c.seed), _SALT]))
        lo = min(h, w)
        self.pixel_size_nm = float(math.exp(rng.uniform(math.log(0.5), math.log(5.0))))
        self.blur_sigma = float(rng.uniform(1.5, 3.5))
        halo_w, halo_sigma = float(rng.uniform(0.05, 0.25)), float(rng.uniform(6.0, 12.0))
        m = self.margin = int(math.ceil(3.0 * max(self.blur_sigma, 0.5 * halo_sigma))) + 4
        self.canvas = Tile.size((h, w), m)
        self.kernel = (1.0 - halo_w) * gaussian_kernel(self.canvas, self.blur_sigma) + halo_w * gaussian_kernel(
            self.canvas, halo_sigma
        )
        # The liquid layer: two large-scale fields that mix slowly, and a finer mottle.
        pad = int(math.ceil(0.25 * max(h, w))) + 4
        tsize = Tile.size(self.canvas, pad)
        sig_l = float(rng.uniform(12.0, 40.0))
        maps = [smooth_noise(rng, tsize, sig_l), smooth_noise(rng, tsize, sig_l), smooth_noise(rng, tsize, 3.0)]
        self.tile = Tile(np.stack(maps), self.canvas, pad)
        self.liquid = (
            c.background * float(rng.uniform(0.04, 0.18)),  # undulation amplitude (optical depth)
            c.background * float(rng.uniform(0.01, 0.05)),  # mottle amplitude
            float(rng.uniform(0.01, 0.04)),  # rad/frame at which the undulation changes
        )
        # Bubbles: (blob, centre (frame px), start, growth time, collapse time or inf, depth, rim).
        self.bubbles: list[tuple[Blob, np.ndarray, float, float, float, float, float]] = []
        for _ in range(int(rng.choice([0, 0, 1, 1, 2, 3]))):
            blob = Blob.draw(rng, float(rng.uniform(0.06, 0.25)) * lo, aspect=float(rng.uniform(1.0, 1.3)), wobble=0.05)
            blob.flatness = 0.15
            centre = np.array([rng.uniform(-0.1, 1.1) * w, rng.uniform(-0.1, 1.1) * h])
            t_b = n_frames * float(rng.uniform(-0.5, 0.7))
            t_g = span * float(rng.uniform(0.1, 0.6))
            t_e = t_b + t_g + span * float(rng.uniform(0.1, 0.5)) if rng.random() < 0.3 else math.inf
            self.bubbles.append(
                (blob, centre, t_b, t_g, t_e, float(rng.uniform(0.3, 0.8)), float(rng.uniform(0.05, 0.2)))
            )
        # Particles: Brownian motion in a periodic box around the canvas.
        self.polarity = 1.0 if rng.random() < 0.75 else -1.0  # dark (absorbing) or bright
        r_lo = max(2.0, 0.012 * lo)
        r_hi = max(2.5 * r_lo, 0.07 * lo)
        p_rod = float(rng.uniform(0.0, 0.4))
        self.border = int(math.ceil(2.0 * r_hi * math.sqrt(3.5))) + 8  # room to enter the view unseen
        box = (self.canvas[1] + 2.0 * self.border, self.canvas[0] + 2.0 * self.border)
        radii: list[float] = []
        if c.n_particles is not None:
            n = int(c.n_particles)
            radii = [float(math.exp(rng.uniform(math.log(r_lo), math.log(r_hi)))) for _ in range(n)]
        else:
            target = c.coverage / 4.0 * box[0] * box[1] * float(rng.uniform(0.5, 1.5))
            area = 0.0
            while area < target and len(radii) < 400:
                radii.append(float(math.exp(rng.uniform(math.log(r_lo), math.log(r_hi)))))
                area += math.pi * radii[-1] ** 2
        n = len(radii)
        self.blobs = [
            Blob.draw(
                rng, r, aspect=float(rng.uniform(1.5, 3.5)) if rng.random() < p_rod else 1.0 + rng.exponential(0.1)
            )
            for r in radii
        ]
        self.depths = np.array([float(rng.uniform(0.4, 1.5)) * self.polarity for _ in range(n)])
        start = np.stack([rng.uniform(0, box[0], n), rng.uniform(0, box[1], n)], axis=1) if n else np.zeros((0, 2))
        cluster = np.arange(n)
        # Chains: some particles start attached to the one before them, along a wandering line.
        k = 0
        while k < n - 1:
            if rng.random() < 0.12:
                length = int(rng.integers(2, 6))
                heading = float(rng.uniform(0, 2 * math.pi))
                for q in range(k + 1, min(n, k + length)):
                    heading += float(rng.normal(0.0, 0.5))
                    gap = (self._reach(q - 1) + self._reach(q)) * 0.95
                    start[q] = start[q - 1] + gap * np.array([math.cos(heading), math.sin(heading)])
                    cluster[q] = cluster[k]
                k += length
            else:
                k += 1
        # Nucleation and growth: some particles appear during the movie.
        self.birth = np.where(
            rng.random(n) < float(rng.uniform(0.0, 0.3)), n_frames * rng.uniform(0.0, 0.7, n), -math.inf
        )
        self.grow = span * rng.uniform(0.1, 0.4, n)
        # Pairs drawn to meet during the movie (aggregation).
        meet: list[tuple[int, int, float]] = []
        free = [q for q in range(n) if np.sum(cluster == cluster[q]) == 1 and self.birth[q] < 0]
        if c.coalescence and len(free) >= 2:
            order = rng.permutation(free)
            for q in range(min(max(1, round(n / 10)), len(free) // 2)):
                i, j = int(order[2 * q]), int(order[2 * q + 1])
                ang = float(rng.uniform(0, 2 * math.pi))
                gap = (self._reach(i) + self._reach(j)) * float(rng.uniform(2.0, 5.0))
                start[j] = start[i] + gap * np.array([math.cos(ang), math.sin(ang)])
                # They meet around t_c, approaching at 1 px/frame at most.
                meet.append((i, j, max(n_frames * float(rng.uniform(0.2, 0.7)), gap)))
        r_ref = math.sqrt(r_lo * r_hi)
        step = c.particle_speed * float(rng.uniform(4.0, 12.0)) * np.sqrt(r_ref / np.maximum(np.array(radii), 1e-3))
        reach = np.array([self._reach(q) for q in range(n)])
        self.brownian = Brownian.draw(
            rng,
            n_frames,
            start,
            step,
            lambda t: reach * self._growth(t),
            box,
            stick=float(rng.uniform(0.3, 1.0)),
            cluster=cluster,
            rendezvous=meet,
            turn=math.radians(c.rotation_speed) * 30.0,
        )
        self.motion = Motion.draw(rng, c, Scene([], []))  # the stage drift
        self.illumination = Illumination.draw(rng, c)
        self.grid = FrameGrid.build(self.shape)
        bulge = float(rng.uniform(0.0, 1.5))
        r2 = self.grid.yy[:, None] ** 2 + self.grid.xx[None, :] ** 2
        self.vignette = np.exp(-bulge * (r2 - r2.mean())).astype(np.float32)
        self.n_meet = len(meet)
        i0 = self.intensity(0)
        self.headroom = max(2.5, 1.1 * float(i0.max()) / max(float(i0.mean(dtype=np.float64)), 1e-12))

    def _reach(self, q: int) -> float:
        """Contact radius of particle q: its half-length."""
        b = self.blobs[q]
        return b.radius * math.sqrt(b.aspect)

    def _growth(self, t: float) -> np.ndarray:
        """Relative size (0 to 1) of the particles at t (nucleated ones grow as t^(1/3))."""
        return np.clip((t - self.birth) / self.grow, 0.0, 1.0) ** (1.0 / 3.0)

    def particle_positions(self, t: int) -> np.ndarray:
        """Frame coordinates (x, y) in px of the particles' centres at frame t (including the
        stage drift; those outside [0, w) x [0, h) are out of view)."""
        box = np.array(self.brownian.box)
        shift = self.motion.stage(float(t))
        return np.mod(self.brownian.positions[t] + shift, box) - self.border - self.margin

    def intensity(self, t: int) -> np.ndarray:
        h, w = self.shape
        m = self.margin
        shift = self.motion.stage(float(t))
        f1, f2, f3 = self.tile.at(shift)
        amp, mottle, rate = self.liquid
        a = rate * t
        tau = np.float32(amp * math.cos(a)) * f1 + np.float32(amp * math.sin(a)) * f2 + np.float32(mottle) * f3
        for blob, centre, t_b, t_g, t_e, depth, rim in self.bubbles:
            size = min(1.0, max(0.0, (t - t_b) / t_g)) if t >= t_b else 0.0
            if t > t_e:
                size *= max(0.0, 1.0 - (t - t_e) / t_g)
            r = blob.radius * math.sqrt(size)
            if r < 1.0:
                continue
            pos = centre + shift + m
            add_blob(tau, blob, pos, 0.0, -depth, radius=r)
            add_blob(tau, blob, pos, 0.0, rim, radius=r * 1.1)
            add_blob(tau, blob, pos, 0.0, -rim, radius=r)
        if len(self.blobs):
            centres = self.particle_positions(t) + m
            angles = self.brownian.angles[t]
            size = self._growth(float(t))
            hp, wp = self.canvas
            for q, blob in enumerate(self.blobs):
                r = blob.radius * size[q]
                x, y = centres[q]
                ext = 2.0 * self._reach(q) + 2.0
                if r <= 0.3 or not (-ext < x < wp + ext and -ext < y < hp + ext):
                    continue
                add_blob(tau, blob, centres[q], float(angles[q]), float(self.depths[q]), radius=r)
        img = blur(np.exp(-tau), self.kernel)[m : m + h, m : m + w]
        return np.maximum(img, 0.0) * self.illumination.at(t, self.grid) * self.vignette

    def describe(self, detector: Detector) -> dict[str, Any]:
        return {
            "mode": "liquid-cell",
            "pixel_size_nm": round(self.pixel_size_nm, 6),
            "blur_sigma_px": round(self.blur_sigma, 3),
            "particles": len(self.blobs),
            "dark_particles": self.polarity > 0,
            "meeting_pairs": self.n_meet,
            "bubbles": len(self.bubbles),
            "gain_adu_per_e": detector.gain,
            "offset_adu": detector.offset,
        }
