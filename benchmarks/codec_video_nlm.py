"""A frame codec followed by a video denoiser: JPEG XL at the validation suite's budgets, then
scikit-image's non-local means frame by frame (the suite's "+ NLM" column) or over the
movie as one volume, time as a third axis (cubic patches of 3 or 5, searched 2 pixels and
2 frames around), with the same ``h`` and ``sigma`` (:class:`emtcs.bench.denoise.NLMeans`,
sigma from the raw frames).  Since session 19 emtcs's finishing searches neighbouring
frames too; this is the codec's side of that comparison.  PSNR against the suite's
reference; gold and STEM-ABF left out (the suite's codecs + NLM already lead there).

    python benchmarks/codec_video_nlm.py --json docs/figures/codec-video-nlm.json
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
from skimage.restoration import denoise_nl_means

from emtcs.bench.codecs import get_codec
from emtcs.bench.denoise import NLMeans
from emtcs.bench.run import BenchConfig
from validation import SHARED, movies

#: (patch size, patch distance) of the volume runs.
VOLUME = ((3, 2), (5, 2))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--shared", type=Path, default=SHARED)
    ap.add_argument("--suite", type=Path, default=Path(__file__).resolve().parents[1] / "docs/figures/validation.json")
    ap.add_argument("--json", type=Path)
    a = ap.parse_args()
    budgets = {(r["movie"], r["B"]): r["budget"] for r in json.loads(a.suite.read_text())["results"]}
    reference_denoiser = BenchConfig().reference_denoiser
    rows = []
    for name, frames, clean in movies(a.shared, False):
        if "gold" in name or "STEM" in name:
            continue
        ref = (clean if clean is not None else reference_denoiser.for_noise_of(frames)(frames)).astype(np.float64)
        span = float(ref.max() - ref.min())

        def score(out: np.ndarray, ref: np.ndarray = ref, span: float = span) -> float:
            return float(10 * np.log10(span**2 / np.mean((out.astype(np.float64) - ref) ** 2)))

        nlm = NLMeans().for_noise_of(frames)
        for B in (10, 20):
            if (name, B) not in budgets:
                continue
            coded = get_codec("jpegxl").at_budget(
                frames, budgets[(name, B)], lo=float(frames.min()), hi=float(frames.max())
            )
            x = coded.decoded.astype(np.float32)
            row = {"movie": name, "B": B, "bytes": coded.nbytes, "jpegxl": score(x)}
            row["nlm_per_frame"] = score(np.stack([nlm.frame(f) for f in x]))
            for size, distance in VOLUME:
                volume = denoise_nl_means(
                    x,
                    h=nlm.h_sigma * nlm.sigma,
                    sigma=nlm.sigma,
                    patch_size=size,
                    patch_distance=distance,
                    fast_mode=True,
                    channel_axis=None,
                )
                row[f"nlm_volume_patch{size}_distance{distance}"] = score(volume)
            rows.append(row)
            print(json.dumps(row), flush=True)
    if a.json:
        a.json.write_text(json.dumps({"rows": rows}, indent=1))


if __name__ == "__main__":
    main()
