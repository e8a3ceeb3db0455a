"""Where the error lies: in each group's mean frame, or in the frames' departures from it.

A group's measurement records every pixel's sum over about half its B frames, so what
the frames share (their mean over the group) is measured B/2 times over, and how each
frame departs from that mean is what compressive sensing has to infer.  This splits each
decoded movie's squared error against the clean truth into those two parts, for `auto`,
GAP-TV, JPEG XL at the same bytes with and without NL-means, and the raw frames with
NL-means (the suite's rows), on the validation suite's abTEM movies and the README demo:

    python benchmarks/error_split.py --json docs/figures/error-split.json --table docs/figures/error-split.md

Each part is reported as a PSNR over the whole movie's frames (the same data range as
the suite's), so the two parts' mean squared errors add up to the whole: a part at X dB
costs the movie as much as an error of X dB everywhere would.  "the group's mean for every
frame" is `auto`'s group means with no departures at all: what a decoder that never
separated the frames would score.  The truth's own departures (how much the movie changes
within a group) are that row's departure part.

``--shrink`` adds `auto`'s frames with their departures scaled by 0.25, 0.5 and 0.75 (what
a temporal filter towards the group's mean would do), each with its PSNR and the ratio
RMS(Y - sum_b C_b X_b) / RMS(shot noise) on the unquantised measurement (counts, gain 1):
whether the measurement could tell a good scale from a bad one.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import tifffile

import emtcs
from emtcs.bench.codecs import JpegXl
from emtcs.bench.denoise import NLMeans
from emtcs.bench.run import environment
from emtcs.sensing import forward
from emtcs.simulate import simulate
from validation import DOSES, SHARED, abtem_movie

SEEDS = (3, 17)
SCALES = (0.25, 0.5, 0.75, 1.0)


def split(decoded: np.ndarray, clean: np.ndarray, B: int, data_range: float) -> dict[str, float]:
    """PSNR (dB) of the whole movie, of its groups' mean frames and of the frames' departures
    from them, over the movie's whole groups."""
    n = len(clean) // B * B
    err = (decoded[:n].astype(np.float64) - clean[:n]).reshape(-1, B, *clean.shape[1:])
    mean = err.mean(1, keepdims=True)

    def db(mse: float) -> float:
        return math.inf if mse == 0 else 10 * math.log10(data_range**2 / mse)

    return {
        "psnr": db(float(np.mean(err**2))),
        "mean_part": db(float(np.mean(mean**2))),
        "departures": db(float(np.mean((err - mean) ** 2))),
    }


def scaled_departures(frames: np.ndarray, B: int, scale: float) -> np.ndarray:
    """Every frame of the movie's whole groups as its group's mean plus ``scale`` times its
    departure from it."""
    n = len(frames) // B * B
    g = frames[:n].astype(np.float64).reshape(-1, B, *frames.shape[1:])
    mean = g.mean(1, keepdims=True)
    return (mean + scale * (g - mean)).reshape(n, *frames.shape[1:])


def group_means(frames: np.ndarray, B: int) -> np.ndarray:
    """Every frame replaced by its group's mean (whole groups only)."""
    return scaled_departures(frames, B, 0.0)


def shrunk(decoded: np.ndarray, noisy: np.ndarray, clean: np.ndarray, B: int, data_range: float) -> dict[str, Any]:
    """PSNR and the measurement's residual ratio of ``decoded`` with its departures from each
    group's mean scaled by each of :data:`SCALES` (whole groups only)."""
    n = len(clean) // B * B
    C = emtcs.masks(0, B, clean.shape[1:])  # compress's default seed
    y = np.stack([forward(group.astype(np.float64), C) for group in noisy[:n].reshape(-1, B, *clean.shape[1:])])
    out = {}
    for a in SCALES:
        x = scaled_departures(decoded, B, a)
        r = y - np.stack([forward(group, C) for group in x.reshape(-1, B, *clean.shape[1:])])
        ratio = float(np.sqrt(np.mean(r**2) / np.mean(np.maximum(y, 1.0))))
        out[f"{a:g}"] = {"psnr": split(x, clean, B, data_range)["psnr"], "residual": ratio}
    return out


