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

The movie is one of the suite's abTEM scenes (validation.py's ``abtem_movie``), compressed
and decoded as the suite does (default quantisation, the NL-means finish), against the
clean truth.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from emtcs.metrics import PEAK_FACTOR, PEAK_PRESENT, contrast_near, peak_contrast
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
    ap.add_argument("-B", type=int, default=20, help="group size (default 20)")
    ap.add_argument("--bin", required=True, help="frequency bin KY,KX from the spectrum's centre, e.g. 16,-6")
    ap.add_argument("--decoders", default="gaptv,gapunet,auto", help="comma-separated (default gaptv,gapunet,auto)")
    a = ap.parse_args()
    ky, kx = (int(v) for v in a.bin.split(","))
    scenes = a.shared / "abtem-hrtem" / "hrtem_scenes_0-31.h5"
    if not scenes.exists():
        raise SystemExit(f"no abTEM scenes at {scenes}")
    noisy, clean = abtem_movie(scenes, a.seed, a.dose)
    settings = {name: {"decoder": name, "device": "cpu", "finish": "nlm"} for name in a.decoders.split(",")}
    rows = {"truth": clean, **{name: frames for name, (frames, _) in round_trip(noisy, a.B, settings).items()}}
    print(f"abTEM seed {a.seed}, {a.dose:g} e/px, B = {a.B}: peak contrast near bin ({ky}, {kx}) per frame")
    print(f"(a decoded peak counts at {PEAK_FACTOR:g}; the reference holds one from {PEAK_PRESENT:g})")
    for name, frames in rows.items():
        print(f"{name:>8} " + " ".join(f"{c:5.1f}" for c in contrast_at(frames, ky, kx)))


if __name__ == "__main__":
    main()
