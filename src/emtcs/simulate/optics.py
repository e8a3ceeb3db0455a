"""The microscope of a simulated movie: its sampling, objective lens and illumination, drawn
per movie, and the FFT canvas that frames are rendered on (margin, blur kernels, contrast
transfer function)."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import scipy.fft as sfft

from .config import SimulationConfig

__all__ = ["Optics", "Canvas", "Illumination", "electron_wavelength_A"]


def electron_wavelength_A(kv: float) -> float:
    """Relativistic electron wavelength in Angstrom for an acceleration voltage in kV."""
    v = kv * 1e3
    return 12.2643 / math.sqrt(v * (1.0 + 0.97848e-6 * v))


@dataclass(frozen=True)
class Optics:
    """Sampling, lens and contrast parameters of one movie (lengths in Angstrom unless noted)."""

    d0: float  # {200} lattice spacing, px
    lattice_a: float  # lattice constant (Pt ... Au)
    pixel_size: float  # Angstrom per pixel
    wavelength: float
    cs: float  # spherical aberration
    defocus: float
    dark_columns: bool  # whether columns image dark at the lattice frequency
    focal_spread: float
    conv_angle: float  # illumination convergence, rad
    aperture: float  # objective aperture, 1/Angstrom
    astig: float  # twofold astigmatism
    astig_angle: float  # rad
    col_sigma: float  # Gaussian width of a projected column, px
    absorption: float  # imaginary part of the phase object, relative to the phase
    mass_thickness: float  # amplitude attenuation at full particle thickness
    carbon_phase: float  # phase standard deviation of the carbon support at full strength, rad
    carbon_sigma: float  # Gaussian width of a carbon atom, px
    carbon_rate: float  # rad/frame at which the two carbon fields mix

    @classmethod
    def draw(cls, rng: np.random.Generator, c: SimulationConfig) -> Optics:
        """Draw the optics from the scene's random stream (the first draws of a movie)."""
        d0 = float(rng.uniform(*c.column_spacing_px))
        lattice_a = float(rng.uniform(3.85, 4.08))
        pixel_size = (lattice_a / 2.0) / d0
        lam = electron_wavelength_A(c.voltage_kv)
        k_ref = 2.0 / lattice_a  # {200} spatial frequency, 1/Angstrom
        cs = (float(rng.uniform(-15.0, 25.0)) if c.cs_um is None else float(c.cs_um)) * 1e4
        dark = bool(rng.random() < 0.75)
        target = float(rng.uniform(0.35, 0.65)) * math.pi * (-1.0 if dark else 1.0)
        spher = 0.5 * math.pi * cs * lam**3 * k_ref**4
        if c.defocus_nm is None:
            # Choose the defocus so that the phase shift chi at the {200} frequency is
            # about -pi/2 (dark columns) or +pi/2 (bright columns).
            defocus = (target - spher) / (math.pi * lam * k_ref**2)
        else:
            defocus = float(c.defocus_nm) * 10.0
        # Weak-phase image: I = 1 + 2 phi * sin(chi), so sin(chi) < 0 means dark columns.
        dark_columns = math.sin(math.pi * lam * defocus * k_ref**2 + spher) < 0
        focal_spread = float(rng.uniform(20.0, 40.0))
        conv_angle = float(rng.uniform(0.05, 0.2)) * 1e-3
        aperture = float(rng.uniform(1.1, 1.5))
        astig = float(rng.uniform(0.0, 0.12)) * abs(defocus)
        astig_angle = float(rng.uniform(0.0, math.pi))
        col_sigma = max(0.7, float(rng.uniform(0.28, 0.38)) / pixel_size)
        absorption = float(rng.uniform(0.06, 0.12))
        mass_thickness = float(rng.uniform(0.03, 0.12))
        carbon_phase = 0.065 * float(rng.uniform(0.75, 1.3))
        carbon_sigma = max(0.6, 0.3 / pixel_size)
        carbon_rate = float(rng.uniform(0.004, 0.012))
        return cls(
            d0=d0,
            lattice_a=lattice_a,
            pixel_size=pixel_size,
            wavelength=lam,
            cs=cs,
            defocus=defocus,
            dark_columns=dark_columns,
            focal_spread=focal_spread,
            conv_angle=conv_angle,
            aperture=aperture,
            astig=astig,
            astig_angle=astig_angle,
            col_sigma=col_sigma,
            absorption=absorption,
            mass_thickness=mass_thickness,
            carbon_phase=carbon_phase,
            carbon_sigma=carbon_sigma,
            carbon_rate=carbon_rate,
        )


