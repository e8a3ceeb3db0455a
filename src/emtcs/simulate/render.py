"""Image formation for frame ``t``: the columns of the moving particles, splatted and blurred
into a projected potential together with the carbon support, turned into a phase object,
passed through the objective lens and multiplied by the illumination."""

from __future__ import annotations

import math

import numpy as np
import scipy.fft as sfft

from .motion import Motion, rotation
from .optics import Canvas, Illumination, Optics
from .scene import lattice, shape_rho

__all__ = ["Renderer", "splat"]


def splat(pos: np.ndarray, weights: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """Deposit point weights at sub-pixel (x, y) positions onto a float32 grid, bilinearly."""
    hp, wp = shape
    x, y = pos[:, 0], pos[:, 1]
    ix = np.floor(x).astype(np.int64)
    iy = np.floor(y).astype(np.int64)
    fx, fy = x - ix, y - iy
    idx = np.concatenate([iy * wp + ix, iy * wp + ix + 1, (iy + 1) * wp + ix, (iy + 1) * wp + ix + 1])
    w = weights
    val = np.concatenate([w * (1 - fx) * (1 - fy), w * fx * (1 - fy), w * (1 - fx) * fy, w * fx * fy])
    return np.bincount(idx, val, minlength=hp * wp).astype(np.float32).reshape(hp, wp)


class Renderer:
    """Renders the intensity of any frame of a movie from its drawn optics, scene and motion."""

    def __init__(
        self,
        shape: tuple[int, int],
        optics: Optics,
        canvas: Canvas,
        motion: Motion,
        carbon: list[np.ndarray],
        illumination: Illumination,
    ) -> None:
        self.shape = shape
        self.optics = optics
        self.canvas = canvas
        self.motion = motion
        self.carbon = carbon
        self.illumination = illumination

    def columns(self, t: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Canvas positions (x, y) in px, phase weights and thickness weights of the columns at t.

        The phase weight is the integral of the column's phase shift (rad px^2); the
        thickness weight is the relative thickness times the area per column (px^2),
        so that its local average is the particle's relative thickness (0 to 1)."""
        pos, wts, thk, _ = self.labelled_columns(t)
        return pos, wts, thk

    def labelled_columns(self, t: float) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """:meth:`columns` plus the index of each column's particle (int32), e.g. for Z-contrast."""
        pose = self.motion.pose(t)
        centres, thetas, radii, necks = pose
        parts = self.motion.scene.particles
        d0, col_sigma = self.optics.d0, self.optics.col_sigma
        xs: list[np.ndarray] = []
        rhos: list[np.ndarray] = []
        for k, p in enumerate(parts):
            if radii[k] <= 0 or len(p.pts) == 0:
                xs.append(np.zeros((0, 2)))
                rhos.append(np.zeros(0))
                continue
            xs.append(self.motion.columns(k, pose, t))
            rhos.append(shape_rho(p, p.pts, radii[k], necks[k], thetas[k]))
        # Overlapping particles: each point belongs to the particle whose shape is
        # "deeper" there (smaller rho), which gives a grain boundary between them.
        keep = [rho < 1.0 for rho in rhos]
        if len(parts) > 1:
            cen = np.asarray(centres)
            rad = np.asarray(radii)
            dist = np.hypot(cen[:, None, 0] - cen[None, :, 0], cen[:, None, 1] - cen[None, :, 1])
            close = np.argwhere(np.triu(dist < 1.6 * (rad[:, None] + rad[None, :]), k=1))
        else:
            close = np.zeros((0, 2), int)
        for a, b in close.tolist():
            for s, o in ((a, b), (b, a)):
                sel = np.flatnonzero(keep[s])
                if sel.size == 0:
                    continue
                pts_world = xs[s][sel]
                local = (pts_world - centres[o]) @ rotation(thetas[o])  # inverse rotation
                rho_o = shape_rho(parts[o], local, radii[o], necks[o], thetas[o])
                lose = rho_o < rhos[s][sel]
                keep[s][sel[lose]] = False
        pos_all, w_all, thick_all, label_all = [], [], [], []
        for k, p in enumerate(parts):
            sel = keep[k]
            if not np.any(sel):
                continue
            rho = rhos[k][sel]
            thick = np.clip(1.25 * np.sqrt(np.clip(1.0 - rho * rho, 0.0, 1.0)), 0.12, 1.0)
            occ = p.occ[sel].copy()
            ff = p.flick_f[sel]
            rim = (rho > 0.78) & (ff > 0)
            if np.any(rim):  # surface diffusion: columns near the rim fade in and out
                occ[rim] *= np.clip(0.5 + 0.9 * np.sin(2 * math.pi * ff[rim] * t + p.flick_p[sel][rim]), 0.0, 1.0)
            vecs, basis, wrel = lattice(p.kind)
            cell = abs(float(np.linalg.det(vecs))) / len(basis) * d0**2
            peak = p.phase * wrel
            if p.kind == "fringes":  # turn the fine sampling along the planes into a ridge
                peak *= 0.4 * d0 / (math.sqrt(2 * math.pi) * col_sigma)
            pos_all.append(xs[k][sel])
            w_all.append(peak * thick * occ * (2 * math.pi * col_sigma**2))
            thick_all.append(thick * occ * cell)
            label_all.append(np.full(len(rho), k, np.int32))
        if not pos_all:
            return np.zeros((0, 2)), np.zeros(0), np.zeros(0), np.zeros(0, np.int32)
        pos = np.concatenate(pos_all) + self.canvas.margin
        wts = np.concatenate(w_all)
        thk = np.concatenate(thick_all)
        lab = np.concatenate(label_all)
        hp, wp = self.canvas.size
        inside = (pos[:, 0] >= 0) & (pos[:, 0] < wp - 1) & (pos[:, 1] >= 0) & (pos[:, 1] < hp - 1)
        return pos[inside], wts[inside], thk[inside], lab[inside]

    def intensity(self, t: int) -> np.ndarray:
        """Un-normalised image intensity (incident beam = 1) on the output frame."""
        cv = self.canvas
        hp, wp = cv.size
        h, w = self.shape
        m = cv.margin
        pos, wts, thk = self.columns(float(t))
        spec = None
        amp = None
        if len(wts):
            grid = splat(pos, wts, (hp, wp))
            spec = sfft.rfft2(grid)
            spec *= cv.col_kernel
            # Mass-thickness contrast: electrons scattered outside the aperture by the
            # whole particle darken it smoothly (amplitude factor exp(-mu * thickness)).
            tspec = sfft.rfft2(splat(pos, thk, (hp, wp)))
            tspec *= cv.thick_kernel
            amp = sfft.irfft2(tspec, s=(hp, wp))
            amp *= np.float32(-self.optics.mass_thickness)
        if self.carbon:  # the support drifts with the stage; its two fields mix slowly
            a = self.optics.carbon_rate * t
            s = self.motion.stage(float(t))
            py = np.exp(-2j * math.pi * cv.ky * s[1]).astype(np.complex64)
            px = np.exp(-2j * math.pi * cv.kxr * s[0]).astype(np.complex64)
            carbon = (math.cos(a) * self.carbon[0] + math.sin(a) * self.carbon[1]) * py[:, None]
            carbon *= px[None, :]
            spec = carbon if spec is None else spec + carbon
        if spec is None:
            phi = np.zeros((hp, wp), np.float32)
        else:
            phi = sfft.irfft2(spec, s=(hp, wp))
        expo = phi.astype(np.complex64) * np.complex64(complex(-self.optics.absorption, 1.0))
        if amp is not None:
            expo.real += amp
        wave = np.exp(expo)
        wave = sfft.ifft2(sfft.fft2(wave) * cv.ctf)
        inten = wave.real[m : m + h, m : m + w] ** 2 + wave.imag[m : m + h, m : m + w] ** 2
        return inten * self.illumination.at(t, cv)
