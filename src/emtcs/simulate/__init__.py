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
``gain * electrons + offset``; see :class:`~emtcs.simulate.detector.Detector` for the
gain rule.

The modules, one job each; each imports only modules named before it: :mod:`.config` (the
parameters), :mod:`.optics` (microscope and FFT canvas), :mod:`.scene` (lattices,
particles, pairs, carbon support), :mod:`.motion` (drift, rotation, particle motion,
coalescence), :mod:`.render` (image formation of frame t), :mod:`.detector` (gain,
offset, noise, dtype) and :mod:`.movie` (the simulator, in memory and streamed to TIFF).
"""

from .config import SimulationConfig
from .movie import MovieSimulator, simulate, write_movie

__all__ = [
    "SimulationConfig",
    "MovieSimulator",
    "simulate",
    "write_movie",
]
