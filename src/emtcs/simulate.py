"""Synthetic in-situ HRTEM movies: the built-in test input and training-data source.

The simulator renders crystalline metal nanoparticles (fcc, e.g. Au/Pt) on an
amorphous-carbon support as seen in high-resolution TEM, frame by frame:

* **Scene.**  Each particle is a faceted, roughly round patch of projected atomic
  columns (fcc viewed along [110], [001] or [111], or an off-zone grain that only
  shows {111} fringes).  Some particles are twinned (one or two coherent {111}
  twin planes) or decahedral (five twinned sectors).  Column "thickness" falls off
  towards the rim, like a truncated sphere, and some surface columns fade in and
  out slowly (surface diffusion).
* **Dynamics.**  Everything is a smooth, closed-form function of the frame index
  ``t``: slow stage drift (decaying, so long movies stay in view), independent
  wandering and rotation of each particle, a small elastic deformation
  (breathing strain plus bending), and coalescence of particle pairs (approach,
  neck growth, oriented attachment and absorption of the smaller particle).
  The carbon drifts with the stage and changes slowly (beam-induced).
* **Imaging.**  The projected potential (columns splatted with bilinear weights
  and convolved with a Gaussian in Fourier space, plus the carbon) is turned into a
  phase object ``exp((i - eta) * phi)``, passed through an objective lens with
  defocus, spherical aberration, partial-coherence envelopes and an aperture
  (the contrast transfer function), and the intensity ``|psi|^2`` is multiplied
  by a slowly changing illumination gradient.  Defocus is drawn per movie so that
  columns are dark (most movies) or bright at the lattice frequency, with Fresnel
  fringes at particle edges and speckle with Thon rings in the carbon, as in
  real HRTEM.
* **Detector.**  Poisson shot noise at the given dose plus Gaussian read noise,
  times a gain, plus an offset, rounded and clipped to the output dtype.

Frames are rendered independently from ``t`` (memory does not grow with the
movie length, and any frame can be made without the earlier ones), so movies can
be streamed to disk with :func:`write_movie`.  All scene parameters are drawn from
``config.seed``; the noise of frame ``t`` is drawn from ``(seed, t)``.

Units: the clean frame is the expected detector value in ADU,
``gain * electrons + offset``; see :attr:`MovieSimulator.gain` for the gain rule.
"""

from __future__ import annotations

import json
import math
import os
import queue
import threading
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field, fields
from typing import Any

import numpy as np
import scipy.fft as sfft

__all__ = [
    "SimulationConfig",
    "MovieSimulator",
    "simulate",
    "write_movie",
]

_DTYPES = ("uint8", "uint16")
_LATTICES = ("fcc110", "fcc001", "fcc111", "fringes")
# Angle of a {111} trace in the [110] projection, from [1-10] (54.74 deg).
_TRACE = math.atan2(1.0, math.sqrt(0.5))
# Salts for the independent random streams.
_SCENE_SALT = 0x5CE7E
_NOISE_SALT = 0x401CE
_CARBON_SALT = 0xCA4B0


def _electron_wavelength_A(kv: float) -> float:
    """Relativistic electron wavelength in Angstrom for an acceleration voltage in kV."""
    v = kv * 1e3
    return 12.2643 / math.sqrt(v * (1.0 + 0.97848e-6 * v))


