"""Scoring a movie without a truth: compress its even frames, compare with its odd frames.

A denoised reference keeps noise and understates decoders that denoise
(``benchmarks/reference_check.py``).  Where a movie's frames hold nearly still, the next
frame is an independent recording of the same scene: its noise is independent of
everything the even frames' files hold.  So every codec's frames, decoded from the even
frames alone, are scored against the odd frames: the mean squared error then adds the odd
frames' noise variance and the scene's change from one frame to the next to every row
alike, and the differences between rows keep their sign (they shrink: "PSNR against the
next frame" is lower for every row).  Subtracting the noise variance, where it is known,
gives the error against the scene.

Checked on simulated camera-like 8-bit movies (``reference_check.camera_movie``: Poisson
counts spread over 0.6 px, liquid-cell, bright-field and HRTEM at 20 and 200 e/px), where
the even frames are also scored against their truth; then run on the suite's real movies
whose frames hold nearly still (liquid-cell; the STEM-ABF series, whose scans drift).

    python benchmarks/cross_frame.py --json docs/figures/cross-frame.json
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import numpy as np

from emtcs.bench.run import BenchConfig, environment, load_movie, run_bench
from reference_check import camera_movie, psnr_by_row

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"
REAL = {
    "liquid-cell TEM (real)": "em/lptem_nanoparticle-chains_10x1024x1024_uint8.tif",
    "STEM-ABF series (real)": "em/stem-abf_movie_5x512x512_uint16.tif",
}
SIMULATED = [(mode, dose) for mode in ("liquid-cell", "bright-field", "hrtem") for dose in (20.0, 200.0)]
ROWS = ("emtcs / gaptv", "emtcs / select", "JPEG (8-bit)", "JPEG (12-bit)", "JPEG XL", "JPEG XL + nlm")


def mse_by_row(run: dict[str, Any], reference: str) -> dict[str, float]:
    """Mean squared error of every row of :data:`ROWS` against ``reference`` (from its PSNR)."""
    span = run["references"][reference]["data_range"]
    return {row: span**2 * 10 ** (-p / 10) for row, p in psnr_by_row(run, reference).items() if row in ROWS}


def score(frames: np.ndarray, truth: np.ndarray | None) -> dict[str, Any]:
    """One bench run of the bench's ``next`` reference: the even frames compressed as one
    group, every row scored against the odd frames (and against the even frames' ``truth``)."""
    references = ("next",) if truth is None else ("clean", "next")
    config = BenchConfig(
        B=(len(frames) // 2,), decoders=("gaptv", "auto"), codecs=("jpeg", "jpegxl"), references=references
    )
    run = run_bench(frames, truth, config=config).to_json()
    out: dict[str, Any] = {
        "frames": len(frames) // 2,
        "budget": next(r["bytes"] for r in run["rows"] if r["title"] == "emtcs / select"),
        "mse_next": mse_by_row(run, "next"),
    }
    if truth is not None:
        out["mse_truth"] = mse_by_row(run, "clean")
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--shared", type=Path, default=SHARED)
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--spread", type=float, default=0.6)
    ap.add_argument("--json", type=Path)
    a = ap.parse_args()
    results = []
    for mode, dose in SIMULATED:
        movie, truth = camera_movie(mode, dose, a.spread, a.seed)
        r = score(movie, truth)
        # the odd frames' own noise and the scene's change, which every row's error against them holds
        half = 2 * (len(movie) // 2)
        r["noise_variance"] = float(np.mean((movie[1:half:2] - truth[1:half:2]) ** 2))
        r["change"] = float(np.mean((truth[1:half:2] - truth[0:half:2]) ** 2))
        results.append({"movie": f"simulated {mode}, {dose:g} e/px, spread {a.spread:g} px", **r})
        report(results[-1])
    for name, rel in REAL.items():
        path = a.shared / rel
        if not path.exists():
            print(f"{path} missing: skipped")
            continue
        frames, _ = load_movie(path, crop=(256, 256))
        results.append({"movie": name, **score(frames, None)})
        report(results[-1])
    if a.json:
        a.json.write_text(json.dumps({"environment": environment(), "results": results}, indent=1))


def report(r: dict[str, Any]) -> None:
    """Each row's error against the next frame (and the truth), relative to `auto`'s."""
    print(f"\n{r['movie']}: {r['frames']} even frames, {r['budget']:,} bytes")
    ref = r["mse_next"]["emtcs / select"]
    for row, mse in r["mse_next"].items():
        line = f"  {row:16s} MSE vs next frame {mse:10.4g} ({mse - ref:+.4g} against auto)"
        if "mse_truth" in r:
            truth = r["mse_truth"]
            line += f"  vs truth {truth[row]:10.4g} ({truth[row] - truth['emtcs / select']:+.4g})"
        print(line)


if __name__ == "__main__":
    main()
