"""Exact against default (quantised at one noise sigma) measurements: bytes and PSNR.

For each movie: ``emtcs compress`` with ``--exact`` and with the defaults (noise model
measured, measurements quantised at one noise standard deviation where it is known),
then decoded with GAP-TV and ``select`` (GapUNet or GAP-TV per tile); PSNR against the
clean truth (simulated) or the wavelet-denoised raw frames (real).

    python benchmarks/default_coding.py --json docs/figures/default-coding.json
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

import numpy as np
import tifffile

import emtcs
from emtcs.bench.denoise import Wavelet
from emtcs.bench.run import load_movie
from emtcs.metrics import psnr
from emtcs.simulate import MovieSimulator, SimulationConfig

sys.path.insert(0, str(Path(__file__).parent))
from validation import CROP, REAL, SHARED, abtem_movie  # noqa: E402

B = 10


def movies(shared: Path):
    scenes = shared / "abtem-hrtem" / "hrtem_scenes_0-31.h5"
    if scenes.exists():
        for dose in (20.0, 200.0):
            noisy, clean = abtem_movie(scenes, 3, dose)
            yield f"abTEM seed 3, {dose:g} e/px (counting)", noisy, clean
    for dose in (20.0, 200.0):
        cfg = SimulationConfig(n_frames=20, shape=(256, 256), dose=dose, gain=4.0, offset=200.0, read_noise=3.0, seed=8)
        sim = MovieSimulator(cfg)
        noisy = np.stack([sim.noisy_frame(t) for t in range(20)])
        clean = np.stack([sim.clean_frame(t) for t in range(20)])
        yield f"simulated CMOS (gain 4, offset 200, read noise 3 e), {dose:g} e/px", noisy, clean
    for name, rel in REAL.items():
        if (shared / rel).exists():
            frames, _ = load_movie(shared / rel, crop=CROP)
            if len(frames) >= B:
                yield name, frames, Wavelet()(frames)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--shared", type=Path, default=SHARED)
    ap.add_argument("--decoders", default="gaptv,select")
    ap.add_argument("--json", type=Path)
    a = ap.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        for name, noisy, ref in movies(a.shared):
            src = folder / "movie.tif"
            tifffile.imwrite(src, noisy)
            rng = float(np.max(ref) - np.min(ref)) or 1.0
            for label, quantise in (("exact", 0.0), ("default", None)):
                info = emtcs.compress(src, folder / "m.tcs", B=B, quantise=quantise, force=True)
                row = {
                    "movie": name,
                    "coding": label,
                    "stored": info["coding"],
                    "bytes": info["file_bytes"],
                    "noise": info["noise"],
                    "noise_note": info["noise_note"],
                }
                for dec in a.decoders.split(","):
                    emtcs.decompress(folder / "m.tcs", folder / "out.tif", decoder=dec, device="cpu", force=True)
                    out = tifffile.imread(folder / "out.tif").astype(np.float64)
                    row[dec] = psnr(np.asarray(ref, np.float64), out, data_range=rng)
                rows.append(row)
                print(json.dumps(row), flush=True)
    if a.json:
        a.json.write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