@dataclass(frozen=True, eq=False)
class Canvas:
    """The FFT grid frames are rendered on: the output frame plus a margin against wrap-around
    of the lens delocalisation, with the kernels and the lens transfer function on that grid."""

    margin: int  # px on each side of the output frame
    size: tuple[int, int]  # (height, width) of the canvas
    ky: np.ndarray  # frequencies of the canvas rows, cycles per pixel
    kxr: np.ndarray  # frequencies of the columns of a real FFT
    col_kernel: np.ndarray  # Gaussian blur of a column (real-FFT grid)
    thick_kernel: np.ndarray  # smoothing of the particle thickness (real-FFT grid)
    ctf: np.ndarray  # objective lens transfer function (full complex grid)
    yy: np.ndarray  # illumination coordinates of the output rows, centred, in frame sizes
    xx: np.ndarray  # ... and of its columns

    @classmethod
    def build(cls, shape: tuple[int, int], optics: Optics) -> Canvas:
        """The canvas for frames of ``shape`` seen through ``optics``."""
        o = optics
        h, w = shape
        lam, df, cs = o.wavelength, abs(o.defocus) + o.astig, abs(o.cs)
        kmax = min(o.aperture * 1.1, 0.5 / o.pixel_size)
        deloc = (lam * df * kmax + cs * lam**3 * kmax**3) / o.pixel_size  # px
        m = int(math.ceil(1.2 * deloc + 4.0 * o.col_sigma + 4.0))
        m = max(8, min(m, 256))
        hp, wp = sfft.next_fast_len(h + 2 * m, True), sfft.next_fast_len(w + 2 * m, True)
        ky = sfft.fftfreq(hp).astype(np.float32)  # cycles per pixel
        kxr = sfft.rfftfreq(wp).astype(np.float32)
        kx = sfft.fftfreq(wp).astype(np.float32)
        k2r = ky[:, None] ** 2 + kxr[None, :] ** 2
        col_kernel = np.exp(-2.0 * math.pi**2 * o.col_sigma**2 * k2r).astype(np.float32)
        thick_kernel = np.exp(-2.0 * math.pi**2 * (0.8 * o.d0) ** 2 * k2r).astype(np.float32)
        # Objective lens transfer function on the full (complex) grid, in 1/Angstrom.
        qy = ky[:, None] / o.pixel_size
        qx = kx[None, :] / o.pixel_size
        q2 = qy**2 + qx**2
        q = np.sqrt(q2)
        phi = np.arctan2(qy, qx)
        df_eff = o.defocus + 0.5 * o.astig * np.cos(2.0 * (phi - o.astig_angle))
        chi = math.pi * lam * df_eff * q2 + 0.5 * math.pi * o.cs * lam**3 * q2**2
        e_temporal = np.exp(-0.5 * (math.pi * lam * o.focal_spread) ** 2 * q2**2)
        grad = o.defocus * lam * q + o.cs * lam**3 * q**3
        e_spatial = np.exp(-((math.pi * o.conv_angle / lam) ** 2) * grad**2)
        edge = 0.02  # soft aperture edge, 1/Angstrom
        aperture = 0.5 * (1.0 - np.tanh((q - o.aperture) / edge))
        ctf = (aperture * e_temporal * e_spatial * np.exp(-1j * chi)).astype(np.complex64)
        yy = (np.arange(h, dtype=np.float32) - (h - 1) / 2) / max(h, w)
        xx = (np.arange(w, dtype=np.float32) - (w - 1) / 2) / max(h, w)
        return cls(m, (hp, wp), ky, kxr, col_kernel, thick_kernel, ctf, yy, xx)


@dataclass(frozen=True)
class Illumination:
    """A slowly turning tilt gradient, a slight curvature and a flicker of the beam's brightness."""

    gradient: float  # peak-to-peak relative change across the frame
    angle: float  # direction of the gradient at t = 0, rad
    turn: float  # rad/frame
    curvature: float
    flicker_amplitude: float
    flicker_frequency: float  # cycles/frame

    @classmethod
    def draw(cls, rng: np.random.Generator, c: SimulationConfig) -> Illumination:
        """Draw the illumination (after the motion, from the scene's random stream)."""
        return cls(
            c.illumination_gradient * float(rng.uniform(0.5, 1.0)),
            float(rng.uniform(0, 2 * math.pi)),
            float(rng.uniform(-0.004, 0.004)),
            c.illumination_gradient * float(rng.uniform(0.0, 0.6)),
            float(rng.uniform(0.0, 0.01)),
            float(rng.uniform(0.002, 0.01)),
        )

    def at(self, t: int, canvas: Canvas) -> np.ndarray:
        """Relative brightness over the output frame at frame ``t`` (float32, at least 0.05)."""
        a = self.angle + self.turn * t
        yy, xx = canvas.yy[:, None], canvas.xx[None, :]
        r2 = yy * yy + xx * xx
        r2 = r2 - r2.mean()
        illum = 1.0 + self.gradient * (math.cos(a) * xx + math.sin(a) * yy) - self.curvature * r2
        illum *= 1.0 + self.flicker_amplitude * math.sin(2 * math.pi * self.flicker_frequency * t)
        return np.maximum(illum, 0.05).astype(np.float32)
