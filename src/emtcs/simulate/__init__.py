"""Synthetic in-situ electron-microscopy movies: the built-in test input and training-data source.

``SimulationConfig(mode=...)`` picks the kind of movie:

* ``"hrtem"`` (the default, described below): phase-contrast lattice images of
  nanoparticles on amorphous carbon.
* ``"bright-field"`` (:mod:`.brightfield`): low-magnification mass-thickness contrast of
  metals: dark particles that sinter, nanoporous networks that coarsen, polycrystalline
  films that crack; saturated vacuum, clipped blacks, a burned-in scale bar.
* ``"liquid-cell"`` (:mod:`.liquid`): blurred, low-contrast particles in Brownian motion
  in a liquid layer that changes, with bubbles; particles enter and leave the field and
  aggregate.
* ``"stem"`` (:mod:`.stem`): HAADF-like Z-contrast images of the HRTEM mode's particles
  (bright columns on a dark background) with raster-scan artefacts: line jitter, line
  flicker, scan distortion.

Every mode shares the detector (dose normalisation, Poisson and read noise, gain, offset,
dtype), the stage drift and the rule that a movie is a pure function of its config.  Each
mode is one class behind the small interface of :mod:`.modes`.

In the HRTEM mode the simulator renders crystalline metal nanoparticles (fcc, e.g. Au/Pt)
on an amorphous-carbon support as seen in high-resolution TEM, frame by frame:

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
be streamed to disk with :func:`write_movie`.  (The liquid-cell mode keeps a table of
its Brownian trajectories, 16 bytes per particle and frame.)  All scene parameters are
drawn from ``config.seed``; the noise of frame ``t`` is drawn from ``(seed, t)`` (the
STEM scan jitter of frame ``t`` too).

Units: the clean frame is the expected detector value in ADU,
``gain * electrons + offset``; see :class:`~emtcs.simulate.detector.Detector` for the
gain rule.

The modules, one job each; each imports only modules named before it: :mod:`.config` (the
parameters), :mod:`.optics` (microscope and FFT canvas), :mod:`.scene` (lattices,
particles, pairs, carbon support), :mod:`.motion` (drift, rotation, particle motion,
coalescence, Brownian motion), :mod:`.render` (HRTEM image formation of frame t),
:mod:`.detector` (gain, offset, noise, saturation, dtype), :mod:`.field` (blurs, drifting
random fields, blobs and cracks for the other modes), the modes :mod:`.hrtem`,
:mod:`.brightfield`, :mod:`.liquid` and :mod:`.stem`, :mod:`.modes` (their interface) and
:mod:`.movie` (the simulator, in memory and streamed to TIFF).
"""

from .config import MODES, SimulationConfig
from .movie import MovieSimulator, simulate, write_movie

__all__ = [
    "MODES",
    "SimulationConfig",
    "MovieSimulator",
    "simulate",
    "write_movie",
]
