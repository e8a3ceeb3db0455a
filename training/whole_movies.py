"""GapUNet weights alone on whole abTEM validation movies: a screen for the campaign.

    python training/whole_movies.py models/gapunet-w24s2.safetensors runs/gapunet-p32.safetensors

The campaign's validation clips (128 x 128 crops at a random zoom, with flicker and scene
cuts) have not ranked fine-tuned weights as the validation suite does: phases 28 and 32
scored within 0.05 dB of the shipped weights on the clips and 0.2 dB below them on the
suite's abTEM movies.  This runs each network alone (exact measurements, no views, no
finishing) on the first B frames of whole 192 x 192 abTEM validation scenes (seeds 0-31,
never trained on) at the suite's doses (20 and 200 e/px) and group sizes (10 and 20), the
same noise and masks for every network, and prints the PSNR against the clean frames of
each movie, the mean, and each file's difference from the first with its standard error
over scenes.  Differences between nearby checkpoints of a run are of the size of the
scene-to-scene spread of four scenes (session 29: one run +0.06 dB on four scenes, -0.21
on four others), so by default it runs the 30 validation scenes that are not the suite's
(120 movies; the difference's standard error about 0.02 dB), about 2.5 minutes of one
core per weights file.  ``--simulated N`` adds N movies of each of ``emtcs.simulate``'s
imaging modes (HRTEM lattices like the README demo's, bright-field, liquid-cell, STEM; seeds
from 20,000,000, which no training pool draws) and reports each kind apart: a fine-tune
may gain on abTEM HRTEM and lose on the others (phase 27 in the suite: level on abTEM,
-0.45 dB on the README demo).  ``--spacings 6-7,11-12`` adds six HRTEM movies for each
band of lattice spacing (the {200} spacing in pixels; seeds from 21,000,000), reported band
by band: fine-tunes of the shipped weights have gained on coarse lattices and lost on
lattices near the pixel grid, the README demo's kind (session 41).  ``--finish`` finishes
each network's frames as ``auto`` does (:mod:`emtcs.finish`, the strength guided by the
measurement): the finish's gain depends on the weights (session 32: 1.69 dB for the
shipped weights' frames of an abTEM scene at 200 e/px, 1.16 for phase 44's), so a screen
without it can rank candidates otherwise than the suite.  The suite
(``training/candidate.py``) still decides what ships.
"""

from __future__ import annotations

import argparse
import itertools
from dataclasses import replace
from pathlib import Path

import h5py
import numpy as np
import torch

from emtcs.finish import finisher
from emtcs.metrics import psnr
from emtcs.nets import load
from emtcs.simulate import MODES, MovieSimulator, SimulationConfig
from emtcs.training import TrainConfig, make_batch
from emtcs.training.losses import run_net

SCENES = Path(__file__).resolve().parents[2] / "shared" / "data" / "abtem-hrtem" / "hrtem_scenes_0-31.h5"
SUITE = (3, 17)  # the validation suite's scenes (benchmarks/validation.py)
SIMULATOR_SEEDS = 20_000_000  # above every training pool's (emtcs.training.data: 1000 + seed + i) and validation's
SPACING_SEEDS, SPACING_MOVIES = 21_000_000, 6
FRAMES, SIZE = 20, 192
DOSES = (20.0, 200.0)  # (report() reads a movie's decodes 0-1 as the first dose's, 2-3 as the second's)


def abtem_movies(path: Path, seeds: list[int]) -> list[tuple[str, int, np.ndarray]]:
    """(kind, seed, clean movie) of the abTEM validation scenes."""
    if not seeds:
        return []
    with h5py.File(path, "r") as f:
        return [("abTEM", s, np.asarray(f[f"scene_{s:05d}"][:FRAMES], dtype=np.float64)) for s in seeds]


def simulated_movies(n: int) -> list[tuple[str, int, np.ndarray]]:
    """(kind, seed, clean movie) of ``n`` movies of each ``emtcs.simulate`` mode, mean 1."""
    out = []
    for mode in MODES:
        for i in range(n):
            seed = SIMULATOR_SEEDS + i
            sim = MovieSimulator(SimulationConfig(n_frames=FRAMES, shape=(SIZE, SIZE), dose=1.0, seed=seed, mode=mode))
            movie = np.stack([sim.electrons(t) for t in range(FRAMES)])
            out.append((mode, seed, movie / movie.mean()))
    return out


