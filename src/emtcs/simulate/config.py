"""The parameters of a simulated movie (:class:`SimulationConfig`) and their validation."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

__all__ = ["SimulationConfig", "MODES"]

_DTYPES = ("uint8", "uint16")
MODES = ("hrtem", "bright-field", "liquid-cell", "stem")
"""The imaging modes, see :attr:`SimulationConfig.mode`."""


@dataclass(frozen=True)
class SimulationConfig:
    """All parameters of a simulated movie; every field has a default.

    Scene parameters given as ``(low, high)`` ranges are drawn uniformly (radius:
    log-uniformly) per movie from ``seed``, so different seeds give different
    movies.  Speeds are in pixels (or degrees) per frame.

    ``mode`` picks what is imaged and how (see :mod:`emtcs.simulate`).  The
    detector fields (``dose``, ``read_noise``, ``dtype``, ``gain``, ``offset``), the
    stage drift, ``illumination_gradient`` and ``frame_interval`` apply to every
    mode; the atomic-scene fields (``column_spacing_px``, ``particle_radius``,
    ``twin_probability``, ``deformation``) to ``"hrtem"`` and ``"stem"``; the
    lens fields (``voltage_kv``, ``defocus_nm``, ``cs_um``) to ``"hrtem"`` only.
    ``n_particles``, ``coverage``, ``particle_speed``, ``rotation_speed``,
    ``coalescence`` and ``background`` steer every mode in their own way (see the
    mode's module).
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
    mode: str = "hrtem"
    """Imaging mode: ``"hrtem"`` (phase-contrast lattice images, the default),
    ``"bright-field"`` (low-magnification mass-thickness contrast), ``"liquid-cell"``
    (blurred particles in moving liquid) or ``"stem"`` (HAADF atom columns, raster scan)."""
    overlay_probability: float = 0.3
    """``"bright-field"``: probability that the movie has a burned-in scale bar and label."""
    scan_noise: float = 1.0
    """``"stem"``: strength of the scan artefacts (line jitter, line flicker, scan
    distortion); 0 = an ideal scan, 1 = typical."""

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
    if not isinstance(c.mode, str) or c.mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}, got {c.mode!r}")
    finite("overlay_probability", 0.0, hi=1.0)
    finite("scan_noise", 0.0, hi=10.0)
