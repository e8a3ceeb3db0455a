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


def split(frames: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(even frames, odd frames), as many of each."""
    n = len(frames) // 2
    return frames[0 : 2 * n : 2], frames[1 : 2 * n : 2]


def mse_by_row(run: dict[str, Any]) -> dict[str, float]:
    """Mean squared error of every row against the run's "clean" reference (from its PSNR)."""
    span = run["references"]["clean"]["data_range"]
    return {row: span**2 * 10 ** (-p / 10) for row, p in psnr_by_row(run, "clean").items()}


def score(evens: np.ndarray, odds: np.ndarray, truth: np.ndarray | None) -> dict[str, Any]:
    """The even frames' bench run scored against the odd frames (and against ``truth``)."""
    config = BenchConfig(B=(len(evens),), decoders=("gaptv", "auto"), codecs=("jpeg", "jpegxl"), references=("clean",))
    nxt = run_bench(evens, odds.astype(np.float32), config=config).to_json()
    out: dict[str, Any] = {
        "frames": len(evens),
        "budget": next(r["bytes"] for r in nxt["rows"] if r["title"] == "emtcs / select"),
        "mse_next": {k: v for k, v in mse_by_row(nxt).items() if k in ROWS},
    }
    if truth is not None:
        true = run_bench(evens, truth, config=config).to_json()
        out["mse_truth"] = {k: v for k, v in mse_by_row(true).items() if k in ROWS}
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
        evens, odds = split(movie)
        t_evens, t_odds = split(truth)
        r = score(evens, odds, t_evens)
        # the odd frames' own noise and the scene's change, which every row's error against them holds
        r["noise_variance"] = float(np.mean((odds - t_odds) ** 2))
        r["change"] = float(np.mean((t_odds - t_evens) ** 2))
        results.append({"movie": f"simulated {mode}, {dose:g} e/px, spread {a.spread:g} px", **r})
        report(results[-1])
    for name, rel in REAL.items():
        path = a.shared / rel
        if not path.exists():
            print(f"{path} missing: skipped")
            continue
        frames, _ = load_movie(path, crop=(256, 256))
        evens, odds = split(frames)
        results.append({"movie": name, **score(evens, odds, None)})
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