def decode(noisy: np.ndarray, B: int, decoders: tuple[str, ...]) -> tuple[int, dict[str, np.ndarray]]:
    """The `.tcs` file's bytes (default compression) and each decoder's frames."""
    out = {}
    with tempfile.TemporaryDirectory() as d:
        src, tcs = Path(d) / "movie.tif", Path(d) / "movie.tcs"
        tifffile.imwrite(src, noisy)
        emtcs.compress(src, tcs, B=B)
        for name in decoders:
            emtcs.decompress(tcs, Path(d) / f"{name}.tif", decoder=name)
            out[name] = tifffile.imread(Path(d) / f"{name}.tif").astype(np.float64)
        return tcs.stat().st_size, out


def measure(name: str, noisy: np.ndarray, clean: np.ndarray, B: int, shrink: bool = False) -> dict[str, Any]:
    """One movie at one B: every row's split (and `auto`'s departures scaled, with ``shrink``)."""
    clean = clean.astype(np.float64)
    data_range = float(clean.max() - clean.min())
    nbytes, decoded = decode(noisy, B, ("auto", "gaptv"))
    nlm = NLMeans().for_noise_of(noisy)
    jxl = JpegXl().at_budget(noisy, nbytes)
    rows = {"auto": decoded["auto"], "GAP-TV": decoded["gaptv"]}
    rows["the group's mean for every frame (auto's)"] = group_means(decoded["auto"], B)
    if jxl.decoded is not None:
        rows["JPEG XL"] = jxl.decoded.astype(np.float64)
        rows["JPEG XL + NLM"] = nlm(jxl.decoded).astype(np.float64)
    rows["raw + NLM (uncompressed)"] = nlm(noisy).astype(np.float64)
    result = {
        "movie": name,
        "B": B,
        "bytes": nbytes,
        "rows": {row: split(frames, clean, B, data_range) for row, frames in rows.items()},
    }
    if shrink:
        result["auto_departures_scaled"] = shrunk(decoded["auto"], noisy, clean, B, data_range)
    return result


def table(results: list[dict[str, Any]]) -> str:
    """Markdown: one line per movie and row, the three PSNRs."""
    lines = [
        "| movie | B | row | movie PSNR | group means | departures |",
        "|---|---|---|---|---|---|",
    ]
    for r in results:
        for row, s in r["rows"].items():
            lines.append(
                f"| {r['movie']} | {r['B']} | {row} | {s['psnr']:.2f} | {s['mean_part']:.2f} | {s['departures']:.2f} |"
            )
    scaled = [r for r in results if "auto_departures_scaled" in r]
    if scaled:
        lines += ["", "`auto`'s departures scaled: PSNR (dB) / the measurement's residual over its shot noise", ""]
        lines.append("| movie | B | " + " | ".join(f"× {a:g}" for a in SCALES) + " |")
        lines.append("|---|---|" + "---|" * len(SCALES))
        for r in scaled:
            cells = [f"{v['psnr']:.2f} / {v['residual']:.3f}" for v in r["auto_departures_scaled"].values()]
            lines.append(f"| {r['movie']} | {r['B']} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seeds", default=",".join(map(str, SEEDS)), help="abTEM validation seeds (default: the suite's)")
    ap.add_argument("-B", default="10,20", help="group lengths (default: 10,20)")
    ap.add_argument("--shrink", action="store_true", help="add auto with its departures scaled (see above)")
    ap.add_argument("--no-demo", action="store_true", help="leave out the README demo movie")
    ap.add_argument("--json", type=Path)
    ap.add_argument("--table", type=Path)
    a = ap.parse_args()
    scenes = SHARED / "abtem-hrtem" / "hrtem_scenes_0-31.h5"
    movies = []
    if scenes.exists():
        for seed in (int(s) for s in a.seeds.split(",") if s):
            for dose in DOSES:
                movies.append((f"abTEM seed {seed}, {dose:g} e/px", *abtem_movie(scenes, seed, dose)))
    else:
        print(f"no abTEM scenes at {scenes}: skipped", file=sys.stderr)
    if not a.no_demo:
        movies.append(("README demo, 100 e/px", *simulate()))
    results = []
    t0 = time.perf_counter()
    for name, noisy, clean in movies:
        for B in (int(b) for b in a.B.split(",")):
            results.append(measure(name, noisy, clean, B, a.shrink))
            print(f"{name}, B = {B}: done ({time.perf_counter() - t0:.0f} s)", file=sys.stderr, flush=True)
    text = table(results)
    print(text, end="")
    if a.table:
        a.table.write_text(text)
    if a.json:
        a.json.write_text(json.dumps({"environment": environment(), "results": results}, indent=1) + "\n")


if __name__ == "__main__":
    main()
