"""How well compress measures one noise sigma where no Poisson model fits.

Simulated 8-bit movies (``emtcs.simulate``, every imaging mode; still, drifting as
simulated and fast; 20 and 200 e/px; 12 frames of 384 x 384), Poisson counts whose
electrons are spread over neighbouring pixels by a Gaussian of 0, 0.6 or 1 px (a
scintillator's point spread), scaled so the brightest pixel is 200 of 255.  For each:
whether a model was fitted, and the measured ``NoiseFit.sigma`` over the true per-pixel
noise (the movie minus its spread, scaled truth).

    python benchmarks/noise_sigma.py --json docs/figures/noise-sigma.json
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from emtcs.noise import estimate_noise
from reference_check import camera_movie

MODES = ("liquid-cell", "bright-field", "hrtem", "stem")
MOTION = {
    "still": dict(drift_speed=0.0, particle_speed=0.0, rotation_speed=0.0, deformation=0.0, coalescence=False),
    "simulated": {},
    "fast": dict(drift_speed=2.0, particle_speed=1.0, rotation_speed=0.5),
}
DOSES = (20.0, 200.0)
SPREADS = (0.0, 0.6, 1.0)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--seed", type=int, default=11)
    ap.add_argument("--json", type=Path)
    a = ap.parse_args()
    rows = []
    for mode in MODES:
        for motion in MOTION:
            for dose in DOSES:
                for spread in SPREADS:
                    movie, truth = camera_movie(mode, dose, spread, a.seed, 12, (384, 384), **MOTION[motion])
                    fit = estimate_noise(movie)
                    true = float(np.std(movie - truth.astype(np.float64)))
                    ratio = None if fit.sigma is None else fit.sigma / true
                    rows.append(
                        {
                            "mode": mode,
                            "motion": motion,
                            "dose": dose,
                            "spread_px": spread,
                            "model": fit.model is not None,
                            "true_sigma": true,
                            "sigma": fit.sigma,
                            "ratio": ratio,
                        }
                    )
                    shown = "model" if fit.model is not None else ("exact" if ratio is None else f"{ratio:.2f}")
                    print(f"{mode:12s} {motion:9s} {dose:5g} e/px  spread {spread:.1f} px  sigma/true {shown}")
    summary = {}
    for spread in SPREADS:
        r = [x["ratio"] for x in rows if x["spread_px"] == spread and x["ratio"] is not None]
        summary[f"{spread:g}"] = {
            "movies": sum(x["spread_px"] == spread for x in rows),
            "with_model": sum(x["model"] for x in rows if x["spread_px"] == spread),
            "sigma_measured": len(r),
            "ratio_range": [min(r), max(r)] if r else None,
        }
    print(json.dumps(summary, indent=1))
    if a.json:
        a.json.write_text(json.dumps({"seed": a.seed, "summary": summary, "rows": rows}, indent=1))


if __name__ == "__main__":
    main()
