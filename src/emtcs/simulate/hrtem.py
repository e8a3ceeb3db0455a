"""The ``"hrtem"`` imaging mode: phase-contrast lattice images of faceted nanoparticles on
amorphous carbon (:mod:`.optics`, :mod:`.scene`, :mod:`.motion` and :mod:`.render` put
together behind the interface of :mod:`.modes`)."""

from __future__ import annotations

from typing import Any

import numpy as np

from .config import SimulationConfig
from .detector import Detector
from .motion import Motion
from .optics import Canvas, Illumination, Optics
from .render import Renderer
from .scene import Scene, carbon_fields

__all__ = ["HrtemModel"]

# Salt of the scene's random stream (optics, particles, motion, illumination, in that order).
_SCENE_SALT = 0x5CE7E


class HrtemModel:
    """Draws the optics, scene, motion and illumination of an HRTEM movie from its seed and
    renders the intensity of any frame."""

    full_well: float | None = None  # the HRTEM camera never saturates

    def __init__(self, config: SimulationConfig) -> None:
        shape = (int(config.shape[0]), int(config.shape[1]))
        # One random stream, drawn in this order: reordering the draws changes every movie.
        rng = np.random.default_rng(np.random.SeedSequence([int(config.seed), _SCENE_SALT]))
        self.optics = Optics.draw(rng, config)
        canvas = Canvas.build(shape, self.optics)
        self.scene = Scene.draw(rng, config, self.optics.d0)
        motion = Motion.draw(rng, config, self.scene)
        illumination = Illumination.draw(rng, config)
        carbon = carbon_fields(config, self.optics, canvas)
        self.renderer = Renderer(shape, self.optics, canvas, motion, carbon, illumination)

    @property
    def pixel_size_nm(self) -> float:
        return self.optics.pixel_size / 10.0

    def intensity(self, t: int) -> np.ndarray:
        """Un-normalised image intensity of frame t (incident beam = 1)."""
        return self.renderer.intensity(t)

    def describe(self, detector: Detector) -> dict[str, Any]:
        o = self.optics
        return {
            "pixel_size_nm": round(self.pixel_size_nm, 6),
            "lattice_constant_A": round(o.lattice_a, 4),
            "spacing_200_px": round(o.d0, 4),
            "defocus_nm": round(o.defocus / 10.0, 3),
            "cs_um": round(o.cs / 1e4, 3),
            "dark_columns": bool(o.dark_columns),
            "gain_adu_per_e": detector.gain,
            "offset_adu": detector.offset,
            "particles": [
                {"lattice": p.kind, "structure": p.structure, "radius_px": round(p.radius, 2)}
                for p in self.scene.particles
            ],
            "coalescing_pairs": [[pr.i, pr.j] for pr in self.scene.pairs],
        }