@dataclass(frozen=True)
class SimulationConfig:
    """All parameters of a simulated movie; every field has a default.

    Scene parameters given as ``(low, high)`` ranges are drawn uniformly (radius:
    log-uniformly) per movie from ``seed``, so different seeds give different
    movies.  Speeds are in pixels (or degrees) per frame.
    """

    n_frames: int = 40
    """Number of frames in the movie."""
    shape: tuple[int, int] = (256, 256)
    """Frame size (height, width) in pixels; each at least 8."""
    dose: float = 100.0
    """Mean electrons per pixel per frame (1 to 1000 is the tested range).

    Clean frame 0 averages exactly ``gain * dose + offset``; later frames stay
    within a few per cent as the scene and the illumination change."""
    seed: int = 0
    """Seed of the scene and of the noise (non-negative integer)."""
    read_noise: float = 1.5
    """Standard deviation of the Gaussian read noise, in electrons."""
    dtype: str = "uint16"
    """Output dtype of noisy frames: ``"uint8"`` or ``"uint16"``."""
    gain: float | None = None
    """Detector gain in ADU per electron; ``None`` picks it from dtype and dose."""
    offset: float | None = None
    """Constant offset (pedestal) in ADU, added to clean and noisy frames alike.

    ``None`` uses ``ceil(3 * read_noise * gain)`` (5 ADU for uint16 with the default
    read noise), which keeps negative read-noise excursions from being clipped at
    zero, so the noisy mean stays unbiased down to 1 e/px.  With ``offset=0`` the
    frames are pure counts, but the noisy mean is biased upwards at low dose (about
    +30 % at 1 e/px and +3 % at 3 e/px for 1.5 e read noise; negligible from 10 e/px)."""
    column_spacing_px: tuple[float, float] = (6.0, 12.0)
    """Range of the {200} lattice spacing (a/2, about 2 A) in pixels: sets the sampling."""
    n_particles: int | None = None
    """Number of nanoparticles; ``None`` draws it so that ``coverage`` is reached."""
    coverage: float = 0.3
    """Target fraction of the field covered by particles when ``n_particles`` is None."""
    particle_radius: tuple[float, float] = (4.0, 12.0)
    """Range of particle radii in units of the {200} spacing (4 to 12 is about 1.6 to 5 nm)."""
    twin_probability: float = 0.5
    """Probability that a [110] particle is twinned (lamellar twin or decahedron)."""
    drift_speed: float = 0.25
    """Initial stage-drift speed in px/frame (the drift then slowly settles)."""
    particle_speed: float = 0.1
    """Typical speed of particles relative to the support, px/frame."""
    rotation_speed: float = 0.1
    """Maximum rotation rate of a particle in degrees per frame."""
    deformation: float = 0.01
    """Amplitude of the elastic strain (dimensionless, e.g. 0.01 = 1 %)."""
    coalescence: bool = True
    """Whether some particle pairs coalesce during the movie."""
    coalescence_speed: float = 1.0
    """Peak approach speed of coalescing particles, px/frame (slower = longer coalescence)."""
    background: float = 1.0
    """Strength of the amorphous carbon support (0 = vacuum, 1 = about 5 nm of a-C)."""
    illumination_gradient: float = 0.12
    """Largest peak-to-peak relative brightness change across the field (beam tilt)."""
    voltage_kv: float = 300.0
    """Acceleration voltage in kV (sets the electron wavelength)."""
    defocus_nm: float | None = None
    """Objective defocus in nm (negative = underfocus); ``None`` draws one per movie."""
    cs_um: float | None = None
    """Spherical aberration in micrometres; ``None`` draws an aberration-corrected value."""
    frame_interval: float = 0.005
    """Time between frames in seconds (200 fps by default); stored in TIFF metadata."""

    def __post_init__(self) -> None:
        # Normalise a few fields so lists/numpy scalars behave, then validate.
        try:
            shape = tuple(int(s) for s in self.shape)
        except (TypeError, ValueError):
            raise ValueError(f"shape must be two integers (height, width), got {self.shape!r}") from None
        if len(shape) != 2:
            raise ValueError(f"shape must be two integers (height, width), got {self.shape!r}")
        object.__setattr__(self, "shape", shape)
        for name in ("column_spacing_px", "particle_radius"):
            value = getattr(self, name)
            try:
                lo, hi = (float(v) for v in value)
            except (TypeError, ValueError):
                raise ValueError(f"{name} must be a (low, high) pair, got {value!r}") from None
            if not (0 < lo <= hi and math.isfinite(hi)):
                raise ValueError(f"{name} must satisfy 0 < low <= high, got {value!r}")
            object.__setattr__(self, name, (lo, hi))
        _validate(self)


def _validate(c: SimulationConfig) -> None:
    """Raise ValueError with a clear message if a configuration value is unusable."""

    def finite(name: str, lo: float | None = None, *, strict: bool = False, hi: float | None = None) -> None:
        v = getattr(c, name)
        if isinstance(v, bool) or not isinstance(v, (int, float, np.integer, np.floating)) or not math.isfinite(v):
            raise ValueError(f"{name} must be a finite number, got {v!r}")
        if lo is not None and (v <= lo if strict else v < lo):
            raise ValueError(f"{name} must be {'>' if strict else '>='} {lo}, got {v!r}")
        if hi is not None and v > hi:
            raise ValueError(f"{name} must be <= {hi}, got {v!r}")

    if isinstance(c.n_frames, bool) or not isinstance(c.n_frames, (int, np.integer)) or c.n_frames < 1:
        raise ValueError(f"n_frames must be an integer >= 1, got {c.n_frames!r}")
    if min(c.shape) < 8:
        raise ValueError(f"shape must be at least 8x8 pixels, got {c.shape}")
    if c.shape[0] * c.shape[1] > 2**28:
        raise ValueError(f"shape {c.shape} is too large (more than 2**28 pixels)")
    finite("dose", 0.0, strict=True)
    if isinstance(c.seed, bool) or not isinstance(c.seed, (int, np.integer)) or c.seed < 0:
        raise ValueError(f"seed must be a non-negative integer, got {c.seed!r}")
    finite("read_noise", 0.0)
    if c.dtype not in _DTYPES:
        raise ValueError(f"dtype must be one of {_DTYPES}, got {c.dtype!r}")
    if c.gain is not None:
        finite("gain", 0.0, strict=True)
    if c.offset is not None:
        finite("offset", 0.0)
        if c.offset > np.iinfo(c.dtype).max:
            raise ValueError(f"offset {c.offset} does not fit in {c.dtype}")
    if c.n_particles is not None and (
        isinstance(c.n_particles, bool) or not isinstance(c.n_particles, (int, np.integer)) or c.n_particles < 0
    ):
        raise ValueError(f"n_particles must be None or an integer >= 0, got {c.n_particles!r}")
    finite("coverage", 0.0, hi=1.0)
    finite("twin_probability", 0.0, hi=1.0)
    for name in ("drift_speed", "particle_speed", "rotation_speed", "background", "illumination_gradient"):
        finite(name, 0.0)
    finite("coalescence_speed", 0.0, strict=True)
    finite("deformation", 0.0, hi=0.2)
    if c.illumination_gradient >= 1.5:
        raise ValueError(f"illumination_gradient must be < 1.5, got {c.illumination_gradient!r}")
    finite("voltage_kv", 1.0)
    if c.defocus_nm is not None:
        finite("defocus_nm")
    if c.cs_um is not None:
        finite("cs_um")
    finite("frame_interval", 0.0, strict=True)


# --------------------------------------------------------------------------- scene


def _smoothstep(x: float) -> float:
    """Logistic step: 0 for x << 0, 1 for x >> 0."""
    return 1.0 / (1.0 + math.exp(-max(-60.0, min(60.0, x))))