def spacing_movies(bands: list[tuple[float, float]]) -> list[tuple[str, int, np.ndarray]]:
    """(kind, seed, clean movie) of :data:`SPACING_MOVIES` HRTEM movies per band of lattice
    spacing (px), mean 1; the same seeds in every band, so bands differ by the sampling."""
    out = []
    for lo, hi in bands:
        for i in range(SPACING_MOVIES):
            seed = SPACING_SEEDS + i
            config = SimulationConfig(
                n_frames=FRAMES, shape=(SIZE, SIZE), dose=1.0, seed=seed, column_spacing_px=(lo, hi)
            )
            sim = MovieSimulator(config)
            movie = np.stack([sim.electrons(t) for t in range(FRAMES)])
            out.append((f"hrtem {lo:g}-{hi:g} px", seed, movie / movie.mean()))
    return out


def parse_bands(text: str) -> list[tuple[float, float]]:
    """``6-7,11-12`` -> [(6.0, 7.0), (11.0, 12.0)]."""
    return [tuple(float(v) for v in band.split("-")) for band in text.split(",") if band]  # type: ignore[misc]


def report(kind: str, scores: np.ndarray) -> None:
    """Mean PSNR of each network over one kind's movies, and the difference from the first
    network with its standard error over movies (a movie's four decodes share its content),
    over both doses and at each (candidates have gained at one dose and lost at the other)."""
    print(f"{kind}, {scores.shape[1]} movies:")
    print("  mean".ljust(48) + "".join(f"{v:8.3f}" for v in scores.mean(axis=(1, 2))))
    if len(scores) < 2 or scores.shape[1] < 2:
        return
    at = [(f" at {dose:g} e/px", slice(2 * i, 2 * i + 2)) for i, dose in enumerate(DOSES)]
    for label, columns in [("", slice(None)), *at]:
        diff = scores[1:, :, columns].mean(axis=2) - scores[0, :, columns].mean(axis=1)
        error = diff.std(axis=1, ddof=1) / np.sqrt(diff.shape[1])
        print(f"  minus 1{label}".ljust(48) + " " * 8 + "".join(f"{d:+8.3f}" for d in diff.mean(axis=1)))
        print("    its standard error".ljust(48) + " " * 8 + "".join(f"{e:8.3f}" for e in error))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("weights", nargs="+", type=Path)
    ap.add_argument("--scenes", type=Path, default=SCENES)
    ap.add_argument(
        "--seeds",
        default=",".join(str(s) for s in range(32) if s not in SUITE),
        help="validation scenes, comma-separated (default: the 30 that are not the suite's)",
    )
    ap.add_argument("--simulated", type=int, default=0, metavar="N", help="also N emtcs.simulate movies per mode")
    ap.add_argument(
        "--spacings", default="", metavar="BANDS", help="HRTEM movies per lattice-spacing band (px), e.g. 6-7,11-12"
    )
    ap.add_argument("--finish", action="store_true", help="finish the frames as auto does (NL-means, guided)")
    a = ap.parse_args()
    finish = finisher("nlm", "cpu") if a.finish else None
    torch.set_num_threads(1)
    nets = [load(path) for path in a.weights]
    cfg = TrainConfig(noise_error=0.0)
    movies = abtem_movies(a.scenes, [int(s) for s in a.seeds.split(",") if s]) + simulated_movies(a.simulated)
    movies += spacing_movies(parse_bands(a.spacings))
    scores = np.zeros((len(nets), len(movies), 4))
    print("movie".ljust(48) + "".join(f"{i:>8d}" for i in range(1, len(nets) + 1)))
    for m, (kind, seed, clean) in enumerate(movies):
        for j, (dose, B) in enumerate(itertools.product(DOSES, (10, 20))):
            rng = np.random.default_rng([seed, int(dose), B])  # the same sample for every network
            sample = make_batch(clean[None, :B], rng, replace(cfg, dose_range=(dose, dose)))
            x = sample["x"][0].numpy()
            line = f"{kind} {seed}, {dose:3g} e/px, B = {B:2d}".ljust(48)
            for n, net in enumerate(nets):
                with torch.inference_mode():
                    out = run_net(net, sample).numpy()
                if finish is not None:
                    out = finish(out, sample["y"].numpy(), sample["C"].numpy(), float(sample["epu"][0]))
                out = out[0]
                scores[n, m, j] = psnr(x, out, data_range=float(x.max() - x.min()))
                line += f"{scores[n, m, j]:8.2f}"
            print(line, flush=True)
    kinds = list(dict.fromkeys(kind for kind, _, _ in movies))
    for kind in kinds:
        report(kind, scores[:, [k == kind for k, _, _ in movies]])
    for i, path in enumerate(a.weights, 1):
        print(f"{i}: {path}")


if __name__ == "__main__":
    main()
