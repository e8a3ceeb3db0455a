"""The ``"stem"`` imaging mode: HAADF-like scanning TEM, bright atom columns on a dark
background, recorded by a raster scan.

* **Scene.**  The nanoparticles of the HRTEM mode (:mod:`.scene`, moved by :mod:`.motion`:
  drift, rotation, strain, coalescence) or, in about a third of the movies, one crystal
  that fills most of the field (a slab, its edge maybe in view).  Column brightness is
  Z-contrast: the column's thickness times ``(Z / 79)^1.7`` of the particle's element
  (one element per movie, or one per particle).  Single heavy atoms sit on the support
  and hop now and then.  The amorphous support gives a weak, slowly changing mottle.
* **Probe.**  Columns and support are blurred by the probe: a Gaussian core plus weak
  wide tails.
* **Scan.**  Frame ``t`` is read line by line: each line is shifted sideways by its own
  jitter (white plus line-to-line correlated), scaled by its own gain flicker, and the
  whole frame is distorted by the scan: a fly-back hook at the left edge, a slowly
  drifting shear and magnification, and the specimen drift during the scan (lines later in
  the frame see the specimen further along).  The beam current flickers slowly.
  ``config.scan_noise`` scales all scan artefacts except the drift during the scan
  (0 = an ideal scan).  The shot noise is the shared detector's.

Config fields used: those of the HRTEM scene (``column_spacing_px``, ``particle_radius``,
``n_particles``, ``coverage``, ``twin_probability``, the speeds, ``deformation``,
``coalescence``...), ``background`` (support mottle and single atoms) and ``scan_noise``.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import scipy.fft as sfft

from .config import SimulationConfig
from .detector import Detector
from .field import Tile, gaussian_kernel, smooth_noise
from .motion import Motion
from .optics import Canvas, Illumination, Optics
from .render import Renderer, splat
from .scene import Scene, _new_particle

__all__ = ["StemModel"]

_SALT = 0x57E3
_SCAN_SALT = 0x5CA7
_ELEMENTS = {"Au": 79, "Pt": 78, "Ir": 77, "Pd": 46, "Ag": 47, "Cu": 29, "Ni": 28}


class StemModel:
    """A HAADF-STEM movie drawn from its config's seed."""

    full_well: float | None = None

    def __init__(self, config: SimulationConfig) -> None:
        c = config
        h, w = self.shape = (int(c.shape[0]), int(c.shape[1]))
        n_frames = int(c.n_frames)
        self.seed = int(c.seed)
        rng = np.random.default_rng(np.random.SeedSequence([self.seed, _SALT]))
        self.optics = o = Optics.draw(rng, c)  # sampling and column width; the lens is not used
        self.probe_sigma = max(0.6, float(rng.uniform(0.3, 0.45)) / o.pixel_size)
        tail_w = float(rng.uniform(0.03, 0.12))
        tail_sigma = self.probe_sigma * float(rng.uniform(4.0, 10.0))
        sn = float(c.scan_noise)
        # Scan artefacts (amplitudes drawn whatever scan_noise is, then scaled by it).
        self.jitter = sn * float(rng.uniform(0.15, 0.6))  # px RMS per line
        self.jitter_corr = float(rng.uniform(0.2, 0.6))  # share of line-to-line correlated jitter
        self.flicker = sn * float(rng.uniform(0.01, 0.05))  # relative RMS gain per line
        self.flyback = (sn * float(rng.uniform(0.5, 3.0)), float(rng.uniform(4.0, 16.0)))  # px, decay px
        self.shear = (sn * float(rng.uniform(0.3, 2.0)), float(rng.uniform(0.005, 0.03)), float(rng.uniform(0, 7)))
        self.mag = (sn * float(rng.uniform(0.001, 0.004)), float(rng.uniform(0.005, 0.03)), float(rng.uniform(0, 7)))
        reach = 5.0 * self.jitter + self.flyback[0] + self.shear[0] + self.mag[0] * max(h, w) + 2.0 * c.drift_speed
        m = int(math.ceil(3.0 * self.probe_sigma + reach)) + 4
        hp, wp = sfft.next_fast_len(h + 2 * m, True), sfft.next_fast_len(w + 2 * m, True)
        ky = sfft.fftfreq(hp).astype(np.float32)
        kxr = sfft.rfftfreq(wp).astype(np.float32)
        probe = (1.0 - tail_w) * gaussian_kernel((hp, wp), self.probe_sigma) + tail_w * gaussian_kernel(
            (hp, wp), tail_sigma
        )
        yy = (np.arange(h, dtype=np.float32) - (h - 1) / 2) / max(h, w)
        xx = (np.arange(w, dtype=np.float32) - (w - 1) / 2) / max(h, w)
        self.canvas = Canvas(m, (hp, wp), ky, kxr, probe, probe, np.zeros((1, 1), np.complex64), yy, xx)
        # The specimen: HRTEM-style particles, or one crystal filling the field.
        self.slab = bool(rng.random() < 0.35)
        if self.slab:
            radius = math.hypot(h, w) * float(rng.uniform(0.55, 1.0))
            p = _new_particle(rng, c, o.d0, radius, radius)
            p.c0 = np.array([w / 2, h / 2]) + rng.uniform(-0.25, 0.25, 2) * min(h, w)
            self.scene = Scene([p], [])
        else:
            self.scene = Scene.draw(rng, c, o.d0)
        motion = Motion.draw(rng, c, self.scene)
        self.motion = motion
        self.illumination = Illumination.draw(rng, c)  # only its flicker: the beam current
        names = list(_ELEMENTS)
        n_p = len(self.scene.particles)
        if rng.random() < 0.6:
            self.elements = [str(rng.choice(names))] * n_p
        else:
            self.elements = [str(rng.choice(names)) for _ in range(n_p)]
        self.zfac = np.array([(_ELEMENTS[e] / 79.0) ** 1.7 for e in self.elements], np.float32)
        self.renderer = Renderer(self.shape, o, self.canvas, motion, [], self.illumination)
        # Single atoms on the support that hop now and then.
        n_sa = 0 if self.slab else int(rng.poisson(float(rng.uniform(0.0, 25.0)) * c.background * h * w / 192**2))
        self.atoms = np.stack([rng.uniform(0, w, n_sa), rng.uniform(0, h, n_sa)], axis=1) + m
        rate = rng.uniform(0.0, 0.1, n_sa)
        n_hops = np.minimum(rng.poisson(rate * n_frames), 50)
        self.hop_atom = np.repeat(np.arange(n_sa), n_hops)
        self.hop_time = rng.uniform(0.0, n_frames, len(self.hop_atom))
        self.hop_step = rng.normal(0.0, 2.5, (len(self.hop_atom), 2))
        self.atom_weight = (
            math.sqrt(2.0) * o.d0**2 * float(rng.uniform(0.04, 0.1)) * (_ELEMENTS[str(rng.choice(names))] / 79.0) ** 1.7
        )
        # The amorphous support: two mottle fields that mix slowly, plus a dark level.
        pad = int(math.ceil(0.25 * max(h, w))) + 4
        sig = max(0.6, float(rng.uniform(1.0, 2.0)) / o.pixel_size)
        tsize = Tile.size((hp, wp), pad)
        self.tile = Tile(np.stack([smooth_noise(rng, tsize, sig), smooth_noise(rng, tsize, sig)]), (hp, wp), pad)
        self.support = (
            c.background * float(rng.uniform(0.05, 0.15)) + float(rng.uniform(0.0, 0.03)),
            c.background * float(rng.uniform(0.03, 0.08)),
            float(rng.uniform(0.004, 0.012)),
        )
        i0 = self.intensity(0)
        self.headroom = max(2.5, 1.1 * float(i0.max()) / max(float(i0.mean(dtype=np.float64)), 1e-12))

    @property
    def pixel_size_nm(self) -> float:
        return self.optics.pixel_size / 10.0

    def specimen(self, t: int) -> np.ndarray:
        """The probe-blurred specimen of frame t on the canvas, before the scan (float32)."""
        hp, wp = self.canvas.size
        pos, _, thk, lab = self.renderer.labelled_columns(float(t))
        wts = thk * self.zfac[lab]
        shift = self.motion.stage(float(t))
        if len(self.atoms):
            atoms = self.atoms + shift
            moved = self.hop_time <= t
            if np.any(moved):
                n_sa = len(self.atoms)
                atoms = atoms + np.stack(
                    [np.bincount(self.hop_atom[moved], self.hop_step[moved, k], minlength=n_sa) for k in (0, 1)],
                    axis=1,
                )
            ok = (atoms[:, 0] >= 0) & (atoms[:, 0] < wp - 1) & (atoms[:, 1] >= 0) & (atoms[:, 1] < hp - 1)
            pos = np.concatenate([pos, atoms[ok]])
            wts = np.concatenate([wts, np.full(int(ok.sum()), self.atom_weight)])
        base, amp, rate = self.support
        f1, f2 = self.tile.at(shift)
        a = rate * t
        grid = np.maximum(np.float32(base) + np.float32(amp * math.cos(a)) * f1 + np.float32(amp * math.sin(a)) * f2, 0)
        if len(wts):
            grid += splat(pos, wts, (hp, wp))
        return sfft.irfft2(sfft.rfft2(grid) * self.canvas.col_kernel, s=(hp, wp)).astype(np.float32, copy=False)

    def intensity(self, t: int) -> np.ndarray:
        h, w = self.shape
        m = self.canvas.margin
        img = self.specimen(t)
        rng = np.random.default_rng(np.random.SeedSequence([self.seed, int(t), _SCAN_SALT]))
        white = rng.standard_normal(h)
        walk = np.convolve(rng.standard_normal(h + 8), np.ones(9) / 3.0, mode="valid")
        jit = self.jitter * (math.sqrt(1.0 - self.jitter_corr) * white + math.sqrt(self.jitter_corr) * walk)
        gain = 1.0 + self.flicker * rng.standard_normal(h)
        # The specimen moves during the scan: line y is read a fraction y / h of a frame later.
        v = self.motion.stage(t + 1.0) - self.motion.stage(float(t))
        frac = (np.arange(h) + 0.5) / h
        sa, sf, sp = self.shear
        ma, mf, mp = self.mag
        shear = sa * math.sin(2 * math.pi * sf * t + sp)
        mag = ma * math.sin(2 * math.pi * mf * t + mp)
        ys = np.arange(h) + m + v[1] * frac + mag * (np.arange(h) - h / 2)
        x = np.arange(w, dtype=np.float64)
        fb_a, fb_l = self.flyback
        xs = (
            x[None, :]
            + m
            + (v[0] * frac + jit + shear * (frac - 0.5))[:, None]
            + fb_a * np.exp(-x / fb_l)[None, :]
            + mag * (x - w / 2)[None, :]
        )
        iy = np.clip(np.floor(ys).astype(np.int64), 0, img.shape[0] - 2)
        fy = np.clip(ys - iy, 0.0, 1.0).astype(np.float32)[:, None]
        rows = (1 - fy) * img[iy] + fy * img[iy + 1]
        ix = np.clip(np.floor(xs).astype(np.int64), 0, img.shape[1] - 2)
        fx = np.clip(xs - ix, 0.0, 1.0).astype(np.float32)
        out = (1 - fx) * np.take_along_axis(rows, ix, axis=1) + fx * np.take_along_axis(rows, ix + 1, axis=1)
        il = self.illumination
        current = 1.0 + il.flicker_amplitude * math.sin(2 * math.pi * il.flicker_frequency * t)
        out *= (gain * current).astype(np.float32)[:, None]
        return np.maximum(out, 0.0).astype(np.float32, copy=False)

    def describe(self, detector: Detector) -> dict[str, Any]:
        o = self.optics
        return {
            "mode": "stem",
            "pixel_size_nm": round(self.pixel_size_nm, 6),
            "lattice_constant_A": round(o.lattice_a, 4),
            "spacing_200_px": round(o.d0, 4),
            "probe_sigma_px": round(self.probe_sigma, 3),
            "slab": self.slab,
            "single_atoms": len(self.atoms),
            "scan_jitter_px": round(self.jitter, 3),
            "line_flicker": round(self.flicker, 4),
            "gain_adu_per_e": detector.gain,
            "offset_adu": detector.offset,
            "particles": [
                {"lattice": p.kind, "structure": p.structure, "radius_px": round(p.radius, 2), "element": e}
                for p, e in zip(self.scene.particles, self.elements)
            ],
            "coalescing_pairs": [[pr.i, pr.j] for pr in self.scene.pairs],
        }
