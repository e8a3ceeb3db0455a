"""The content of a simulated scene: fcc lattices in projection, faceted nanoparticles
(single crystals, twins, decahedra) placed on the field, the pairs of them that coalesce,
and the amorphous-carbon support.  All of it is drawn once per movie; how it moves is
:mod:`emtcs.simulate.motion`."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import scipy.fft as sfft

from .config import SimulationConfig
from .optics import Canvas, Optics

__all__ = ["Particle", "Pair", "Scene", "lattice", "shape_rho", "carbon_fields"]

_LATTICES = ("fcc110", "fcc001", "fcc111", "fringes")
# Angle of a {111} trace in the [110] projection, from [1-10] (54.74 deg).
_TRACE = math.atan2(1.0, math.sqrt(0.5))
# Salt of the carbon support's random stream.
_CARBON_SALT = 0xCA4B0


def lattice(kind: str) -> tuple[np.ndarray, np.ndarray, float]:
    """Projected column lattice in units of the {200} spacing d0 = a/2.

    Returns (basis vectors as rows, basis positions, relative column weight)."""
    if kind == "fcc001":  # square lattice of spacing a/2
        return np.array([[1.0, 0.0], [0.0, 1.0]]), np.zeros((1, 2)), 1.0
    if kind == "fcc110":  # centred rectangle a/sqrt2 x a
        s2 = math.sqrt(2.0)
        return np.array([[s2, 0.0], [0.0, 2.0]]), np.array([[0.0, 0.0], [s2 / 2, 1.0]]), 1.0
    if kind == "fcc111":  # hexagonal, spacing a/sqrt6 (close to the resolution limit)
        s = 2.0 / math.sqrt(6.0)
        return np.array([[s, 0.0], [s / 2, s * math.sqrt(3) / 2]]), np.zeros((1, 2)), 0.8
    if kind == "fringes":  # off-zone grain: {111} planes, atoms below resolution along them
        return np.array([[0.4, 0.0], [0.0, 2.0 / math.sqrt(3.0)]]), np.zeros((1, 2)), 0.22
    raise AssertionError(kind)


def _lattice_points(kind: str, radius: float, origin: np.ndarray) -> np.ndarray:
    """All columns of a lattice (units of d0) within ``radius`` of 0, shifted by ``origin``."""
    vecs, basis, _ = lattice(kind)
    det = abs(np.linalg.det(vecs))
    h = det / np.linalg.norm(vecs, axis=1).max()  # smallest row spacing
    n = int(math.ceil(radius / h)) + 3
    i = np.arange(-n, n + 1)
    ii, jj = np.meshgrid(i, i, indexing="ij")
    cells = ii.reshape(-1, 1) * vecs[0] + jj.reshape(-1, 1) * vecs[1]
    pts = (cells[:, None, :] + basis[None, :, :]).reshape(-1, 2) + origin
    return pts[np.hypot(pts[:, 0], pts[:, 1]) <= radius]


def _reflect(pts: np.ndarray, p0: np.ndarray, normal: np.ndarray) -> np.ndarray:
    """Mirror points across the line through p0 with unit normal ``normal``."""
    d = (pts - p0) @ normal
    return pts - 2.0 * d[:, None] * normal[None, :]


@dataclass
class Particle:
    """One nanoparticle: its column pool (local frame, pixels), shape and pose at t = 0."""

    kind: str
    structure: str  # "single", "twin", "decahedron"
    radius: float  # px, at t = 0
    pts: np.ndarray  # (M, 2) local column positions in px (x, y)
    occ: np.ndarray  # (M,) static occupancy in (0, 1]
    flick_f: np.ndarray  # (M,) surface flicker frequency (cycles/frame), 0 = static
    flick_p: np.ndarray  # (M,) phase
    facet_n: np.ndarray  # (F, 2) facet normals in the local frame
    facet_d: np.ndarray  # (F,) facet distances relative to the radius
    phase: float  # peak phase of a full-thickness column (rad)
    c0: np.ndarray  # centre at t = 0 (x, y) in image px, without stage drift
    theta0: float  # orientation at t = 0 (rad)


@dataclass
class Pair:
    """Coalescence of particles i (larger) and j: approach, neck, attachment, absorption."""

    i: int
    j: int
    direction: float  # angle of the j - i vector at t = 0
    d0: float  # centre distance at t = 0 (px)
    d1: float  # centre distance after coalescence (px)
    t_c: float  # time of contact
    width: float  # duration scale (frames)
    misorientation: float  # initial theta_j - theta_i (rad) beyond the common rotation
    residual: float  # final misorientation (rad)
    rot_width: float  # duration scale of the oriented attachment (frames)
    absorb: float  # fraction of j's area transferred to i
    neck: float  # maximum neck bump


@dataclass
class Scene:
    """The particles of a movie and the pairs of them that coalesce (indices into ``particles``)."""

    particles: list[Particle]
    pairs: list[Pair]

    @classmethod
    def draw(cls, rng: np.random.Generator, c: SimulationConfig, d0: float) -> Scene:
        """Draw the particles and pairs for a {200} spacing of ``d0`` px (after the optics)."""
        h, w = c.shape
        n_frames = int(c.n_frames)
        lo, hi = c.particle_radius
        rcap = max(2.0 * d0, 0.38 * min(h, w))

        def draw_radius(cap: float = rcap) -> float:
            r = d0 * math.exp(rng.uniform(math.log(lo), math.log(hi)))
            return float(min(max(r, 1.5 * d0), cap))

        radii: list[float] = []
        if c.n_particles is not None:
            radii = [draw_radius() for _ in range(int(c.n_particles))]
        elif c.coverage > 0:
            target = c.coverage * h * w * rng.uniform(0.75, 1.25)
            area = 0.0
            while area < target and len(radii) < 4000:
                r = draw_radius()
                radii.append(r)
                area += math.pi * r * r
        radii.sort(reverse=True)
        n = len(radii)
        # Coalescing pairs: about one particle in three takes part, at least one pair.
        n_pairs = 0
        if c.coalescence and n >= 2:
            n_pairs = max(1, int(round(n / 6)))
        if c.coalescence and n_pairs and n <= 3:
            # Small fields: make the pair fit well inside the frame.
            radii = [min(r, 0.27 * min(h, w)) if k < 2 else r for k, r in enumerate(radii)]
            radii[:2] = sorted(radii[:2], reverse=True)
        centres: list[np.ndarray] = [np.zeros(2)] * n
        placed: list[int] = []
        pairs: list[Pair] = []

        def free(p: np.ndarray, r: float) -> bool:
            for k in placed:
                if np.hypot(*(p - centres[k])) < 1.02 * (r + radii[k]):
                    return False
            return True

        # Place pairs first (biggest particles), then the rest by rejection sampling.
        order = list(range(n))
        pair_members: list[tuple[int, int]] = []
        for q in range(n_pairs):
            i = order[2 * q]
            j = order[2 * q + 1]
            pair_members.append((i, j))
        singles = order[2 * n_pairs :]
        for i, j in pair_members:
            ri, rj = radii[i], radii[j]
            d0_pair = (ri + rj) * float(rng.uniform(1.02, 1.15))
            total = ri**3 + rj**3
            for _attempt in range(200):
                direction = float(rng.uniform(0, 2 * math.pi))
                u = np.array([math.cos(direction), math.sin(direction)])
                oi = -u * d0_pair * rj**3 / total  # offsets of the centres from the pair's centre of mass
                oj = u * d0_pair * ri**3 / total
                # Range of the centre of mass that keeps both particles (mostly) in view.
                lo_xy = np.maximum(0.8 * ri - oi, 0.8 * rj - oj)
                hi_xy = np.minimum(np.array([w, h]) - 0.8 * ri - oi, np.array([w, h]) - 0.8 * rj - oj)
                centre_bb = np.array([w / 2, h / 2]) - (oi + oj) / 2
                mid = np.where(
                    lo_xy <= hi_xy, rng.uniform(np.minimum(lo_xy, hi_xy), np.maximum(lo_xy, hi_xy)), centre_bb
                )
                ci, cj = mid + oi, mid + oj
                if free(ci, ri) and free(cj, rj):
                    break
            centres[i], centres[j] = ci, cj
            placed += [i, j]
            t_c = n_frames * float(rng.uniform(0.3, 0.6))
            d1 = (ri + rj) * float(rng.uniform(0.5, 0.68))
            # The logistic approach has a peak speed of (d0 - d1) / (4 * width): keep it
            # below coalescence_speed, so long transitions outlast short movies.
            width = max(
                2.0,
                n_frames * float(rng.uniform(0.08, 0.15)),
                (d0_pair - d1) / (4.0 * max(c.coalescence_speed, 1e-6)),
            )
            mis = float(rng.uniform(-0.5, 0.5))
            residual = float(rng.choice([0.0, 0.0, rng.uniform(-0.12, 0.12)]))
            # Oriented attachment: the rim of j moves at most ~coalescence_speed / 2.
            rot_width = max(0.7 * width, abs(mis - residual) * rj / (2.0 * max(c.coalescence_speed, 1e-6)))
            pairs.append(
                Pair(
                    i=i,
                    j=j,
                    direction=direction,
                    d0=d0_pair,
                    d1=d1,
                    t_c=t_c,
                    width=width,
                    misorientation=mis,
                    residual=residual,
                    rot_width=rot_width,
                    absorb=float(rng.uniform(0.2, 0.7)),
                    neck=float(rng.uniform(0.15, 0.35)),
                )
            )
        for k in singles:
            r = radii[k]
            # Centres anywhere that keeps at least ~60 % of the particle's width in view.
            x0, x1 = min(r * 0.6, w / 2), max(w - r * 0.6, w / 2)
            y0, y1 = min(r * 0.6, h / 2), max(h - r * 0.6, h / 2)
            best = None
            for _attempt in range(60):
                p = np.array([rng.uniform(x0, x1), rng.uniform(y0, y1)])
                if free(p, r):
                    best = p
                    break
            if best is None:
                continue  # no room: drop this particle
            centres[k] = best
            placed.append(k)
        placed_set = sorted(set(placed))
        # Build particle objects (column pools sized for the largest radius they reach).
        parts: list[Particle] = []
        index = {}
        for k in placed_set:
            rmax = radii[k]
            for pr in pairs:
                if pr.i == k:
                    rmax = math.sqrt(radii[k] ** 2 + pr.absorb * radii[pr.j] ** 2) * (1 + pr.neck)
                elif pr.j == k:
                    rmax = radii[k] * (1 + pr.neck)
            p = _new_particle(rng, c, d0, radii[k], rmax)
            p.c0 = np.asarray(centres[k], dtype=float)
            index[k] = len(parts)
            parts.append(p)
        for pr in pairs:
            pr.i, pr.j = index[pr.i], index[pr.j]
        for pr in pairs:
            # Start j with a misorientation relative to i; both then rotate together.
            parts[pr.j].theta0 = parts[pr.i].theta0 + pr.misorientation
        return cls(parts, pairs)


def _new_particle(rng: np.random.Generator, c: SimulationConfig, d0: float, radius: float, rmax: float) -> Particle:
    """A particle of ``radius`` px (at t = 0) whose column pool reaches ``rmax`` px."""
    kind = str(rng.choice(_LATTICES, p=[0.47, 0.25, 0.08, 0.2]))
    structure = "single"
    if kind == "fcc110" and rng.random() < c.twin_probability:
        structure = "decahedron" if rng.random() < 0.35 else "twin"
    pool_r = 1.45 * rmax / d0  # in units of d0
    origin = rng.uniform(-1.0, 1.0, 2)
    if structure == "decahedron":
        origin = np.zeros(2)
    base = _lattice_points(kind, pool_r, origin)
    if structure == "single":
        pts = base
    elif structure == "twin":
        # The {111} traces of the [110] projection run at +-54.74 deg from [1-10],
        # through the columns (0, 0) and (sqrt(2)/2, 1) of the centred cell.
        ang = _TRACE * (1 if rng.random() < 0.5 else -1)
        u = np.array([math.cos(ang), math.sin(ang)])
        n = np.array([-u[1], u[0]])
        tol = 1e-6
        # First twin plane through a lattice column near a random offset.
        target = rng.uniform(-0.4, 0.2) * radius / d0
        p0 = base[np.argmin(np.abs(base @ n - target) + 0.05 * np.abs(base @ u))]
        twin = _reflect(base, p0, n)
        side0 = (base - p0) @ n
        sidet = (twin - p0) @ n
        parts = [base[side0 <= tol], twin[sidet > tol]]
        # lamella: a second plane, back to the parent orientation (a tiny particle may have
        # no twinned column to put it through)
        if rng.random() < 0.5 and (sidet > tol).any():
            width = rng.uniform(0.25, 0.6) * radius / d0
            cand = twin[sidet > tol]
            pos = (cand - p0) @ n
            p1 = cand[np.argmin(np.abs(pos - width) + 0.05 * np.abs((cand - p0) @ u))]
            back = _reflect(twin, p1, n)
            parts = [
                base[side0 <= tol],
                twin[(sidet > tol) & ((twin - p1) @ n <= tol)],
                back[(back - p1) @ n > tol],
            ]
        pts = np.concatenate(parts)
    else:
        # Decahedron seen along its 5-fold axis: five [110] sectors, each the wedge
        # between the two {111} traces (70.53 deg), stretched to 72 deg (the
        # closure strain), sharing their twin-boundary rows with the neighbours.
        a0 = rng.uniform(0.0, 2.0 * math.pi)
        polar = np.arctan2(base[:, 1], base[:, 0])
        radial = np.hypot(base[:, 0], base[:, 1])
        lo_ang, hi_ang = _TRACE, math.pi - _TRACE
        tol = 1e-7
        wedge = (polar >= lo_ang - tol) & (polar < hi_ang - tol) & (radial > 1e-9)
        stretch = (2.0 * math.pi / 5.0) / (hi_ang - lo_ang)
        parts = [np.zeros((1, 2))]  # the column on the 5-fold axis
        for k in range(5):
            phi = a0 + k * 2.0 * math.pi / 5.0 + (polar[wedge] - lo_ang) * stretch
            parts.append(np.stack([radial[wedge] * np.cos(phi), radial[wedge] * np.sin(phi)], axis=1))
        pts = np.concatenate(parts)
    pts = pts * d0  # px
    m = len(pts)
    occ = rng.uniform(0.85, 1.0, m)
    # Surface flicker: a random third of the columns fade in and out slowly (only
    # visible where the column sits near the rim, see _columns).
    flick_f = np.where(rng.random(m) < 0.33, rng.uniform(0.004, 0.03, m), 0.0)
    flick_p = rng.uniform(0.0, 2.0 * math.pi, m)
    nf = int(rng.integers(6, 11))
    fa = rng.uniform(0, 2 * math.pi) + np.arange(nf) * 2 * math.pi / nf + rng.normal(0, 0.12, nf)
    facet_n = np.stack([np.cos(fa), np.sin(fa)], axis=1)
    facet_d = rng.uniform(0.86, 1.0, nf)
    return Particle(
        kind=kind,
        structure=structure,
        radius=radius,
        pts=pts,
        occ=occ,
        flick_f=flick_f,
        flick_p=flick_p,
        facet_n=facet_n,
        facet_d=facet_d,
        phase=float(rng.uniform(0.7, 1.3)),
        c0=np.zeros(2),
        theta0=float(rng.uniform(0, 2 * math.pi)),
    )


def shape_rho(p: Particle, local: np.ndarray, radius: float, neck: tuple[float, float], theta: float) -> np.ndarray:
    """Normalised 'radius' of local points: < 1 inside the faceted particle.

    The neck (bump, image angle towards the partner) locally enlarges the shape
    towards a coalescing partner."""
    if radius <= 0:
        return np.full(len(local), np.inf)
    proj = local @ p.facet_n.T / p.facet_d[None, :]
    rho = np.maximum(proj.max(axis=1), np.hypot(local[:, 0], local[:, 1]) / 1.04) / radius
    bump, toward = neck
    if bump > 0:
        ang = np.arctan2(local[:, 1], local[:, 0])
        diff = np.angle(np.exp(1j * (ang - (toward - theta))))
        rho = rho / (1.0 + bump * np.exp(-0.5 * (diff / 0.5) ** 2))
    return rho


def carbon_fields(c: SimulationConfig, optics: Optics, canvas: Canvas) -> list[np.ndarray]:
    """Two static amorphous-carbon phase fields, as real-FFT spectra on the canvas (their mix
    changes slowly with t); none without a support.  Drawn from their own random stream."""
    hp, wp = canvas.size
    fields: list[np.ndarray] = []
    strength = c.background * optics.carbon_phase
    if strength <= 0:
        return fields
    rng = np.random.default_rng(np.random.SeedSequence([int(c.seed), _CARBON_SALT]))
    k2 = canvas.ky[:, None] ** 2 + canvas.kxr[None, :] ** 2
    # Atomic form factor (Gaussian) with a weak suppression of the lowest frequencies
    # (amorphous solids have little density variation at long range).
    filt = np.exp(-2.0 * math.pi**2 * optics.carbon_sigma**2 * k2)
    kc = 1.0 / (6.0 / optics.pixel_size)  # ~6 Angstrom
    filt *= 0.35 + 0.65 * (1.0 - np.exp(-k2 / (kc * kc)))
    for _ in range(2):
        noise = rng.standard_normal((hp, wp), dtype=np.float32)
        spec = sfft.rfft2(noise) * filt
        field = sfft.irfft2(spec, s=(hp, wp))
        spec *= strength / float(field.std())
        fields.append(spec.astype(np.complex64))
    return fields
