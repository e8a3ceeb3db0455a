"""When does a decoded movie show a spectral peak, against when its reference does?

The validation suite counts a decoded frame's spectral peak as invented when the
reference frame holds nothing there (:func:`emtcs.metrics.invented_peaks`).  A temporal
decoder can fail that check without making anything up: a reflection that the movie
shows strongly late in a group, decoded from one measurement of the whole group, can
leak into the group's early frames, before it appears.  This prints, frame by frame, a
frequency bin's :func:`emtcs.metrics.peak_contrast` (the best within the check's
tolerance) in the reference and in each decoder's frames, so that a flagged peak can be
told apart: one the movie never holds, or a real one shown too early or too late.

    python benchmarks/peak_timeline.py --seed 17 --dose 20 -B 20 --bin 16,-6
    EMTCS_MODELS=scratch/candidates/RUN benchmarks/peak_timeline.py ...   # a candidate's weights
    ... --mask-seeds 0,1,2,3,4    # the same movie compressed with other masks

A frame's contrast at one bin varies by several units between mask draws (session 38:
the shipped weights' frame 0 on seed 17 from 25 to 31 across decoders and finishes), so
that whether a decoder crosses the check's bar on one draw says little; over several draws
the count of frames it shows the peak in where the reference holds none (the last line)
ranks decoders by how often they would.

The movie is one of the suite's abTEM scenes (validation.py's ``abtem_movie``), or with
``--demo`` the README's demo movie (``emtcs simulate``'s defaults, whose weak reflection
near bin 8,-105 at B = 20 the suite has flagged), compressed and decoded as the suite does
(default quantisation, the NL-means finish), against the clean truth.

    python benchmarks/peak_timeline.py --demo -B 20 --bin 8,-105 --mask-seeds 0,1,2,3
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from emtcs.metrics import PEAK_FACTOR, PEAK_PRESENT, contrast_near, peak_contrast
from emtcs.simulate import simulate
from round_trip import round_trip
from validation import SHARED, abtem_movie


def contrast_at(frames: np.ndarray, ky: int, kx: int) -> np.ndarray:
    """Per frame, the highest :func:`peak_contrast` within the check's tolerance of (ky, kx)."""
    return np.array([contrast_near(peak_contrast(f), ky, kx) for f in frames])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--shared", type=Path, default=SHARED, help="folder holding abtem-hrtem/")
    ap.add_argument("--seed", type=int, default=17, help="abTEM validation scene (default 17)")
    ap.add_argument("--dose", type=float, default=20.0, help="electrons per pixel (default 20)")
    ap.add_argument("--demo", action="store_true", help="the README's demo movie instead (100 e/px; no --seed, --dose)")
    ap.add_argument("-B", type=int, default=20, help="group size (default 20)")
    ap.add_argument("--bin", required=True, help="frequency bin KY,KX from the spectrum's centre, e.g. 16,-6")
    ap.add_argument("--decoders", default="gaptv,gapunet,auto", help="comma-separated (default gaptv,gapunet,auto)")
    ap.add_argument("--mask-seeds", default="0", help="compress with each of these mask seeds (default 0)")
    a = ap.parse_args()
    ky, kx = (int(v) for v in a.bin.split(","))
    if a.demo:
        noisy, clean = simulate()
        movie = "README demo, 100 e/px"
    else:
        scenes = a.shared / "abtem-hrtem" / "hrtem_scenes_0-31.h5"
        if not scenes.exists():
            raise SystemExit(f"no abTEM scenes at {scenes}")
        noisy, clean = abtem_movie(scenes, a.seed, a.dose)
        movie = f"abTEM seed {a.seed}, {a.dose:g} e/px"
    names = a.decoders.split(",")
    settings = {name: {"decoder": name, "device": "cpu", "finish": "nlm"} for name in names}
    truth = contrast_at(clean, ky, kx)
    print(f"{movie}, B = {a.B}: peak contrast near bin ({ky}, {kx}) per frame")
    print(f"(a decoded peak counts at {PEAK_FACTOR:g}; the reference holds one from {PEAK_PRESENT:g})")
    print(f"{'truth':>12} " + " ".join(f"{c:5.1f}" for c in truth))
    seeds = [int(s) for s in a.mask_seeds.split(",")]
    counted = dict.fromkeys(names, 0)
    highest = dict.fromkeys(names, 0.0)  # where the truth holds none: how near the bar a decoder came
    for seed in seeds:
        for name, (frames, _) in round_trip(noisy, a.B, settings, seed=seed).items():
            contrast = contrast_at(frames, ky, kx)
            counted[name] += int(np.sum((contrast >= PEAK_FACTOR) & (truth < PEAK_PRESENT)))
            highest[name] = max(highest[name], float(contrast[truth < PEAK_PRESENT].max(initial=0.0)))
            print(f"{name + (f' m{seed}' if len(seeds) > 1 else ''):>12} " + " ".join(f"{c:5.1f}" for c in contrast))
    print(
        f"frames counted (>= {PEAK_FACTOR:g} where the truth < {PEAK_PRESENT:g}) over {len(seeds)} mask draw(s): "
        + ", ".join(f"{name} {n} (highest {highest[name]:.1f})" for name, n in counted.items())
    )


if __name__ == "__main__":
    main()