def _lattice(kind: str) -> tuple[np.ndarray, np.ndarray, float]:
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
    vecs, basis, _ = _lattice(kind)
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


def _rot(theta: float) -> np.ndarray:
    c, s = math.cos(theta), math.sin(theta)
    return np.array([[c, -s], [s, c]])


@dataclass
class _Particle:
    """One nanoparticle: its column pool (local frame, pixels) and motion parameters."""

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
    theta0: float
    omega: float  # rad/frame
    wander: list[tuple[np.ndarray, float, float]] = field(default_factory=list)  # (amp xy, freq, phase)
    wobble: tuple[float, float, float] = (0.0, 0.0, 0.0)  # (amp rad, freq, phase)
    strain: np.ndarray = field(default_factory=lambda: np.zeros((4, 3)))  # rows exx, eyy, exy, bend: amp, f, ph


@dataclass
class _Pair:
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


class MovieSimulator:
    """Renders a seeded synthetic in-situ HRTEM movie frame by frame.

    The scene (particles, trajectories, optics, carbon support) is built from
    ``config.seed`` in the constructor; :meth:`clean_frame` and :meth:`noisy_frame`
    then render any frame ``t`` independently, so a movie can be streamed with
    constant memory.

    Gain rule (ADU per electron), unless ``config.gain`` is set:

    * ``uint16``: 1 ADU per electron (counting-camera style); values above 65535
      are clipped, which does not happen for doses up to about 10000 e/px.
    * ``uint8``: ``gain = 255 / (2.5 * dose + 6 * sqrt(dose) + 6 * read_noise)``,
      which puts the mean signal at about 30-40 % of the range for doses of 100
      and more (lower for very low doses) and leaves room for the offset, the
      brightest lattice contrast (up to about 2.1x the mean) and the shot-noise
      tail, so clipping is rare.  Example: dose 100, read noise 1.5 gives
      0.80 ADU/e and an offset of 4 ADU.

    The offset (:attr:`offset`, ADU) is ``config.offset`` or, by default,
    ``ceil(3 * read_noise * gain)``.

    The same gain and offset apply to clean and noisy frames, so the clean frame
    is the expected value of the noisy one up to rounding and clipping.
    """

    n_frames: int
    shape: tuple[int, int]
    dtype: np.dtype
    gain: float  # ADU per electron
    offset: float  # ADU

    def __init__(self, config: SimulationConfig) -> None:
        if not isinstance(config, SimulationConfig):
            raise ValueError(f"config must be a SimulationConfig, got {type(config).__name__}")
        self.config = config
        self.n_frames = int(config.n_frames)
        self.shape = (int(config.shape[0]), int(config.shape[1]))
        self.dtype = np.dtype(config.dtype)
        if config.gain is not None:
            self.gain = float(config.gain)
        elif config.dtype == "uint16":
            self.gain = 1.0
        else:
            d = float(config.dose)
            self.gain = 255.0 / (2.5 * d + 6.0 * math.sqrt(d) + 6.0 * float(config.read_noise))
        if config.offset is not None:
            self.offset = float(config.offset)
        else:
            self.offset = float(math.ceil(3.0 * float(config.read_noise) * self.gain - 1e-9))
        self._scale: float | None = None  # intensity normalisation, from frame 0
        rng = np.random.default_rng(np.random.SeedSequence([int(config.seed), _SCENE_SALT]))
        self._build_optics(rng)
        self._build_canvas()
        self._build_particles(rng)
        self._build_dynamics(rng)
        self._build_carbon()

    # ----------------------------------------------------------------- building

    def _build_optics(self, rng: np.random.Generator) -> None:
        c = self.config
        self.d0 = float(rng.uniform(*c.column_spacing_px))  # {200} spacing, px
        self.lattice_a = float(rng.uniform(3.85, 4.08))  # Pt ... Au, Angstrom
        self.pixel_size = (self.lattice_a / 2.0) / self.d0  # Angstrom per pixel
        self.wavelength = _electron_wavelength_A(c.voltage_kv)
        lam = self.wavelength
        k_ref = 2.0 / self.lattice_a  # {200} spatial frequency, 1/Angstrom
        self.cs = (float(rng.uniform(-15.0, 25.0)) if c.cs_um is None else float(c.cs_um)) * 1e4  # Angstrom
        dark = bool(rng.random() < 0.75)
        target = float(rng.uniform(0.35, 0.65)) * math.pi * (-1.0 if dark else 1.0)
        spher = 0.5 * math.pi * self.cs * lam**3 * k_ref**4
        if c.defocus_nm is None:
            # Choose the defocus so that the phase shift chi at the {200} frequency is
            # about -pi/2 (dark columns) or +pi/2 (bright columns).
            self.defocus = (target - spher) / (math.pi * lam * k_ref**2)  # Angstrom
        else:
            self.defocus = float(c.defocus_nm) * 10.0
        # Weak-phase image: I = 1 + 2 phi * sin(chi), so sin(chi) < 0 means dark columns.
        self.dark_columns = math.sin(math.pi * lam * self.defocus * k_ref**2 + spher) < 0
        self.focal_spread = float(rng.uniform(20.0, 40.0))  # Angstrom
        self.conv_angle = float(rng.uniform(0.05, 0.2)) * 1e-3  # rad
        self.aperture = float(rng.uniform(1.1, 1.5))  # 1/Angstrom
        self.astig = float(rng.uniform(0.0, 0.12)) * abs(self.defocus)  # Angstrom
        self.astig_angle = float(rng.uniform(0.0, math.pi))
        self.col_sigma = max(0.7, float(rng.uniform(0.28, 0.38)) / self.pixel_size)  # px
        self.absorption = float(rng.uniform(0.06, 0.12))
        self.mass_thickness = float(rng.uniform(0.03, 0.12))  # amplitude attenuation at full thickness
        self.carbon_phase = 0.065 * float(rng.uniform(0.75, 1.3))  # rad std at full strength
        self.carbon_sigma = max(0.6, 0.3 / self.pixel_size)  # px
        self.carbon_rate = float(rng.uniform(0.004, 0.012))  # rad/frame of field mixing

    def _build_canvas(self) -> None:
        """FFT canvas with a margin against wrap-around of the lens delocalisation."""
        h, w = self.shape
        lam, df, cs = self.wavelength, abs(self.defocus) + self.astig, abs(self.cs)
        kmax = min(self.aperture * 1.1, 0.5 / self.pixel_size)
        deloc = (lam * df * kmax + cs * lam**3 * kmax**3) / self.pixel_size  # px
        m = int(math.ceil(1.2 * deloc + 4.0 * self.col_sigma + 4.0))
        m = max(8, min(m, 256))
        self.margin = m
        self.canvas = (sfft.next_fast_len(h + 2 * m, True), sfft.next_fast_len(w + 2 * m, True))
        hp, wp = self.canvas
        ky = sfft.fftfreq(hp).astype(np.float32)  # cycles per pixel
        kxr = sfft.rfftfreq(wp).astype(np.float32)
        kx = sfft.fftfreq(wp).astype(np.float32)
        self._ky, self._kxr = ky, kxr
        k2r = ky[:, None] ** 2 + kxr[None, :] ** 2
        self._col_kernel = np.exp(-2.0 * math.pi**2 * self.col_sigma**2 * k2r).astype(np.float32)
        self._thick_kernel = np.exp(-2.0 * math.pi**2 * (0.8 * self.d0) ** 2 * k2r).astype(np.float32)
        # Objective lens transfer function on the full (complex) grid, in 1/Angstrom.
        qy = ky[:, None] / self.pixel_size
        qx = kx[None, :] / self.pixel_size
        q2 = qy**2 + qx**2
        q = np.sqrt(q2)
        phi = np.arctan2(qy, qx)
        lam = self.wavelength
        df_eff = self.defocus + 0.5 * self.astig * np.cos(2.0 * (phi - self.astig_angle))
        chi = math.pi * lam * df_eff * q2 + 0.5 * math.pi * self.cs * lam**3 * q2**2
        e_temporal = np.exp(-0.5 * (math.pi * lam * self.focal_spread) ** 2 * q2**2)
        grad = self.defocus * lam * q + self.cs * lam**3 * q**3
        e_spatial = np.exp(-((math.pi * self.conv_angle / lam) ** 2) * grad**2)
        edge = 0.02  # soft aperture edge, 1/Angstrom
        aperture = 0.5 * (1.0 - np.tanh((q - self.aperture) / edge))
        self._ctf = (aperture * e_temporal * e_spatial * np.exp(-1j * chi)).astype(np.complex64)
        # Illumination coordinates on the output frame, centred, in units of the frame size.
        yy = (np.arange(h, dtype=np.float32) - (h - 1) / 2) / max(h, w)
        xx = (np.arange(w, dtype=np.float32) - (w - 1) / 2) / max(h, w)
        self._yy, self._xx = yy, xx

    def _new_particle(self, rng: np.random.Generator, radius: float, rmax: float) -> _Particle:
        c = self.config
        kind = str(rng.choice(_LATTICES, p=[0.47, 0.25, 0.08, 0.2]))
        structure = "single"
        if kind == "fcc110" and rng.random() < c.twin_probability:
            structure = "decahedron" if rng.random() < 0.35 else "twin"
        d0 = self.d0
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
            if rng.random() < 0.5:  # lamella: a second plane, back to the parent orientation
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
        return _Particle(
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
            omega=0.0,
        )

    def _build_particles(self, rng: np.random.Generator) -> None:
        c = self.config
        h, w = self.shape
        d0 = self.d0
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
        pairs: list[_Pair] = []

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
            t_c = self.n_frames * float(rng.uniform(0.3, 0.6))
            d1 = (ri + rj) * float(rng.uniform(0.5, 0.68))
            # The logistic approach has a peak speed of (d0 - d1) / (4 * width): keep it
            # below coalescence_speed, so long transitions outlast short movies.
            width = max(
                2.0,
                self.n_frames * float(rng.uniform(0.08, 0.15)),
                (d0_pair - d1) / (4.0 * max(c.coalescence_speed, 1e-6)),
            )
            mis = float(rng.uniform(-0.5, 0.5))
            residual = float(rng.choice([0.0, 0.0, rng.uniform(-0.12, 0.12)]))
            # Oriented attachment: the rim of j moves at most ~coalescence_speed / 2.
            rot_width = max(0.7 * width, abs(mis - residual) * rj / (2.0 * max(c.coalescence_speed, 1e-6)))
            pairs.append(
                _Pair(
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
        parts: list[_Particle] = []
        index = {}
        for k in placed_set:
            rmax = radii[k]
            for pr in pairs:
                if pr.i == k:
                    rmax = math.sqrt(radii[k] ** 2 + pr.absorb * radii[pr.j] ** 2) * (1 + pr.neck)
                elif pr.j == k:
                    rmax = radii[k] * (1 + pr.neck)
            p = self._new_particle(rng, radii[k], rmax)
            p.c0 = np.asarray(centres[k], dtype=float)
            index[k] = len(parts)
            parts.append(p)
        for pr in pairs:
            pr.i, pr.j = index[pr.i], index[pr.j]
        self._pairs = pairs
        for pr in pairs:
            # Start j with a misorientation relative to i; both then rotate together.
            parts[pr.j].theta0 = parts[pr.i].theta0 + pr.misorientation
        self._particles = parts

    def _build_dynamics(self, rng: np.random.Generator) -> None:
        c = self.config
        h, w = self.shape
        # Stage drift: s(t) = v * tau * (1 - exp(-t / tau)) along a slowly turning direction.
        v = c.drift_speed * float(rng.uniform(0.6, 1.4))
        tau = max(1.0, max(self.n_frames, 100) * float(rng.uniform(1.0, 3.0)))
        if v > 0:
            tau = min(tau, max(1.0, 0.25 * min(h, w) / v))
        self._drift = (v, tau, float(rng.uniform(0, 2 * math.pi)), float(rng.uniform(-1.0, 1.0)) / tau)
        for p in self._particles:
            # Wandering: three sinusoids per axis, peak speed about particle_speed.
            p.wander = []
            for _ in range(3):
                f = float(rng.uniform(0.004, 0.02))  # cycles per frame
                amp = c.particle_speed * float(rng.uniform(0.3, 0.7)) / (2 * math.pi * f) / math.sqrt(3)
                amp_xy = amp * rng.normal(0.0, 1.0, 2) / math.sqrt(2)
                p.wander.append((amp_xy, f, float(rng.uniform(0, 2 * math.pi))))
            p.omega = math.radians(c.rotation_speed) * float(rng.uniform(0.2, 1.0)) * float(rng.choice([-1.0, 1.0]))
            fw = float(rng.uniform(0.01, 0.04))
            p.wobble = (
                math.radians(c.rotation_speed) * float(rng.uniform(0.0, 1.0)) / (2 * math.pi * fw),
                fw,
                float(rng.uniform(0, 2 * math.pi)),
            )
            p.strain = np.stack(
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
        for pr in self._pairs:  # the pair rotates together: j follows i's rotation
            pj, pi_ = self._particles[pr.j], self._particles[pr.i]
            pj.omega, pj.wobble = pi_.omega, pi_.wobble
        # Illumination: tilt direction turns slowly, slight curvature and flicker.
        self._illum = (
            c.illumination_gradient * float(rng.uniform(0.5, 1.0)),
            float(rng.uniform(0, 2 * math.pi)),
            float(rng.uniform(-0.004, 0.004)),  # rad/frame
            c.illumination_gradient * float(rng.uniform(0.0, 0.6)),  # curvature
            float(rng.uniform(0.0, 0.01)),  # flicker amplitude
            float(rng.uniform(0.002, 0.01)),  # flicker frequency
        )

    def _build_carbon(self) -> None:
        """Two static amorphous-carbon phase fields (their mix changes slowly with t)."""
        hp, wp = self.canvas
        self._carbon = []
        strength = self.config.background * self.carbon_phase
        if strength <= 0:
            return
        rng = np.random.default_rng(np.random.SeedSequence([int(self.config.seed), _CARBON_SALT]))
        k2 = self._ky[:, None] ** 2 + self._kxr[None, :] ** 2
        # Atomic form factor (Gaussian) with a weak suppression of the lowest frequencies
        # (amorphous solids have little density variation at long range).
        filt = np.exp(-2.0 * math.pi**2 * self.carbon_sigma**2 * k2)
        kc = 1.0 / (6.0 / self.pixel_size)  # ~6 Angstrom
        filt *= 0.35 + 0.65 * (1.0 - np.exp(-k2 / (kc * kc)))
        for _ in range(2):
            noise = rng.standard_normal((hp, wp), dtype=np.float32)
            spec = sfft.rfft2(noise) * filt
            field = sfft.irfft2(spec, s=(hp, wp))
            spec *= strength / float(field.std())
            self._carbon.append(spec.astype(np.complex64))

    # ----------------------------------------------------------------- dynamics

    def _stage(self, t: float) -> np.ndarray:
        v, tau, ang, turn = self._drift
        if v == 0:
            return np.zeros(2)
        s = v * tau * (1.0 - math.exp(-t / tau))
        a = ang + turn * t
        return s * np.array([math.cos(a), math.sin(a)])

    def _pose(self, t: float) -> tuple[list[np.ndarray], list[float], list[float], list[tuple[float, float]]]:
        """Centres (image px, with stage drift), angles, radii and necks (bump, image angle) at t."""
        parts = self._particles
        stage = self._stage(t)
        centres, thetas, radii = [], [], []
        for p in parts:
            c = p.c0.copy()
            for amp, f, ph in p.wander:
                c = c + amp * (math.sin(2 * math.pi * f * t + ph) - math.sin(ph))
            a, f, ph = p.wobble
            thetas.append(p.theta0 + p.omega * t + a * (math.sin(2 * math.pi * f * t + ph) - math.sin(ph)))
            centres.append(c)
            radii.append(p.radius)
        necks: list[tuple[float, float]] = [(0.0, 0.0)] * len(parts)
        for pr in self._pairs:
            i, j = pr.i, pr.j
            s_move = _smoothstep((t - pr.t_c) / pr.width)
            s_move0 = _smoothstep((0.0 - pr.t_c) / pr.width)
            frac = (s_move - s_move0) / (1.0 - s_move0)
            ri0, rj0 = parts[i].radius, parts[j].radius
            # Absorption of j by i (area transfer) follows the contact by one width.
            s_abs = max(
                0.0, _smoothstep((t - pr.t_c - pr.width) / pr.width) - _smoothstep((-pr.t_c - pr.width) / pr.width)
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
            s_rot = _smoothstep((t - pr.t_c - 0.5 * pr.width) / pr.rot_width)
            thetas[j] = thetas[i] + pr.misorientation + (pr.residual - pr.misorientation) * s_rot
            bump = pr.neck * s_move
            necks[i] = (bump, pr.direction)
            necks[j] = (bump, pr.direction + math.pi)
        centres = [c + stage for c in centres]
        return centres, thetas, radii, necks

    def _columns(self, t: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Canvas positions (x, y) in px, phase weights and thickness weights of the columns at t.

        The phase weight is the integral of the column's phase shift (rad px^2); the
        thickness weight is the relative thickness times the area per column (px^2),
        so that its local average is the particle's relative thickness (0 to 1)."""
        centres, thetas, radii, necks = self._pose(t)
        parts = self._particles
        m = self.margin
        xs: list[np.ndarray] = []
        rhos: list[np.ndarray] = []
        for k, p in enumerate(parts):
            if radii[k] <= 0 or len(p.pts) == 0:
                xs.append(np.zeros((0, 2)))
                rhos.append(np.zeros(0))
                continue
            pts = p.pts
            # Deformation: breathing strain and bending, in the particle frame.
            st = p.strain
            e = st[:, 0] * np.sin(2 * math.pi * st[:, 1] * t + st[:, 2]) - st[:, 0] * np.sin(st[:, 2])
            x, y = pts[:, 0], pts[:, 1]
            r = radii[k]
            xd = x * (1 + e[0]) + y * e[2]
            yd = y * (1 + e[1]) + x * e[2] + e[3] * (x * x) / max(r, 1.0)
            rot = _rot(thetas[k])
            world = np.stack([xd, yd], axis=1) @ rot.T + centres[k]
            rho = self._shape_rho(p, pts, r, necks[k], thetas[k])
            xs.append(world)
            rhos.append(rho)
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
                local = (pts_world - centres[o]) @ _rot(thetas[o])  # inverse rotation
                rho_o = self._shape_rho(parts[o], local, radii[o], necks[o], thetas[o])
                lose = rho_o < rhos[s][sel]
                keep[s][sel[lose]] = False
        pos_all, w_all, thick_all = [], [], []
        for k, p in enumerate(parts):
            sel = keep[k]
            if not np.any(sel):
                continue
            rho = rhos[k][sel]
            thick = np.clip(1.25 * np.sqrt(np.clip(1.0 - rho * rho, 0.0, 1.0)), 0.12, 1.0)
            occ = p.occ[sel].copy()
            ff = p.flick_f[sel]
            rim = (rho > 0.78) & (ff > 0)
            if np.any(rim):
                occ[rim] *= np.clip(0.5 + 0.9 * np.sin(2 * math.pi * ff[rim] * t + p.flick_p[sel][rim]), 0.0, 1.0)
            vecs, basis, wrel = _lattice(p.kind)
            cell = abs(float(np.linalg.det(vecs))) / len(basis) * self.d0**2
            peak = p.phase * wrel
            if p.kind == "fringes":  # turn the fine sampling along the planes into a ridge
                peak *= 0.4 * self.d0 / (math.sqrt(2 * math.pi) * self.col_sigma)
            pos_all.append(xs[k][sel])
            w_all.append(peak * thick * occ * (2 * math.pi * self.col_sigma**2))
            thick_all.append(thick * occ * cell)
        if not pos_all:
            return np.zeros((0, 2)), np.zeros(0), np.zeros(0)
        pos = np.concatenate(pos_all) + m
        wts = np.concatenate(w_all)
        thk = np.concatenate(thick_all)
        hp, wp = self.canvas
        inside = (pos[:, 0] >= 0) & (pos[:, 0] < wp - 1) & (pos[:, 1] >= 0) & (pos[:, 1] < hp - 1)
        return pos[inside], wts[inside], thk[inside]

    @staticmethod
    def _shape_rho(
        p: _Particle, local: np.ndarray, radius: float, neck: tuple[float, float], theta: float
    ) -> np.ndarray:
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

    # ----------------------------------------------------------------- rendering

    def _intensity(self, t: int) -> np.ndarray:
        """Un-normalised image intensity (incident beam = 1) on the output frame."""
        hp, wp = self.canvas
        h, w = self.shape
        m = self.margin
        pos, wts, thk = self._columns(float(t))
        spec = None
        amp = None
        if len(wts):
            x, y = pos[:, 0], pos[:, 1]
            ix = np.floor(x).astype(np.int64)
            iy = np.floor(y).astype(np.int64)
            fx, fy = x - ix, y - iy
            idx = np.concatenate([iy * wp + ix, iy * wp + ix + 1, (iy + 1) * wp + ix, (iy + 1) * wp + ix + 1])
            val = np.concatenate([wts * (1 - fx) * (1 - fy), wts * fx * (1 - fy), wts * (1 - fx) * fy, wts * fx * fy])
            grid = np.bincount(idx, val, minlength=hp * wp).astype(np.float32).reshape(hp, wp)
            spec = sfft.rfft2(grid)
            spec *= self._col_kernel
            # Mass-thickness contrast: electrons scattered outside the aperture by the
            # whole particle darken it smoothly (amplitude factor exp(-mu * thickness)).
            val = np.concatenate([thk * (1 - fx) * (1 - fy), thk * fx * (1 - fy), thk * (1 - fx) * fy, thk * fx * fy])
            tgrid = np.bincount(idx, val, minlength=hp * wp).astype(np.float32).reshape(hp, wp)
            tspec = sfft.rfft2(tgrid)
            tspec *= self._thick_kernel
            amp = sfft.irfft2(tspec, s=(hp, wp))
            amp *= np.float32(-self.mass_thickness)
        if self._carbon:
            a = self.carbon_rate * t
            s = self._stage(float(t))
            py = np.exp(-2j * math.pi * self._ky * s[1]).astype(np.complex64)
            px = np.exp(-2j * math.pi * self._kxr * s[0]).astype(np.complex64)
            carbon = (math.cos(a) * self._carbon[0] + math.sin(a) * self._carbon[1]) * py[:, None]
            carbon *= px[None, :]
            spec = carbon if spec is None else spec + carbon
        if spec is None:
            phi = np.zeros((hp, wp), np.float32)
        else:
            phi = sfft.irfft2(spec, s=(hp, wp))
        expo = phi.astype(np.complex64) * np.complex64(complex(-self.absorption, 1.0))
        if amp is not None:
            expo.real += amp
        wave = np.exp(expo)
        wave = sfft.ifft2(sfft.fft2(wave) * self._ctf)
        inten = wave.real[m : m + h, m : m + w] ** 2 + wave.imag[m : m + h, m : m + w] ** 2
        return inten * self._illumination(t)

    def _illumination(self, t: int) -> np.ndarray:
        g, ang0, turn, curv, flick_a, flick_f = self._illum
        a = ang0 + turn * t
        yy, xx = self._yy[:, None], self._xx[None, :]
        r2 = yy * yy + xx * xx
        r2 = r2 - r2.mean()
        illum = 1.0 + g * (math.cos(a) * xx + math.sin(a) * yy) - curv * r2
        illum *= 1.0 + flick_a * math.sin(2 * math.pi * flick_f * t)
        return np.maximum(illum, 0.05).astype(np.float32)

    def _check_t(self, t: int) -> int:
        if isinstance(t, bool) or not isinstance(t, (int, np.integer)):
            raise ValueError(f"frame index must be an integer, got {t!r}")
        if not 0 <= t < self.n_frames:
            raise ValueError(f"frame index {t} out of range 0..{self.n_frames - 1}")
        return int(t)

    def electrons(self, t: int) -> np.ndarray:
        """Expected electrons per pixel of frame t (float32, mean of frame 0 = dose)."""
        t = self._check_t(t)
        if self._scale is None:
            i0 = self._intensity(0)
            self._scale = float(self.config.dose) / max(float(i0.mean(dtype=np.float64)), 1e-12)
            if t == 0:
                return (i0 * self._scale).astype(np.float32)
        return (self._intensity(t) * self._scale).astype(np.float32)

    def clean_frame(self, t: int) -> np.ndarray:
        """Noise-free expected detector value of frame t, float32 ADU (gain * e + offset)."""
        e = self.electrons(t)
        e *= np.float32(self.gain)
        e += np.float32(self.offset)
        return e

    def noisy_frame(self, t: int) -> np.ndarray:
        """A noisy realisation of frame t in ``config.dtype``; deterministic given (seed, t)."""
        return self._noisy_from_electrons(self.electrons(t), int(t))

    def _noisy_from_electrons(self, e: np.ndarray, t: int) -> np.ndarray:
        rng = np.random.default_rng(np.random.SeedSequence([int(self.config.seed), int(t), _NOISE_SALT]))
        counts = rng.poisson(np.maximum(e, 0.0).astype(np.float64)).astype(np.float32)
        if self.config.read_noise > 0:
            counts += np.float32(self.config.read_noise) * rng.standard_normal(e.shape, dtype=np.float32)
        adu = counts * np.float32(self.gain) + np.float32(self.offset)
        info = np.iinfo(self.dtype)
        return np.clip(np.rint(adu), info.min, info.max).astype(self.dtype)

    def frames(self) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """Yield (noisy, clean) for t = 0 .. n_frames - 1, rendering each frame once."""
        for t in range(self.n_frames):
            e = self.electrons(t)
            noisy = self._noisy_from_electrons(e, t)
            clean = e * np.float32(self.gain) + np.float32(self.offset)
            yield noisy, clean.astype(np.float32)

    def clip(self, start: int, length: int) -> tuple[np.ndarray, np.ndarray]:
        """(noisy, clean) stacks of frames start .. start+length-1, e.g. a training sample."""
        self._check_t(start)
        if length < 1 or start + length > self.n_frames:
            raise ValueError(f"clip {start}..{start + length - 1} out of range 0..{self.n_frames - 1}")
        noisy = np.empty((length, *self.shape), self.dtype)
        clean = np.empty((length, *self.shape), np.float32)
        for k in range(length):
            e = self.electrons(start + k)
            noisy[k] = self._noisy_from_electrons(e, start + k)
            clean[k] = e * np.float32(self.gain) + np.float32(self.offset)
        return noisy, clean

    @property
    def pixel_size_nm(self) -> float:
        """Pixel size in nm (drawn with the lattice sampling)."""
        return self.pixel_size / 10.0

    def describe(self) -> dict[str, Any]:
        """The drawn scene and imaging parameters (for logs and file metadata)."""
        return {
            "pixel_size_nm": round(self.pixel_size_nm, 6),
            "lattice_constant_A": round(self.lattice_a, 4),
            "spacing_200_px": round(self.d0, 4),
            "defocus_nm": round(self.defocus / 10.0, 3),
            "cs_um": round(self.cs / 1e4, 3),
            "dark_columns": bool(self.dark_columns),
            "gain_adu_per_e": self.gain,
            "offset_adu": self.offset,
            "particles": [
                {"lattice": p.kind, "structure": p.structure, "radius_px": round(p.radius, 2)} for p in self._particles
            ],
            "coalescing_pairs": [[pr.i, pr.j] for pr in self._pairs],
        }


# --------------------------------------------------------------------------- helpers


def simulate(
    n_frames: int = 40,
    shape: tuple[int, int] = (256, 256),
    *,
    dose: float = 100.0,
    seed: int = 0,
    dtype: str = "uint16",
    **options: Any,
) -> tuple[np.ndarray, np.ndarray]:
    """Simulate a small movie in memory: (noisy (N, H, W) dtype, clean (N, H, W) float32).

    ``options`` are further :class:`SimulationConfig` fields.  For long or large
    movies use :class:`MovieSimulator` or :func:`write_movie`, which stream."""
    valid = {f.name for f in fields(SimulationConfig)} - {"n_frames", "shape", "dose", "seed", "dtype"}
    unknown = sorted(set(options) - valid)
    if unknown:
        raise ValueError(f"unknown simulation option(s) {unknown}; valid options are {sorted(valid)}")
    config = SimulationConfig(n_frames=n_frames, shape=shape, dose=dose, seed=seed, dtype=dtype, **options)
    sim = MovieSimulator(config)
    return sim.clip(0, sim.n_frames)


def _imagej_kwargs(sim: MovieSimulator) -> dict[str, Any]:
    px = sim.pixel_size_nm
    info = json.dumps({"emtcs_simulation": {**asdict(sim.config), **sim.describe()}}, default=str)
    return {
        "resolution": (1.0 / px, 1.0 / px),
        "metadata": {"axes": "TYX", "unit": "nm", "finterval": float(sim.config.frame_interval), "Info": info},
    }


def write_movie(
    path: str | os.PathLike[str],
    config: SimulationConfig,
    *,
    clean_path: str | os.PathLike[str] | None = None,
    progress: Callable[[int], None] | None = None,
) -> None:
    """Stream a simulated movie to a multi-page ImageJ TIFF, one frame at a time.

    The noisy frames are written in ``config.dtype`` to ``path``; if ``clean_path``
    is given, the clean frames go there as float32.  Both files carry ImageJ
    metadata: pixel size (``resolution`` in pixels per nm, ``unit='nm'``), frame
    interval (``finterval`` in s) and the configuration as JSON in ``Info``.
    ``progress(k)`` is called with the number of frames written so far.
    Memory stays constant whatever the number of frames.
    """
    import tifffile  # local import: keeps "import emtcs.simulate" light

    if not isinstance(config, SimulationConfig):
        raise ValueError(f"config must be a SimulationConfig, got {type(config).__name__}")
    if clean_path is not None and os.path.abspath(os.fspath(clean_path)) == os.path.abspath(os.fspath(path)):
        raise ValueError("clean_path must differ from path")
    sim = MovieSimulator(config)
    n, (h, w) = sim.n_frames, sim.shape
    kwargs = _imagej_kwargs(sim)
    done = 0

    def report(k: int) -> None:
        nonlocal done
        if progress is not None and k > done:
            done = k
            progress(k)
        done = max(done, k)

    if clean_path is None:

        def noisy_pages() -> Iterator[np.ndarray]:
            for t, (noisy, _clean) in enumerate(sim.frames()):
                yield noisy
                report(t + 1)  # runs once tifffile has written page t and asks for more

        with tifffile.TiffWriter(path, imagej=True) as tw:
            tw.write(noisy_pages(), shape=(n, h, w), dtype=sim.dtype, **kwargs)
        report(n)
        return

    # Two files at once: the clean file is written by a helper thread fed through a
    # small bounded queue, so each frame is rendered once and memory stays flat.
    q: queue.Queue[np.ndarray | None] = queue.Queue(maxsize=2)
    failure: list[BaseException] = []
    stop = threading.Event()

    def clean_pages() -> Iterator[np.ndarray]:
        for _ in range(n):
            item = q.get()
            if item is None:
                raise RuntimeError("simulation aborted")
            yield item

    def clean_writer() -> None:
        try:
            with tifffile.TiffWriter(clean_path, imagej=True) as tw:
                tw.write(clean_pages(), shape=(n, h, w), dtype=np.float32, **kwargs)
        except BaseException as exc:  # noqa: BLE001 - re-raised in the main thread
            failure.append(exc)
            stop.set()

    def put(item: np.ndarray | None) -> None:
        while True:
            if stop.is_set():
                if failure:
                    raise failure[0]
                raise RuntimeError("writing the clean movie stopped")
            try:
                q.put(item, timeout=0.1)
                return
            except queue.Full:
                continue

    def noisy_pages() -> Iterator[np.ndarray]:
        for t, (noisy, clean) in enumerate(sim.frames()):
            put(clean)
            yield noisy
            report(t + 1)

    worker = threading.Thread(target=clean_writer, name="emtcs-simulate-clean-writer", daemon=True)
    worker.start()
    try:
        with tifffile.TiffWriter(path, imagej=True) as tw:
            tw.write(noisy_pages(), shape=(n, h, w), dtype=sim.dtype, **kwargs)
    except BaseException:
        stop.set()
        try:  # wake the helper thread: empty the queue, then send the abort marker
            while True:
                q.get_nowait()
        except queue.Empty:
            pass
        q.put_nowait(None)
        worker.join(timeout=10)
        raise
    worker.join()
    if failure:
        raise failure[0]
    report(n)
