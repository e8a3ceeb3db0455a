"""How a simulated scene moves, as closed-form functions of the frame index ``t``: the stage
drift, each particle's wandering, rotation and elastic strain, and the coalescence of pairs
(approach, neck growth, oriented attachment, absorption of the smaller particle); and, for
particles in liquid, Brownian motion with aggregation (:class:`Brownian`)."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np

from .config import SimulationConfig
from .scene import Scene

__all__ = ["Motion", "ParticleMotion", "Pose", "Brownian", "rotation", "smoothstep"]


def smoothstep(x: float) -> float:
    """Logistic step: 0 for x << 0, 1 for x >> 0."""
    return 1.0 / (1.0 + math.exp(-max(-60.0, min(60.0, x))))


def rotation(theta: float) -> np.ndarray:
    """The 2 x 2 matrix of a rotation by ``theta`` (rad)."""
    c, s = math.cos(theta), math.sin(theta)
    return np.array([[c, -s], [s, c]])


@dataclass
class ParticleMotion:
    """How one particle moves relative to the support."""

    wander: list[tuple[np.ndarray, float, float]]  # (amp xy, freq, phase) of sinusoids
    omega: float  # rad/frame
    wobble: tuple[float, float, float]  # (amp rad, freq, phase)
    strain: np.ndarray  # (4, 3): rows exx, eyy, exy, bend; columns amp, freq, phase


class Pose(NamedTuple):
    """Where the particles are at one t: centres (image px, with the stage drift), angles,
    radii and necks (bump, image angle towards the partner)."""

    centres: list[np.ndarray]
    thetas: list[float]
    radii: list[float]
    necks: list[tuple[float, float]]


class Motion:
    """The stage drift and the motion of every particle of a :class:`~emtcs.simulate.scene.Scene`."""

    def __init__(self, scene: Scene, drift: tuple[float, float, float, float], particles: list[ParticleMotion]) -> None:
        self.scene = scene
        self.drift = drift  # (speed, decay time, direction, turn rate)
        self.particles = particles

    @classmethod
    def draw(cls, rng: np.random.Generator, c: SimulationConfig, scene: Scene) -> Motion:
        """Draw the motion of ``scene`` (after the scene, from the same random stream)."""
        h, w = c.shape
        # Stage drift: s(t) = v * tau * (1 - exp(-t / tau)) along a slowly turning direction.
        v = c.drift_speed * float(rng.uniform(0.6, 1.4))
        tau = max(1.0, max(int(c.n_frames), 100) * float(rng.uniform(1.0, 3.0)))
        if v > 0:
            tau = min(tau, max(1.0, 0.25 * min(h, w) / v))
        drift = (v, tau, float(rng.uniform(0, 2 * math.pi)), float(rng.uniform(-1.0, 1.0)) / tau)
        motions = []
        for _ in scene.particles:
            # Wandering: three sinusoids per axis, peak speed about particle_speed.
            wander = []
            for _ in range(3):
                f = float(rng.uniform(0.004, 0.02))  # cycles per frame
                amp = c.particle_speed * float(rng.uniform(0.3, 0.7)) / (2 * math.pi * f) / math.sqrt(3)
                amp_xy = amp * rng.normal(0.0, 1.0, 2) / math.sqrt(2)
                wander.append((amp_xy, f, float(rng.uniform(0, 2 * math.pi))))
            omega = math.radians(c.rotation_speed) * float(rng.uniform(0.2, 1.0)) * float(rng.choice([-1.0, 1.0]))
            fw = float(rng.uniform(0.01, 0.04))
            wobble = (
                math.radians(c.rotation_speed) * float(rng.uniform(0.0, 1.0)) / (2 * math.pi * fw),
                fw,
                float(rng.uniform(0, 2 * math.pi)),
            )
            strain = np.stack(
                [
                    np.array(
                        [
                            c.deformation * float(rng.uniform(0.3, 1.0)),
                            float(rng.uniform(0.005, 0.03)),
                            float(rng.uniform(0, 2 * math.pi)),
                        ]
                    )
                    for _ in range(4)
                ]
            )
            motions.append(ParticleMotion(wander, omega, wobble, strain))
        for pr in scene.pairs:  # the pair rotates together: j follows i's rotation
            mj, mi = motions[pr.j], motions[pr.i]
            mj.omega, mj.wobble = mi.omega, mi.wobble
        return cls(scene, drift, motions)

    def stage(self, t: float) -> np.ndarray:
        """The stage drift (x, y) in px at t."""
        v, tau, ang, turn = self.drift
        if v == 0:
            return np.zeros(2)
        s = v * tau * (1.0 - math.exp(-t / tau))
        a = ang + turn * t
        return s * np.array([math.cos(a), math.sin(a)])

    def pose(self, t: float) -> Pose:
        """Centres, angles, radii and necks of the particles at t."""
        parts = self.scene.particles
        stage = self.stage(t)
        centres, thetas, radii = [], [], []
        for p, mo in zip(parts, self.particles):
            c = p.c0.copy()
            for amp, f, ph in mo.wander:
                c = c + amp * (math.sin(2 * math.pi * f * t + ph) - math.sin(ph))
            a, f, ph = mo.wobble
            thetas.append(p.theta0 + mo.omega * t + a * (math.sin(2 * math.pi * f * t + ph) - math.sin(ph)))
            centres.append(c)
            radii.append(p.radius)
        necks: list[tuple[float, float]] = [(0.0, 0.0)] * len(parts)
        for pr in self.scene.pairs:
            i, j = pr.i, pr.j
            s_move = smoothstep((t - pr.t_c) / pr.width)
            s_move0 = smoothstep((0.0 - pr.t_c) / pr.width)
            frac = (s_move - s_move0) / (1.0 - s_move0)
            ri0, rj0 = parts[i].radius, parts[j].radius
            # Absorption of j by i (area transfer) follows the contact by one width.
            s_abs = max(
                0.0, smoothstep((t - pr.t_c - pr.width) / pr.width) - smoothstep((-pr.t_c - pr.width) / pr.width)
            )
            rj = rj0 * math.sqrt(max(0.05, 1.0 - pr.absorb * s_abs))
            ri = math.sqrt(ri0**2 + rj0**2 - rj**2)
            radii[i], radii[j] = ri, rj
            dist = pr.d0 + (pr.d1 - pr.d0) * frac
            # Pair centre of mass wanders with i; keep it fixed relative to i's wander.
            u = np.array([math.cos(pr.direction), math.sin(pr.direction)])
            total0 = ri0**3 + rj0**3
            mid = centres[i] + u * pr.d0 * rj0**3 / total0
            total = ri**3 + rj**3
            centres[i] = mid - u * dist * rj**3 / total
            centres[j] = mid + u * dist * ri**3 / total
            # Oriented attachment: misorientation relaxes after contact.
            s_rot = smoothstep((t - pr.t_c - 0.5 * pr.width) / pr.rot_width)
            thetas[j] = thetas[i] + pr.misorientation + (pr.residual - pr.misorientation) * s_rot
            bump = pr.neck * s_move
            necks[i] = (bump, pr.direction)
            necks[j] = (bump, pr.direction + math.pi)
        centres = [c + stage for c in centres]
        return Pose(centres, thetas, radii, necks)

    def columns(self, k: int, pose: Pose, t: float) -> np.ndarray:
        """Image positions (x, y) in px at t of particle ``k``'s columns: strained (breathing
        strain and bending, in the particle frame), rotated and moved to its centre."""
        pts = self.scene.particles[k].pts
        st = self.particles[k].strain
        e = st[:, 0] * np.sin(2 * math.pi * st[:, 1] * t + st[:, 2]) - st[:, 0] * np.sin(st[:, 2])
        x, y = pts[:, 0], pts[:, 1]
        r = pose.radii[k]
        xd = x * (1 + e[0]) + y * e[2]
        yd = y * (1 + e[1]) + x * e[2] + e[3] * (x * x) / max(r, 1.0)
        return np.stack([xd, yd], axis=1) @ rotation(pose.thetas[k]).T + pose.centres[k]


@dataclass
class Brownian:
    """Brownian motion of particles in a periodic box, with aggregation: particles that touch
    may stick and then move together as one rigid cluster (slower, as friction adds up).

    The trajectories of the whole movie are drawn once (cost O(n_frames * n^2), small), so
    any frame can still be rendered on its own.  Positions are in box coordinates, wrapped
    into ``[0, box)``; ``angles`` diffuse too, and freeze once a particle is in a cluster.
    """

    positions: np.ndarray  # (n_frames, n, 2) float32, x and y in [0, box)
    angles: np.ndarray  # (n_frames, n) float32, rad
    cluster: np.ndarray  # (n_frames, n) int32: the cluster each particle belongs to
    box: tuple[float, float]  # (width, height) of the periodic box, px

    @classmethod
    def draw(
        cls,
        rng: np.random.Generator,
        n_frames: int,
        start: np.ndarray,
        step: np.ndarray,
        radius: Callable[[int], np.ndarray],
        box: tuple[float, float],
        *,
        stick: float = 1.0,
        cluster: np.ndarray | None = None,
        rendezvous: list[tuple[int, int, float]] | None = None,
        turn: float = 0.05,
    ) -> Brownian:
        """Integrate the motion: ``step`` is each particle's RMS step per frame and axis
        (px), ``radius(t)`` the contact radii at frame t (0 = not there yet), ``stick``
        the probability that a contact sticks, ``cluster`` the initial cluster labels
        (e.g. chains that start aggregated), ``rendezvous`` pairs ``(i, j, t_c)`` that
        drift towards each other to meet around frame ``t_c`` (and always stick), and
        ``turn`` the RMS rotation of a free particle per frame (rad)."""
        n = len(start)
        bx = np.array(box, dtype=np.float64)
        pos = np.mod(np.asarray(start, dtype=np.float64), bx)
        ang = rng.uniform(0.0, 2 * math.pi, n)
        cid = np.arange(n) if cluster is None else np.asarray(cluster).copy()
        inv_var = 1.0 / np.maximum(np.asarray(step, dtype=np.float64), 1e-6) ** 2
        meet = list(rendezvous or [])
        out_p = np.empty((n_frames, n, 2), np.float32)
        out_a = np.empty((n_frames, n), np.float32)
        out_c = np.empty((n_frames, n), np.int32)
        for t in range(n_frames):
            out_p[t], out_a[t], out_c[t] = pos, ang, cid
            if t == n_frames - 1 or n == 0:
                continue
            # A cluster's RMS step: 1 / sqrt(sum of its members' 1 / step^2) (friction adds up).
            labels, inv = np.unique(cid, return_inverse=True)
            sig = 1.0 / np.sqrt(np.bincount(inv, inv_var, minlength=len(labels)))
            disp = rng.normal(0.0, 1.0, (len(labels), 2)) * sig[:, None]
            free = np.bincount(inv, minlength=len(labels))[inv] == 1
            ang = ang + np.where(free, rng.normal(0.0, turn, n), 0.0)
            for i, j, t_c in meet:  # rendezvous: the gap closes by the time t_c
                if cid[i] == cid[j]:
                    continue
                d = pos[j] - pos[i]
                d -= bx * np.round(d / bx)
                dist = float(np.hypot(*d))
                if dist > 1e-9:
                    pull = 0.5 * dist / max(1.0, t_c - t) * d / dist
                    disp[inv[i]] += pull
                    disp[inv[j]] -= pull
            pos = np.mod(pos + disp[inv], bx)
            r = radius(t + 1)
            d = pos[:, None, :] - pos[None, :, :]
            d -= bx * np.round(d / bx)
            touch = np.hypot(d[..., 0], d[..., 1]) < r[:, None] + r[None, :]
            touch &= (r[:, None] > 0) & (r[None, :] > 0) & (cid[:, None] != cid[None, :])
            for i, j in np.argwhere(np.triu(touch, 1)).tolist():
                if cid[i] == cid[j]:
                    continue
                forced = any({i, j} == {a, b} for a, b, _ in meet)
                if forced or rng.random() < stick:
                    cid[cid == cid[j]] = cid[i]
        return cls(out_p, out_a, out_c, (float(box[0]), float(box[1])))
