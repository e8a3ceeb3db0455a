"""Mask density: what masks with fewer 1s (``emtcs compress --density``) do to decoded movies.

A group's measurement sums, at each pixel, the frames whose mask is 1 there: about
density x B of them.  Fewer frames per pixel tell the frames apart better (the departures
from the group's mean weigh more against the noise of the sum) but keep fewer of the
electrons (the group's mean is measured from fewer).  This runs the file pipeline a user
runs (``emtcs.compress`` with ``density``, then ``emtcs.read_frames``) on abTEM validation
scenes (``shared/data/abtem-hrtem``, never trained on; counted as the validation suite
counts them) and, with ``--demo``, on the README's demo movie (``emtcs simulate``'s
defaults), and reports PSNR against the clean truth and the file's bytes per density.

    python benchmarks/mask_density.py --seeds 0,1,2,3,4,5,6,7,8,9,10,12,17 --doses 20 -B 20 \\
        --densities 0.5,0.25 --demo --json docs/figures/mask-density.json
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import tifffile

import emtcs
from emtcs.metrics import psnr

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))
from validation import SHARED, abtem_movie, simulate  # noqa: E402

#: Seeds of the simulated movies: above every training pool's (emtcs.training.data) and the
#: validation scenes' (training/whole_movies.py uses the same).
SIMULATOR_SEEDS = 20_000_000


def run(
    name: str, noisy: np.ndarray, clean: np.ndarray, B: int, densities: list[float], decoders: list[str], folder: Path
) -> list[dict]:
    """One movie compressed at each density and decoded with each decoder."""
    tifffile.imwrite(folder / "movie.tif", noisy, photometric="minisblack")
    rows = []
    span = float(clean.max() - clean.min())
    for density in densities:
        info = emtcs.compress(folder / "movie.tif", folder / "movie.tcs", B=B, density=density, force=True)
        row: dict = {"movie": name, "B": B, "density": density, "bytes": info["file_bytes"]}
        row["moving_share"] = round(info["moving_share"], 3)
        for decoder in decoders:
            t0 = time.perf_counter()
            frames = emtcs.read_frames(folder / "movie.tcs", decoder=decoder)
            row[decoder] = round(psnr(clean, frames, data_range=span), 3)
            row[f"{decoder}_s"] = round(time.perf_counter() - t0, 1)
        print(json.dumps(row), flush=True)
        rows.append(row)
    return rows


def simulated_movies(
    n: int, frames: int, size: int = 192, first: int = SIMULATOR_SEEDS
) -> list[tuple[str, int, np.ndarray]]:
    """(mode, seed, clean movie in electrons at a mean of 1) for ``n`` seeds from ``first`` of
    every :mod:`emtcs.simulate` mode."""
    from emtcs.simulate import MODES, MovieSimulator, SimulationConfig

    out = []
    for mode in MODES:
        for seed in range(first, first + n):
            sim = MovieSimulator(SimulationConfig(n_frames=frames, shape=(size, size), dose=1.0, seed=seed, mode=mode))
            movie = np.stack([sim.electrons(t) for t in range(frames)])
            out.append((mode, seed, movie / movie.mean()))
    return out


def parser() -> argparse.ArgumentParser:
    """The benchmark's options (also read back from a figure's ``command`` by density_rule.py)."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--shared", type=Path, default=SHARED, help="folder holding abtem-hrtem/")
    ap.add_argument("--seeds", default="3,17", help="abTEM scenes of --scenes")
    ap.add_argument(
        "--scenes",
        type=Path,
        help="an abTEM scene file (default: the validation scenes 0-31 of --shared; the calibration "
        "scenes apart from them: training/make_scenes.sh 1800 16, scratch/abtem/calib_1800.h5)",
    )
    ap.add_argument("--doses", default="20", help="electrons per pixel per frame, comma-separated")
    ap.add_argument("-B", type=int, default=20)
    ap.add_argument("--frames", type=int, default=20, help="frames of each abTEM scene (the long scenes have 60)")
    ap.add_argument(
        "--flicker",
        type=float,
        default=0.0,
        help="relative spread of each frame's brightness (a beam whose current flickers; the clean truth flickers too)",
    )
    ap.add_argument("--densities", default="0.5,0.25")
    ap.add_argument("--decoders", default="auto")
    ap.add_argument("--demo", action="store_true", help="also the README's demo movie (100 e/px)")
    ap.add_argument(
        "--simulated",
        type=int,
        default=0,
        metavar="N",
        help="also N movies of each emtcs.simulate mode (HRTEM, bright-field, liquid-cell, STEM; 192 x 192, "
        "seeds from 20,000,000, which training never draws) at each of --doses",
    )
    ap.add_argument(
        "--first-simulated",
        type=int,
        default=SIMULATOR_SEEDS,
        metavar="SEED",
        help="the simulated movies' first seed (a rule chosen on the first few is checked on later ones)",
    )
    ap.add_argument("--json", type=Path)
    return ap


def movies(a: argparse.Namespace) -> list[tuple[str, np.ndarray, np.ndarray]]:
    """(name, counted movie, clean truth) for every movie the options ``a`` name."""
    scenes = a.scenes or a.shared / "abtem-hrtem" / "hrtem_scenes_0-31.h5"
    out = []
    if a.seeds:
        if not scenes.exists():
            raise SystemExit(f"no abTEM scenes at {scenes}")
        for seed in (int(s) for s in a.seeds.split(",")):
            for dose in (float(d) for d in a.doses.split(",")):
                name = f"abTEM seed {seed}, {dose:g} e/px" + (f", {a.flicker:g} flicker" if a.flicker else "")
                out.append((name, *abtem_movie(scenes, seed, dose, a.frames, a.flicker)))
    for mode, seed, clean in simulated_movies(a.simulated, a.frames, first=a.first_simulated):
        for dose in (float(d) for d in a.doses.split(",")):
            noisy = np.random.default_rng([seed, int(dose)]).poisson(clean * dose).astype(np.uint16)
            out.append((f"{mode} seed {seed}, {dose:g} e/px", noisy, (clean * dose).astype(np.float32)))
    if a.demo:
        out.append(("README demo, 100 e/px", *simulate()))
    return out


def main() -> None:
    a = parser().parse_args()
    densities = [float(p) for p in a.densities.split(",")]
    decoders = a.decoders.split(",")
    t0 = time.time()
    rows: list[dict] = []
    with tempfile.TemporaryDirectory() as tmp:
        for name, noisy, clean in movies(a):
            rows += run(name, noisy, clean, a.B, densities, decoders, Path(tmp))
    if a.json:
        doc = {
            "command": " ".join(sys.argv),
            "machine": f"{platform.processor() or platform.machine()}, {platform.system()}",
            "emtcs": emtcs.__version__,
            "seconds": round(time.time() - t0),
            "rows": rows,
        }
        a.json.write_text(json.dumps(doc, indent=1) + "\n")


if __name__ == "__main__":
    main()
